"""Sum-pooled lesion-density maps: a counting head on the encoder's spatial features.

The SvdH score is a *sum* of local lesions (an erosion or a narrowed joint space at each of
~40 sites per hand). Global average pooling hides such counts inside an embedding that the
head must then learn to decode from few patients; a density map makes the count the
architecture's own output: a 1x1 projection of every spatial position to ``k``
non-negative channels (softplus), summed over positions, is a per-image count per channel
(Lempitsky & Zisserman 2010, "Learning to count objects in images"). The per-visit count is
the sum over the views present (the SvdH total is a sum over hands and feet).

With the SvdH head on, channel 0 is trained as the JSN load and channel 1 as the erosion
load; with it off, the channels are free sum-pooled features feeding the visit embedding.
The maps themselves are lesion maps one can look at (:meth:`LesionDensity.maps`).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class LesionDensity(nn.Module):
    """``[N, C, h, w]`` (or token ``[N, L, C]``) features -> per-image counts ``[N, k]``."""

    def __init__(self, in_channels: int, k: int = 2, prefix_tokens: int = 0, init_count: float = 0.1):
        super().__init__()
        self.k, self.prefix_tokens = int(k), int(prefix_tokens)
        self.proj = nn.Linear(in_channels, self.k)
        # softplus(bias) = init_count per position: the counts start small and positive
        nn.init.constant_(self.proj.bias, float(torch.log(torch.expm1(torch.tensor(init_count)))))

    def maps(self, features: Tensor) -> Tensor:
        """Per-position non-negative densities: ``[N, k, h, w]`` (``[N, k, L]`` for tokens)."""
        if features.ndim == 4:
            if features.shape[1] != self.proj.in_features:  # channels-last feature maps
                features = features.permute(0, 3, 1, 2)
            return F.softplus(self.proj(features.permute(0, 2, 3, 1).float())).permute(0, 3, 1, 2)
        if features.ndim == 3:
            return F.softplus(self.proj(features[:, self.prefix_tokens:].float())).transpose(1, 2)
        raise ValueError(f"LesionDensity needs [N, C, h, w] or [N, L, C] features, got shape {tuple(features.shape)}")

    def forward(self, features: Tensor) -> Tensor:
        m = self.maps(features)
        return m.flatten(2).sum(-1)


def visit_counts(counts: Tensor, img_b: Tensor, img_t: Tensor, n_patients: int, n_visits: int) -> Tensor:
    """Sum the per-image counts ``[N, k]`` over the views of each visit -> ``[B, T, k]``."""
    group = img_b * n_visits + img_t
    out = counts.new_zeros((n_patients * n_visits, counts.shape[1]))
    out = out.index_add(0, group, counts)
    return out.view(n_patients, n_visits, counts.shape[1])


__all__ = ["LesionDensity", "visit_counts"]
