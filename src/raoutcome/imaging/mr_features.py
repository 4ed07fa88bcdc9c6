"""Fixed-length features of a sagittal cervical MR volume: aligned slab block means.

The volume is read through :func:`raoutcome.imaging.volume.read_volume` (canonical P, I, L frame: slices
right → left, rows superior → inferior, columns anterior → posterior) and resampled to a common grid.
Slabs: the mid-sagittal slab (dens, atlantodental interval, retro-odontoid space, cord) and the two
parasagittal slabs (C1–C2 lateral masses and facet joints) are averaged over their slices; each slab is
shifted in-plane onto a reference image (phase correlation, :func:`estimate_shift`) so the same block
covers the same anatomy in every patient, then reduced to ``block x block`` pixel means (robust to noise).
A patient's T1 and T2 features side by side are the input of the deformity model (a supervised linear
read-out fitted on training patients; :mod:`raoutcome.workflows.cervical_predict`).

Reference: Guizar-Sicairos M, Thurman ST, Fienup JR. Efficient subpixel image registration algorithms.
Opt Lett 2008;33:156-8 (phase correlation; integer-pixel peak here).
"""
from __future__ import annotations

__all__ = ["slabs", "estimate_shift", "block_features", "MRFeaturizer"]

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import ndimage


def slabs(volume: np.ndarray, lateral_offset: float = 0.35, width: float = 0.2) -> np.ndarray:
    """``(3, rows, cols)``: mean of the mid slices and of the slices ``lateral_offset`` of the extent to
    either side (``width``: share of the slices in each slab; at least one slice)."""
    n = volume.shape[0]
    half = max(1, int(round(width * n / 2)))

    def mean_at(centre: float) -> np.ndarray:
        c = int(round(centre))
        lo, hi = max(0, c - half + 1), min(n, c + half + 1)
        return volume[lo:hi].mean(axis=0)

    mid = (n - 1) / 2
    return np.stack([mean_at(mid), mean_at(mid - lateral_offset * n), mean_at(mid + lateral_offset * n)])


def estimate_shift(image: np.ndarray, reference: np.ndarray, max_shift: int = 6) -> tuple[int, int]:
    """Integer ``(rows, cols)`` shift that moves ``image`` onto ``reference`` (phase correlation peak)."""
    a = image - image.mean()
    b = reference - reference.mean()
    r = np.fft.ifft2(np.fft.fft2(b) * np.conj(np.fft.fft2(a)))
    r = np.abs(r)
    h, w = r.shape
    dy = np.fft.fftfreq(h) * h
    dx = np.fft.fftfreq(w) * w
    ok = (np.abs(dy)[:, None] <= max_shift) & (np.abs(dx)[None, :] <= max_shift)
    i, j = np.unravel_index(np.argmax(np.where(ok, r, -np.inf)), r.shape)
    return int(dy[i]), int(dx[j])


def block_features(image: np.ndarray, block: int) -> np.ndarray:
    """Means of non-overlapping ``block x block`` tiles (trailing rows/columns dropped), flattened."""
    h, w = (s // block * block for s in image.shape)
    return image[:h, :w].reshape(h // block, block, w // block, block).mean(axis=(1, 3)).ravel()


@dataclass
class MRFeaturizer:
    """Volumes -> aligned slab block means. ``fit`` builds the reference slabs from training volumes
    (mean of iteratively aligned slabs), ``transform`` aligns each volume's mid slab to it (the shift is
    applied to all three slabs) and returns the block means."""

    block: int = 4
    shape: tuple[int, int] = (48, 48)
    reference_: np.ndarray | None = field(default=None, repr=False)

    def _prepare(self, volume: np.ndarray) -> np.ndarray:
        s = slabs(np.asarray(volume, float))
        if s.shape[1:] != self.shape:
            zoom = (1, self.shape[0] / s.shape[1], self.shape[1] / s.shape[2])
            s = ndimage.zoom(s, zoom, order=1)
        return s

    def _align(self, s: np.ndarray) -> np.ndarray:
        dy, dx = estimate_shift(s[0], self.reference_[0])
        return np.roll(s, (dy, dx), axis=(1, 2))

    def fit(self, volumes: list[np.ndarray]) -> "MRFeaturizer":
        prepared = [self._prepare(v) for v in volumes]
        self.reference_ = np.mean(prepared, axis=0)
        for _ in range(2):
            self.reference_ = np.mean([self._align(s) for s in prepared], axis=0)
        return self

    def transform(self, volumes: list[np.ndarray]) -> np.ndarray:
        if self.reference_ is None:
            raise ValueError("MRFeaturizer: call fit first")
        return np.stack([np.concatenate([block_features(x, self.block) for x in self._align(self._prepare(v))])
                         for v in volumes])

    @staticmethod
    def read(path: str | Path) -> np.ndarray:
        """A volume's canonical voxel array, scaled to [0, 1] by its 99.5th percentile."""
        from raoutcome.imaging.volume import read_volume

        arr = read_volume(path).array.astype(float)
        top = float(np.percentile(arr, 99.5)) or 1.0
        return np.clip(arr / top, 0.0, 1.5)
