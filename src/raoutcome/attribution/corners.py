"""Corner attribution: which part of an mSASSS corner patch drives the corner reader's grade, pooled per corner.

The corner reader (:class:`raoutcome.models.corner_reader.CornerReader`) grades each anterior vertebral corner
from its posed patch (:mod:`raoutcome.imaging.corner_patches`): every patch is turned and sized by its own
vertebra and upper corners are flipped, so in every patch the corner sits at the same pixel
(:func:`corner_point`) with its vertebral body above and behind it and its disc below. Attribution maps of
many patches therefore lie on top of each other and can be averaged: the *corner atlas*.

:class:`CornerPatchHeads` presents the reader to :mod:`raoutcome.attribution.methods` (Captum):
``forward_single_image(x, corner) -> {"grade": expected grade E = Σ k p_k [B], "scorable": P(scorable) [B]}``.
:func:`corner_atlas` attributes up to ``max_per_group`` patches per group (a corner, or a predicted grade) with
Integrated Gradients (Sundararajan et al., ICML 2017; baseline: the all-zero patch, i.e. the film's mean grey,
since patches are scaled by the image's mean and SD) and returns the mean |attribution| map per group.
:func:`corner_share` says how much of a map falls within a radius of the corner point, and how that compares
with the share of the patch's area there (an enrichment of 1: no preference for the corner); :func:`below_share`
the same for the strip below it (the anterior disc margin, where syndesmophytes grow and bridges cross).
"""
from __future__ import annotations

__all__ = ["CornerPatchHeads", "corner_point", "corner_share", "below_share", "corner_atlas"]

from typing import Sequence

import numpy as np
import torch
from torch import nn

from raoutcome.models.corner_reader import CornerReader
from raoutcome.models.site_model import ordinal_summary


class CornerPatchHeads(nn.Module):
    """A corner reader as ``forward_single_image(x [B, 1, g, g], corner) -> {"grade": [B], "scorable": [B]}``
    (expected grade 0–3 and P(scorable) of patches read as ``corner``, e.g. ``spine_cervical:C3_sup``)."""

    def __init__(self, model: CornerReader):
        super().__init__()
        self.model = model
        self.encoder = model.encoder  # Grad-CAM finds its layer here
        self._index = {c: i for i, c in enumerate(model.spec.corners)}

    def forward_single_image(self, x: torch.Tensor, corner: str) -> dict[str, torch.Tensor]:
        if corner not in self._index:
            raise ValueError(f"the corner reader does not know corner {corner!r}")
        ids = torch.full((x.shape[0],), self._index[corner], dtype=torch.long, device=x.device)
        out = self.model(x, ids)
        return {"grade": ordinal_summary(out["grade"])[1], "scorable": torch.sigmoid(out["scorable"])}


def corner_point(grid: int, half_width: float) -> tuple[float, float]:
    """Pixel (x, y) of the corner landmark in a corner patch of ``grid`` px over ``2 half_width`` template units.

    The patch is centred at the corner + pose·(−0.010, ±0.020) (:mod:`raoutcome.imaging.corner_patches`: in
    front of the corner and toward its disc; upper corners flipped), so the corner lies at −offset from the
    centre: x = c + 0.010·s, y = c − 0.020·s with s = grid / (2 half_width) px per unit, c = (grid − 1)/2."""
    from raoutcome.imaging.corner_patches import _OFFSET

    s = grid / (2.0 * half_width)
    c = (grid - 1) / 2.0
    return c - _OFFSET[0] * s, c - _OFFSET[1] * s


def _share(attribution: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
    a = np.abs(np.asarray(attribution, float))
    total = a.sum()
    if total <= 0 or not mask.any():
        return float("nan"), float("nan")
    share = float(a[mask].sum() / total)
    return share, share / float(mask.mean())


def corner_share(attribution: np.ndarray, point: tuple[float, float], radius: float) -> tuple[float, float]:
    """(share of Σ|attribution| within ``radius`` px of ``point``, that share / the area share of the disc).

    Enrichment > 1: the map prefers the corner's neighbourhood over the rest of the patch."""
    h, w = np.shape(attribution)
    yy, xx = np.mgrid[0:h, 0:w]
    return _share(attribution, (xx - point[0]) ** 2 + (yy - point[1]) ** 2 <= radius ** 2)


def below_share(attribution: np.ndarray, point: tuple[float, float], radius: float) -> tuple[float, float]:
    """(share of Σ|attribution| in the strip below the corner's neighbourhood, its enrichment): columns within
    ``radius`` px of the corner, rows more than ``radius`` px below it — the anterior disc margin, where a
    syndesmophyte grows toward the facing corner and a bridge crosses the disc."""
    h, w = np.shape(attribution)
    yy, xx = np.mgrid[0:h, 0:w]
    return _share(attribution, (np.abs(xx - point[0]) <= radius) & (yy > point[1] + radius))


def corner_atlas(model: CornerReader, patches: np.ndarray, corners: Sequence[str],
                 groups: Sequence | None = None, head: str = "grade", method: str = "integrated_gradients",
                 max_per_group: int = 16, seed: int = 0, batch: int = 64) -> dict:
    """Mean attribution map of ``head`` per group over up to ``max_per_group`` patches (drawn with ``seed``).

    ``patches``: ``float32[n, g, g]``; ``corners``: the corner of each (``view:corner``, the reader's
    vocabulary); ``groups``: the group of each patch (default: its corner), e.g. the predicted grade.
    Returns ``{group: {"map": float[g, g], "n": patches pooled}}`` (|attribution|, averaged)."""
    from raoutcome.attribution.methods import attribute_batch, settings_from

    wrapped = CornerPatchHeads(model).eval()
    settings = settings_from(method)
    rng = np.random.default_rng(seed)
    corners = np.asarray(corners, dtype=str)
    groups = corners if groups is None else np.asarray(groups)
    if len(corners) != len(patches) or len(groups) != len(patches):
        raise ValueError(f"{len(patches)} patches but {len(corners)} corners and {len(groups)} groups")
    out = {}
    for group in sorted(set(groups.tolist())):
        rows = np.flatnonzero(groups == group)
        if len(rows) > max_per_group:
            rows = np.sort(rng.choice(rows, max_per_group, replace=False))
        maps = []
        for corner in sorted(set(corners[rows])):  # one identity per call
            sel = rows[corners[rows] == corner]
            for i in range(0, len(sel), batch):
                x = torch.from_numpy(np.ascontiguousarray(patches[sel[i:i + batch]][:, None], dtype=np.float32))
                maps.append(np.asarray(attribute_batch(wrapped, x, corner, head, settings)))
        out[group] = {"map": np.concatenate(maps).mean(0), "n": int(len(rows))}
    return out
