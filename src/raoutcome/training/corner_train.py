"""Training and applying the mSASSS corner reader (:mod:`raoutcome.models.corner_reader`).

Imbalance (most corners are 0; bridges and grade-1 lesions are rare): seeds/003 subsampled negatives to 1:3
and trained one model per lesion. Here one model reads every grade, and each epoch draws its patches with
replacement with weight ``freq(class) ** -balance`` (class = grade 0-3, or "not scorable"), which oversamples
rare lesions and undersamples normal corners in one step (``balance = 0``: plain shuffling). Patches are
augmented (a small random rotation, zoom and shift, gain, offset and noise; never flipped: anterior and the
disc side are fixed by the posing). Validation patients (a seeded share, never in training) pick the epoch.
"""
from __future__ import annotations

__all__ = ["CornerFit", "fit_corner_reader", "predict_corners", "save_corner_reader", "load_corner_reader"]

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from raoutcome.imaging.corner_patches import CornerPatches
from raoutcome.models.corner_reader import CornerReader, CornerSpec, corner_loss, corner_outputs
from raoutcome.msasss import CORNERS


def corner_vocabulary() -> tuple[str, ...]:
    return tuple(f"{v}:{c}" for v, cs in CORNERS.items() for c in cs)


@dataclass
class CornerFit:
    model: CornerReader
    history: list[dict] = field(default_factory=list)
    val_patients: list[str] = field(default_factory=list)


def _augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    n = x.shape[0]
    ang = (torch.rand(n, generator=gen) * 2 - 1) * math.radians(8)
    scale = 1.0 + (torch.rand(n, generator=gen) * 2 - 1) * 0.08
    shift = (torch.rand(n, 2, generator=gen) * 2 - 1) * (2.0 / x.shape[-1])
    cos, sin = torch.cos(ang) / scale, torch.sin(ang) / scale
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, padding_mode="border", align_corners=False)
    gain = 1.0 + (torch.rand(n, 1, 1, 1, generator=gen) * 2 - 1) * 0.15
    offset = (torch.rand(n, 1, 1, 1, generator=gen) * 2 - 1) * 0.15
    return x * gain + offset + torch.randn(x.shape, generator=gen) * 0.05


def _classes(grade: np.ndarray, scorable: np.ndarray) -> np.ndarray:
    """0-3 grade, 4 not scorable, -1 unknown."""
    c = np.where(np.isfinite(grade), np.nan_to_num(grade, nan=0).astype(int), -1)
    return np.where(scorable == 0, 4, c)


def fit_corner_reader(patches: CornerPatches, grade: np.ndarray, scorable: np.ndarray,
                      spec: CornerSpec | None = None, *, epochs: int = 8, batch: int = 128, lr: float = 2e-3,
                      weight_decay: float = 1e-4, balance: float = 0.5, val_fraction: float = 0.15,
                      seed: int = 0, augment: bool = True, max_per_epoch: int | None = None,
                      log: Callable[[str], None] | None = print) -> CornerFit:
    """Train a corner reader on ``patches`` with per-patch ``grade`` (NaN = none) and ``scorable`` (NaN =
    unknown); returns the weights of the epoch with the lowest validation loss."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    spec = spec or CornerSpec(corners=corner_vocabulary())
    model = CornerReader(spec)
    index = {c: i for i, c in enumerate(spec.corners)}
    ids = np.array([index[j] for j in patches.table["joint"]])
    pats = patches.table["patient_id"].astype(str).to_numpy()
    distinct = np.array(sorted(set(pats)))
    n_val = max(1, int(round(val_fraction * len(distinct)))) if len(distinct) > 1 and val_fraction > 0 else 0
    val_p = set(rng.choice(distinct, size=n_val, replace=False).tolist()) if n_val else set()
    is_val = np.isin(pats, list(val_p))
    cls = _classes(grade, scorable)
    train = np.flatnonzero(~is_val & (cls >= 0))
    val = np.flatnonzero(is_val & (cls >= 0))
    freq = np.bincount(cls[train], minlength=5).astype(float)
    w_cls = np.where(freq > 0, np.maximum(freq, 1.0) ** -balance, 0.0)
    p = w_cls[cls[train]]
    p = p / p.sum()
    with torch.no_grad():  # start the thresholds at the (balanced) training prevalence
        bal = freq[:4] * w_cls[:4]
        exceed = [bal[k + 1:].sum() / max(bal.sum(), 1e-9) for k in range(3)]
        model.grade.init_from_prevalence(exceed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    per_epoch = min(len(train), max_per_epoch or len(train))
    steps = epochs * math.ceil(per_epoch / batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=max(steps, 1), pct_start=0.15)
    X = torch.from_numpy(patches.patches)[:, None]
    G = torch.from_numpy(grade.astype(np.float32))
    S = torch.from_numpy(scorable.astype(np.float32))
    ID = torch.from_numpy(ids)
    fit = CornerFit(model, val_patients=sorted(val_p))
    best, best_state, t0 = math.inf, None, time.time()
    for epoch in range(1, epochs + 1):
        model.train()
        draw = rng.choice(train, size=per_epoch, replace=True, p=p)
        total = 0.0
        for i in range(0, per_epoch, batch):
            b = torch.from_numpy(draw[i:i + batch])
            x = X[b]
            if augment:
                x = _augment(x, gen)
            out = model(x, ID[b])
            terms = corner_loss(out, G[b], S[b])
            loss = terms["grade"] + terms["scorable"]
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(b)
        rec = {"epoch": epoch, "loss": total / per_epoch, "seconds": round(time.time() - t0, 1)}
        if len(val):
            rec.update(_validate(model, X[val], ID[val], G[val], S[val]))
            if rec["val_loss"] < best:
                best = rec["val_loss"]
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        fit.history.append(rec)
        if log:
            log(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in rec.items()))
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return fit


@torch.no_grad()
def _validate(model, x, ids, g, s, batch: int = 512) -> dict:
    model.eval()
    outs = [model(x[i:i + batch], ids[i:i + batch]) for i in range(0, len(x), batch)]
    out = {k: torch.cat([o[k] for o in outs]) for k in ("grade", "scorable")}
    terms = corner_loss(out, g, s)
    pred = corner_outputs(out)
    ok = torch.isfinite(g)
    acc = float((pred["grade"][ok] == g[ok].long()).float().mean()) if bool(ok.any()) else float("nan")
    known = torch.isfinite(s)
    s_acc = float(((pred["p_scorable"][known] > 0.5).float() == s[known]).float().mean())
    return {"val_loss": float(terms["grade"] + terms["scorable"]), "val_acc": acc, "val_scorable_acc": s_acc}


@torch.no_grad()
def predict_corners(model: CornerReader, patches: CornerPatches, batch: int = 512) -> pd.DataFrame:
    """Per patch: the table's columns plus ``p_scorable, p0..p3, expected, sd, grade``."""
    model.eval()
    index = {c: i for i, c in enumerate(model.spec.corners)}
    ids = torch.tensor([index[j] for j in patches.table["joint"]])
    X = torch.from_numpy(patches.patches)[:, None]
    res = []
    for i in range(0, len(X), batch):
        res.append(corner_outputs(model(X[i:i + batch], ids[i:i + batch])))
    out = {k: torch.cat([r[k] for r in res]).numpy() for k in res[0]} if res else {}
    df = patches.table.copy()
    if not res:
        return df
    df["p_scorable"] = out["p_scorable"]
    for k in range(out["prob"].shape[1]):
        df[f"p{k}"] = out["prob"][:, k]
    df["expected"], df["sd"], df["grade"] = out["expected"], out["sd"], out["grade"].astype(int)
    return df


def save_corner_reader(model: CornerReader, path: str | Path) -> Path:
    """Weights and spec in one torch file (loadable with ``weights_only=True``), written atomically."""
    from raoutcome.io_utils import atomic_path

    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save({"spec": model.spec.to_dict(), "state": model.state_dict()}, tmp)
    return path


def load_corner_reader(path: str | Path) -> CornerReader:
    """The reader saved by ``raoutcome msasss fit`` (``weights_only``); a corrupt or foreign file is an InputError."""
    from raoutcome.errors import InputError
    from raoutcome.training import checkpoint as ckpt

    blob = ckpt.load(path, required=("spec", "state"))
    try:
        model = CornerReader(CornerSpec.from_dict(blob["spec"]))
        model.load_state_dict(blob["state"])
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        raise InputError(f"{path}: not a corner reader written by `raoutcome msasss fit` "
                         f"({type(err).__name__}: {err})") from err
    return model.eval()
