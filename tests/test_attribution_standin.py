"""Small stand-in models with the trained model's interface, shared by the attribution tests.

``forward_single_image(x: Tensor[B,1,H,W], view) -> {head: Tensor[B]}`` and ``.encoder`` — what
``raoutcome.training.load_run`` returns per model. No tests here.
"""
from __future__ import annotations

import torch
from torch import nn


class StandIn(nn.Module):
    """A timm encoder (in_chans=1, pooled features) with one linear head per outcome."""

    def __init__(self, arch: str = "resnet10t", heads=("svdh", "haq"), seed: int = 0):
        import timm

        super().__init__()
        torch.manual_seed(seed)
        self.encoder = timm.create_model(arch, pretrained=False, in_chans=1, num_classes=0)
        self.heads = nn.ModuleDict({h: nn.Linear(self.encoder.num_features, 1) for h in heads})

    def forward_single_image(self, x, view):
        z = self.encoder(x)
        return {h: m(z).squeeze(-1) for h, m in self.heads.items()}


class Planted(nn.Module):
    """Head ``haq`` depends only on the pixels inside ``mask``; head ``svdh`` only on those outside it.

    Output = sum of a smooth non-linearity of the masked image (tanh(2x)), so gradients are non-zero
    exactly where the head looks.
    """

    def __init__(self, mask: torch.Tensor):
        super().__init__()
        self.register_buffer("mask", mask.float()[None, None])
        self.encoder = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU())

    def forward_single_image(self, x, view):
        t = torch.tanh(2 * x)
        return {"haq": (t * self.mask).sum(dim=(1, 2, 3)), "svdh": (t * (1 - self.mask)).sum(dim=(1, 2, 3)) * 0.1}
