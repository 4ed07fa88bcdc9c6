"""Time-to-event models for events found at visits: the time is only known to lie in (lower, upper].

* :func:`interval_bounds` turns an events table (``time_years``, ``observed`` and the optional
  ``time_lower``/``time_upper`` of docs/manifest.md) into bounds: an observed event in
  ``(lower, upper]`` (``lower == upper`` for an exact time), a censored one in ``(time, inf)``.
* :class:`IntervalWeibullModel` — lifelines ``WeibullAFTFitter.fit_interval_censoring``: the
  likelihood of each patient is ``S(lower) - S(upper)`` (Lindsey & Ryan, Stat Med 1998). A Weibull
  model is a proportional-hazards model too: with ``S(t|x) = exp(-(t / exp(x'b + b0))^rho)`` the
  log hazard ratio of covariate k is ``-rho b_k``; its standard error comes from the delta method on
  lifelines' covariance of ``(b, log rho)``. (lifelines' spline Cox accepts interval-censored data
  too but did not converge on visit-grid intervals starting at 0 in our checks.)
* :func:`interval_c_index` — Harrell's C over the pairs whose order the intervals settle: patient i
  had the event and its interval ends before patient j's begins (``upper_i < lower_j``, or
  ``upper_i == lower_j`` when j's time is not an exact event); equal to Harrell's C when every time
  is exact (Tsouprou S, Measures of discrimination and predictive accuracy for interval censored
  survival data, MSc thesis, Leiden 2015, "C_IC" with definite pairs).

Naive analyses that take the detecting visit as the event time shift every event to the next visit;
``analyses/interval_competing_bias.py`` measures what that does to a hazard ratio.
"""
from __future__ import annotations

__all__ = ["IntervalWeibullModel", "interval_bounds", "interval_c_index", "has_intervals"]

import warnings
from typing import Sequence

import numpy as np
import pandas as pd

from raoutcome.errors import InputError

Z95 = 1.959963984540054
_EPS = 1e-3  # years: a lower bound of 0 (before the first visit) is moved here, log(0) having no value


def has_intervals(events: pd.DataFrame) -> bool:
    """Whether any observed event in ``events`` is known only up to an interval (lower < upper)."""
    if not {"time_lower", "time_upper"} <= set(events.columns):
        return False
    seen = events["observed"] == 1
    lower, upper = events["time_lower"], events["time_upper"]
    return bool((seen & lower.notna() & upper.notna() & (lower < upper)).any())


def interval_bounds(events: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """``(lower, upper)`` per row: exact ``(t, t)``, interval ``(lower, upper)``, censored ``(t, inf)``."""
    time = events["time_years"].to_numpy(float)
    observed = events["observed"].to_numpy(float) == 1
    lower = events["time_lower"].to_numpy(float) if "time_lower" in events else np.full(len(events), np.nan)
    upper = events["time_upper"].to_numpy(float) if "time_upper" in events else np.full(len(events), np.nan)
    has = observed & np.isfinite(lower) & np.isfinite(upper)
    lo = np.where(has, lower, time)
    hi = np.where(has, upper, np.where(observed, time, np.inf))
    return lo, hi


def interval_c_index(lower: Sequence[float], upper: Sequence[float], risk: Sequence[float]) -> float:
    """C-index over the pairs the intervals order (higher risk = earlier event); ties in risk count 1/2.

    ``upper = inf`` marks a censored patient (``lower`` its censoring time); ``lower == upper`` an
    exact event time. O(n^2) memory in blocks of rows.
    """
    lo, hi, r = (np.asarray(a, dtype=float) for a in (lower, upper, risk))
    if not (len(lo) == len(hi) == len(r)):
        raise InputError(f"interval_c_index: lengths differ (lower {len(lo)}, upper {len(hi)}, risk {len(r)})")
    keep = np.isfinite(lo) & ~np.isnan(hi) & np.isfinite(r)
    lo, hi, r = lo[keep], hi[keep], r[keep]
    event = np.isfinite(hi)
    exact = event & (lo == hi)
    num = den = 0.0
    for start in range(0, len(lo), 2048):
        i = slice(start, start + 2048)
        hi_i, r_i = hi[i][:, None], r[i][:, None]
        comparable = event[i][:, None] & ((hi_i < lo[None, :]) | ((hi_i == lo[None, :]) & ~exact[None, :]))
        den += comparable.sum()
        num += (comparable & (r_i > r[None, :])).sum() + 0.5 * (comparable & (r_i == r[None, :])).sum()
    if den == 0:
        raise InputError("interval_c_index: no pair whose order the intervals settle")
    return float(num / den)


class IntervalWeibullModel:
    """Weibull proportional-hazards model fitted to interval-censored times (lifelines AFT form).

    ``fit(df)`` needs the covariates and ``lower_col``/``upper_col`` (``upper = inf``: censored);
    ``summary`` gives per-covariate log hazard ratio, SE, HR and 95 % CI, z and p.
    """

    def __init__(self, covariates: Sequence[str], lower_col: str = "time_lower", upper_col: str = "time_upper",
                 penalizer: float = 0.0):
        self.covariates = list(covariates)
        self.lower_col = lower_col
        self.upper_col = upper_col
        self.penalizer = penalizer

    def fit(self, df: pd.DataFrame) -> "IntervalWeibullModel":
        from lifelines import WeibullAFTFitter

        needed = [*self.covariates, self.lower_col, self.upper_col]
        missing = [c for c in needed if c not in df]
        if missing:
            raise InputError(f"interval-censored model: table lacks column(s) {missing}")
        rows = df.dropna(subset=[*self.covariates, self.lower_col]).copy()
        lower = np.maximum(rows[self.lower_col].to_numpy(float), _EPS)
        upper = rows[self.upper_col].to_numpy(float)
        upper = np.where(np.isnan(upper), np.inf, np.maximum(upper, lower))
        if not np.isfinite(upper).any():
            raise InputError("interval-censored model: no observed event among the complete rows")
        frame = rows[self.covariates].astype(float).assign(_L=lower, _U=upper, _E=(lower == upper).astype(int))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                self.fitter_ = WeibullAFTFitter(penalizer=self.penalizer).fit_interval_censoring(
                    frame, lower_bound_col="_L", upper_bound_col="_U", event_col="_E")
            except Exception as err:  # noqa: BLE001 - lifelines raises several kinds on degenerate data
                raise InputError(f"interval-censored Weibull model did not converge ({err})") from err
        self.n_ = len(frame)
        self.n_events_ = int(np.isfinite(upper).sum())
        return self

    @property
    def shape_(self) -> float:
        return float(np.exp(self.fitter_.params_.loc[("rho_", "Intercept")]))

    @property
    def log_likelihood_(self) -> float:
        return float(self.fitter_.log_likelihood_)

    @property
    def summary(self) -> pd.DataFrame:
        """covariate, coef (log HR), se, hr, hr_lower, hr_upper, z, p (delta method on -rho b)."""
        from scipy.stats import norm

        params = self.fitter_.params_
        cov = self.fitter_.variance_matrix_
        rho = self.shape_
        key_rho = ("rho_", "Intercept")
        rows = []
        for c in self.covariates:
            key = ("lambda_", c)
            b = float(params.loc[key])
            grad = np.array([-rho, -b * rho])  # d(-rho b)/db, d(-rho b)/d log rho
            sub = cov.loc[[key, key_rho], [key, key_rho]].to_numpy(float)
            coef, se = -rho * b, float(np.sqrt(grad @ sub @ grad))
            z = coef / se
            rows.append({"covariate": c, "coef": coef, "se": se, "hr": np.exp(coef),
                         "hr_lower": np.exp(coef - Z95 * se), "hr_upper": np.exp(coef + Z95 * se),
                         "z": z, "p": float(2 * norm.sf(abs(z))), "per": "unit"})
        return pd.DataFrame(rows)

    def predict_risk(self, df: pd.DataFrame) -> np.ndarray:
        """Log hazard ratio per row (higher = earlier event); NaN where a covariate is missing."""
        out = np.full(len(df), np.nan)
        ok = df[self.covariates].notna().all(axis=1).to_numpy()
        if ok.any():
            table = self.summary.set_index("covariate")["coef"]
            out[ok] = df.loc[ok, self.covariates].to_numpy(float) @ table.loc[self.covariates].to_numpy(float)
        return out

    def predict_survival(self, df: pd.DataFrame, times: Sequence[float]) -> np.ndarray:
        """S(t | x) as an ``(n, len(times))`` array for the rows of ``df`` (complete covariates)."""
        x = df[self.covariates].astype(float)
        return np.asarray(self.fitter_.predict_survival_function(x, times=list(times)), float).T
