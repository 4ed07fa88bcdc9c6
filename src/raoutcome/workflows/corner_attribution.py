"""The AS study's corner attribution: Integrated Gradients atlases of the corner reader's expected grade.

:func:`write_corner_atlas` attributes the expected grade of corner patches called scorable
(:func:`raoutcome.attribution.corners.corner_atlas`: Integrated Gradients, 16 steps, all-zero baseline = the
film's mean grey), pooled two ways, and writes to the study folder:

* ``corner_atlas.npz``: per group the mean |IG| map (``map_<group>``) and the mean patch (``patch_<group>``);
  groups are each corner (``spine_cervical:C3_sup``) and each predicted grade (``grade_0`` … ``grade_3``, over
  all corners: which part of the patch drives the grade when the reader sees a syndesmophyte or a bridge);
  ``corner_xy``: the corner's pixel in every patch;
* ``corner_attribution.csv``: per group the patches pooled, the share of the map within ``radius`` template
  units of the corner and its enrichment (share / area share; 1 = no preference for the corner), and the same
  for the strip below that neighbourhood (the anterior disc margin: syndesmophytes, bridges).

Patches are drawn per group with ``seed`` (at most ``max_per_grade`` per grade, 48, and ``max_per_group`` per
corner, 16); settings are fixed, not tuned.
"""
from __future__ import annotations

__all__ = ["ATLAS_FILE", "ATTRIBUTION_FILE", "CORNER_RADIUS", "write_corner_atlas"]

from pathlib import Path

import numpy as np
import pandas as pd

ATLAS_FILE = "corner_atlas.npz"
ATTRIBUTION_FILE = "corner_attribution.csv"
CORNER_RADIUS = 0.02  # template units (6.4 px of a 32-px patch over 0.1 units): the corner's neighbourhood


def write_corner_atlas(out: str | Path, model, patches, pred: pd.DataFrame, *, max_per_group: int = 16,
                       max_per_grade: int = 48, seed: int = 0, radius: float = CORNER_RADIUS, min_patients: int | None = 1) -> pd.DataFrame:
    """Attribute, pool and write (see the module docstring); returns the ``corner_attribution.csv`` table.

    ``patches``: the :class:`~raoutcome.imaging.corner_patches.CornerPatches` read; ``pred``: their predictions
    (:func:`~raoutcome.training.corner_train.predict_corners`, same rows and order). With fewer than
    ``min_patients`` patients (or ``min_patients=None``) nothing is attributed; an earlier run's files are
    removed either way."""
    from raoutcome.attribution.corners import below_share, corner_atlas, corner_point, corner_share
    from raoutcome.io_utils import atomic_path

    out = Path(out)
    for name in (ATLAS_FILE, ATTRIBUTION_FILE):
        (out / name).unlink(missing_ok=True)
    if len(pred) != len(patches):
        raise ValueError(f"{len(patches)} patches but {len(pred)} predictions")
    ok = pred["p_scorable"].to_numpy() >= 0.5
    if min_patients is None or pred["patient_id"].nunique() < min_patients or not ok.any():
        return pd.DataFrame()
    x = patches.patches[ok]
    corners = pred.loc[ok, "joint"].astype(str).to_numpy()
    grades = np.array([f"grade_{g}" for g in pred.loc[ok, "grade"].astype(int)])
    spec = model.spec
    point = corner_point(spec.grid, spec.half_width)
    radius_px = radius * spec.grid / (2.0 * spec.half_width)
    arrays: dict[str, np.ndarray] = {"corner_xy": np.array(point)}
    rows = []
    for kind, groups, most in (("grade", grades, max_per_grade), ("corner", corners, max_per_group)):
        atlas = corner_atlas(model, x, corners, groups=groups, max_per_group=most, seed=seed)
        order = {c: i for i, c in enumerate(spec.corners)}  # corners in the reader's (anatomical) order
        for group in sorted(atlas, key=lambda g: (order.get(g, -1), g)):
            res = atlas[group]
            share, enrichment = corner_share(res["map"], point, radius_px)
            below, below_enrichment = below_share(res["map"], point, radius_px)
            arrays[f"map_{group}"] = res["map"].astype(np.float32)
            arrays[f"patch_{group}"] = x[groups == group].mean(0).astype(np.float32)
            rows.append({"kind": kind, "group": group, "patches": res["n"], "near_corner_share": share,
                         "enrichment": enrichment, "below_share": below, "below_enrichment": below_enrichment})
    table = pd.DataFrame(rows)
    with atomic_path(out / ATLAS_FILE) as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **arrays)
    with atomic_path(out / ATTRIBUTION_FILE) as tmp:
        table.to_csv(tmp, index=False)
    return table
