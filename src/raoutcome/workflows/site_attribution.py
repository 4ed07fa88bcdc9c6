"""``raoutcome attribute`` on a site-route run: per-site attribution maps pooled over the joint atlas.

Every joint patch is posed in its view's standard frame (:mod:`raoutcome.imaging.site_patches`), so the maps of
one joint from any patient and visit lie on top of each other: :func:`raoutcome.attribution.sites.site_atlas`
averages them per joint and head (which part of the patch drives that joint's JSN or erosion score). A patient
the run was cross-fitted on is attributed by the fold model that never saw them; any other patient by every
fold model, the maps averaged.

Output folder (written beside, then renamed into place):

- ``site_atlas.nc`` — ``atlas`` (joint x head x y x x, the mean map; NaN where a joint is not scored for a head)
  and ``n`` (joint x head, patches pooled);
- ``site_summary.csv`` — per joint and head: ``n``, ``centre_share`` (share of the attribution inside the disc of
  radius ``grid / 4`` around the patch centre, the posed joint), ``centre_area`` (that disc's share of the patch)
  and ``centre_density`` (their ratio; > 1: the score is driven by the joint itself more than by its
  surroundings);
- ``atlas/site_atlas_<head>.png`` — one panel per joint;
- ``attribution.json`` — ``route = "sites"``, method, heads, joints, patches and models used.
"""
from __future__ import annotations

__all__ = ["attribute_sites", "centre_share"]

import json
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from raoutcome.errors import InputError
from raoutcome.io_utils import atomic_path

MARKER = "attribution.json"


def centre_share(m: np.ndarray, radius_fraction: float = 0.25) -> tuple[float, float]:
    """(share of ``|m|`` inside the centred disc of radius ``radius_fraction * grid``, the disc's share of the
    area)."""
    m = np.abs(np.asarray(m, dtype=float))
    g = m.shape[-1]
    yy, xx = np.mgrid[:g, :g] - (g - 1) / 2
    disc = np.hypot(yy, xx) <= radius_fraction * g
    total = m.sum()
    return (float(m[disc].sum() / total) if total > 0 else float("nan")), float(disc.mean())


def _fold_index(model) -> int | None:
    name = Path(getattr(model, "fold_dir", "")).name
    return int(name.split("_", 1)[1]) if name.startswith("fold_") and name[5:].isdigit() else None


def attribute_sites(run_dir, cohort, out_dir, method: str = "integrated_gradients", max_per_joint: int = 16,
                    heads: Sequence[str] = ("jsn", "erosion"), seed: int = 0) -> Path:
    """Attribute up to ``max_per_joint`` patches of every joint of ``cohort`` with the site readers of ``run_dir``
    and write the joint atlas into ``out_dir`` (see the module docstring); returns ``out_dir``."""
    from raoutcome.attribution.methods import METHODS
    from raoutcome.attribution.sites import site_atlas
    from raoutcome.reporting.cohort_figures import save_figure
    from raoutcome.reporting.site_figures import site_atlas_figure
    from raoutcome.training.run import read_run_config
    from raoutcome.training.site_run import _patches, load_site_models
    from raoutcome.workflows.attribute import fold_of_patients

    if method not in METHODS:
        raise InputError(f"unknown attribution method {method!r}; expected one of {', '.join(METHODS)}")
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    cfg = read_run_config(run_dir)
    models = load_site_models(run_dir)
    if not all(m.reads_joints for m in models):
        raise InputError(f"{run_dir}: this site run was trained without per-joint readings (no human score); its "
                         "joint scores mean nothing to attribute")
    sp = _patches(cohort, cfg, run_dir)
    known = set(models[0].spec.sites)
    keep = sp.table["joint"].isin(known).to_numpy()
    if not keep.any():
        raise InputError(f"{cohort.root}: no landmarked site of the joints this run reads")
    table, patches = sp.table[keep].reset_index(drop=True), sp.patches[keep]
    folds = fold_of_patients(run_dir)
    by_fold = {_fold_index(m): m for m in models}
    fold = np.array([folds.get(str(p), -1) for p in table["patient_id"]])
    fold = np.where(np.isin(fold, [k for k in by_fold if k is not None]), fold, -1)
    sums: dict[tuple[str, str], np.ndarray] = {}
    counts: dict[tuple[str, str], float] = {}
    used: dict[str, int] = {}
    for k in np.unique(fold):
        rows = np.flatnonzero(fold == k)
        chosen = [by_fold[k]] if k >= 0 else models
        weight = 1.0 / len(chosen)
        for model in chosen:
            atlas = site_atlas(model, patches[rows], table["joint"].to_numpy()[rows], heads, method, max_per_joint,
                               seed)
            for key, entry in atlas.items():
                n = entry["n"] * weight
                sums[key] = sums.get(key, 0.0) + entry["map"] * n
                counts[key] = counts.get(key, 0.0) + n
        used["ensemble" if k < 0 else f"fold {k}"] = int(len(rows))
    joints = sorted({j for j, _ in sums})
    g = patches.shape[-1]
    atlas = np.full((len(joints), len(heads), g, g), np.nan, np.float32)
    n = np.zeros((len(joints), len(heads)), np.float32)
    rows_out = []
    for (joint, head), total in sums.items():
        i, h = joints.index(joint), list(heads).index(head)
        atlas[i, h] = total / counts[(joint, head)]
        n[i, h] = counts[(joint, head)]
        share, area = centre_share(atlas[i, h])
        view, _, site = joint.partition(":")
        rows_out.append({"joint": joint, "view": view, "site": site, "head": head, "n": round(float(n[i, h]), 2),
                         "centre_share": share, "centre_area": area,
                         "centre_density": share / area if area > 0 else float("nan")})
    summary = pd.DataFrame(rows_out).sort_values(["head", "joint"]).reset_index(drop=True)
    import xarray as xr

    ds = xr.Dataset({"atlas": (("joint", "head", "y", "x"), atlas), "n": (("joint", "head"), n)},
                    coords={"joint": joints, "head": list(heads)}, attrs={"method": method, "run": str(run_dir)})
    if out_dir.exists() and (not out_dir.is_dir() or (any(out_dir.iterdir()) and not (out_dir / MARKER).exists())):
        raise InputError(f"{out_dir}: exists and is not an attribution folder; choose a new or empty folder")
    with atomic_path(out_dir) as tmp:
        tmp.mkdir(parents=True)
        ds.to_netcdf(tmp / "site_atlas.nc", engine="h5netcdf")
        summary.to_csv(tmp / "site_summary.csv", index=False)
        (tmp / "atlas").mkdir()
        for h, head in enumerate(heads):
            have = {j: atlas[i, h] for i, j in enumerate(joints) if n[i, h] > 0}
            if have:
                fig = site_atlas_figure(have, {j: int(round(n[joints.index(j), h])) for j in have}, head)
                save_figure(fig, tmp / "atlas" / f"site_atlas_{head}.png")
        meta = {"route": "sites", "method": method, "run": str(run_dir), "heads": list(heads), "joints": len(joints),
                "n_patches": int(len(table)), "max_per_joint": max_per_joint, "n_models": len(models),
                "models_used": used, "seed": seed}
        (tmp / MARKER).write_text(json.dumps(meta, indent=2))
    return out_dir
