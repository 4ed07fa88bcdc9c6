"""Deterministic preprocessing of a decoded radiograph (numpy in, numpy out).

- :func:`canonical_orientation`: right-side views (``hand_right``,
  ``foot_right``) are mirrored left-right so every hand/foot looks like a left
  one (thumb/hallux on the same side); other views are unchanged. One encoder
  then sees one anatomy layout.
- :func:`percentile_normalize` (optional): a linear contrast stretch mapping
  the ``lo``-th and ``hi``-th intensity percentiles to 0 and 1 (clipped), for
  images that use little of their bit range. Computed on the image before
  padding, so the padding does not count.
- :func:`resize_pad`: scale so the longer side is ``size`` (aspect kept;
  bilinear with antialiasing, torch), then pad the shorter side symmetrically
  with ``pad_value`` (0 = black background) to a ``size`` x ``size`` square.
  :class:`ResizeGeometry` maps pixel coordinates (e.g. landmarks) from the
  original image into the square and back.
- :func:`preprocess`: orientation -> optional contrast -> resize/pad, the
  composition the cache and datasets use.

Torch is imported lazily (only when resizing), so importing
:mod:`raoutcome.imaging` stays cheap.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from raoutcome import anatomy


def needs_mirror(view: str | None) -> bool:
    """True for the views :func:`canonical_orientation` mirrors (registered with ``mirrored``, see
    :mod:`raoutcome.anatomy`). ``None``: unknown side, no flip."""
    if view is None:
        return False
    if view not in anatomy.view_names():
        raise ValueError(f"unknown view {view!r}; expected one of {', '.join(anatomy.view_names())} or None")
    return anatomy.is_mirrored(view)


def canonical_orientation(pixels: np.ndarray, view: str | None) -> np.ndarray:
    """Mirror right-side views left-right so they look like left ones."""
    return pixels[:, ::-1] if needs_mirror(view) else pixels


def percentile_normalize(pixels: np.ndarray, lo: float = 0.5, hi: float = 99.5) -> np.ndarray:
    """Stretch linearly so the ``lo``/``hi`` percentiles become 0/1, clipped to ``[0, 1]``.

    A flat image (both percentiles equal) is returned as zeros.
    """
    if not 0.0 <= lo < hi <= 100.0:
        raise ValueError(f"percentiles must satisfy 0 <= lo < hi <= 100, got {lo}, {hi}")
    p_lo, p_hi = np.percentile(pixels, [lo, hi])
    if p_hi <= p_lo:
        return np.zeros_like(pixels, dtype=np.float32)
    out = (pixels.astype(np.float32) - np.float32(p_lo)) / np.float32(p_hi - p_lo)
    return np.clip(out, 0.0, 1.0, out=out)


@dataclass(frozen=True)
class ResizeGeometry:
    """Where an ``rows`` x ``columns`` image lands inside the ``size`` square.

    The image is scaled by ``scale`` to ``new_rows`` x ``new_columns`` and its
    top-left corner is placed at (``pad_top``, ``pad_left``).
    """

    rows: int
    columns: int
    size: int
    scale: float
    new_rows: int
    new_columns: int
    pad_top: int
    pad_left: int

    @classmethod
    def fit(cls, rows: int, columns: int, size: int) -> "ResizeGeometry":
        if size < 1 or rows < 1 or columns < 1:
            raise ValueError(f"cannot fit a {rows}x{columns} image into a {size}x{size} square")
        scale = size / max(rows, columns)
        new_rows = min(size, max(1, round(rows * scale)))
        new_cols = min(size, max(1, round(columns * scale)))
        return cls(rows, columns, size, scale, new_rows, new_cols,
                   (size - new_rows) // 2, (size - new_cols) // 2)

    def to_square(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Map pixel coordinates (x = column, y = row; pixel centres) into the square."""
        sx, sy = self.new_columns / self.columns, self.new_rows / self.rows
        return ((np.asarray(x, float) + 0.5) * sx - 0.5 + self.pad_left,
                (np.asarray(y, float) + 0.5) * sy - 0.5 + self.pad_top)

    def from_square(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Inverse of :meth:`to_square`."""
        sx, sy = self.new_columns / self.columns, self.new_rows / self.rows
        return ((np.asarray(x, float) - self.pad_left + 0.5) / sx - 0.5,
                (np.asarray(y, float) - self.pad_top + 0.5) / sy - 0.5)


def resize_pad(pixels: np.ndarray, size: int, pad_value: float = 0.0) -> np.ndarray:
    """Resize keeping the aspect ratio, then pad to ``size`` x ``size`` (float32)."""
    import torch
    import torch.nn.functional as F

    geom = ResizeGeometry.fit(*pixels.shape, size)
    src = torch.from_numpy(np.ascontiguousarray(pixels, dtype=np.float32))[None, None]
    if (geom.new_rows, geom.new_columns) != pixels.shape:
        src = F.interpolate(src, size=(geom.new_rows, geom.new_columns), mode="bilinear",
                            align_corners=False, antialias=True)
    out = np.full((size, size), pad_value, dtype=np.float32)
    out[geom.pad_top:geom.pad_top + geom.new_rows,
        geom.pad_left:geom.pad_left + geom.new_columns] = src[0, 0].numpy()
    return out


def preprocess(pixels: np.ndarray, view: str | None, size: int,
               contrast: tuple[float, float] | None = None, pad_value: float = 0.0) -> np.ndarray:
    """Orientation, optional percentile contrast ``(lo, hi)``, then resize/pad to a square."""
    x = canonical_orientation(pixels, view)
    if contrast is not None:
        x = percentile_normalize(x, *contrast)
    return resize_pad(x, size, pad_value=pad_value)
