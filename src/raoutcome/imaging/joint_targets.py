"""Per-joint readings placed in the model's input frame: point targets for the lesion maps.

A cohort with a ``joints`` table (one SvdH reading per joint and kind, as RA2-DREAM ships)
and a ``landmarks`` table (where each joint is in each image) says not only *how much*
damage a visit has but *where*. :class:`JointTargets` turns the two into, per image, the
points ``(channel, x, y, score)``: channel 0 = JSN, 1 = erosion (the lesion-density
channels of :mod:`raoutcome.models.density`), ``x, y`` in ``[0, 1)`` of the model's input
square (the right-side views mirrored and the image letter-boxed exactly as
:func:`raoutcome.imaging.transforms.preprocess` does).

An image is *supervised* only when every reading of its (patient, visit, view) has a
finite score and a landmark: then the points account for the image's whole count, and
the density-map loss (:func:`raoutcome.models.losses.joint_density_loss`) can ask every
cell of the map to hold exactly the damage of the joints inside it. Other images just
get no point target (their visit totals still train the counts).

Joint names follow :func:`raoutcome.anatomy.joint_name` (``"hand_left:MCP2"``); a
landmark carries the site name (``"MCP2"``), with the thumb MCP also found as ``"MP"``
(the name the real-hand landmark sets use).
"""
from __future__ import annotations

from typing import Callable, Mapping

import numpy as np
import pandas as pd

from raoutcome.anatomy import LANDMARK_SITE
from raoutcome.imaging.transforms import ResizeGeometry, needs_mirror

#: lesion-density channel of each reading kind
KIND_CHANNEL: dict[str, int] = {"jsn": 0, "erosion": 1}
#: other landmark names a site may carry (the inverse of anatomy.LANDMARK_SITE)
SITE_ALIASES: dict[str, tuple[str, ...]] = {}
for _landmark, _site in LANDMARK_SITE.items():
    SITE_ALIASES[_site] = (*SITE_ALIASES.get(_site, ()), _landmark)

ShapeOf = Callable[[str], tuple[int, int]]


class JointTargets:
    """Point targets ``float32[P, 4]`` (channel, x, y, score) per image, or None.

    ``cohort``: a :class:`raoutcome.cohort.Cohort` with ``joints`` and ``landmarks``.
    ``shape_of(path) -> (rows, columns)`` of the stored image (e.g.
    :meth:`raoutcome.imaging.cache.ImageCache.source_shape`); ``size``: the model's input side.
    """

    def __init__(self, cohort, shape_of: ShapeOf, size: int):
        self.size = int(size)
        self._shape_of = shape_of
        self._readings: dict[tuple[str, str, str], list[tuple[str, int, float]]] = {}
        self._points: dict[str, dict[str, tuple[float, float]]] = {}
        self._cache: dict[tuple[str, str, str, str], np.ndarray | None] = {}
        joints, landmarks = getattr(cohort, "joints", None), getattr(cohort, "landmarks", None)
        if joints is None or landmarks is None or len(joints) == 0 or len(landmarks) == 0:
            return
        j = joints[joints["kind"].isin(list(KIND_CHANNEL))]
        parts = j["joint"].astype(str).str.split(":", n=1, expand=True)
        if parts.shape[1] < 2:
            return
        j = j.assign(_view=parts[0], _site=parts[1])
        for (pid, vid, view), grp in j.groupby(["patient_id", "visit_id", "_view"], sort=False):
            self._readings[(str(pid), str(vid), str(view))] = [
                (site, KIND_CHANNEL[kind], float(score)) for site, kind, score in
                zip(grp["_site"], grp["kind"], pd.to_numeric(grp["score"], errors="coerce"))]
        self._points = points_by_path(landmarks)

    @property
    def available(self) -> bool:
        """Whether the cohort has any per-joint readings with landmarks."""
        return bool(self._readings) and bool(self._points)

    def points(self, patient_id: str, visit_id: str, view: str, rel_path: str, abs_path: str) -> np.ndarray | None:
        """The image's point targets in the model frame, or None (not fully located)."""
        key = (str(patient_id), str(visit_id), str(view), str(rel_path))
        if key not in self._cache:
            self._cache[key] = self._build(*key, abs_path)
        return self._cache[key]

    def _build(self, pid: str, vid: str, view: str, rel_path: str, abs_path: str) -> np.ndarray | None:
        readings = self._readings.get((pid, vid, view))
        marks = self._points.get(rel_path)
        if not readings or not marks:
            return None
        xy = []
        for site, channel, score in readings:
            if not np.isfinite(score):
                return None
            at = _locate(site, marks)
            if at is None:
                return None
            xy.append((channel, at[0], at[1], score))
        arr = np.asarray(xy, dtype=np.float64)
        xs, ys = to_model_frame(arr[:, 1], arr[:, 2], view, self._shape_of(abs_path), self.size)
        out = np.stack([arr[:, 0], (xs + 0.5) / self.size, (ys + 0.5) / self.size, arr[:, 3]], axis=1)
        return out.astype(np.float32)


def points_by_path(landmarks: pd.DataFrame | None) -> dict[str, dict[str, tuple[float, float]]]:
    """A ``landmarks`` table (``path, landmark, x, y``) as ``{path: {landmark: (x, y)}}`` (empty without one)."""
    if landmarks is None or not len(landmarks):
        return {}
    return {str(path): {str(n): (float(x), float(y)) for n, x, y in zip(grp["landmark"], grp["x"], grp["y"])}
            for path, grp in landmarks.groupby("path", sort=False)}


def to_model_frame(x: np.ndarray, y: np.ndarray, view: str, shape: tuple[int, int], size: int
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Landmark pixel coordinates ``(x, y)`` of a stored ``shape = (rows, columns)`` image -> pixel
    coordinates in the model's ``size`` square: right-side views mirrored and the image letter-boxed
    exactly as :func:`raoutcome.imaging.transforms.preprocess` does."""
    rows, cols = int(shape[0]), int(shape[1])
    x = np.asarray(x, float)
    x = (cols - 1 - x) if needs_mirror(view) else x
    return ResizeGeometry.fit(rows, cols, int(size)).to_square(x, np.asarray(y, float))


def _locate(site: str, marks: Mapping[str, tuple[float, float]]) -> tuple[float, float] | None:
    for name in (site, *SITE_ALIASES.get(site, ())):
        if name in marks:
            return marks[name]
    return None


def shift_points(points: np.ndarray, dy: int, dx: int, size: int) -> np.ndarray | None:
    """Points after translating the image by ``(dy, dx)`` pixels; None if one left the frame
    (its lesion is no longer in the image, so the visible count is no longer known)."""
    out = points.copy()
    out[:, 1] += dx / size
    out[:, 2] += dy / size
    inside = (out[:, 1] >= 0) & (out[:, 1] < 1) & (out[:, 2] >= 0) & (out[:, 2] < 1)
    return out if bool(inside.all()) else None


__all__ = ["JointTargets", "KIND_CHANNEL", "points_by_path", "shift_points", "to_model_frame"]
