"""mSASSS corner reader: posed corner patches -> shared timm encoder -> ordinal grade 0-3 and "scorable".

The site-level machine of :mod:`raoutcome.models.site_model` applied to the 24 anterior vertebral corners: one
timm encoder reads every corner patch (:mod:`raoutcome.imaging.corner_patches`), a learned identity embedding
of the corner (``spine_cervical:C3_sup``) is added to its features, and two heads read it:

* a cumulative-link ordinal head (:class:`~raoutcome.models.site_model.OrdinalHead`, CORAL loss, increasing
  thresholds) for the grade 0-3 (1 erosion / sclerosis / squaring, 2 syndesmophyte, 3 bridge), trained on
  scorable corners only;
* a binary head for "scorable" (osteophyte, blurred, hidden by the shoulders -> not scorable), trained on every
  corner whose reading status is known.

:func:`corner_outputs` gives per corner P(scorable), the grade probabilities, the expected grade
``E = sum k p_k`` and the rank-consistent grade (the number of thresholds with ``P(y > k) > 0.5``).
"""
from __future__ import annotations

__all__ = ["CornerSpec", "CornerReader", "corner_loss", "corner_outputs"]

from dataclasses import asdict, dataclass
from typing import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from raoutcome.models.encoder import create_encoder
from raoutcome.models.site_model import OrdinalHead, coral_loss, ordinal_summary


@dataclass(frozen=True)
class CornerSpec:
    """Everything needed to rebuild a :class:`CornerReader` (stored with its weights)."""

    corners: tuple[str, ...] = ()    # ``view:corner`` vocabulary; position = identity index
    encoder: str = "resnet10t"
    grid: int = 32
    half_width: float = 0.05
    d_model: int = 64
    dropout: float = 0.1
    n_grades: int = 4

    def to_dict(self) -> dict:
        d = asdict(self)
        d["corners"] = list(self.corners)
        return d

    @classmethod
    def from_dict(cls, d: Mapping) -> "CornerSpec":
        d = dict(d)
        d["corners"] = tuple(d.get("corners", ()))
        return cls(**d)


class CornerReader(nn.Module):
    """``forward(patches [N, 1, g, g], corner [N] long)`` -> ``{"h", "grade" [N, 3], "scorable" [N]}`` logits."""

    def __init__(self, spec: CornerSpec):
        super().__init__()
        if not spec.corners:
            raise ValueError("a corner reader needs its corner vocabulary (spec.corners)")
        self.spec = spec
        self.encoder = create_encoder(spec.encoder, None)
        d = spec.d_model
        self.proj = nn.Sequential(nn.Linear(self.encoder.out_features, d), nn.LayerNorm(d), nn.GELU(),
                                  nn.Dropout(spec.dropout))
        self.identity = nn.Embedding(len(spec.corners), d)
        nn.init.normal_(self.identity.weight, std=0.02)
        self.grade = OrdinalHead(d, spec.n_grades)
        self.scorable = nn.Linear(d, 1)

    def forward(self, patches: Tensor, corner: Tensor) -> dict[str, Tensor]:
        h = self.proj(self.encoder(patches).float()) + self.identity(corner)
        return {"h": h, "grade": self.grade(h), "scorable": self.scorable(h)[:, 0]}


def corner_loss(out: Mapping[str, Tensor], grade: Tensor, scorable: Tensor,
                weight: Tensor | None = None) -> dict[str, Tensor]:
    """CORAL loss of the grade on scorable corners with a finite grade; BCE of "scorable" where known.
    ``weight`` (per patch) re-weights the grade term (imbalance handling)."""
    ok = torch.isfinite(grade)
    if weight is None or not bool(ok.any()):
        g = coral_loss(out["grade"], grade)
    else:
        levels = torch.arange(out["grade"].shape[-1], device=grade.device, dtype=out["grade"].dtype)
        y = grade[ok]
        bce = F.binary_cross_entropy_with_logits(out["grade"][ok], (y[:, None] > levels).to(y.dtype),
                                                 reduction="none").sum(-1)
        w = weight[ok]
        g = (bce * w).sum() / w.sum().clamp_min(1e-6)
    known = torch.isfinite(scorable)
    s = (F.binary_cross_entropy_with_logits(out["scorable"][known], scorable[known]) if bool(known.any())
         else out["scorable"].sum() * 0.0)
    return {"grade": g, "scorable": s}


@torch.no_grad()
def corner_outputs(out: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """``p_scorable``, grade probabilities ``prob`` [N, 4], expected grade ``expected``, its ``sd`` and the
    rank-consistent ``grade`` (thresholds passed at 0.5)."""
    p, mean, sd = ordinal_summary(out["grade"])
    return {"p_scorable": torch.sigmoid(out["scorable"]), "prob": p, "expected": mean, "sd": sd,
            "grade": (out["grade"] > 0).sum(-1)}
