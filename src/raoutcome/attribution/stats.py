"""Region statistics of attribution maps: where does each head look, SvdH sites or elsewhere?

Definitions (per image ``i``, head ``h``, region ``r``; maps are non-negative magnitudes):

* ``area`` — pixels of the region; ``area_share`` a_ir = area / image pixels.
* ``mass`` — summed attribution in the region; ``mass_share`` m_ir = mass / the image's total mass
  (each image weighs the same, whatever the scale of its map).
* ``density`` = mass / area; ``relative_density`` = m_ir / a_ir (1 = attribution spread uniformly
  over the image; > 1 = the region draws more than its share).

Pooled over images (a cohort, a head): the relative density of region ``r`` is
``Σ_i m_ir / Σ_i a_ir`` — a ratio of means, stable when a region is tiny in some images. The
**density ratio** of two regions (e.g. periarticular / svdh_site) is the ratio of their pooled relative
densities. Its 95 % confidence interval is a percentile **patient bootstrap**: patients are drawn with
replacement and keep all their images (visits, views), via :mod:`raoutcome.evaluation.bootstrap`.
No torch here.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from raoutcome.anatomy import REGION_NAMES
from raoutcome.attribution.regions import FOREGROUND, FOREGROUND_NAME
from raoutcome.errors import InputError
from raoutcome.evaluation.bootstrap import with_batched

#: Identity columns a region table carries for each image.
IMAGE_COLUMNS = ("image", "patient_id", "visit_id", "view", "region_source")
SHARP_REGION = "svdh_site"


def image_region_stats(attribution: np.ndarray, labels: np.ndarray, names: Mapping[int, str] | None = None
                       ) -> pd.DataFrame:
    """area, mass, shares and densities of every region of one image (one row per region)."""
    a = np.asarray(attribution, dtype=np.float64)
    lab = np.asarray(labels)
    if a.shape != lab.shape:
        raise InputError(f"attribution map {a.shape} and region labels {lab.shape} differ in shape")
    names = {**REGION_NAMES, FOREGROUND: FOREGROUND_NAME, **dict(names or {})}
    present = set(np.unique(lab).tolist())
    codes = sorted(set(REGION_NAMES) | present)  # the anatomical regions always, others when present
    names.update({c: f"code_{c}" for c in codes if c not in names})
    lut = np.full(max(codes) + 1, -1)
    lut[codes] = np.arange(len(codes))
    idx = lut[lab.ravel()]
    area = np.bincount(idx, minlength=len(codes)).astype(float)
    mass = np.bincount(idx, weights=a.ravel(), minlength=len(codes))
    total_mass, total_area = mass.sum(), area.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        frame = pd.DataFrame({
            "region": [names[c] for c in codes],
            "area": area,
            "area_share": area / total_area,
            "mass": mass,
            "mass_share": mass / total_mass if total_mass > 0 else np.nan,
            "density": np.where(area > 0, mass / np.where(area > 0, area, 1), np.nan),
        })
    frame["relative_density"] = frame["mass_share"] / frame["area_share"].where(frame["area_share"] > 0)
    return frame


def region_table(maps: Mapping[str, np.ndarray], labels: np.ndarray, images: pd.DataFrame,
                 names: Mapping[int, str] | None = None) -> pd.DataFrame:
    """One row per image x head x region.

    ``maps`` is ``{head: (N,H,W)}``, ``labels`` ``(N,H,W)`` region codes, ``images`` N rows with (a
    subset of) the identity columns :data:`IMAGE_COLUMNS`; ``patient_id`` is needed for bootstraps.
    """
    labels = np.asarray(labels)
    if len(images) != len(labels):
        raise InputError(f"{len(images)} image rows for {len(labels)} label maps")
    rows = []
    ident = images.reset_index(drop=True)
    for head, stack in maps.items():
        stack = np.asarray(stack)
        if stack.shape != labels.shape:
            raise InputError(f"head {head!r}: maps {stack.shape} and labels {labels.shape} differ in shape")
        for i in range(len(labels)):
            frame = image_region_stats(stack[i], labels[i], names)
            for col in ident.columns:
                frame[col] = ident.at[i, col]
            frame["head"] = head
            rows.append(frame)
    if not rows:
        return pd.DataFrame(columns=list(ident.columns) + ["head", "region", "area", "area_share", "mass",
                                                           "mass_share", "density", "relative_density"])
    out = pd.concat(rows, ignore_index=True)
    front = [c for c in IMAGE_COLUMNS if c in out] + [c for c in ident.columns if c not in IMAGE_COLUMNS] + ["head"]
    return out[front + [c for c in out.columns if c not in front]]


def _wide(table: pd.DataFrame, head: str, value: str) -> pd.DataFrame:
    sub = table[table["head"] == head]
    if sub.empty:
        raise InputError(f"region table has no rows for head {head!r} (heads: {sorted(table['head'].unique())})")
    return sub.pivot_table(index=["image", "patient_id"], columns="region", values=value, aggfunc="sum",
                           fill_value=0.0)


def pooled_relative_density(table: pd.DataFrame) -> pd.DataFrame:
    """Relative density of every region for every head, pooled over images (rows: region, cols: head)."""
    sums = table.groupby(["region", "head"])[["mass_share", "area_share"]].sum()
    dens = (sums["mass_share"] / sums["area_share"].where(sums["area_share"] > 0)).unstack("head")
    order = [n for n in REGION_NAMES.values() if n in dens.index] + [n for n in dens.index if n not in REGION_NAMES.values()]
    return dens.loc[order]


def _ratio_of_densities(m_num, a_num, m_den, a_den) -> float:
    with np.errstate(divide="ignore", invalid="ignore"):
        return float((np.sum(m_num) / np.sum(a_num)) / (np.sum(m_den) / np.sum(a_den)))


def _ratio_batched(counts, m_num, a_num, m_den, a_den) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return ((counts @ m_num) / (counts @ a_num)) / ((counts @ m_den) / (counts @ a_den))


ratio_of_densities = with_batched(_ratio_batched)(_ratio_of_densities)


def density_ratio(table: pd.DataFrame, head: str, numerator: str = "periarticular", denominator: str = SHARP_REGION,
                  n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> dict:
    """Pooled relative density of ``numerator`` over ``denominator`` for ``head``, with a patient-bootstrap CI.

    Returns ``head, numerator, denominator, ratio, ci_low, ci_high, n_images, n_patients``. A ratio
    above 1 with ``ci_low > 1`` means the head draws more attribution per pixel from ``numerator``
    than from the SvdH-scored sites.
    """
    from raoutcome.evaluation.bootstrap import bootstrap_ci

    ms, ar = _wide(table, head, "mass_share"), _wide(table, head, "area_share")
    for region in (numerator, denominator):
        if region not in ms or ar[region].sum() <= 0:
            raise InputError(f"head {head!r}: region {region!r} is absent from every image "
                             f"(regions: {sorted(ms.columns)})")
    pids = ms.index.get_level_values("patient_id").astype(str)
    res = bootstrap_ci(ratio_of_densities, ms[numerator].to_numpy(), ar[numerator].to_numpy(),
                       ms[denominator].to_numpy(), ar[denominator].to_numpy(),
                       patient_ids=pids, n_boot=n_boot, level=level, seed=seed, progress=False)
    return {"head": head, "numerator": numerator, "denominator": denominator, "ratio": res.estimate,
            "ci_low": res.ci_low, "ci_high": res.ci_high, "level": level, "n_images": len(ms),
            "n_patients": int(pd.unique(pids).size)}


def outside_sharp(table: pd.DataFrame, head: str, n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> dict:
    """Share of attribution outside the SvdH sites vs the share of area outside them, with a bootstrap CI.

    ``mass_outside`` = Σ_i (1 − m_i,site) / N (mean over images); ``area_outside`` likewise;
    ``excess`` = mass_outside / area_outside (< 1: the head concentrates on the scored sites).
    """
    from raoutcome.evaluation.bootstrap import bootstrap_ci

    ms, ar = _wide(table, head, "mass_share"), _wide(table, head, "area_share")
    site_m = ms[SHARP_REGION].to_numpy() if SHARP_REGION in ms else np.zeros(len(ms))
    site_a = ar[SHARP_REGION].to_numpy() if SHARP_REGION in ar else np.zeros(len(ar))
    pids = ms.index.get_level_values("patient_id").astype(str)
    res = bootstrap_ci(ratio_of_densities, 1 - site_m, 1 - site_a, np.ones(len(ms)), np.ones(len(ms)),
                       patient_ids=pids, n_boot=n_boot, level=level, seed=seed, progress=False)
    return {"head": head, "mass_outside": float(np.mean(1 - site_m)), "area_outside": float(np.mean(1 - site_a)),
            "excess": res.estimate, "ci_low": res.ci_low, "ci_high": res.ci_high, "n_images": len(ms)}


def summarise(table: pd.DataFrame, heads: Sequence[str] | None = None, n_boot: int = 2000, level: float = 0.95,
              seed: int = 0) -> pd.DataFrame:
    """One row per head x region: pooled relative density and its ratio to the SvdH sites (with CI).

    Regions absent from every image get NaN; ratios need SvdH sites in some image (not so when every
    image fell back to foreground/background); the ``svdh_site`` row itself has ratio 1. Also carries the outside-SvdH mass and area shares.
    """
    heads = list(heads) if heads is not None else list(dict.fromkeys(table["head"]))
    dens = pooled_relative_density(table)
    rows = []
    for head in heads:
        outside = outside_sharp(table, head, n_boot=n_boot, level=level, seed=seed)
        has_sites = SHARP_REGION in dens.index and np.isfinite(dens.at[SHARP_REGION, head])
        for region in dens.index:
            row = {"head": head, "region": region, "relative_density": float(dens.at[region, head]),
                   "ratio_to_svdh_site": np.nan, "ci_low": np.nan, "ci_high": np.nan,
                   "mass_outside_svdh": outside["mass_outside"], "area_outside_svdh": outside["area_outside"]}
            if has_sites and region != SHARP_REGION and np.isfinite(row["relative_density"]):
                r = density_ratio(table, head, region, SHARP_REGION, n_boot=n_boot, level=level, seed=seed)
                row.update(ratio_to_svdh_site=r["ratio"], ci_low=r["ci_low"], ci_high=r["ci_high"])
            elif region == SHARP_REGION and has_sites:
                row.update(ratio_to_svdh_site=1.0, ci_low=1.0, ci_high=1.0)
            rows.append(row)
    return pd.DataFrame(rows)


def _contrast(m_num_a, m_den_a, m_num_b, m_den_b) -> float:
    with np.errstate(divide="ignore", invalid="ignore"):
        return float((np.sum(m_num_a) / np.sum(m_den_a)) / (np.sum(m_num_b) / np.sum(m_den_b)))


def _contrast_batched(counts, m_num_a, m_den_a, m_num_b, m_den_b) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return ((counts @ m_num_a) / (counts @ m_den_a)) / ((counts @ m_num_b) / (counts @ m_den_b))


head_contrast_statistic = with_batched(_contrast_batched)(_contrast)


def head_contrast(table: pd.DataFrame, head: str, reference: str, numerator: str = "periarticular",
                  denominator: str = SHARP_REGION, n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> dict:
    """The density ratio ``numerator / denominator`` of ``head`` divided by that of ``reference``.

    Both heads see the same images and regions, so the areas cancel and what is left is how much more
    (> 1) or less the head leans on ``numerator`` relative to ``denominator`` than the reference head
    does. Anything common to both heads — e.g. Integrated Gradients with a black baseline giving bright
    bone more attribution than dark joint spaces, whatever the head — cancels too. Paired patient
    bootstrap (one resample serves both heads).
    """
    from raoutcome.evaluation.bootstrap import bootstrap_ci

    a, b = _wide(table, head, "mass_share"), _wide(table, reference, "mass_share")
    b = b.reindex(a.index)
    for region in (numerator, denominator):
        if region not in a or region not in b:
            raise InputError(f"region {region!r} is absent (regions: {sorted(a.columns)})")
    pids = a.index.get_level_values("patient_id").astype(str)
    res = bootstrap_ci(head_contrast_statistic, a[numerator].to_numpy(), a[denominator].to_numpy(),
                       b[numerator].to_numpy(), b[denominator].to_numpy(), patient_ids=pids, n_boot=n_boot,
                       level=level, seed=seed, progress=False)
    return {"head": head, "reference": reference, "numerator": numerator, "denominator": denominator,
            "contrast": res.estimate, "ci_low": res.ci_low, "ci_high": res.ci_high, "level": level,
            "n_images": len(a), "n_patients": int(pd.unique(pids).size)}
