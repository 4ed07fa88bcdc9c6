"""``beyond_damage`` by SIMEX: the image score's coefficient beyond a flexible damage basis, corrected by SIMEX.

The alternative to regression calibration of the damage basis (``beyond_damage(...,
calibration="simex")``). With two readings ``W₁, W₂`` of the same radiographs the
outcome model is fitted on a damage basis ``B(W̄)`` of the mean reading
``W̄ = (W₁ + W₂)/2`` (per subscore: a natural cubic spline of log(1 + score) with
knots fixed from ``W̄``, the score itself, and the product of the standardised log
subscores), the covariates and the image score ``Z``:

    HAQ:    Y = α + B(W̄)'θ + covariates'δ + γ Z + e            (least squares)
    hazard: log h(t) = log h₀(t) + B(W̄)'θ + covariates'δ + γ Z  (Cox, Breslow)

The error left in ``W̄`` biases ``γ`` (a precise damage reader ``Z`` takes over the
part of damage ``W̄`` misses); empirical SIMEX (Devanarayan & Stefanski 2002:
``W̄ + √λ ε (W₁ − W₂)/2``, the reader's own heteroscedastic error, no error model)
refits the model ``n_sim`` times per ``λ ∈ {0.5, 1, 1.5, 2}`` and extrapolates ``γ̂(λ)``
to ``λ = −1`` (Cook & Stefanski 1994; :mod:`raoutcome.analysis.simex`). The test is the
Wald test ``γ_SIMEX / se_SIMEX`` with the Stefanski–Cook (1995) variance. The
quadratic extrapolant corrects only partly where ``γ̂(λ)`` is convex in ``λ``
(Carroll et al. 2006, §5.3.2): its size is measured, not assumed
(``analyses/false_discovery.py``, variant ``damage_simex``).

Natural splines: the truncated-power basis of Hastie, Tibshirani & Friedman,
*The Elements of Statistical Learning*, 2nd ed. 2009, eq. 5.4–5.5 — cubic between
the knots, linear beyond the boundary knots, so remeasured scores outside the
mean reading's range extrapolate linearly.
"""
from __future__ import annotations

__all__ = ["natural_spline", "DamageBasis", "simex_damage_test"]

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

from raoutcome.analysis.simex import DEFAULT_LAMBDAS, SimexResult, remeasure_replicates, simex
from raoutcome.errors import InputError


def natural_spline(x: ArrayLike, knots: ArrayLike) -> np.ndarray:
    """Natural cubic spline basis without intercept: ``x`` and ``d_k − d_{K−1}`` for k = 1 … K − 2.

    ``d_k(x) = [(x − ξ_k)³₊ − (x − ξ_K)³₊] / (ξ_K − ξ_k)`` (ESL eq. 5.4–5.5); K
    knots give K − 1 columns, linear beyond ``ξ_1`` and ``ξ_K``.
    """
    x = np.asarray(x, float)
    xi = np.asarray(knots, float)
    if len(xi) < 2 or np.any(np.diff(xi) <= 0):
        raise InputError(f"natural spline needs >= 2 increasing knots, got {list(xi)}")
    k = len(xi)

    def d(j: int) -> np.ndarray:
        return (np.clip(x - xi[j], 0, None) ** 3 - np.clip(x - xi[-1], 0, None) ** 3) / (xi[-1] - xi[j])

    cols = [x] + [d(j) - d(k - 2) for j in range(k - 2)]
    return np.column_stack(cols)


@dataclass
class DamageBasis:
    """The damage basis ``B(w)`` of the subscores, its knots and scalings fixed from a reference reading.

    Per subscore column: a natural spline of log(1 + w) (``df`` columns: ``df + 1``
    knots at quantiles of the distinct values) and ``w`` itself; for two or more
    subscores the product of each pair of standardised log subscores.
    """

    knots: list[np.ndarray]
    log_mean: np.ndarray
    log_sd: np.ndarray

    @classmethod
    def fit(cls, reference: ArrayLike, df: int = 3) -> "DamageBasis":
        w = np.atleast_2d(np.asarray(reference, float).T).T
        logs = np.log1p(np.clip(w, 0, None))
        knots = []
        for j in range(w.shape[1]):
            distinct = np.unique(logs[:, j])
            if len(distinct) < 3:
                raise InputError(f"damage basis: subscore {j} has fewer than 3 distinct values")
            knots.append(np.unique(np.quantile(distinct, np.linspace(0, 1, min(df, len(distinct) - 1) + 1))))
        sd = logs.std(axis=0)
        return cls(knots=knots, log_mean=logs.mean(axis=0), log_sd=np.where(sd > 0, sd, 1.0))

    def __call__(self, w: ArrayLike) -> np.ndarray:
        w = np.atleast_2d(np.asarray(w, float).T).T
        clipped = np.clip(w, 0, None)
        logs = np.log1p(clipped)
        cols = [natural_spline(logs[:, j], self.knots[j]) for j in range(w.shape[1])]
        cols.append(clipped)
        z = (logs - self.log_mean) / self.log_sd
        for a in range(w.shape[1]):
            for b in range(a + 1, w.shape[1]):
                cols.append((z[:, a] * z[:, b])[:, None])
        return np.column_stack(cols)


def simex_damage_test(first: ArrayLike, second: ArrayLike, fixed: ArrayLike, *, outcome: ArrayLike | None = None,
                      duration: ArrayLike | None = None, event: ArrayLike | None = None, spline_df: int = 3,
                      lambdas: Sequence[float] = DEFAULT_LAMBDAS, n_sim: int = 50, extrapolant: str = "quadratic",
                      seed: int = 0) -> tuple[float, float, float, SimexResult]:
    """SIMEX Wald test of the last column of ``fixed`` (the image score) beyond the damage basis.

    ``first``, ``second``: the two readings (n × subscores); ``fixed``: the
    error-free columns (covariates, then the image score last). Least squares of
    ``outcome`` or, with ``duration`` and ``event``, a Cox model. Returns
    (γ_SIMEX, its standard error, the two-sided Wald p-value, the
    :class:`~raoutcome.analysis.simex.SimexResult`).
    """
    from raoutcome.analysis.cox_newton import fit_cox

    w1 = np.atleast_2d(np.asarray(first, float).T).T
    w2 = np.atleast_2d(np.asarray(second, float).T).T
    z = np.atleast_2d(np.asarray(fixed, float).T).T
    if not (len(w1) == len(w2) == len(z)) or not np.isfinite(z).all():
        raise InputError("SIMEX test: readings and fixed columns must be complete and of equal length")
    basis = DamageBasis.fit((w1 + w2) / 2.0, df=spline_df)
    if outcome is not None:
        y = np.asarray(outcome, float)

        def estimator(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            x = np.column_stack([np.ones(len(y)), basis(w), z])
            beta, _, rank, _ = np.linalg.lstsq(x, y, rcond=None)
            if rank < x.shape[1]:
                raise InputError("SIMEX test: the design is rank deficient")
            resid = y - x @ beta
            cov = resid @ resid / (len(y) - x.shape[1]) * np.linalg.inv(x.T @ x)
            return beta[-1:], cov[-1:, -1:]
    elif duration is not None and event is not None:
        t, e = np.asarray(duration, float), np.asarray(event, float)

        def estimator(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            fit = fit_cox(np.column_stack([basis(w), z]), t, e)
            if not fit.converged or fit.covariance is None:
                raise InputError("SIMEX test: a Cox refit did not converge")
            return fit.params[-1:], fit.covariance[-1:, -1:]
    else:
        raise InputError("SIMEX test needs an outcome, or a duration and an event")
    result = simex(estimator, remeasure_replicates(w1, w2), lambdas, n_sim, extrapolant, variance=True, seed=seed)
    gamma = float(result.estimate[0])
    var = float(result.variance[0]) if result.variance is not None else np.nan
    se = float(np.sqrt(var)) if np.isfinite(var) else np.nan
    p = float(2 * stats.norm.sf(abs(gamma) / se)) if np.isfinite(se) and se > 0 else np.nan
    return gamma, se, p, result
