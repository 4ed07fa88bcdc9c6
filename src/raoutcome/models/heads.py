"""Outcome heads on the per-visit features ``[h_t, p_t]`` (history + progression), found by outcome kind.

Every head maps ``[B, T, F]`` to its outcome's named per-visit outputs ``[B, T]`` on the outcome's own
scale, with the range enforced by construction. Which head an outcome gets is chosen by its spec's
``kind`` (:mod:`raoutcome.outcomes`) through :data:`HEAD_BUILDERS` (:func:`register_head` adds one,
as timm registers models):

* ``count`` (SvdH): the parts (JSN, erosion), non-negative and capped at each part's maximum; the main
  output is their sum. With lesion-density counts (:mod:`raoutcome.models.density`) each part is the
  visit's count (summed over its views); without counts, or at a visit without images,
  ``expm1(softplus(z))`` (a log1p-space output).
* ``bounded`` (HAQ, pain, DAS28): ``lower + (upper - lower) * sigmoid(z)``.
* ``time_to_event`` (risk): a log relative hazard (Cox), centred on the training patients after
  training (buffer ``center``) so that models from different folds or seeds share an origin.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from raoutcome.outcomes import Outcome, outcome, outcome_names


def _mlp(in_features: int, hidden: int, out: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_features, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, out))


class CountHead(nn.Module):
    """A count outcome's parts (SvdH JSN and erosion) and their sum (the SvdH total), capped at the maxima.

    With lesion counts (``counts=True``) a visit's parts *are* its images' counts (the first lesion maps,
    one per part): the score is read off the lesion maps, with no path around them (an MLP on the
    embedding given the chance learns faster than the maps and takes the signal over, leaving maps
    that count nothing). A visit without any image falls back to ``expm1(softplus(mlp(z)))``.
    """

    reads_counts = True

    def __init__(self, spec: Outcome, in_features: int, hidden: int, dropout: float, counts: bool = False):
        super().__init__()
        self.counts = counts
        self.names = (spec.name, *(p.name for p in spec.parts))
        self.mlp = _mlp(in_features, hidden, len(spec.parts), dropout)
        caps = torch.tensor([math.log1p(p.upper) for p in spec.parts])
        self.register_buffer("log_cap", caps, persistent=False)

    def forward(self, z: Tensor, log_counts: Tensor | None = None,
                has_image: Tensor | None = None) -> dict[str, Tensor]:
        log_scores = F.softplus(self.mlp(z).float())
        k = log_scores.shape[-1]
        if self.counts:
            if log_counts is None:
                raise ValueError(f"this {self.names[0]} head reads lesion counts: pass log_counts")
            present = has_image[..., None] if has_image is not None else torch.ones_like(log_scores, dtype=torch.bool)
            log_scores = torch.where(present, log_counts[..., :k].float(), log_scores)
        parts = torch.expm1(torch.minimum(log_scores, self.log_cap)).unbind(-1)
        return {self.names[0]: sum(parts[1:], parts[0]), **dict(zip(self.names[1:], parts))}


class BoundedHead(nn.Module):
    """``lower + (upper - lower) * sigmoid(z)``."""

    reads_counts = False

    def __init__(self, spec: Outcome, in_features: int, hidden: int, dropout: float, counts: bool = False):
        super().__init__()
        self.name, self.lower, self.width = spec.name, float(spec.lower), float(spec.upper - spec.lower)
        self.mlp = _mlp(in_features, hidden, 1, dropout)

    def forward(self, z: Tensor) -> dict[str, Tensor]:
        return {self.name: self.lower + self.width * torch.sigmoid(self.mlp(z).float().squeeze(-1))}


class RiskHead(nn.Module):
    """A log relative hazard, minus the ``center`` buffer (set after training)."""

    reads_counts = False

    def __init__(self, spec: Outcome, in_features: int, hidden: int, dropout: float, counts: bool = False):
        super().__init__()
        self.name = spec.name
        self.mlp = _mlp(in_features, hidden, 1, dropout)
        self.register_buffer("center", torch.zeros(()))

    def forward(self, z: Tensor) -> dict[str, Tensor]:
        return {self.name: self.mlp(z).float().squeeze(-1) - self.center}


HeadBuilder = Callable[..., nn.Module]
#: outcome kind -> head class, called as ``builder(spec, in_features, hidden, dropout, counts=...)``
HEAD_BUILDERS: dict[str, HeadBuilder] = {"count": CountHead, "bounded": BoundedHead, "time_to_event": RiskHead}


def register_head(kind: str, builder: HeadBuilder) -> HeadBuilder:
    """Make ``builder`` the head of every outcome of ``kind`` (e.g. an ordinal head)."""
    HEAD_BUILDERS[kind] = builder
    return builder


def build_head(name: str, in_features: int, hidden: int, dropout: float, counts: bool = False) -> nn.Module:
    """The head of outcome ``name`` (by its kind); ``counts``: a count head reads the lesion-density counts."""
    if name not in outcome_names():
        raise ValueError(f"unknown head {name!r} (known: {', '.join(outcome_names())})")
    spec = outcome(name)
    builder = HEAD_BUILDERS.get(spec.kind)
    if builder is None:
        raise ValueError(f"outcome {name!r} is of kind {spec.kind!r}, which has no head yet "
                         f"(heads: {', '.join(HEAD_BUILDERS)}; add one with register_head)")
    return builder(spec, in_features, hidden, dropout, counts=counts)


__all__ = ["BoundedHead", "CountHead", "HEAD_BUILDERS", "RiskHead", "build_head", "register_head"]
