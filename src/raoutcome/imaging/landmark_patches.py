"""Joint patches of each image in the model's input frame: what the model's joint anomaly readout reads.

:mod:`raoutcome.imaging.joint_anomaly` samples patches from the stored radiograph. A model sees the
preprocessed image instead (letter-boxed into its input square, right-side views mirrored), so the
dataset samples the same patches (:func:`~raoutcome.imaging.joint_anomaly.joint_patches`, the same
span of the standard frame) from that image, at the landmarks carried into its frame
(:func:`~raoutcome.imaging.joint_targets.to_model_frame`), turned and sized by the pose of those
landmarks (:func:`~raoutcome.imaging.landmark_pose.landmark_pose`). The PCA the model's readout holds is
fitted on patches sampled this way, so fitting and scoring see the same thing.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from raoutcome.imaging.joint_anomaly import PATCH_SIDE, joint_patches
from raoutcome.imaging.joint_targets import points_by_path, to_model_frame
from raoutcome.imaging.landmark_pose import landmark_pose


def cohort_landmark_names(cohort) -> tuple[str, ...]:
    """The landmark names of a cohort's ``landmarks`` table, sorted (empty without one)."""
    marks = getattr(cohort, "landmarks", None)
    if marks is None or not len(marks):
        return ()
    return tuple(sorted(str(n) for n in marks["landmark"].unique()))


class LandmarkPatches:
    """``patches(rel_path, abs_path, view, pixels) -> float32[len(names), PATCH_SIDE**2]`` (NaN rows
    for landmarks the image lacks) from the preprocessed image ``pixels`` (``[1, S, S]`` or ``[S, S]``).

    ``shape_of(abs_path) -> (rows, columns)`` of the stored image (e.g.
    :meth:`raoutcome.imaging.cache.ImageCache.source_shape`).
    """

    def __init__(self, cohort, names: Sequence[str], shape_of: Callable[[str], tuple[int, int]]):
        self.names = tuple(str(n) for n in names)
        self._shape_of = shape_of
        self._points = points_by_path(getattr(cohort, "landmarks", None))

    @property
    def width(self) -> int:
        return PATCH_SIDE * PATCH_SIDE

    def patches(self, rel_path: str, abs_path: str, view: str, pixels: np.ndarray) -> np.ndarray:
        out = np.full((len(self.names), self.width), np.nan, np.float32)
        marks = self._points.get(str(rel_path), {})
        have = [n for n in self.names if n in marks]
        if not have:
            return out
        image = np.asarray(pixels, np.float32)
        image = image.reshape(image.shape[-2:])
        xy = np.array([marks[n] for n in have], float)
        xs, ys = to_model_frame(xy[:, 0], xy[:, 1], view, self._shape_of(abs_path), image.shape[-1])
        points = {n: (x, y) for n, x, y in zip(have, xs, ys)}
        sampled = joint_patches(image, points, pose=landmark_pose(points, view, mirrored=False))  # already mirrored
        index = {n: i for i, n in enumerate(self.names)}
        for n, patch in sampled.items():
            out[index[n]] = patch
        return out


__all__ = ["LandmarkPatches", "cohort_landmark_names"]
