"""Reader-error correction: every estimator against a hand-computed or closed-form case."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from raoutcome.analysis import reader_error as rerr
from raoutcome.analysis.features import AnalysisData, baseline_table
from raoutcome.analysis.incremental import QUESTIONS, beyond_damage, beyond_sharp
from raoutcome.errors import InputError


def test_error_variance_by_hand():
    # differences 0, -1, 0, -2: mean -0.75, sum of squared deviations 2.75, variance 2.75 / 3; halved
    var, n = rerr.error_variance([1, 2, 3, 4, np.nan], [1, 3, 3, 6, 2])
    assert var == pytest.approx(2.75 / 3 / 2) and n == 4
    with pytest.raises(InputError, match="complete pairs"):
        rerr.error_variance([1, 2], [1, 2])


def test_error_variance_from_sdc_and_icc():
    # SDC = 1.96 x SD(difference of two readings) = 1.96 x sqrt(2) x sigma_U
    assert rerr.error_variance_from_sdc(3.0) == pytest.approx((3.0 / (1.959964 * np.sqrt(2))) ** 2)
    assert np.sqrt(rerr.error_variance_from_sdc(3.0)) == pytest.approx(1.08, abs=0.005)
    w = np.array([0.0, 2.0, 4.0, 6.0])  # variance 20 / 3
    assert rerr.error_variance_from_icc(0.9, w) == pytest.approx(0.1 * 20 / 3)
    with pytest.raises(InputError):
        rerr.error_variance_from_sdc(-1)


def test_moment_calibration_without_covariates_is_the_classical_dilution_correction():
    rng = np.random.default_rng(0)
    x = rng.normal(10, 2, 500)
    w = x + rng.normal(0, 1.5, 500)
    y = 1 + 0.5 * x + rng.normal(0, 1, 500)
    frame = pd.DataFrame({"w": w})
    cal = rerr.calibrate_moments(frame, "w", [], error_var=2.25).to_numpy()
    s2 = np.var(w, ddof=1)
    lam = (s2 - 2.25) / s2  # reliability ratio, by hand
    np.testing.assert_allclose(cal, w.mean() + lam * (w - w.mean()), rtol=1e-12)
    naive = np.polyfit(w, y, 1)[0]
    corrected = np.polyfit(cal, y, 1)[0]
    assert corrected == pytest.approx(naive / lam, rel=1e-10)  # Carroll et al. 2006, eq. 3.3 inverted
    assert abs(corrected - 0.5) < abs(naive - 0.5)


def _bivariate(n=200_000, seed=1):
    """X ~ N(0, 1), Z = 0.6 X + N(0, 0.8²), W = X + U, σ²_U = 0.5: E[X | W, Z] = 0.5614 W + 0.2632 Z."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    z = 0.6 * x + rng.normal(0, 0.8, n)
    w1 = x + rng.normal(0, np.sqrt(0.5), n)
    w2 = x + rng.normal(0, np.sqrt(0.5), n)
    y = 2 * x + 0.5 * z + rng.normal(size=n)
    return pd.DataFrame({"x": x, "z": z, "w1": w1, "w2": w2, "y": y})


# Normal theory, by hand: Cov(W, Z) = [[1.5, 0.6], [0.6, 1.0]], Cov(X, (W, Z)) = (1, 0.6), determinant 1.14:
B_W, B_Z = (1.0 - 0.36) / 1.14, (-0.6 + 0.9) / 1.14


def _coefficients(frame, target):
    design = np.column_stack([np.ones(len(frame)), frame["w1"], frame["z"]])
    return np.linalg.lstsq(design, target, rcond=None)[0]


def test_moment_calibration_with_a_covariate_matches_normal_theory_and_recovers_beta():
    df = _bivariate()
    cal = rerr.calibrate_moments(df, "w1", ["z"], error_var=0.5)
    _, b_w, b_z = _coefficients(df, cal.to_numpy())
    assert b_w == pytest.approx(B_W, abs=0.01) and b_z == pytest.approx(B_Z, abs=0.01)
    beta = np.linalg.lstsq(np.column_stack([np.ones(len(df)), cal, df["z"]]), df["y"], rcond=None)[0]
    assert beta[1] == pytest.approx(2.0, abs=0.03) and beta[2] == pytest.approx(0.5, abs=0.03)
    naive = np.linalg.lstsq(np.column_stack([np.ones(len(df)), df["w1"], df["z"]]), df["y"], rcond=None)[0]
    assert naive[1] < 1.3 and naive[2] > 0.9  # the naive fit attenuates X and hands its effect to Z


def test_replicate_calibration_needs_no_error_variance():
    df = _bivariate()
    df.loc[df.index[::2], "w2"] = np.nan  # a retest of half of the readings is enough
    cal = rerr.calibrate_replicate(df, "w1", "w2", ["z"])
    assert cal.notna().all()
    _, b_w, b_z = _coefficients(df, cal.to_numpy())
    assert b_w == pytest.approx(B_W, abs=0.01) and b_z == pytest.approx(B_Z, abs=0.01)
    with pytest.raises(InputError, match="repeat reading"):
        rerr.calibrate_replicate(df.assign(w2=np.nan), "w1", "w2", ["z"])


def test_basis_calibration_matches_normal_theory_for_a_quadratic_and_recovers_theta():
    # X ~ N(0, 1), W_k = X + U_k, σ²_U = 0.5: E[X | W₁] = W₁ / 1.5, Var(X | W₁) = 0.5 / 1.5, so by hand
    # E[W₂ | W₁] = 0.6667 W₁ and E[W₂² | W₁] = E[X² | W₁] + σ²_U = W₁² / 2.25 + 1/3 + 0.5 = 0.4444 W₁² + 0.8333.
    rng = np.random.default_rng(4)
    n = 200_000
    x = rng.normal(size=n)
    w1, w2 = x + rng.normal(0, np.sqrt(0.5), n), x + rng.normal(0, np.sqrt(0.5), n)
    y = 1 + 2 * x + 0.5 * x ** 2 + rng.normal(size=n)
    frame = pd.DataFrame({"w1": w1, "w1sq": w1 ** 2, "b1": w2, "b2": w2 ** 2})
    frame.loc[frame.index[::3], ["b1", "b2"]] = np.nan  # a retest of two readings in three suffices
    cal = rerr.calibrate_basis(frame, ["b1", "b2"], ["w1", "w1sq"])
    assert list(cal.columns) == ["b1", "b2"] and cal.notna().all().all()
    design = np.column_stack([np.ones(n), w1, w1 ** 2])
    c1 = np.linalg.lstsq(design, cal["b1"], rcond=None)[0]
    c2 = np.linalg.lstsq(design, cal["b2"], rcond=None)[0]
    np.testing.assert_allclose(c1, [0, 1 / 1.5, 0], atol=0.01)
    np.testing.assert_allclose(c2, [1 / 3 + 0.5, 0, 1 / 2.25], atol=0.01)
    theta = np.linalg.lstsq(np.column_stack([np.ones(n), cal]), y, rcond=None)[0]
    assert theta[1] == pytest.approx(2.0, abs=0.03) and theta[2] == pytest.approx(0.5, abs=0.03)
    naive = np.linalg.lstsq(design, y, rcond=None)[0]  # attenuated: 2 / 1.5 and 0.5 / 2.25
    assert naive[1] == pytest.approx(2 / 1.5, abs=0.03) and naive[2] == pytest.approx(0.5 / 2.25, abs=0.03)
    with pytest.raises(InputError, match="repeat reading"):
        rerr.calibrate_basis(frame.assign(b1=np.nan), ["b1", "b2"], ["w1", "w1sq"])


def test_spline_basis_is_centred_spans_lines_and_survives_ties():
    x = np.r_[np.zeros(300), np.random.default_rng(2).gamma(1.0, 5.0, 200), np.nan]
    basis = rerr.spline_basis(x, df=4, prefix="b")
    assert list(basis.columns) == ["b1", "b2", "b3", "b4"] and basis.iloc[-1].isna().all()
    values = basis.iloc[:-1].to_numpy()
    np.testing.assert_allclose(values.mean(axis=0), 0, atol=1e-10)
    design = np.column_stack([np.ones(len(values)), values])
    fitted = design @ np.linalg.lstsq(design, x[:-1], rcond=None)[0]
    np.testing.assert_allclose(fitted, x[:-1], atol=1e-8)  # natural cubic splines hold every straight line
    assert rerr.spline_basis([0, 0, 1, 1], df=4).shape[1] == 1  # two distinct values: just the centred x


def _damage_world(n=500, planted=0.0, seed=3):
    """Damage X (skewed, per visit), human readings with error growing with X, an image score that reads X
    almost exactly, HAQ from X only (plus ``planted`` x a non-damage feature the image also reads)."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        base, rate, feat = rng.gamma(1.2, 6.0), rng.gamma(1.0, 2.0), rng.normal()
        for v in range(3):
            x = base + rate * v
            sd = 0.6 + 0.08 * x
            rows.append(dict(patient_id=f"p{i}", visit_id=f"v{v}", time_years=float(v), true=x,
                             svdh_total=max(0.0, x + rng.normal(0, sd)), retest=max(0.0, x + rng.normal(0, sd)),
                             feat=feat, age=rng.normal(55, 10)))
    visits = pd.DataFrame(rows)
    visits["haq"] = 0.5 + 0.4 * np.log1p(visits["true"]) + planted * visits["feat"] + rng.normal(0, 0.25, len(visits))
    visits["pred_haq"] = np.log1p(visits["true"]) + rng.normal(0, 0.03, len(visits)) + 0.5 * visits["feat"] * (planted > 0)
    data = AnalysisData(visits=visits, patients=baseline_table(visits), covariates=["age"], heads=["haq"],
                        cross_fitted=True)
    retest = visits[["patient_id", "visit_id"]].assign(svdh_total=visits["retest"])
    return data, retest


def test_beyond_damage_absorbs_a_better_damage_reader_that_beyond_sharp_calls_a_discovery():
    data, retest = _damage_world()
    kw = dict(outcome_images={"haq": "pred_haq"}, tests=("partial_r2_f",))
    sharp = beyond_sharp(data, "pred_haq", **kw)
    damage = beyond_damage(data, "pred_haq", retest=retest, damage=("svdh_total",), **kw)
    assert sharp["p_value"].iloc[0] < 0.01  # the reader error leaves damage the image reads better
    assert damage["p_value"].iloc[0] > 0.05
    assert damage["question"].iloc[0] == QUESTIONS["beyond_damage"]
    assert sharp["question"].iloc[0] == QUESTIONS["beyond_sharp"]
    assert "retest" in damage["reliability_source"].iloc[0]
    sd = float(damage["reading_error_sd"].iloc[0].split()[-1])
    assert 0.8 < sd < 2.5  # per-reading error SD from the retest pairs (0.6 + 0.08 x, x mostly 0-25)


def test_beyond_damage_finds_a_planted_feature_and_states_a_published_reliability():
    data, retest = _damage_world(planted=0.15)
    kw = dict(outcome_images={"haq": "pred_haq"}, tests=("partial_r2_f",))
    with_retest = beyond_damage(data, "pred_haq", retest=retest, damage=("svdh_total",), **kw)
    assert with_retest["p_value"].iloc[0] < 1e-4
    published = beyond_damage(data, "pred_haq", **kw)
    assert "Navarro-Compán" in published["reliability_source"].iloc[0]
    assert published["reading_error_sd"].iloc[0] == "svdh_total 1.08"
    with pytest.raises(InputError, match="retest table lacks"):
        beyond_damage(data, "pred_haq", retest=retest.drop(columns="visit_id"), **kw)


def test_beyond_sharp_spline_is_the_default_and_log1p_stays_available():
    data, _ = _damage_world(n=200)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        spline = beyond_sharp(data, "pred_haq", outcome_images={"haq": "pred_haq"}, tests=("partial_r2_f",))
    logged = beyond_sharp(data, "pred_haq", outcome_images={"haq": "pred_haq"}, tests=("partial_r2_f",),
                          sharp_transform="log1p")
    assert spline["base"].iloc[0].startswith("spline(log1p_svdh_total)")
    assert logged["base"].iloc[0].startswith("log1p_svdh_total")
    assert spline["extra_df" if "extra_df" in spline else "df"].iloc[0] == 1
