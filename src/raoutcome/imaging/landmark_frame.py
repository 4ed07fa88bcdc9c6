"""The detector's input frame: canonical orientation, percentile contrast, resize/pad to a square.

:func:`to_input` prepares a decoded radiograph for :class:`raoutcome.models.landmarks.LandmarkNet` and
returns the :class:`InputFrame` that carries landmark coordinates between the stored image (what the
``landmarks`` table holds) and the square input. Right-side views are mirrored first
(:func:`raoutcome.imaging.transforms.canonical_orientation`), so in the input every hand looks like a
left one; the frame undoes the mirror on the way back (``x -> columns - 1 - x``).
"""
from __future__ import annotations

__all__ = ["InputFrame", "to_input"]

from dataclasses import dataclass

import numpy as np

from raoutcome.imaging.transforms import ResizeGeometry, needs_mirror, preprocess


@dataclass(frozen=True)
class InputFrame:
    """Maps pixel coordinates (x = column, y = row, pixel centres) image <-> square input."""

    geometry: ResizeGeometry
    mirrored: bool

    def to_input(self, x, y) -> tuple[np.ndarray, np.ndarray]:
        x = np.asarray(x, float)
        if self.mirrored:
            x = self.geometry.columns - 1 - x
        return self.geometry.to_square(x, np.asarray(y, float))

    def to_image(self, x, y) -> tuple[np.ndarray, np.ndarray]:
        x, y = self.geometry.from_square(np.asarray(x, float), np.asarray(y, float))
        if self.mirrored:
            x = self.geometry.columns - 1 - x
        return x, y


def to_input(pixels: np.ndarray, view: str | None, size: int,
             contrast: tuple[float, float] | None = (0.5, 99.5)) -> tuple[np.ndarray, InputFrame]:
    """``(size, size)`` float32 input in [0, 1] and its frame, for a 2-D image in [0, 1] of ``view``."""
    if pixels.ndim != 2:
        raise ValueError(f"expected a 2-D image, got shape {pixels.shape}")
    frame = InputFrame(ResizeGeometry.fit(*pixels.shape, size), needs_mirror(view))
    return preprocess(pixels, view, size, contrast=contrast), frame
