"""Tidy metric tables with bootstrap confidence intervals, for the analysis and report code.

Both reports return a DataFrame indexed by ``metric`` with columns
``estimate, ci_low, ci_high, ci_method, n, note``. ``ci_method`` is
``patient bootstrap`` (visits of a patient resampled together), ``bootstrap``
(rows resampled), ``fisher z`` (Pearson without resampling) or ``none``.
A metric that cannot be computed on these data (no event before a horizon,
follow-up too short for a time) gets NaN and the reason in ``note`` instead of
stopping the whole table.
"""
from __future__ import annotations

from typing import Callable, Mapping, Sequence

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from raoutcome.errors import InputError
from raoutcome.evaluation._common import as_array, check_events, check_nonnegative, complete
from raoutcome.evaluation.bootstrap import Metric, bootstrap_metrics
from raoutcome.evaluation.classification import horizon_metrics
from raoutcome.evaluation.dream import dream_weighted_mae, dream_weighted_rmse
from raoutcome.evaluation.regression import bias, mae, pearson, pearson_r, r2, rmse, spearman_rho
from raoutcome.evaluation.survival_metrics import (calibration_at_horizon, harrell_c, integrated_brier,
                                                   time_dependent_auc, uno_c)

COLUMNS = ["estimate", "ci_low", "ci_high", "ci_method", "n", "note"]


def _table(metrics: Mapping[str, Metric], arrays: Sequence[ArrayLike], n: int, patient_ids: ArrayLike | None,
           n_boot: int, level: float, seed: int | None, progress: bool | None) -> pd.DataFrame:
    """Estimate every metric (noting failures) and bootstrap the ones that worked."""
    rows: dict[str, dict] = {}
    usable: dict[str, Metric] = {}
    for name, fn in metrics.items():
        try:
            value = float(fn(*arrays))
        except InputError as err:
            rows[name] = dict(estimate=np.nan, ci_low=np.nan, ci_high=np.nan, ci_method="none", n=n, note=str(err))
            continue
        rows[name] = dict(estimate=value, ci_low=np.nan, ci_high=np.nan, ci_method="none", n=n, note="")
        usable[name] = fn
    if n_boot > 0 and usable:
        method = "patient bootstrap" if patient_ids is not None else "bootstrap"
        boot = bootstrap_metrics(usable, *arrays, patient_ids=patient_ids, n_boot=n_boot, level=level, seed=seed,
                                 progress=progress)
        for name, res in boot.items():
            note = f"{res.n_failed} of {res.n_boot} resamples failed" if res.n_failed else ""
            rows[name].update(ci_low=res.ci_low, ci_high=res.ci_high, ci_method=method, note=note)
    table = pd.DataFrame.from_dict(rows, orient="index", columns=COLUMNS)
    table.index.name = "metric"
    return table


def regression_report(y_true: ArrayLike, y_pred: ArrayLike, patient_ids: ArrayLike | None = None,
                      n_boot: int = 1000, level: float = 0.95, seed: int | None = 0, dream: bool = False,
                      progress: bool | None = None) -> pd.DataFrame:
    """RMSE, MAE, bias, R² (as predicted, no refitting), Pearson r and Spearman rho (and the DREAM scores if
    ``dream``) with CIs.

    Rows with a missing value on either side are dropped first. With several
    visits per patient, pass ``patient_ids`` so that the intervals resample
    patients, not visits.
    """
    t = as_array(y_true, "y_true")
    p = as_array(y_pred, "y_pred")
    ids = None if patient_ids is None else np.asarray(patient_ids)
    if ids is not None and len(ids) != len(t):
        raise InputError(f"patient_ids: {len(ids)} values for {len(t)} rows")
    keep = np.isfinite(t) & np.isfinite(p)
    t, p = complete(min_n=3, y_true=t[keep], y_pred=p[keep])
    ids = None if ids is None else ids[keep]
    metrics: dict[str, Metric] = {"rmse": rmse, "mae": mae, "bias": bias, "r2": r2, "pearson_r": pearson_r,
                                  "spearman_rho": spearman_rho}
    if dream:
        metrics.update(dream_weighted_rmse=dream_weighted_rmse, dream_weighted_mae=dream_weighted_mae)
    table = _table(metrics, (t, p), len(t), ids, n_boot, level, seed, progress)
    table.attrs["n_patients"] = len(np.unique(ids)) if ids is not None else len(t)
    if n_boot == 0:
        corr = pearson(t, p, level)
        table.loc["pearson_r", ["ci_low", "ci_high", "ci_method"]] = [corr.ci_low, corr.ci_high, "fisher z"]
        if ids is not None and len(np.unique(ids)) < len(ids):
            table.loc["pearson_r", "note"] = "Fisher interval treats visits of one patient as independent"
    return table


def _once_per_resample(fn: Callable[..., object]) -> Callable[..., object]:
    """Let several table rows read one computation (AUC at all times, the horizon confusion table).

    The bootstrap hands every metric the same array objects for one resample,
    so the result is reused while the first array is that very object (the
    reference kept here stops Python from recycling its id).
    """
    last: list = [None, None]

    def call(*arrays):
        if last[0] is not arrays[0]:
            last[1] = fn(*arrays)
            last[0] = arrays[0]
        return last[1]
    return call


def _defined(value: float, what: str) -> float:
    """An AUC that exists; NaN (no event by the time, or no one event-free after it) raises InputError."""
    if not np.isfinite(value):
        raise InputError(f"{what}: undefined (no event by that time, or no patient event-free after it)")
    return float(value)


def survival_report(time: ArrayLike, event: ArrayLike, risk: ArrayLike, times: ArrayLike | None = None,
                    horizon: float | None = None, surv_prob: ArrayLike | None = None,
                    threshold: float | None = None, tau: float | None = None,
                    train_time: ArrayLike | None = None, train_event: ArrayLike | None = None,
                    n_boot: int = 1000, level: float = 0.95, seed: int | None = 0,
                    progress: bool | None = None) -> pd.DataFrame:
    """Harrell's and Uno's C, AUC(t), IBS, metrics at a horizon and calibration, with bootstrap CIs.

    One row per patient. ``risk``: higher = earlier event. ``times``: where to
    evaluate AUC(t) (and the IBS when ``surv_prob``, an ``(n, len(times))``
    array of S(t), is given). At ``horizon`` the score is P(event by the
    horizon) = 1 - S(horizon) when ``surv_prob`` holds the horizon among
    ``times``, else ``risk``: its AUROC for "event by the horizon" (patients
    censored earlier left out), and accuracy / sensitivity / specificity / PPV /
    NPV at ``score >= threshold`` (default 0.5 for probabilities; with ``risk``
    only when ``threshold`` is given), plus the calibration ICI / E50 / E90 of
    the probabilities (no CI: one spline fit is slow). Uno's C is truncated at
    ``tau`` (default: the last of ``times``, else the horizon, else none).
    """
    t, e, r = as_array(time, "time"), as_array(event, "event"), as_array(risk, "risk score")
    grid = None if times is None else as_array(times, "times")
    keep = np.isfinite(t) & np.isfinite(e) & np.isfinite(r)
    prob = None
    if surv_prob is not None:
        if grid is None:
            raise InputError("surv_prob needs the times it is given at")
        prob = np.asarray(surv_prob, dtype=np.float64)
        if prob.shape != (len(t), len(grid)):
            raise InputError(f"surv_prob: expected shape ({len(t)}, {len(grid)}), got {prob.shape}")
        keep &= np.isfinite(prob).all(axis=1)
        prob = prob[keep]
    t, e, r = t[keep], e[keep], r[keep]
    check_events(e)  # bad flags or times are the caller's error, not a note in the table
    check_nonnegative(t, "time")
    arrays = [t, e, r] + ([prob] if prob is not None else [])
    tau = tau if tau is not None else float(grid.max()) if grid is not None else horizon
    train = dict(train_time=train_time, train_event=train_event)
    metrics: dict[str, Metric] = {
        "harrell_c": lambda t_, e_, r_, s_=None: harrell_c(t_, e_, r_),
        "uno_c": lambda t_, e_, r_, s_=None: uno_c(t_, e_, r_, tau=tau, **train),
    }
    if grid is not None:
        auc = _once_per_resample(lambda t_, e_, r_, s_=None: time_dependent_auc(t_, e_, r_, grid, **train))
        for i, at in enumerate(grid):
            metrics[f"auc_t{at:g}"] = lambda *a, i=i, at=at: _defined(auc(*a).auc[i], f"AUC at {at:g}")
        if len(grid) > 1:
            metrics["mean_auc"] = lambda *a: _defined(auc(*a).mean_auc, "mean AUC")
        if prob is not None and len(grid) > 1:
            metrics["integrated_brier"] = lambda t_, e_, r_, s_: integrated_brier(t_, e_, s_, grid, **train)
    column = None
    if horizon is not None:
        if prob is not None and np.isclose(grid, horizon).any():
            column = int(np.flatnonzero(np.isclose(grid, horizon))[0])
        cut = threshold if threshold is not None else 0.5

        def at_horizon(t_, e_, r_, s_=None):
            return horizon_metrics(t_, e_, r_ if column is None else 1 - s_[:, column], horizon, cut)
        confusion = _once_per_resample(at_horizon)
        names = ["auroc"]
        if column is not None or threshold is not None:
            names += ["accuracy", "sensitivity", "specificity", "ppv", "npv"]
        for name in names:
            metrics[f"{name}_at_horizon"] = lambda *a, name=name: float(getattr(confusion(*a), name))
    table = _table(metrics, arrays, len(t), None, n_boot, level, seed, progress)
    if column is not None:
        table = pd.concat([table, _calibration_rows(t, e, 1 - prob[:, column], horizon)])
    table.index.name = "metric"
    return table


def _calibration_rows(t: np.ndarray, e: np.ndarray, p: np.ndarray, horizon: float) -> pd.DataFrame:
    try:
        cal = calibration_at_horizon(t, e, p, horizon)
        values, note = {"calibration_ici": cal.ici, "calibration_e50": cal.e50, "calibration_e90": cal.e90}, ""
    except InputError as err:
        values = dict.fromkeys(("calibration_ici", "calibration_e50", "calibration_e90"), np.nan)
        note = str(err)
    return pd.DataFrame({name: dict(estimate=v, ci_low=np.nan, ci_high=np.nan, ci_method="none", n=len(t),
                                    note=note) for name, v in values.items()}, index=COLUMNS).T
