"""Outcome heads on the per-visit features ``[h_t, p_t]`` (history + progression).

Every head maps ``[B, T, F]`` to named per-visit outputs ``[B, T]`` on the outcome's own
scale, with the range enforced by construction:

* ``svdh``: JSN and erosion subscores, each ``expm1(softplus(z))`` (a log1p-space output,
  non-negative, capped at the subscore maximum); the total is their sum.
* ``haq``: ``3 * sigmoid(z)`` (0–3). ``pain``: ``100 * sigmoid(z)`` (0–100).
* ``risk``: a log relative hazard (Cox), centred on the training patients after training
  (buffer ``center``) so that models from different folds or seeds share an origin.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from raoutcome.anatomy import OUTCOME_RANGES

HEAD_NAMES: tuple[str, ...] = ("svdh", "haq", "pain", "risk")
# Which per-visit outputs each head produces.
HEAD_OUTPUTS: dict[str, tuple[str, ...]] = {
    "svdh": ("svdh", "jsn", "erosion"),
    "haq": ("haq",),
    "pain": ("pain",),
    "risk": ("risk",),
}


def _mlp(in_features: int, hidden: int, out: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_features, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, out))


class SvdHHead(nn.Module):
    def __init__(self, in_features: int, hidden: int, dropout: float):
        super().__init__()
        self.mlp = _mlp(in_features, hidden, 2, dropout)
        caps = torch.tensor([math.log1p(OUTCOME_RANGES["svdh_jsn"][1]), math.log1p(OUTCOME_RANGES["svdh_erosion"][1])])
        self.register_buffer("log_cap", caps, persistent=False)

    def forward(self, z: Tensor) -> dict[str, Tensor]:
        log_scores = torch.minimum(F.softplus(self.mlp(z).float()), self.log_cap)
        jsn, erosion = torch.expm1(log_scores).unbind(-1)
        return {"svdh": jsn + erosion, "jsn": jsn, "erosion": erosion}


class BoundedHead(nn.Module):
    """``upper * sigmoid(z)``."""

    def __init__(self, name: str, in_features: int, hidden: int, dropout: float, upper: float):
        super().__init__()
        self.name, self.upper = name, float(upper)
        self.mlp = _mlp(in_features, hidden, 1, dropout)

    def forward(self, z: Tensor) -> dict[str, Tensor]:
        return {self.name: self.upper * torch.sigmoid(self.mlp(z).float().squeeze(-1))}


class RiskHead(nn.Module):
    def __init__(self, in_features: int, hidden: int, dropout: float):
        super().__init__()
        self.mlp = _mlp(in_features, hidden, 1, dropout)
        self.register_buffer("center", torch.zeros(()))

    def forward(self, z: Tensor) -> dict[str, Tensor]:
        return {"risk": self.mlp(z).float().squeeze(-1) - self.center}


def build_head(name: str, in_features: int, hidden: int, dropout: float) -> nn.Module:
    if name == "svdh":
        return SvdHHead(in_features, hidden, dropout)
    if name == "haq":
        return BoundedHead("haq", in_features, hidden, dropout, OUTCOME_RANGES["haq"][1])
    if name == "pain":
        return BoundedHead("pain", in_features, hidden, dropout, OUTCOME_RANGES["pain"][1])
    if name == "risk":
        return RiskHead(in_features, hidden, dropout)
    raise ValueError(f"unknown head {name!r} (known: {', '.join(HEAD_NAMES)})")
