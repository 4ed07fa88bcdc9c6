"""Calibration of a predicted cumulative incidence (a cause with a competing event) at a horizon.

Two views, as Austin, Putter, Giardiello & van Klaveren (2022) recommend for competing-risk models:

* :func:`cif_calibration_groups` — patients grouped by predicted risk (quantiles); in each group the
  mean predicted cumulative incidence beside the observed one, the Aalen–Johansen estimate
  (:func:`aalen_johansen_at`) with its pointwise 95 % CI (Aalen's variance, lifelines);
* :func:`cif_calibration_at_horizon` — a smooth calibration curve: a Fine–Gray model of the observed
  outcome on a restricted cubic spline (3 knots, Harrell) of ``cloglog(predicted)``
  (:mod:`raoutcome.analysis.fine_gray`), read off at the horizon, so ``observed(p) = 1 - exp(-Lambda_1(h)
  exp(f(cloglog p)))``; ICI = mean |observed(p_i) - p_i|, E50 and E90 its median and 90th percentile
  (the competing-risk analogue of :func:`raoutcome.evaluation.calibration_at_horizon`).

Events found at a visit (``lower``/``upper`` given): the predicted incidence is of the event itself, the
recorded time is the visit that found it, so both views are computed on ``imputations`` data sets with
each such time drawn uniformly inside its interval (as the Fine–Gray fit does,
:func:`raoutcome.analysis.fine_gray.interval_imputer`) and averaged.

References
----------
Austin PC, Putter H, Giardiello D, van Klaveren D. Graphical calibration curves and the integrated
calibration index (ICI) for competing risk models. Diagn Progn Res 2022;6:2.
Harrell FE. Regression Modeling Strategies, 2nd ed., section 2.4.5 (restricted cubic splines).
"""
from __future__ import annotations

__all__ = ["CifCalibration", "aalen_johansen_at", "cif_calibration_at_horizon", "cif_calibration_groups",
           "observed_cif"]

from dataclasses import dataclass

import numpy as np
import pandas as pd

from raoutcome.errors import InputError


def _inputs(time, status, predicted, horizon: float, cause: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    t = np.asarray(time, float)
    s = np.asarray(status)
    p = np.asarray(predicted, float)
    if not (len(t) == len(s) == len(p)):
        raise InputError(f"cumulative-incidence calibration: time, status and predicted differ in length "
                         f"({len(t)}, {len(s)}, {len(p)})")
    bad = ~np.isfinite(p) | (p < 0) | (p > 1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InputError(f"predicted: value {p[i]!r} at row {i} is not a probability")
    if not np.isfinite(t).all() or (t < 0).any():
        i = int(np.flatnonzero(~np.isfinite(t) | (t < 0))[0])
        raise InputError(f"time: value {t[i]!r} at row {i} is not a time >= 0")
    if not ((s == cause) & (t <= horizon)).any():
        raise InputError(f"cumulative-incidence calibration: no event of cause {cause} by {horizon:g}")
    if not (t >= horizon).any():
        raise InputError(f"cumulative-incidence calibration: horizon {horizon:g} is beyond every follow-up")
    return t, s, p


def aalen_johansen_at(time, status, horizon: float, cause: int = 1) -> float:
    """Aalen–Johansen ``F_cause(h) = sum_{u <= h} S(u-) d_cause(u) / Y(u)`` with tied times kept tied.

    ``S`` is the all-cause Kaplan–Meier, ``Y(u)`` the number still at risk at ``u``; status 0 is censored
    (a censoring tied with an event counts after it). lifelines' fitter jitters tied times, which moves
    events found at a visit past a horizon equal to that visit; this one does not.
    """
    t = np.asarray(time, float)
    s = np.asarray(status)
    u, inv = np.unique(t, return_inverse=True)
    y = len(t) - np.searchsorted(np.sort(t), u, side="left")
    d_all = np.bincount(inv, weights=(s != 0).astype(float), minlength=len(u))
    d_c = np.bincount(inv, weights=(s == cause).astype(float), minlength=len(u))
    s_before = np.concatenate([[1.0], np.cumprod(1 - d_all / y)[:-1]])
    keep = u <= horizon
    return float(np.sum(s_before[keep] * d_c[keep] / y[keep]))


def _time_draws(time, status, lower, upper, cause: int, imputations: int, seed: int) -> list[np.ndarray]:
    if lower is None or upper is None:
        return [np.asarray(time, float)]
    from raoutcome.analysis.fine_gray import interval_imputer

    draw = interval_imputer(time, status, lower, upper, cause, seed)
    return [draw() for _ in range(max(1, imputations))]


def observed_cif(time, status, horizon: float, cause: int = 1, lower=None, upper=None, imputations: int = 10,
                 seed: int = 0) -> float:
    """Aalen–Johansen cumulative incidence at ``horizon``, averaged over imputed times when intervals are given."""
    draws = _time_draws(time, status, lower, upper, cause, imputations, seed)
    return float(np.mean([aalen_johansen_at(t, status, horizon, cause) for t in draws]))


def cif_calibration_groups(time, status, predicted, horizon: float, groups: int = 10, cause: int = 1,
                           seed: int = 0, lower=None, upper=None, imputations: int = 10) -> pd.DataFrame:
    """Observed (Aalen–Johansen) against mean predicted cumulative incidence in quantile groups of risk.

    Returns ``group, n, events, mean_predicted, observed, lower, upper``; ``lower``/``upper`` is
    lifelines' pointwise 95 % CI of the Aalen–Johansen estimate (its jitter seeded by ``seed``); with
    imputed times, that of the first completed data set moved to the pooled estimate.
    """
    from raoutcome.analysis.competing_risks import cumulative_incidence

    draws = [_inputs(t_m, status, predicted, horizon, cause)[0]
             for t_m in _time_draws(time, status, lower, upper, cause, imputations, seed)]
    s, p = np.asarray(status), np.asarray(predicted, float)
    n = len(p)
    k = int(min(groups, max(1, n // 20)))
    rank = pd.Series(p).rank(method="first").to_numpy()
    label = np.minimum((rank - 1) * k // n, k - 1).astype(int)
    rows = []
    for g in range(k):
        sel = label == g
        obs = [aalen_johansen_at(t[sel], s[sel], horizon, cause) for t in draws]
        events = [int(((s == cause) & (t <= horizon) & sel).sum()) for t in draws]
        lo = hi = np.nan
        if (s[sel] == cause).any():  # the CI of the first data set, centred on the pooled estimate
            cif = cumulative_incidence(draws[0][sel], s[sel], cause=cause, seed=seed)
            before = cif[cif["time"] <= horizon]
            if len(before):
                shift = float(np.mean(obs)) - obs[0]
                lo = float(np.clip(before["lower"].iloc[-1] + shift, 0, 1))
                hi = float(np.clip(before["upper"].iloc[-1] + shift, 0, 1))
        rows.append({"group": g + 1, "n": int(sel.sum()), "events": float(np.mean(events)),
                     "mean_predicted": float(p[sel].mean()), "observed": float(np.mean(obs)), "lower": lo, "upper": hi})
    return pd.DataFrame(rows)


@dataclass
class CifCalibration:
    """Smoothed calibration of a predicted cumulative incidence at one horizon."""

    horizon: float
    ici: float
    e50: float
    e90: float
    n: int
    predicted: np.ndarray   # grid of predicted probabilities
    observed: np.ndarray    # smoothed observed cumulative incidence at each grid value


def _rcs(z: np.ndarray, knots: np.ndarray) -> np.ndarray:
    """Restricted cubic spline basis with 3 knots (Harrell): ``z`` and one non-linear term."""
    k1, k2, k3 = knots
    pos = lambda v: np.maximum(v, 0.0) ** 3  # noqa: E731
    nonlin = (pos(z - k1) - pos(z - k2) * (k3 - k1) / (k3 - k2) + pos(z - k3) * (k2 - k1) / (k3 - k2)) / (k3 - k1) ** 2
    return np.column_stack([z, nonlin])


def cif_calibration_at_horizon(time, status, predicted, horizon: float, cause: int = 1, n_grid: int = 100,
                               lower=None, upper=None, imputations: int = 10, seed: int = 0) -> CifCalibration:
    """ICI / E50 / E90 of a predicted cumulative incidence at ``horizon`` against a smoothed observed curve."""
    from raoutcome.analysis.fine_gray import fit_fine_gray

    draws = [_inputs(t_m, status, predicted, horizon, cause)[0]
             for t_m in _time_draws(time, status, lower, upper, cause, imputations, seed)]
    s = np.asarray(status)
    p = np.clip(np.asarray(predicted, float), 1e-8, 1 - 1e-8)
    z = np.log(-np.log(1 - p))
    knots = np.percentile(z, [10, 50, 90])
    basis = (lambda v: _rcs(v, knots)) if np.all(np.diff(knots) > 1e-8) else (lambda v: v[:, None])
    grid = np.linspace(max(p.min() - 0.01, 1e-6), min(p.max() + 0.01, 1 - 1e-6), n_grid)
    observed, curves = [], []
    for t in draws:
        try:
            fit = fit_fine_gray(t, s, basis(z), cause=cause, variance="fixed-weights")
        except (InputError, np.linalg.LinAlgError) as err:
            raise InputError(f"cumulative-incidence calibration: smoother did not fit ({err})") from err
        if not fit.converged:
            raise InputError("cumulative-incidence calibration: smoother did not converge")
        observed.append(fit.cumulative_incidence(basis(z), [horizon])[:, 0])
        curves.append(fit.cumulative_incidence(basis(np.log(-np.log(1 - grid))), [horizon])[:, 0])
    delta = np.abs(np.mean(observed, axis=0) - p)
    return CifCalibration(horizon=float(horizon), ici=float(delta.mean()), e50=float(np.percentile(delta, 50)),
                          e90=float(np.percentile(delta, 90)), n=len(p), predicted=grid,
                          observed=np.mean(curves, axis=0))
