"""Random geometric and intensity augmentation of a square radiograph and its landmarks.

One random similarity about the image centre (rotation, scale, translation = a random crop/zoom, an
optional mirror) moves pixels and landmarks together: the pixels by inverse mapping with bilinear
interpolation (``scipy.ndimage.affine_transform``), the landmarks by the forward map, so the two can
never disagree. Then intensity: contrast, brightness, gamma, blur, Gaussian noise, an occasional
contrast inversion (a MONOCHROME1 image read as MONOCHROME2) and a collimation band (one border blacked
out).

Mirroring keeps landmark *names*: a mirrored left hand is a right hand whose thumb is still ``MP``/``IP``
(the flip with left/right relabelling of the issue: the side label changes, the anatomy does not). The
detector thus learns anatomy, not "thumb on the right", and a side mix-up shows up as a mirrored
configuration in :mod:`raoutcome.imaging.landmark_qc` instead of as garbage.
"""
from __future__ import annotations

__all__ = ["AugmentConfig", "augment", "intensity", "similarity_matrix"]

from dataclasses import dataclass

import numpy as np
from scipy import ndimage


@dataclass(frozen=True)
class AugmentConfig:
    """Ranges of the random transforms (uniform draws unless said)."""

    rotation_deg: float = 25.0        # +- this
    upside_down: float = 0.05         # probability of an extra 180 degrees
    scale: tuple[float, float] = (0.75, 1.3)   # log-uniform zoom (> 1 crops)
    translation: float = 0.1          # +- this share of the side
    mirror: float = 0.1               # probability of a left-right mirror (names kept)
    contrast: tuple[float, float] = (0.7, 1.4)
    brightness: float = 0.1
    gamma: tuple[float, float] = (0.6, 1.6)
    blur: float = 0.3                 # probability of a Gaussian blur, sigma U(0.3, 1.5) px
    noise: float = 0.04               # max Gaussian noise SD
    invert: float = 0.05              # probability of inverting the contrast
    band: float = 0.2                 # probability of blacking out a border band of up to 15 %


def similarity_matrix(size: int, angle_rad: float, scale: float, tx: float, ty: float, mirror: bool) -> np.ndarray:
    """3x3 forward map (x, y, 1) -> (x', y', 1) of a ``size`` square: mirror, rotate and scale about the
    centre, then shift by (tx, ty) pixels."""
    c = (size - 1) / 2.0
    m = np.diag([-1.0 if mirror else 1.0, 1.0, 1.0])
    m[0, 2] = 2 * c if mirror else 0.0
    co, si = np.cos(angle_rad) * scale, np.sin(angle_rad) * scale
    rs = np.array([[co, -si, 0.0], [si, co, 0.0], [0.0, 0.0, 1.0]])
    to, back = np.eye(3), np.eye(3)
    to[:2, 2] = -c
    back[:2, 2] = c + np.array([tx, ty])
    return back @ rs @ to @ m


def _warp(image: np.ndarray, forward: np.ndarray) -> np.ndarray:
    inv = np.linalg.inv(forward)
    swap = np.array([[0, 1], [1, 0]])
    matrix = swap @ inv[:2, :2] @ swap
    offset = swap @ inv[:2, 2]
    return ndimage.affine_transform(image, matrix, offset=offset, output_shape=image.shape, order=1,
                                    mode="constant", cval=0.0)


def intensity(image: np.ndarray, rng: np.random.Generator, cfg: AugmentConfig = AugmentConfig()) -> np.ndarray:
    """The grey-level part of :func:`augment`: blur, contrast, brightness, gamma, noise, inversion."""
    out = image
    if rng.random() < cfg.blur:
        out = ndimage.gaussian_filter(out, rng.uniform(0.3, 1.5))
    mean = float(out.mean())
    out = (out - mean) * rng.uniform(*cfg.contrast) + mean + rng.uniform(-cfg.brightness, cfg.brightness)
    out = np.clip(out, 0.0, 1.0) ** rng.uniform(*cfg.gamma)
    if cfg.noise > 0:
        out = out + rng.normal(0.0, rng.uniform(0, cfg.noise), out.shape)
    out = np.clip(out, 0.0, 1.0)
    if rng.random() < cfg.invert:
        out = 1.0 - out
    return out


def augment(image: np.ndarray, coords: np.ndarray, rng: np.random.Generator,
            cfg: AugmentConfig = AugmentConfig()) -> tuple[np.ndarray, np.ndarray]:
    """Augment a square float image in [0, 1] and its landmarks ``coords`` ``(K, 2)`` (x, y pixels;
    NaN = unknown, kept NaN). Landmarks moved out of the image, or under the blacked-out band, come back
    outside the image (the caller treats them as absent). Returns new arrays."""
    size = image.shape[0]
    angle = np.deg2rad(rng.uniform(-cfg.rotation_deg, cfg.rotation_deg))
    if rng.random() < cfg.upside_down:
        angle += np.pi
    scale = float(np.exp(rng.uniform(*np.log(cfg.scale))))
    tx, ty = rng.uniform(-cfg.translation, cfg.translation, 2) * size
    mirror = bool(rng.random() < cfg.mirror)
    fwd = similarity_matrix(size, angle, scale, tx, ty, mirror)
    out = _warp(image.astype(np.float32, copy=False), fwd)
    pts = coords @ fwd[:2, :2].T + fwd[:2, 2]

    out = intensity(out, rng, cfg)
    if rng.random() < cfg.band:
        width = int(rng.uniform(0.03, 0.15) * size)
        side = int(rng.integers(4))
        band = [(slice(None), slice(0, width)), (slice(None), slice(size - width, size)),
                (slice(0, width), slice(None)), (slice(size - width, size), slice(None))][side]
        out[band] = 0
        axis, low = (0, side == 0) if side < 2 else (1, side == 2)
        v = pts[:, axis]
        hidden = (v < width - 0.5) if low else (v > size - width - 0.5)
        pts[hidden] = -1e3
    return out.astype(np.float32), pts
