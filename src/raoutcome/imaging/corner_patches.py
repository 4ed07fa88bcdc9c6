"""Posed corner patches of lateral spine radiographs: one small square patch per mSASSS corner.

Each scored anterior corner (:data:`raoutcome.msasss.CORNERS`) is cut out around its landmark, turned and
sized by the pose of ITS OWN vertebra: the similarity that carries the view's template pair (corner, centre
of the same vertebra; :data:`raoutcome.anatomy.LANDMARK_TEMPLATES`) onto the image's pair,

    pose = (z_centre - z_corner) / (t_centre - t_corner)        (complex: scale * exp(i angle)),

so lordosis, tilt and film size do not change the patch (a whole-image pose would leave each vertebra turned by
the local curvature). The patch is centred a little in front of the corner and toward its disc, spans
``2 * half_width`` template units (about a vertebral height and a disc), and upper corners are flipped
top-bottom so that every patch shows its corner above its disc: one encoder reads upper and lower corners alike
(the identity embedding still tells them apart). Grey levels are scaled by the image's mean and SD, as the
site route's patches are (:mod:`raoutcome.imaging.site_patches`).

:func:`corner_targets` reads a cohort's ``joints`` table (``kind = msasss``): the reading of each patch's
corner, and whether it was scorable (a corner of an imaged, read view without a reading on that visit was
judged not scorable; a visit without any reading of that view is unknown, NaN).
"""
from __future__ import annotations

__all__ = ["CORNER_GRID", "CORNER_HALF_WIDTH", "CornerPatches", "corner_pose", "image_corner_patches",
           "cohort_corner_patches", "corner_targets"]

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from raoutcome import anatomy
from raoutcome.errors import InputError
from raoutcome.msasss import CORNERS, SPINE_VIEWS, level_of

CORNER_GRID = 32
CORNER_HALF_WIDTH = 0.05      # template units (the image side of a standard-framed view)
_OFFSET = (-0.010, 0.020)     # patch centre from the corner: anterior (-x) and toward the disc, template units


def corner_pose(view: str, corner: str, points: Mapping[str, tuple[float, float]]) -> complex | None:
    """``scale * exp(i angle)`` (pixels per template unit) from the corner and its vertebra's centre, or None."""
    template = anatomy.landmark_template(view)
    centre = f"{level_of(corner)}_c"
    if corner not in points or centre not in points or corner not in template or centre not in template:
        return None
    z = complex(*points[centre]) - complex(*points[corner])
    t = complex(*template[centre]) - complex(*template[corner])
    if abs(z) < 1e-6 or abs(t) < 1e-9:
        return None
    return z / t


def image_corner_patches(pixels: np.ndarray, view: str, points: Mapping[str, tuple[float, float]],
                         grid: int = CORNER_GRID, half_width: float = CORNER_HALF_WIDTH) -> dict[str, np.ndarray]:
    """``{corner: (grid, grid) float32 patch}`` of every corner of ``view`` that has its landmark and its
    vertebra's centre in ``points`` (pixel x, y of ``pixels``)."""
    from raoutcome.imaging.joint_anomaly import joint_patches

    pixels = np.asarray(pixels, np.float32)
    mean, sd = float(pixels.mean()), float(pixels.std()) or 1.0
    out = {}
    for corner in CORNERS[view]:
        pose = corner_pose(view, corner, points)
        if pose is None:
            continue
        down = 1.0 if corner.endswith("_inf") else -1.0
        centre = complex(*points[corner]) + pose * complex(_OFFSET[0], down * _OFFSET[1])
        patch = joint_patches(pixels, {corner: (centre.real, centre.imag)}, False, half_width, grid, pose,
                              margin=0)[corner].reshape(grid, grid)
        if down < 0:
            patch = patch[::-1]
        out[corner] = ((patch - mean) / sd).astype(np.float32)
    return out


@dataclass
class CornerPatches:
    """``table``: one row per patch (``patient_id, visit_id, view, corner, joint, path``); ``patches``:
    ``float32[n, grid, grid]``."""

    table: pd.DataFrame
    patches: np.ndarray

    def __len__(self) -> int:
        return len(self.table)

    def subset(self, mask: np.ndarray) -> "CornerPatches":
        mask = np.asarray(mask, bool)
        return CornerPatches(self.table[mask].reset_index(drop=True), self.patches[mask])

    def patients(self, patient_ids: Sequence[str]) -> "CornerPatches":
        return self.subset(self.table["patient_id"].isin({str(p) for p in patient_ids}).to_numpy())


def cohort_corner_patches(cohort, landmarks: pd.DataFrame | None = None, grid: int = CORNER_GRID,
                          half_width: float = CORNER_HALF_WIDTH) -> CornerPatches:
    """Every corner patch of every lateral spine image of ``cohort`` (landmarks: the cohort's own, or
    ``landmarks`` e.g. detected ones). Raises :class:`InputError` without landmarks or spine images."""
    from raoutcome.imaging.io import read_image

    lm = cohort.landmarks if landmarks is None else landmarks
    if lm is None or not len(lm):
        raise InputError(f"{cohort.root}: mSASSS corner reading needs spine landmarks (landmarks.csv), "
                         "given or detected")
    by_path = {p: dict(zip(g["landmark"].astype(str), zip(g["x"].astype(float), g["y"].astype(float))))
               for p, g in lm.groupby("path", sort=False)}
    images = cohort.images[cohort.images["view"].isin(SPINE_VIEWS) & cohort.images["path"].isin(by_path)]
    rows, chunks = [], []
    for img in images.itertuples(index=False):
        pixels = read_image(cohort.image_path(img.path)).pixels
        for corner, patch in image_corner_patches(pixels, img.view, by_path[img.path], grid, half_width).items():
            rows.append({"patient_id": str(img.patient_id), "visit_id": str(img.visit_id), "view": str(img.view),
                         "corner": corner, "joint": anatomy.joint_name(img.view, corner), "path": str(img.path)})
            chunks.append(patch)
    if not rows:
        raise InputError(f"{cohort.root}: no lateral spine image has its corner landmarks")
    return CornerPatches(pd.DataFrame(rows), np.stack(chunks))


def corner_targets(table: pd.DataFrame, joints: pd.DataFrame | None) -> tuple[np.ndarray, np.ndarray]:
    """Per patch row: (grade float, NaN where not scorable or unknown; scorable 1/0, NaN where unknown).

    A view counts as read on a visit when the joints table has any ``msasss`` row of that view and visit."""
    n = len(table)
    grade, scorable = np.full(n, np.nan), np.full(n, np.nan)
    if joints is None or not len(joints):
        return grade, scorable
    j = joints[joints["kind"].astype(str) == "msasss"]
    j = j.assign(patient_id=j["patient_id"].astype(str), visit_id=j["visit_id"].astype(str),
                 joint=j["joint"].astype(str), score=pd.to_numeric(j["score"], errors="coerce"))
    j = j.drop_duplicates(["patient_id", "visit_id", "joint"], keep="last")
    key = table[["patient_id", "visit_id", "joint"]].astype(str)
    merged = key.merge(j[["patient_id", "visit_id", "joint", "score"]], how="left", on=["patient_id", "visit_id",
                                                                                        "joint"])
    grade = merged["score"].to_numpy(float)
    view = j["joint"].str.split(":", n=1).str[0]
    read = set(zip(j["patient_id"], j["visit_id"], view))
    was_read = np.array([(p, v, w) in read for p, v, w in zip(key["patient_id"], key["visit_id"],
                                                              table["view"].astype(str))])
    scorable = np.where(was_read, np.isfinite(grade).astype(float), np.nan)
    return grade, scorable
