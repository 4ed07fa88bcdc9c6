"""SIMEX (raoutcome.analysis.simex) against the hand-computed simple linear regression with classical error.

Y = 1 + X + e, X ~ N(0, 1), W = X + U, σ²_U = 0.25: reliability 0.8, so the naive slope at added error
λσ²_U is g(λ) = 1 / (1 + 0.25 (1 + λ)) = 0.8, 8/11, 2/3, 8/13, 4/7 at λ = 0, ½, 1, 3/2, 2. The
quadratic least-squares extrapolant through those five points evaluated at λ = −1 has weights
(3, −0.4, −1.8, −1.2, 1.4) (orthogonal polynomials on t = 2λ − 2), i.e.
3·0.8 − 0.4·8/11 − 1.8·2/3 − 1.2·8/13 + 1.4·4/7 = 694/715 = 0.97063 — SIMEX's known partial correction;
the rational extrapolant a + b/(c + λ) is exact (1.0).
"""
from __future__ import annotations

import numpy as np
import pytest

from raoutcome.analysis.simex import (
    extrapolate, remeasure_normal, remeasure_replicates, simex, simex_ols,
)
from raoutcome.errors import InputError

LAMBDAS = np.array([0.0, 0.5, 1.0, 1.5, 2.0])
QUADRATIC_LIMIT = 694 / 715  # hand-computed above


def naive_slope(lam):
    return 1.0 / (1.0 + 0.25 * (1.0 + lam))


def test_extrapolants_of_the_exact_attenuation_path():
    path = naive_slope(LAMBDAS)
    assert path[0] == pytest.approx(0.8)
    assert extrapolate(LAMBDAS, path, "quadratic")[0] == pytest.approx(QUADRATIC_LIMIT, abs=1e-12)
    assert extrapolate(LAMBDAS, path, "rational")[0] == pytest.approx(1.0, abs=1e-6)
    # linear through the same points: a − b of the least-squares line
    slope, intercept = np.polyfit(LAMBDAS, path, 1)
    assert extrapolate(LAMBDAS, path, "linear")[0] == pytest.approx(intercept - slope, abs=1e-12)


def _regression(n, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    y = 1.0 + x + rng.normal(0, 0.5, n)
    return rng, x, y


def design(w):
    return np.column_stack([np.ones(len(w)), w])


def test_simex_on_simulated_classical_error_matches_the_closed_form():
    rng, x, y = _regression(20000, 1)
    w = x + rng.normal(0, 0.5, len(x))  # σ²_U = 0.25
    quad, _ = simex_ols(y, design, remeasure_normal(w, 0.25), n_sim=40, seed=2)
    assert quad.naive[1] == pytest.approx(0.8, abs=0.02)
    assert quad.estimate[1] == pytest.approx(QUADRATIC_LIMIT, abs=0.02)
    assert quad.path[:, 1] == pytest.approx(naive_slope(LAMBDAS), abs=0.02)
    rational, p = simex_ols(y, design, remeasure_normal(w, 0.25), n_sim=40, extrapolant="rational", seed=2, test=1)
    assert rational.estimate[1] == pytest.approx(1.0, abs=0.03)
    assert p < 1e-10 and rational.se[1] < 0.05


def test_empirical_simex_from_two_readings_with_heteroscedastic_error():
    rng, x, y = _regression(20000, 3)
    sd = np.sqrt(0.5) * np.where(x > 0, 1.3, 0.6)  # error grows with X; the mean of two readings has var sd²/2
    w1, w2 = x + sd * rng.normal(size=len(x)), x + sd * rng.normal(size=len(x))
    reliability = 1.0 / (1.0 + np.mean(sd ** 2) / 2)
    res = simex(lambda w: np.polyfit(w, y, 1)[0], remeasure_replicates(w1, w2), n_sim=40, extrapolant="rational",
                seed=4)
    assert res.naive[0] == pytest.approx(reliability, abs=0.02)  # naive fit on the mean reading
    assert res.estimate[0] == pytest.approx(1.0, abs=0.05)
    assert abs(res.estimate[0] - 1) < abs(res.naive[0] - 1) / 3


def test_no_error_leaves_the_naive_fit_and_its_variance():
    _, x, y = _regression(500, 5)
    res, p = simex_ols(y, design, remeasure_normal(x, 0.0), n_sim=5, test=1)
    beta = np.polyfit(x, y, 1)[::-1]
    assert res.estimate == pytest.approx(beta) and res.naive == pytest.approx(beta)
    resid = y - design(x) @ beta
    var = resid @ resid / (len(y) - 2) * np.linalg.inv(design(x).T @ design(x))
    assert res.variance == pytest.approx(np.diag(var))


def test_seeded_and_bad_input():
    rng, x, y = _regression(300, 6)
    w = x + rng.normal(0, 0.5, len(x))
    a = simex_ols(y, design, remeasure_normal(w, 0.25), n_sim=5, seed=9)[0]
    b = simex_ols(y, design, remeasure_normal(w, 0.25), n_sim=5, seed=9)[0]
    assert np.array_equal(a.estimate, b.estimate)
    with pytest.raises(InputError, match="extrapolant"):
        extrapolate(LAMBDAS, naive_slope(LAMBDAS), "cubic")
    with pytest.raises(InputError, match="lambdas"):
        simex(lambda w: w.mean(), remeasure_normal(w, 0.25), lambdas=(0.0, 1.0))
    with pytest.raises(InputError, match="missing"):
        remeasure_replicates([1.0, np.nan], [1.0, 2.0])
    with pytest.raises(InputError, match="error variance"):
        remeasure_normal(w, -1.0)
