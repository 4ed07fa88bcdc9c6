"""Training the landmark refiner (:mod:`raoutcome.models.landmark_refine`) on crops around landmarks.

Each training crop is centred on an annotated landmark plus a random offset that imitates the coarse
detector's error (Gaussian, SD ``offset_sd`` coarse-input pixels per axis, clipped to a third of the
window), turned (+-``rotation_deg``) and zoomed (``scale``) at random, then its grey levels augmented
like the coarse detector's (:func:`raoutcome.imaging.landmark_augment.intensity`). Targets: Gaussian
heatmaps of every annotated landmark of the image that falls inside the crop, zero maps (supervised) for
those outside it and for the other body part's channels, no loss for landmarks the image does not
annotate — the same masked loss as the coarse detector (:func:`raoutcome.models.landmarks.heatmap_loss`).
Validation: refined error on fixed, seeded offsets of the validation groups' landmarks, in coarse-input
pixels, against the offset error (what the coarse position alone would give); the best weights are kept.
"""
from __future__ import annotations

__all__ = ["RefineSample", "refine_sample", "refine_samples_from_tables", "refine_samples_from_cohort",
           "fit_refiner", "evaluate_refiner", "RefineFit"]

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
from raoutcome.imaging.landmark_augment import AugmentConfig, intensity
from raoutcome.models.landmark_refine import (RefineSpec, Refiner, attach_refiner, crop_matrices, crop_patches,
                                              refine_points, working_image)
from raoutcome.models.landmarks import LandmarkNet, gaussian_targets, heatmap_loss
from raoutcome.training.landmarks import points_by_path, read_pixels


@dataclass
class RefineSample:
    """One landmarked image as the refiner sees it: its working image and landmarks there."""

    key: str
    group: str
    part: str
    work: np.ndarray      # (H, W) float32, canonical orientation, contrast-stretched
    coords: np.ndarray    # (K, 2) working pixels per detector channel; NaN where not annotated
    mask: np.ndarray      # (K,) 1 = supervised
    unit: float           # working pixels per pixel of the refiner's reference square


def refine_sample(key: str, group: str, pixels: np.ndarray, view: str, points: dict[str, tuple[float, float]],
                  channels: Sequence[str], rspec: RefineSpec,
                  contrast: tuple[float, float] | None) -> RefineSample | None:
    """A :class:`RefineSample` of one image (``points``: landmark name -> stored-image x, y)."""
    from raoutcome.imaging.transforms import needs_mirror

    part = body_part(view)
    parts = {c.split(":", 1)[0] for c in channels}
    if part not in parts:
        return None
    work, d = working_image(pixels, view, rspec, contrast)
    mirrored = needs_mirror(view)
    cols = pixels.shape[1]
    coords = np.full((len(channels), 2), np.nan, np.float32)
    mask = np.zeros(len(channels), np.float32)
    for i, ch in enumerate(channels):
        p, name = ch.split(":", 1)
        if p != part:
            mask[i] = 1.0
        elif name in points:
            x, y = points[name]
            if mirrored:
                x = cols - 1 - x
            coords[i] = ((x + 0.5) / d[0] - 0.5, (y + 0.5) / d[1] - 0.5)
            mask[i] = 1.0
    unit = max(pixels.shape) / rspec.reference / float(d.mean())
    return RefineSample(key, group, part, work, coords, mask, float(unit))


def refine_samples_from_tables(root: Path, images: pd.DataFrame, landmarks: pd.DataFrame, channels: Sequence[str],
                               rspec: RefineSpec, contrast=(0.5, 99.5),
                               read: Callable[[Path], np.ndarray] | None = None) -> list[RefineSample]:
    """Refiner samples for the rows of ``images`` (``path, view, group``) that have landmarks."""
    read = read or read_pixels
    by_path = points_by_path(landmarks)
    out = []
    for row in images.itertuples(index=False):
        points = by_path.get(row.path)
        if not points:
            continue
        s = refine_sample(f"{root}/{row.path}", str(row.group), read(Path(root) / row.path), row.view, points,
                          channels, rspec, contrast)
        if s is not None:
            out.append(s)
    return out


def refine_samples_from_cohort(cohort, channels: Sequence[str], rspec: RefineSpec,
                               contrast=(0.5, 99.5), tag: str = "") -> list[RefineSample]:
    """Refiner samples of a cohort with a ``landmarks`` table; groups are patients (prefixed by ``tag``)."""
    if cohort.landmarks is None or cohort.landmarks.empty:
        raise InputError(f"{cohort.root}: no landmarks table (landmarks.csv) to train a refiner on")
    images = cohort.images.assign(group=tag + cohort.images["patient_id"].astype(str))
    return refine_samples_from_tables(cohort.root, images, cohort.landmarks, channels, rspec, contrast)


def _crops(samples: Sequence[RefineSample], picks: Sequence[tuple[int, int]], rspec: RefineSpec,
           rng: np.random.Generator, offset_sd: float, rotation_deg: float, scale: tuple[float, float],
           cfg: AugmentConfig | None):
    """Crops, their targets and masks for ``(sample, channel)`` picks."""
    p = rspec.patch
    imgs, coords, masks = [], [], []
    for si, ch in picks:
        s = samples[si]
        off = np.clip(rng.normal(0.0, offset_sd, 2), -rspec.window / 3, rspec.window / 3) * s.unit
        centre = s.coords[ch] + off
        angle = np.deg2rad(rng.uniform(-rotation_deg, rotation_deg)) if rotation_deg else 0.0
        zoom = float(np.exp(rng.uniform(*np.log(scale)))) if scale != (1.0, 1.0) else 1.0
        step = rspec.window * s.unit / p
        a = crop_matrices(step, 1, np.array([angle]), np.array([zoom]))
        img = crop_patches(s.work, centre[None], a, p)[0, 0].numpy()
        if cfg is not None:
            img = intensity(img, rng, cfg)
        pts = (s.coords - centre) @ np.linalg.inv(a[0]).T + (p - 1) / 2.0
        outside = ~((pts >= -0.5) & (pts <= p - 0.5)).all(axis=1)
        pts[outside] = np.nan
        imgs.append(img.astype(np.float32))
        coords.append(pts.astype(np.float32))
        masks.append(s.mask)
    x = torch.from_numpy(np.stack(imgs))[:, None]
    c = torch.from_numpy(np.stack(coords))
    return x, torch.from_numpy(np.stack(masks)), gaussian_targets(c, (p // 4, p // 4), rspec.sigma)


def _pairs(samples: Sequence[RefineSample]) -> list[tuple[int, int]]:
    return [(i, int(k)) for i, s in enumerate(samples) for k in np.flatnonzero(~np.isnan(s.coords[:, 0]))]


@torch.no_grad()
def evaluate_refiner(refiner: Refiner, samples: Sequence[RefineSample], offset_sd: float = 3.0, seed: int = 0,
                     max_pairs: int = 400) -> dict:
    """Refined radial error (coarse-input pixels) from seeded offsets of every annotated landmark, and the
    offsets' own error (``start_px``: the coarse position's)."""
    refiner.eval()
    rng = np.random.default_rng(seed)
    pairs = _pairs(samples)
    if len(pairs) > max_pairs:
        pairs = [pairs[i] for i in sorted(rng.choice(len(pairs), max_pairs, replace=False))]
    errs, start = [], []
    by_sample: dict[int, list[int]] = {}
    for si, ch in pairs:
        by_sample.setdefault(si, []).append(ch)
    for si, chans in by_sample.items():
        s = samples[si]
        off = np.clip(rng.normal(0.0, offset_sd, (len(chans), 2)), -refiner.rspec.window / 3,
                      refiner.rspec.window / 3) * s.unit
        truth = s.coords[chans].astype(float)
        fine, _ = refine_points(refiner, s.work, truth + off, chans, refiner.rspec.window * s.unit / refiner.rspec.patch)
        errs.append(np.linalg.norm(fine - truth, axis=1) / s.unit)
        start.append(np.linalg.norm(off, axis=1) / s.unit)
    e = np.concatenate(errs) if errs else np.array([np.nan])
    return {"mre_px": float(np.mean(e)), "median_px": float(np.median(e)), "p90_px": float(np.quantile(e, 0.9)),
            "start_px": float(np.mean(np.concatenate(start))) if start else math.nan, "n": int(e.size)}


@dataclass
class RefineFit:
    """A trained refiner (attached to its coarse detector), its history and best validation record."""

    model: LandmarkNet
    history: list[dict] = field(default_factory=list)
    best: dict | None = None


def fit_refiner(coarse: LandmarkNet, samples: Sequence[RefineSample], rspec: RefineSpec | None = None, *,
                steps: int = 300, batch: int = 24, lr: float = 1e-3, weight_decay: float = 1e-4, seed: int = 0,
                val_groups: set[str] | None = None, eval_every: int = 100, offset_sd: float = 3.0,
                rotation_deg: float = 20.0, scale: tuple[float, float] = (0.8, 1.25),
                augment_cfg: AugmentConfig | None = AugmentConfig(), weights: Sequence[float] | None = None,
                log: Callable[[str], None] | None = print) -> RefineFit:
    """Train ``coarse.refiner`` (attached first, from the coarse weights, when ``coarse`` has none, with
    ``rspec``) on crops of ``samples``; returns the coarse detector with the best refiner attached.

    ``weights``: per-sample drawing weights (e.g. to balance a few real images against many simulated).
    """
    if not samples:
        raise InputError("no landmarked images to train the refiner on")
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    refiner = coarse.refiner if coarse.refiner is not None else attach_refiner(coarse, rspec or RefineSpec())
    rs = refiner.rspec
    vg = set(val_groups or ())
    train_idx = [i for i, s in enumerate(samples) if s.group not in vg]
    val = [s for s in samples if s.group in vg]
    if not train_idx:
        raise InputError("every landmarked image is in the validation groups; nothing left to train on")
    p = None
    if weights is not None:
        w = np.array([weights[i] for i in train_idx], float)
        p = w / w.sum()
    annotated = {i: np.flatnonzero(~np.isnan(samples[i].coords[:, 0])) for i in train_idx}
    opt = torch.optim.AdamW(refiner.parameters(), lr=lr, weight_decay=weight_decay)
    warm = max(1, min(50, steps // 10))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda t: min(1.0, (t + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(t, steps) / steps)))
    result = RefineFit(model=coarse)
    best_state, best_score, t0, running = None, math.inf, time.time(), []
    for step in range(1, steps + 1):
        refiner.train()
        chosen = rng.choice(train_idx, size=batch, replace=True, p=p)
        picks = [(int(i), int(rng.choice(annotated[int(i)]))) for i in chosen if len(annotated[int(i)])]
        x, m, tgt = _crops(samples, picks, rs, rng, offset_sd, rotation_deg, scale, augment_cfg)
        loss = heatmap_loss(refiner(x), tgt, m)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        running.append(loss.item())
        if step % eval_every == 0 or step == steps:
            rec = {"step": step, "loss": float(np.mean(running)), "seconds": round(time.time() - t0, 1)}
            running = []
            if val:
                rec.update({f"val_{k}": v for k, v in evaluate_refiner(refiner, val, offset_sd, seed).items()})
                if rec["val_mre_px"] < best_score:
                    best_score = rec["val_mre_px"]
                    best_state = {k: v.detach().clone() for k, v in refiner.state_dict().items()}
                    result.best = rec
            result.history.append(rec)
            if log:
                log(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in rec.items()))
    if best_state is not None:
        refiner.load_state_dict(best_state)
    refiner.eval()
    coarse.eval()
    return result
