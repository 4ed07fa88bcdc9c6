"""Outcome heads on the per-visit features ``[h_t, p_t]`` (history + progression).

Every head maps ``[B, T, F]`` to named per-visit outputs ``[B, T]`` on the outcome's own
scale, with the range enforced by construction:

* ``svdh``: JSN and erosion subscores, non-negative and capped at the subscore maximum; the
  total is their sum. With lesion-density counts (:mod:`raoutcome.models.density`) each
  subscore is the visit's count (summed over its views); without counts, or at a visit
  without images, ``expm1(softplus(z))`` (a log1p-space output).
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
    """JSN and erosion subscores (and their sum, the SvdH total), capped at the maxima.

    With lesion counts (``counts=True``) a visit's subscores *are* its images' counts: the
    score is read off the lesion maps, with no path around them (an MLP on the embedding
    given the chance learns faster than the maps and takes the signal over, leaving maps
    that count nothing). A visit without any image falls back to ``expm1(softplus(mlp(z)))``.
    """

    def __init__(self, in_features: int, hidden: int, dropout: float, counts: bool = False):
        super().__init__()
        self.counts = counts
        self.mlp = _mlp(in_features, hidden, 2, dropout)
        caps = torch.tensor([math.log1p(OUTCOME_RANGES["svdh_jsn"][1]), math.log1p(OUTCOME_RANGES["svdh_erosion"][1])])
        self.register_buffer("log_cap", caps, persistent=False)

    def forward(self, z: Tensor, log_counts: Tensor | None = None, has_image: Tensor | None = None) -> dict[str, Tensor]:
        log_scores = F.softplus(self.mlp(z).float())
        if self.counts:
            if log_counts is None:
                raise ValueError("this SvdH head reads lesion counts: pass log_counts")
            present = has_image[..., None] if has_image is not None else torch.ones_like(log_scores, dtype=torch.bool)
            log_scores = torch.where(present, log_counts[..., :2].float(), log_scores)
        jsn, erosion = torch.expm1(torch.minimum(log_scores, self.log_cap)).unbind(-1)
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


def build_head(name: str, in_features: int, hidden: int, dropout: float, counts: bool = False) -> nn.Module:
    """Head ``name``; ``counts``: the SvdH head reads the lesion-density counts."""
    if name == "svdh":
        return SvdHHead(in_features, hidden, dropout, counts)
    if name == "haq":
        return BoundedHead("haq", in_features, hidden, dropout, OUTCOME_RANGES["haq"][1])
    if name == "pain":
        return BoundedHead("pain", in_features, hidden, dropout, OUTCOME_RANGES["pain"][1])
    if name == "risk":
        return RiskHead(in_features, hidden, dropout)
    raise ValueError(f"unknown head {name!r} (known: {', '.join(HEAD_NAMES)})")
