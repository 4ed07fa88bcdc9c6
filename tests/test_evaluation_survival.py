"""Survival metrics against documented values, a reference procedure and hand computations."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from lifelines import CoxPHFitter  # noqa: E402
from lifelines.calibration import survival_probability_calibration  # noqa: E402
from lifelines.datasets import load_rossi  # noqa: E402
from sksurv.datasets import load_veterans_lung_cancer  # noqa: E402
from sksurv.linear_model import CoxPHSurvivalAnalysis  # noqa: E402
from sksurv.metrics import cumulative_dynamic_auc  # noqa: E402
from sksurv.preprocessing import OneHotEncoder  # noqa: E402

from raoutcome.errors import InputError  # noqa: E402
from raoutcome.evaluation import (brier_scores, calibration_at_horizon, concordance, harrell_c,  # noqa: E402
                                  integrated_brier, survival_at, time_dependent_auc, uno_c)


@pytest.fixture(scope="module")
def veterans():
    x, y = load_veterans_lung_cancer()
    return x, y, y["Survival_in_days"].astype(float), y["Status"].astype(float)


@pytest.fixture(scope="module")
def rossi():
    df = load_rossi()
    return df, CoxPHFitter().fit(df, "week", "arrest")


def test_harrell_c_matches_scikit_survival_user_guide(veterans):
    # scikit-survival user guide, "Introduction" notebook (doc/user_guide/00-introduction.ipynb,
    # section "Feature Selection"): a Cox model on Karnofsky_score alone has c-index 0.709280 on the
    # Veterans' Administration lung cancer data. A one-feature Cox model ranks patients by
    # -Karnofsky_score (higher score, lower hazard), so the C-index of that score is the same number.
    x, _, time, event = veterans
    risk = -x["Karnofsky_score"].to_numpy(float)
    assert round(harrell_c(time, event, risk), 6) == 0.709280
    c = concordance(time, event, risk)
    assert round(c.c_index, 6) == 0.709280
    assert c.c_index == pytest.approx((c.concordant + 0.5 * c.tied_risk) / (c.concordant + c.discordant + c.tied_risk))


def test_harrell_c_of_full_cox_model_matches_user_guide(veterans):
    # Same notebook, "Measuring the Performance of Survival Models": the Cox model on all one-hot
    # encoded features scores 0.7362562471603816 on its training data.
    x, y, time, event = veterans
    xn = OneHotEncoder().fit_transform(x)
    risk = CoxPHSurvivalAnalysis().fit(xn, y).predict(xn)
    assert harrell_c(time, event, risk) == pytest.approx(0.7362562471603816, abs=1e-6)


def test_uno_c_equals_harrell_without_censoring():
    # With no censoring every inverse-probability-of-censoring weight is 1, so Uno's C is Harrell's C.
    rng = np.random.default_rng(0)
    time = rng.exponential(1.0, 80)
    risk = -np.log(time) + rng.normal(0, 1, 80)
    event = np.ones(80)
    assert uno_c(time, event, risk) == pytest.approx(harrell_c(time, event, risk))


def test_time_dependent_auc_matches_scikit_survival(veterans):
    x, y, time, event = veterans
    risk = -x["Karnofsky_score"].to_numpy(float)
    ref_auc, ref_mean = cumulative_dynamic_auc(y, y, risk, [30, 90, 180])
    got = time_dependent_auc(time, event, risk, [30, 90, 180])
    np.testing.assert_allclose(got.auc, ref_auc)
    assert got.mean_auc == pytest.approx(ref_mean)


def test_time_dependent_auc_survives_events_at_last_follow_up_time(rossi):
    # Rossi: arrests happen in week 52, when everyone else is censored; scikit-survival alone cannot
    # weight those events (censoring survival 0). They are controls at any earlier time anyway.
    df, cph = rossi
    risk = cph.predict_partial_hazard(df).to_numpy()
    res = time_dependent_auc(df["week"], df["arrest"], risk, [10, 20, 30, 40])
    assert np.all((res.auc > 0.5) & (res.auc < 0.8))
    with pytest.raises(InputError, match="evaluate up to an earlier time"):
        uno_c(df["week"], df["arrest"], risk)  # without tau the week-52 events cannot be weighted
    assert 0.55 < uno_c(df["week"], df["arrest"], risk, tau=50) < 0.75


def test_brier_by_hand_without_censoring():
    # Nobody censored: the IPCW Brier score at t is the plain mean of (1{T > t} - S(t))^2.
    time = np.array([1.0, 2.0, 3.0, 4.0])
    event = np.ones(4)
    surv = np.array([[0.1], [0.2], [0.7], [0.9]])   # S(2.5); alive at 2.5: 0, 0, 1, 1
    scores = brier_scores(time, event, surv, [2.5])
    assert scores.loc[2.5] == pytest.approx((0.01 + 0.04 + 0.09 + 0.01) / 4)


def test_survival_at_lifelines_and_sksurv_models_feed_ibs(rossi):
    df, cph = rossi
    times = [10.0, 20.0, 30.0, 40.0]
    s_lifelines = survival_at(cph, df, times)
    x = df.drop(columns=["week", "arrest"])
    from sksurv.util import Surv
    sk = CoxPHSurvivalAnalysis().fit(x, Surv.from_arrays(df["arrest"].astype(bool), df["week"]))
    s_sksurv = survival_at(sk, x, times)
    assert s_lifelines.shape == s_sksurv.shape == (len(df), 4)
    np.testing.assert_allclose(s_lifelines, s_sksurv, atol=5e-3)  # same Cox model, two fitters
    ibs = integrated_brier(df["week"], df["arrest"], s_lifelines, times)
    # a constant S(t) = 1 (nobody ever arrested) must score worse than the fitted model
    worse = integrated_brier(df["week"], df["arrest"], np.ones_like(s_lifelines), times)
    assert 0 < ibs < worse
    with pytest.raises(InputError, match="expected shape"):
        integrated_brier(df["week"], df["arrest"], s_lifelines[:, :2], times)


def test_calibration_matches_lifelines_survival_probability_calibration(rossi):
    # lifelines' function (Austin et al. 2020) is the reference: same ICI and E50, without its plot.
    df, cph = rossi
    _, ici, e50 = survival_probability_calibration(cph, df, t0=25)
    matplotlib.pyplot.close("all")
    p = 1 - survival_at(cph, df, [25])[:, 0]
    cal = calibration_at_horizon(df["week"], df["arrest"], p, horizon=25)
    assert cal.ici == pytest.approx(ici, rel=1e-6)
    assert cal.e50 == pytest.approx(e50, rel=1e-6)
    assert cal.e50 <= cal.e90 and cal.observed.shape == cal.predicted.shape == (100,)


def test_bad_survival_input_is_rejected():
    with pytest.raises(InputError, match="event: value 2.0 at index 1"):
        harrell_c([1, 2, 3], [1, 2, 0], [0.1, 0.2, 0.3])
    with pytest.raises(InputError, match="no observed event"):
        harrell_c([1, 2, 3], [0, 0, 0], [0.1, 0.2, 0.3])
    with pytest.raises(InputError, match="is negative"):
        harrell_c([-1, 2, 3], [1, 1, 0], [0.1, 0.2, 0.3])


def test_time_dependent_auc_without_a_case_by_a_time_is_nan_there_and_warns_nothing():
    import warnings

    from raoutcome.evaluation import survival_report

    rng = np.random.default_rng(5)
    n = 60
    time = rng.uniform(1.0, 5.0, n)
    risk = rng.normal(size=n)
    event = (rng.uniform(size=n) < 0.5 + 0.3 * np.tanh(risk)).astype(int)
    time[:3], event[:3] = 0.3, 0  # followed from 0.3 years, but nobody has an event before 1 year
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = time_dependent_auc(time, event, risk, [0.5, 2.0, 3.0])
        both = time_dependent_auc(time, event, risk, [2.0, 3.0])
        assert np.isnan(res.auc[0]) and np.isnan(res.mean_auc)
        assert np.allclose(res.auc[1:], both.auc) and np.isfinite(both.mean_auc)
        with pytest.raises(InputError, match="AUC undefined"):
            time_dependent_auc(time, event, risk, [0.5, 0.8])
        # a bootstrap resample with no event by the first time fails for that AUC (counted, not hidden)
        sparse = event.copy()
        early = np.flatnonzero(event)[:1]
        time2 = time.copy()
        time2[early] = 0.2  # a single early event: many resamples miss it
        table = survival_report(time2, sparse, risk, times=[0.5, 2.0], n_boot=200, seed=1)
    assert np.isfinite(table.loc["auc_t0.5", "estimate"]) and np.isfinite(table.loc["auc_t2", "estimate"])
    note = table.loc["auc_t0.5", "note"]
    assert note.endswith("of 200 resamples failed") and 30 < int(note.split()[0]) < 170
    # AUC at 2 years is defined whenever 0.5 years is still within the resample's follow-up
    t2 = table.loc["auc_t2", "note"]
    assert (t2 == "" or int(t2.split()[0]) < 10) and np.isfinite(table.loc["auc_t0.5", "ci_low"])
    # on the full data an undefined AUC is a note in the table, not a NaN
    none_early = survival_report(time, event, risk, times=[0.5, 2.0], n_boot=0)
    assert np.isnan(none_early.loc["auc_t0.5", "estimate"])
    assert "undefined (no event by that time" in none_early.loc["auc_t0.5", "note"]
    assert "undefined" in none_early.loc["mean_auc", "note"] and np.isfinite(none_early.loc["auc_t2", "estimate"])
