"""Continuous-outcome metrics: RMSE, MAE, mean bias, R², Pearson and Spearman correlation.

Every function takes ``(y_true, y_pred)`` and ignores rows where either is
missing. The scalar functions (``rmse``, ``mae``, ``bias``, ``r2``, ``pearson_r``,
``spearman_rho``) are the ones to hand to :mod:`raoutcome.evaluation.bootstrap`;
``pearson`` and ``spearman`` return the statistic with its test and, for
Pearson, scipy's Fisher-z confidence interval (rows assumed independent: with
several visits per patient use a patient-level bootstrap instead).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

from raoutcome.evaluation._common import complete, finite_weights, safe_divide
from raoutcome.evaluation.bootstrap import with_batched


@dataclass(frozen=True)
class Correlation:
    """A correlation coefficient with its two-sided test and confidence interval."""

    r: float
    p_value: float
    ci_low: float
    ci_high: float
    n: int
    method: str


def _rmse_batched(w: np.ndarray, y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    w, (t, p) = finite_weights(w, y_true, y_pred)
    return np.sqrt(safe_divide(w @ (p - t) ** 2, w.sum(axis=1)))


def _mae_batched(w: np.ndarray, y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    w, (t, p) = finite_weights(w, y_true, y_pred)
    return safe_divide(w @ np.abs(p - t), w.sum(axis=1))


def _bias_batched(w: np.ndarray, y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    w, (t, p) = finite_weights(w, y_true, y_pred)
    return safe_divide(w @ (p - t), w.sum(axis=1))


def _r2_batched(w: np.ndarray, y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    w, (t, p) = finite_weights(w, y_true, y_pred)
    sw = w.sum(axis=1)
    mt = safe_divide(w @ t, sw)
    sse = w @ (p - t) ** 2
    sst = (w * (t[None, :] - mt[:, None]) ** 2).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(sst > 0, 1.0 - sse / np.where(sst > 0, sst, 1.0), np.nan)


def _pearson_batched(w: np.ndarray, y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    w, (t, p) = finite_weights(w, y_true, y_pred)
    keep = w.sum(axis=0) > 0
    # centre on the full-data means first: weighted moments stay well conditioned
    t = t - t[keep].mean() if keep.any() else t
    p = p - p[keep].mean() if keep.any() else p
    sw = w.sum(axis=1)
    mt, mp = safe_divide(w @ t, sw), safe_divide(w @ p, sw)
    cov = safe_divide(w @ (t * p), sw) - mt * mp
    vt = safe_divide(w @ (t * t), sw) - mt ** 2
    vp = safe_divide(w @ (p * p), sw) - mp ** 2
    den = np.sqrt(np.clip(vt, 0, None) * np.clip(vp, 0, None))
    tiny = 1e-12 * np.maximum(np.abs(cov), 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > tiny, np.clip(cov / den, -1.0, 1.0), np.nan)


@with_batched(_rmse_batched)
def rmse(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Root mean squared error."""
    t, p = complete(y_true=y_true, y_pred=y_pred)
    return float(np.sqrt(np.mean((p - t) ** 2)))


@with_batched(_mae_batched)
def mae(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Mean absolute error."""
    t, p = complete(y_true=y_true, y_pred=y_pred)
    return float(np.mean(np.abs(p - t)))


@with_batched(_bias_batched)
def bias(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Mean of ``y_pred - y_true`` (positive: the model over-estimates)."""
    t, p = complete(y_true=y_true, y_pred=y_pred)
    return float(np.mean(p - t))


@with_batched(_r2_batched)
def r2(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Coefficient of determination ``1 - SSE / SST`` of the predictions as they are (no refitting, so it
    can be negative: a prediction worse than the observed mean). NaN when the observed values do not vary."""
    t, p = complete(min_n=2, y_true=y_true, y_pred=y_pred)
    sst = float(((t - t.mean()) ** 2).sum())
    if sst <= 0:
        return float("nan")
    return 1.0 - float(((t - p) ** 2).sum()) / sst


@with_batched(_pearson_batched)
def pearson_r(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Pearson's r alone (NaN when either side is constant)."""
    t, p = complete(min_n=2, y_true=y_true, y_pred=y_pred)
    if np.ptp(t) == 0 or np.ptp(p) == 0:
        return float("nan")
    return float(np.clip(np.corrcoef(t, p)[0, 1], -1.0, 1.0))


def spearman_rho(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Spearman's rank correlation alone (NaN when either side is constant)."""
    t, p = complete(min_n=2, y_true=y_true, y_pred=y_pred)
    if np.ptp(t) == 0 or np.ptp(p) == 0:
        return float("nan")
    return float(stats.spearmanr(t, p).statistic)


def pearson(y_true: ArrayLike, y_pred: ArrayLike, level: float = 0.95) -> Correlation:
    """Pearson's r, its two-sided p-value and scipy's Fisher-z confidence interval."""
    t, p = complete(min_n=3, y_true=y_true, y_pred=y_pred)
    if np.ptp(t) == 0 or np.ptp(p) == 0:
        return Correlation(float("nan"), float("nan"), float("nan"), float("nan"), len(t), "pearson")
    res = stats.pearsonr(t, p)
    ci = res.confidence_interval(confidence_level=level)
    return Correlation(float(res.statistic), float(res.pvalue), float(ci.low), float(ci.high), len(t), "pearson")


def spearman(y_true: ArrayLike, y_pred: ArrayLike) -> Correlation:
    """Spearman's rho and its two-sided p-value (scipy gives no interval: bootstrap one)."""
    t, p = complete(min_n=3, y_true=y_true, y_pred=y_pred)
    if np.ptp(t) == 0 or np.ptp(p) == 0:
        return Correlation(float("nan"), float("nan"), float("nan"), float("nan"), len(t), "spearman")
    res = stats.spearmanr(t, p)
    return Correlation(float(res.statistic), float(res.pvalue), float("nan"), float("nan"), len(t), "spearman")
