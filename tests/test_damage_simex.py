"""beyond_damage's alternatives: the HC3 F-test (by hand), the natural-spline damage basis (against patsy) and
the SIMEX test of an image score beyond a damage basis read with error (a precise damage reader fools the naive
fit on the mean reading; SIMEX takes most of that bias away; a real effect stays)."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import patsy
import pytest
from scipy import stats

from raoutcome.analysis import incremental as inc
from raoutcome.analysis.damage_simex import DamageBasis, natural_spline, simex_damage_test
from raoutcome.errors import InputError


def test_hc3_f_test_by_hand():
    rng = np.random.default_rng(0)
    n = 120
    x = rng.gamma(2.0, 5.0, n)
    img = rng.normal(size=n)
    y = 0.5 + 0.02 * x + 0.2 * img + rng.normal(0, 0.1 + 0.03 * x)  # residual SD grows with damage
    df = pd.DataFrame({"x": x, "img": img, "y": y})
    res = inc.partial_r2(df, "y", ["x"], ["img"], cov_type="HC3")
    design = np.column_stack([np.ones(n), x, img])
    beta, *_ = np.linalg.lstsq(design, y, rcond=None)
    e = y - design @ beta
    bread = np.linalg.inv(design.T @ design)
    h = np.einsum("ij,jk,ik->i", design, bread, design)  # leverages
    meat = design.T @ (design * (e / (1 - h))[:, None] ** 2)
    cov = bread @ meat @ bread  # HC3 (MacKinnon & White 1985)
    f = beta[2] ** 2 / cov[2, 2]
    assert res.statistic == pytest.approx(f, rel=1e-8)
    assert res.p_value == pytest.approx(stats.f.sf(f, 1, n - 3), rel=1e-6)
    assert res.extra["cov_type"] == "HC3"
    plain = inc.partial_r2(df, "y", ["x"], ["img"])
    assert plain.estimate == pytest.approx(res.estimate) and plain.statistic != pytest.approx(res.statistic)


def test_natural_spline_spans_patsys_natural_cubic_spline():
    x = np.linspace(0.0, 5.0, 200) ** 1.3
    knots = np.array([0.0, 1.0, 3.0, 8.2])
    ours = natural_spline(x, knots)
    assert ours.shape == (200, 3)
    ref = np.asarray(patsy.dmatrix("cr(v, knots=k, lower_bound=0.0, upper_bound=8.2) - 1",
                                   {"v": x, "k": knots[1:-1]}))
    design = np.column_stack([np.ones(len(x)), ours])
    coef, *_ = np.linalg.lstsq(design, ref, rcond=None)
    assert np.abs(design @ coef - ref).max() < 1e-8  # the same space of functions
    beyond = natural_spline(np.array([9.0, 10.0, 11.0]), knots)
    assert np.diff(beyond, 2, axis=0) == pytest.approx(np.zeros((1, 3)), abs=1e-8)  # linear past the last knot


def _world(n, seed, effect=0.0):
    """True damage X, two readings with error growing with X, a precise damage reader Z, Y = log(1 + X) + e."""
    rng = np.random.default_rng(seed)
    x = rng.gamma(1.5, 8.0, n)
    sd = 0.3 + 0.05 * x
    w1, w2 = x + sd * rng.normal(size=n), x + sd * rng.normal(size=n)
    feature = rng.normal(size=n)
    z = np.log1p(x) + 0.05 * rng.normal(size=n) + effect * feature
    y = np.log1p(x) + effect * feature + rng.normal(0, 0.3, n)
    return w1, w2, z, y


def test_simex_test_removes_most_of_a_precise_readers_false_signal():
    w1, w2, z, y = _world(3000, 1)
    age = np.zeros((len(y), 0))
    gamma, se, p, res = simex_damage_test(w1, w2, np.column_stack([age, z]), outcome=y, n_sim=20, seed=0,
                                          extrapolant="quadratic")
    assert res.naive[0] > 0.5 and res.path[0, 0] == res.naive[0]
    assert np.all(np.diff(res.path[:, 0]) > 0)  # more error, more false signal
    assert 0 < gamma < 0.75 * res.naive[0]  # the quadratic corrects only part of it (convex path)
    with pytest.warns(UserWarning, match="pole"):  # the variance path: no finite rational fit, quadratic used
        rational, se, p, _ = simex_damage_test(w1, w2, z[:, None], outcome=y, n_sim=20, seed=0,
                                               extrapolant="rational")
    assert abs(rational) < res.naive[0] / 3  # the nonlinear extrapolant removes most of it
    assert np.isfinite(se) and se > 0 and p > 0.05
    w1, w2, z, y = _world(3000, 2, effect=0.3)
    gamma, se, p, _ = simex_damage_test(w1, w2, z[:, None], outcome=y, n_sim=20, seed=0, extrapolant="quadratic")
    assert p < 1e-6 and gamma > 0.3


def test_simex_cox_test_runs_and_needs_an_outcome():
    rng = np.random.default_rng(3)
    w1, w2, z, _ = _world(600, 3)
    t = rng.exponential(1 / np.exp(0.6 * z))
    gamma, se, p, res = simex_damage_test(w1, w2, z[:, None], duration=np.minimum(t, 2.0),
                                          event=(t < 2.0).astype(float), n_sim=5, seed=0)
    assert np.isfinite(gamma) and res.lambdas.tolist() == [0.0, 0.5, 1.0, 1.5, 2.0]
    with pytest.raises(InputError, match="outcome"):
        simex_damage_test(w1, w2, z[:, None])


def test_damage_basis_is_fixed_by_the_reference_reading():
    w = np.column_stack([np.arange(50.0), np.arange(50.0) % 7])
    basis = DamageBasis.fit(w, df=3)
    b = basis(w)
    assert b.shape == (50, 3 + 3 + 2 + 1)  # two splines of 3 columns, each score linear, one product
    assert basis(w[:5] + 100).shape == (5, 9)  # evaluates outside the reference range


def test_beyond_damage_options_on_a_harness_cohort():
    from conftest import load_analysis

    fd = load_analysis("false_discovery")
    pop = fd.draw_population(300, np.random.SeedSequence([11, 0]))
    data, retest = fd.world_data(pop, "curved", "exact", planted=True)
    kw = dict(retest=retest, outcome_images={"haq": "pred_haq"}, tests=("cox_lrt", "partial_r2_f"))
    with warnings.catch_warnings():  # (SIMEX may fall back to the quadratic where the rational fit has a pole)
        warnings.simplefilter("ignore")
        simex = inc.beyond_damage(data, "pred_risk", calibration="simex", simex_sims=5, **kw)
    assert set(simex["test"]) == {"cox_simex", "ols_simex"}
    assert (simex["p_value"] < 0.01).all() and (simex["estimate"] > 0).all()  # the planted feature is found
    assert simex["damage_method"].str.contains("SIMEX").all()
    assert simex["question"].str.contains("other than joint damage").all()
    plain = inc.beyond_damage(data, "pred_risk", cov_type=None, **kw).set_index("test")
    robust = inc.beyond_damage(data, "pred_risk", **kw).set_index("test")  # HC3 by default
    assert robust.loc["partial_r2_f", "cov_type"] == "HC3" and plain.loc["partial_r2_f", "cov_type"] == "nonrobust"
    assert robust.loc["cox_robust_score", "p_value"] == plain.loc["cox_robust_score", "p_value"]  # HC3: F-test only
    with pytest.raises(InputError, match="retest"):
        inc.beyond_damage(data, "pred_risk", calibration="simex", tests=("partial_r2_f",))
