"""The longitudinal deformity model: baseline features plus their change since the earlier images.

When a patient has images before baseline (the simulator's ``prior_years``: ``prior_images.csv``), each
baseline feature gets a companion, its **slope per year** over the patient's visits up to baseline
(ordinary least squares of the value on the visit time; with one earlier visit it is
``(x_baseline - x_earlier) / (t_baseline - t_earlier)``). A fast-growing pannus or a widening ADI says more
about the years ahead than its present size: in the simulator the latents grow linearly at a rate set by
the visible activity and an unseen frailty, and the slope reads that rate, frailty included. The
prediction pipeline itself (:func:`raoutcome.workflows.cervical_predict.fit_predict`: cross-fitted L2
logistic score, interval-censored Weibull, thresholds) is the baseline model's, so the two compare on the
same held-out patients.

* :func:`slopes`: per patient and column, the OLS slope over visits (visits with a missing value skipped).
* :func:`with_slopes`: ``[baseline, slope_*]`` side by side.
* :func:`radiograph_series`, :func:`mr_series`, :func:`latent_series`: the per-visit features of the three
  read-outs (detected measures, MR block means, the simulator's latents: the ceiling).

References
----------
Fitzmaurice GM, Laird NM, Ware JH. Applied Longitudinal Analysis. 2nd ed. Wiley; 2011 (two-stage
"summary slope" approach: per-subject OLS slopes as covariates).
"""
from __future__ import annotations

__all__ = ["slopes", "with_slopes", "prior_images", "radiograph_series", "mr_series", "latent_series"]

from pathlib import Path

import numpy as np
import pandas as pd

from raoutcome.errors import InputError

LATENT_COLUMNS = ("pannus", "facet", "erosion", "laxity")


def slopes(series: pd.DataFrame, features: list[str]) -> pd.DataFrame:
    """Per patient (index) the OLS slope per year of every column in ``features`` over the rows of
    ``series`` (``patient_id, time_years, *features``); NaN where fewer than two visits have a value."""
    missing = [c for c in ("patient_id", "time_years", *features) if c not in series]
    if missing:
        raise InputError(f"slopes: the visit table lacks column(s) {missing}")
    t = series["time_years"].to_numpy(float)
    x = series[features].to_numpy(float)
    ok = np.isfinite(x) & np.isfinite(t)[:, None]
    frame = pd.DataFrame({"patient_id": series["patient_id"].to_numpy()})
    # sums over each patient's usable visits: n, St, Stt, Sx, Stx -> slope = (n Stx - St Sx) / (n Stt - St^2)
    parts = {}
    for name, arr in (("n", ok * 1.0), ("st", ok * t[:, None]), ("stt", ok * (t ** 2)[:, None]),
                      ("sx", np.where(ok, x, 0.0)), ("stx", np.where(ok, x * t[:, None], 0.0))):
        parts[name] = pd.DataFrame(arr, columns=features).groupby(frame["patient_id"], sort=True).sum()
    den = parts["n"] * parts["stt"] - parts["st"] ** 2
    num = parts["n"] * parts["stx"] - parts["st"] * parts["sx"]
    out = num / den.where((parts["n"] >= 2) & (den > 1e-12))
    out.index.name = None
    return out.add_prefix("slope_")


def with_slopes(baseline: pd.DataFrame, series: pd.DataFrame) -> pd.DataFrame:
    """``baseline`` (patients x features) with the slope of each of its columns over ``series``, for the
    patients of ``baseline`` (a patient without an earlier visit gets NaN slopes)."""
    sl = slopes(series, list(baseline.columns)).reindex(baseline.index)
    return pd.concat([baseline, sl], axis=1)


def prior_images(cohort_dir: str | Path) -> pd.DataFrame:
    """The cohort's images before baseline (``prior_images.csv``), empty when it has none."""
    path = Path(cohort_dir) / "prior_images.csv"
    cols = ["patient_id", "visit_id", "view", "path", "time_years"]
    if not path.is_file():
        return pd.DataFrame(columns=cols)
    table = pd.read_csv(path)
    missing = [c for c in cols if c not in table]
    if missing:
        raise InputError(f"{path}: lacks column(s) {missing}")
    return table


def _visit_times(cohort_dir: Path) -> pd.DataFrame:
    visits = pd.read_csv(cohort_dir / "visits.csv")[["patient_id", "visit_id", "time_years"]]
    prior = prior_images(cohort_dir)[["patient_id", "visit_id", "time_years"]].drop_duplicates()
    return pd.concat([visits, prior], ignore_index=True)


def radiograph_series(cohort_dir: str | Path, measured: pd.DataFrame, visits: list[str]) -> pd.DataFrame:
    """Per patient and visit (``patient_id, visit_id, time_years`` + the radiograph features of
    :func:`raoutcome.workflows.cervical_predict.radiograph_features`) from a measured table that holds the
    baseline and the earlier radiographs."""
    from raoutcome.workflows.cervical_predict import radiograph_features

    times = _visit_times(Path(cohort_dir)).set_index(["patient_id", "visit_id"])["time_years"]
    rows = []
    for vid in visits:
        f = radiograph_features(measured, visit=vid)
        f = f.assign(patient_id=f.index, visit_id=vid)
        rows.append(f)
    out = pd.concat(rows, ignore_index=True)
    out["time_years"] = times.reindex(pd.MultiIndex.from_frame(out[["patient_id", "visit_id"]])).to_numpy(float)
    return out


def mr_series(cohort_dir: str | Path, patients: list[str], featurizer, visits: list[str]) -> pd.DataFrame:
    """Per patient and visit the MR block means (``featurizer`` fitted on the training baseline volumes);
    baseline from ``images.csv``, earlier visits from ``prior_images.csv``."""
    from raoutcome.workflows.cervical_predict import mr_features

    root = Path(cohort_dir)
    times = _visit_times(root).set_index(["patient_id", "visit_id"])["time_years"]
    rows = []
    for vid in visits:
        x, _ = mr_features(root, patients, featurizer, visit=vid,
                           table="images.csv" if vid.startswith("v") else "prior_images.csv")
        rows.append(x.assign(patient_id=x.index, visit_id=vid))
    out = pd.concat(rows, ignore_index=True)
    out["time_years"] = times.reindex(pd.MultiIndex.from_frame(out[["patient_id", "visit_id"]])).to_numpy(float)
    return out


def latent_series(cohort_dir: str | Path) -> pd.DataFrame:
    """The simulator's latents at baseline and at the earlier visits (``truth/visits.csv``,
    ``truth/prior_visits.csv``), columns ``<latent>_v0`` as in ``truth/patients.csv``."""
    root = Path(cohort_dir) / "truth"
    base = pd.read_csv(root / "visits.csv")
    base = base[base["visit_id"] == "v0"]
    prior = pd.read_csv(root / "prior_visits.csv") if (root / "prior_visits.csv").is_file() else base.iloc[:0]
    cols = ["patient_id", "visit_id", "time_years", *LATENT_COLUMNS]
    out = pd.concat([base[cols], prior[cols]], ignore_index=True)
    return out.rename(columns={c: f"{c}_v0" for c in LATENT_COLUMNS})
