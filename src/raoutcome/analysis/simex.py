"""SIMEX: simulation–extrapolation correction of an estimator for measurement error in a covariate.

The alternative to regression calibration (:mod:`raoutcome.analysis.reader_error`)
for a damage reading ``W = X + U``. An estimator ``θ̂(W)`` fitted on the error-prone
reading is biased (the damage slope towards zero, a correlated score's slope away
from it). SIMEX (Cook & Stefanski, JASA 1994;89:1314) adds *more* error of the same
kind: for each ``λ`` of a grid (``λ = 0.5, 1, 1.5, 2``) it refits on remeasured data
``W_b(λ)`` whose error variance is ``(1 + λ) σ²_U``, averages the ``B`` refits to
``θ̄(λ)``, models the trend of ``θ̄(λ)`` in ``λ`` and extrapolates it to ``λ = −1``,
the error-free case:

* ``"quadratic"``: ``θ(λ) ≈ a + bλ + cλ²`` (least squares over ``λ ∈ {0, grid}``),
  ``θ_SIMEX = a − b + c``. Conservative (partial correction) where the true trend
  is convex, as in attenuation;
* ``"rational"`` (nonlinear, "rational linear"): ``θ(λ) = a + b / (c + λ)``,
  ``θ_SIMEX = a + b / (c − 1)`` — exact for a linear model with classical normal
  error, whose naive slope is ``β σ²_X / (σ²_X + (1 + λ) σ²_U)``;
* ``"linear"``: ``a + bλ``, ``θ_SIMEX = a − b`` (the most conservative).

Remeasurement (how ``W_b(λ)`` is drawn):

* :func:`remeasure_normal` — known error variance (scalar, or per row for an error
  that grows with damage): ``W_b(λ) = W + √(λ σ²_U) Z_b``, ``Z_b ~ N(0, 1)``;
* :func:`remeasure_replicates` — *empirical SIMEX* from two readings of the same
  radiograph (Devanarayan & Stefanski, Stat Prob Letters 2002;59:219): the
  estimator is applied to the mean reading ``W̄ = (W₁ + W₂)/2``, and
  ``W_b(λ) = W̄ + √λ ε_b (W₁ − W₂)/2`` with random signs ``ε_b = ±1`` adds, row by
  row, variance ``λ Var(Ū)`` — the reader's own, heteroscedastic error, with no
  error model. (With two readings the normalised contrast is ``±(1, −1)/√2``.)

Variance (:func:`simex`, ``variance=True``): the estimator also returns its
model-based covariance ``Σ̂_b(λ)``; the SIMEX variance extrapolates
``τ̄²(λ) − s²_Δ(λ)`` — the mean model-based variance minus the between-remeasurement
variance of ``θ̂_b(λ)`` — to ``λ = −1`` with the same extrapolant (Stefanski & Cook,
JASA 1995;90:1247; Carroll, Ruppert, Stefanski & Crainiceanu, *Measurement Error in
Nonlinear Models*, 2nd ed. 2006, §5.3.4.1).

Statistics: ordinary least squares by numpy, the rational extrapolant by
``scipy.optimize.curve_fit``. No torch.
"""
from __future__ import annotations

__all__ = ["SimexResult", "extrapolate", "remeasure_normal", "remeasure_replicates", "simex", "simex_ols"]

import warnings
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
from numpy.typing import ArrayLike
from scipy import optimize, stats

from raoutcome.errors import InputError

EXTRAPOLANTS = ("quadratic", "rational", "linear")
#: The grid of added-error multiples recommended by Cook & Stefanski (1994) and Carroll et al. (2006, §5.3.2).
DEFAULT_LAMBDAS = (0.5, 1.0, 1.5, 2.0)

Remeasure = Callable[[float, np.random.Generator], np.ndarray]


@dataclass
class SimexResult:
    """SIMEX estimate ``estimate`` (``θ`` extrapolated to λ = −1), the ``naive`` fit (λ = 0), the ``lambdas``
    (0 first) with the averaged refits ``path`` (one row per λ), the ``extrapolant`` and, when asked for,
    the SIMEX ``variance`` of each coefficient (NaN where the extrapolated variance is not positive)."""

    estimate: np.ndarray
    naive: np.ndarray
    lambdas: np.ndarray
    path: np.ndarray
    extrapolant: str
    variance: np.ndarray | None = None

    @property
    def se(self) -> np.ndarray | None:
        return None if self.variance is None else np.sqrt(self.variance)


def _rational(lam: np.ndarray, a: float, b: float, c: float) -> np.ndarray:
    return a + b / (c + lam)


def extrapolate(lambdas: ArrayLike, values: ArrayLike, extrapolant: str = "quadratic", at: float = -1.0) -> np.ndarray:
    """Fit ``values`` (one row per λ, one column per coefficient) as a function of λ and evaluate it at ``at``.

    ``"quadratic"`` / ``"linear"``: polynomial least squares. ``"rational"``:
    ``a + b / (c + λ)`` by nonlinear least squares (``scipy.optimize.curve_fit``)
    started from the exact fit through the first, middle and last points; a
    coefficient whose fit fails, or whose pole ``−c`` lies in ``[at, max λ]``
    (no finite extrapolation), falls back to the quadratic with a warning.
    """
    lam = np.asarray(lambdas, float)
    vals = np.asarray(values, float)
    vals = vals[:, None] if vals.ndim == 1 else vals
    if extrapolant not in EXTRAPOLANTS:
        raise InputError(f"extrapolant must be one of {EXTRAPOLANTS}, got {extrapolant!r}")
    if len(lam) != len(vals) or len(lam) < 3:
        raise InputError(f"extrapolation needs >= 3 lambdas with one row of values each, got {len(lam)} / {len(vals)}")
    if extrapolant in ("quadratic", "linear"):
        deg = 2 if extrapolant == "quadratic" else 1
        coef = np.polynomial.polynomial.polyfit(lam, vals, deg)
        return np.atleast_1d(np.polynomial.polynomial.polyval(at, coef))
    out = extrapolate(lam, vals, "quadratic", at)
    for j in range(vals.shape[1]):
        y = vals[:, j]
        if np.ptp(y) <= 1e-12 * max(1.0, np.abs(y).max()):
            out[j] = y.mean()  # flat path: nothing to extrapolate
            continue
        try:
            start = _rational_start(lam, y)
            with warnings.catch_warnings():  # an exact fit has no parameter covariance: irrelevant here
                warnings.simplefilter("ignore", optimize.OptimizeWarning)
                (a, b, c), _ = optimize.curve_fit(_rational, lam, y, p0=start, maxfev=5000)
        except (RuntimeError, ValueError, ZeroDivisionError, FloatingPointError):
            warnings.warn(f"rational SIMEX extrapolant did not fit coefficient {j}: quadratic used", stacklevel=2)
            continue
        if at <= -c <= lam.max():
            warnings.warn(f"rational SIMEX extrapolant of coefficient {j} has its pole at λ = {-c:.2f}: "
                          "quadratic used", stacklevel=2)
            continue
        out[j] = a + b / (c + at)
    return out


def _rational_start(lam: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """The exact ``a + b / (c + λ)`` through the first, middle and last points (a starting value)."""
    i = [0, len(lam) // 2, len(lam) - 1]
    (l1, l2, l3), (y1, y2, y3) = lam[i], y[i]
    # (y1 − y2)(c + l1)(c + l2) = b (l2 − l1) and likewise for (1, 3): the ratio is linear in c
    r = (y1 - y2) * (l3 - l1) / ((y1 - y3) * (l2 - l1))
    c = (r * l2 - l3) / (1.0 - r)  # from r (c + l2) = c + l3
    b = (y1 - y2) * (c + l1) * (c + l2) / (l2 - l1)
    return y1 - b / (c + l1), b, c


def remeasure_normal(w: ArrayLike, error_var: float | ArrayLike) -> Remeasure:
    """Remeasurement with a known error variance: ``W_b(λ) = W + √(λ σ²_U) Z``, σ²_U a scalar or one per row
    (of ``w``'s first axis; ``w`` may hold several error-prone columns, each with the same ``σ²_U``)."""
    w = np.asarray(w, float)
    var = np.asarray(error_var, float)
    if np.any(~np.isfinite(var)) or np.any(var < 0):
        raise InputError("error variance must be finite and >= 0")
    sd = np.sqrt(var).reshape(var.shape + (1,) * (w.ndim - var.ndim)) if var.ndim else np.sqrt(var)

    def draw(lam: float, rng: np.random.Generator) -> np.ndarray:
        return w if lam == 0 else w + np.sqrt(lam) * sd * rng.standard_normal(w.shape)

    return draw


def remeasure_replicates(w1: ArrayLike, w2: ArrayLike) -> Remeasure:
    """Empirical SIMEX from two readings: ``W̄ + √λ ε (W₁ − W₂) / 2`` with ``ε = ±1`` per row
    (Devanarayan & Stefanski 2002). At λ = 0 it returns ``W̄``: the estimator is then the naive fit on the
    mean of the two readings, and SIMEX corrects for the error left in that mean."""
    a, b = np.asarray(w1, float), np.asarray(w2, float)
    if a.shape != b.shape:
        raise InputError(f"the two readings differ in shape: {a.shape} vs {b.shape}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise InputError("empirical SIMEX needs both readings on every row (missing values found)")
    mean, half = (a + b) / 2.0, (a - b) / 2.0

    def draw(lam: float, rng: np.random.Generator) -> np.ndarray:
        if lam == 0:
            return mean
        signs = rng.choice((-1.0, 1.0), size=a.shape[0]).reshape((-1,) + (1,) * (a.ndim - 1))
        return mean + np.sqrt(lam) * signs * half

    return draw


def simex(estimator: Callable[[np.ndarray], object], remeasure: Remeasure,
          lambdas: Sequence[float] = DEFAULT_LAMBDAS, n_sim: int = 100, extrapolant: str = "quadratic",
          variance: bool = False, seed: int = 0) -> SimexResult:
    """SIMEX estimate of ``estimator`` (Cook & Stefanski 1994): refit on ``n_sim`` remeasured data sets per λ.

    ``estimator(w)`` returns the coefficient vector fitted with the error-prone
    reading ``w`` (or, with ``variance=True``, a pair (coefficients, covariance
    matrix)); ``remeasure(λ, rng)`` draws ``W_b(λ)`` (:func:`remeasure_normal`,
    :func:`remeasure_replicates`). Seeded: the same ``seed`` gives the same result.
    """
    lam = np.asarray(lambdas, float)
    if len(lam) < 2 or np.any(lam <= 0):
        raise InputError(f"SIMEX needs >= 2 positive lambdas, got {list(lambdas)}")
    if n_sim < 2:
        raise InputError(f"SIMEX needs n_sim >= 2 remeasured data sets per lambda, got {n_sim}")
    rng = np.random.default_rng(seed)

    def fit(w: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        out = estimator(w)
        if variance:
            theta, cov = out
            return np.atleast_1d(np.asarray(theta, float)), np.asarray(cov, float)
        return np.atleast_1d(np.asarray(out, float)), None

    theta0, cov0 = fit(remeasure(0.0, rng))
    path, var_path = [theta0], [np.diag(cov0)] if variance else []
    for value in lam:
        fits = [fit(remeasure(float(value), rng)) for _ in range(n_sim)]
        thetas = np.array([f[0] for f in fits])
        path.append(thetas.mean(axis=0))
        if variance:
            tau = np.mean([np.diag(f[1]) for f in fits], axis=0)
            var_path.append(tau - thetas.var(axis=0, ddof=1))
    grid = np.r_[0.0, lam]
    path_arr = np.array(path)
    estimate = extrapolate(grid, path_arr, extrapolant)
    var = None
    if variance:
        var = extrapolate(grid, np.array(var_path), extrapolant)
        var = np.where(var > 0, var, np.nan)
    return SimexResult(estimate=estimate, naive=theta0, lambdas=grid, path=path_arr, extrapolant=extrapolant,
                       variance=var)


def simex_ols(y: ArrayLike, design: Callable[[np.ndarray], np.ndarray], remeasure: Remeasure, *,
              test: int | None = None, lambdas: Sequence[float] = DEFAULT_LAMBDAS, n_sim: int = 100,
              extrapolant: str = "quadratic", seed: int = 0) -> tuple[SimexResult, float]:
    """SIMEX of an ordinary least-squares fit whose design ``design(w)`` is built from the error-prone reading.

    ``design(w)`` returns the full design matrix (intercept included) — e.g. a
    damage basis of ``w`` beside error-free columns such as an image score. The
    covariance of each refit is the usual ``σ̂² (X'X)⁻¹``; the SIMEX variance is
    that of :func:`simex`. Returns the result and, for the coefficient ``test``
    (an index into the design's columns), the two-sided Wald p-value
    ``2 Φ(−|θ / se|)`` (NaN when no ``test`` or no positive variance).
    """
    yv = np.asarray(y, float)

    def estimator(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = np.asarray(design(w), float)
        if x.shape[0] != len(yv):
            raise InputError(f"design has {x.shape[0]} rows for {len(yv)} outcomes")
        beta, _, rank, _ = np.linalg.lstsq(x, yv, rcond=None)
        if rank < x.shape[1]:
            raise InputError("SIMEX OLS: the design is rank deficient")
        resid = yv - x @ beta
        sigma2 = resid @ resid / (len(yv) - x.shape[1])
        return beta, sigma2 * np.linalg.inv(x.T @ x)

    result = simex(estimator, remeasure, lambdas, n_sim, extrapolant, variance=True, seed=seed)
    p = np.nan
    if test is not None and result.variance is not None and np.isfinite(result.variance[test]):
        p = float(2 * stats.norm.sf(abs(result.estimate[test]) / np.sqrt(result.variance[test])))
    return result, p
