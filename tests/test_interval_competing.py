"""Interval-censored and competing-risk estimators against lifelines, scikit-survival and hand computations."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lifelines import CoxPHFitter, WeibullAFTFitter
from lifelines.datasets import load_diabetes

from raoutcome.analysis.competing_risks import (CauseSpecificCox, FineGray, competing_auc, competing_c_index,
                                                competing_status, cumulative_incidence)
from raoutcome.analysis.interval_censored import (IntervalWeibullModel, has_intervals, interval_bounds,
                                                  interval_c_index)
from raoutcome.errors import InputError
from raoutcome.evaluation import harrell_c, time_dependent_auc


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 30), st.booleans(), st.integers(-3, 3)), min_size=4, max_size=30))
def test_interval_c_is_harrell_c_for_exact_times(rows):
    t = np.array([r[0] for r in rows], float)
    e = np.array([r[1] for r in rows], float)
    r = np.array([r[2] for r in rows], float)
    e[np.argmin(t)] = 1
    if (t[e == 1][:, None] < t[None, :]).sum() == 0:
        return
    upper = np.where(e == 1, t, np.inf)
    assert interval_c_index(t, upper, r) == pytest.approx(harrell_c(t, e, r))


def test_interval_c_counts_only_pairs_the_intervals_order():
    # A (0,1] event, B (1,2] event, C censored at 1.5, D (0.5,3] event.
    lower = [0.0, 1.0, 1.5, 0.5]
    upper = [1.0, 2.0, np.inf, 3.0]
    # Ordered pairs: A<B (1 <= 1, B not exact), A<C (1 < 1.5). B vs C: B's interval ends at 2 > 1.5, not ordered.
    # D overlaps everything. So two pairs, both with A first.
    assert interval_c_index(lower, upper, [3, 1, 2, 0]) == 1.0   # A riskier than B and C
    assert interval_c_index(lower, upper, [0, 1, 2, 3]) == 0.0
    assert interval_c_index(lower, upper, [1, 1, 0, 3]) == 0.75  # tie with B (1/2), beats C


def test_interval_bounds_and_has_intervals():
    ev = pd.DataFrame({"time_years": [2.0, 1.5, 3.0], "observed": [1, 0, 1],
                       "time_lower": [1.0, 1.5, np.nan], "time_upper": [2.0, np.nan, np.nan]})
    lo, hi = interval_bounds(ev)
    np.testing.assert_array_equal(lo, [1.0, 1.5, 3.0])
    np.testing.assert_array_equal(hi, [2.0, np.inf, 3.0])
    assert has_intervals(ev)
    assert not has_intervals(ev.drop(columns=["time_lower", "time_upper"]))


def test_interval_weibull_matches_lifelines_documented_diabetes_example():
    # lifelines docs, "Interval censored data": WeibullAFTFitter().fit_interval_censoring on load_diabetes
    # with gender. Our model reports the same fit as a hazard ratio, -rho * b (delta-method SE).
    df = load_diabetes()
    df["gender"] = (df["gender"] == "male").astype(int)
    ref = WeibullAFTFitter().fit_interval_censoring(df, lower_bound_col="left", upper_bound_col="right")
    ours = IntervalWeibullModel(["gender"], lower_col="left", upper_col="right").fit(df)
    rho = np.exp(ref.params_.loc[("rho_", "Intercept")])
    row = ours.summary.set_index("covariate").loc["gender"]
    assert row["coef"] == pytest.approx(-rho * ref.params_.loc[("lambda_", "gender")], rel=1e-4)
    assert ours.log_likelihood_ == pytest.approx(ref.log_likelihood_, rel=1e-6)


def test_interval_weibull_recovers_a_planted_hazard_ratio_where_visit_times_shift_it():
    rng = np.random.default_rng(7)
    n = 3000
    x = rng.normal(size=n)
    t = (rng.exponential(size=n) / np.exp(0.7 * x)) ** (1 / 1.3) / 0.3   # Weibull PH, log HR 0.7
    visits = np.arange(0, 6.0)                                            # yearly visits, 5 years
    k = np.searchsorted(visits, t)                                        # first visit at or after t
    seen = k < len(visits)
    lower = np.where(seen, visits[np.maximum(k - 1, 0)], visits[-1])
    upper = np.where(seen, visits[np.minimum(k, len(visits) - 1)], np.inf)
    model = IntervalWeibullModel(["x"]).fit(pd.DataFrame({"x": x, "time_lower": lower, "time_upper": upper}))
    row = model.summary.iloc[0]
    assert abs(row["coef"] - 0.7) < 3 * row["se"]
    assert model.shape_ == pytest.approx(1.3, abs=0.1)


def test_aalen_johansen_by_hand():
    # Untied times; status 1 deformity, 2 death, 0 censored.
    t = [1, 2, 3, 4, 5, 6, 7, 8]
    s = [1, 2, 0, 1, 2, 1, 0, 1]
    # By hand: F1(t) = sum S(u-) d1(u) / n(u); S all-cause Kaplan–Meier.
    # u=1: n 8, S- 1      -> F1 += 1/8;          S = 7/8
    # u=2: death, n 7     -> S = 7/8 * 6/7 = 6/8
    # u=3: censored
    # u=4: n 5, S- 6/8    -> F1 += 6/8 * 1/5;    S = 6/8 * 4/5 = 24/40
    # u=5: death, n 4     -> S = 24/40 * 3/4 = 18/40
    # u=6: n 3, S- 18/40  -> F1 += 18/40 * 1/3;  S = 18/40 * 2/3 = 12/40
    # u=8: n 1, S- 12/40  -> F1 += 12/40
    expected = {1: 1 / 8, 4: 1 / 8 + 6 / 40, 6: 1 / 8 + 6 / 40 + 6 / 40, 8: 1 / 8 + 6 / 40 + 6 / 40 + 12 / 40}
    cif = cumulative_incidence(t, s).set_index("time")["cif"]
    for u, v in expected.items():
        assert cif.loc[float(u)] == pytest.approx(v)


def _cr_data(seed: int, n: int = 300, censor: bool = True):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    t1 = rng.exponential(1 / (0.3 * np.exp(0.5 * x)))
    t2 = rng.exponential(1 / 0.2, size=n)
    c = rng.exponential(1 / 0.1, size=n) if censor else np.full(n, np.inf)
    t = np.minimum.reduce([t1, t2, c])
    s = np.where(t == t1, 1, np.where(t == t2, 2, 0))
    return pd.DataFrame({"x": x, "time": t, "status": s})


def test_fine_gray_without_competing_events_is_cox():
    df = _cr_data(1)
    df.loc[df["status"] == 2, "status"] = 0
    fg = FineGray(["x"]).fit(df).summary.iloc[0]
    cox = CoxPHFitter().fit(df.assign(E=(df["status"] == 1).astype(int))[["x", "time", "E"]], "time", "E")
    assert fg["coef"] == pytest.approx(cox.params_["x"], rel=1e-5)


def test_fine_gray_without_censoring_keeps_the_dead_in_the_risk_set():
    # No censoring: every weight is 1, so Fine–Gray is Cox with the dead censored after the last time.
    df = _cr_data(2, censor=False)
    fg = FineGray(["x"]).fit(df).summary.iloc[0]
    forever = df.assign(time=np.where(df["status"] == 2, df["time"].max() + 1, df["time"]),
                        E=(df["status"] == 1).astype(int))
    cox = CoxPHFitter().fit(forever[["x", "time", "E"]], "time", "E")
    assert fg["coef"] == pytest.approx(cox.params_["x"], rel=1e-5)


def test_cause_specific_cox_censors_the_other_cause():
    df = _cr_data(3)
    cs = CauseSpecificCox(["x"]).fit(df).summary.iloc[0]
    cox = CoxPHFitter().fit(df.assign(E=(df["status"] == 1).astype(int))[["x", "time", "E"]], "time", "E")
    assert cs["coef"] == pytest.approx(cox.params_["x"])
    assert abs(cs["coef"] - 0.5) < 3 * cs["se"]


def test_competing_c_and_auc_reduce_to_harrell_and_uno_without_competing_events():
    df = _cr_data(4)
    df.loc[df["status"] == 2, "status"] = 0
    risk = df["x"].to_numpy() + np.random.default_rng(0).normal(0, 1, len(df))
    e = (df["status"] == 1).to_numpy(int)
    assert competing_c_index(df["time"], df["status"], risk) == pytest.approx(harrell_c(df["time"], e, risk))
    times = [1.0, 2.0]
    np.testing.assert_allclose(competing_auc(df["time"], df["status"], risk, times),
                               time_dependent_auc(df["time"], e, risk, times).auc, rtol=1e-6)


def test_competing_c_counts_the_dead_as_never_having_the_event():
    t, s = [1, 2, 3], [1, 2, 1]
    # i=0 (event at 1) vs 1 and 2: both comparable; i=2 (event at 3) vs 1 (died at 2): comparable.
    assert competing_c_index(t, s, [3, 1, 2]) == 1.0
    assert competing_c_index(t, s, [2, 3, 1]) == pytest.approx(1 / 3)  # only 0 before 2


def test_competing_status_from_an_events_table():
    ev = pd.DataFrame({"patient_id": ["a", "a", "b", "b", "c"],
                       "event": ["deformity", "death", "deformity", "death", "deformity"],
                       "time_years": [2.0, 3.0, 1.0, 2.5, 3.0], "observed": [1, 1, 0, 1, 0]})
    st_ = competing_status(ev).set_index("patient_id")
    assert st_.loc["a"].tolist() == [2.0, 1]
    assert st_.loc["b"].tolist() == [2.5, 2]
    assert st_.loc["c"].tolist() == [3.0, 0]
    with pytest.raises(InputError, match="status"):
        competing_c_index([1, 2], [1, 3], [0, 1])


def test_sandwich_covariance_matches_lifelines_robust_cox_without_delayed_entry():
    from raoutcome.analysis.competing_risks import sandwich_covariance

    df = _cr_data(5)
    df = df.assign(E=(df["status"] == 1).astype(int), w=1.0 + (np.arange(len(df)) % 3) / 2)
    ref = CoxPHFitter().fit(df[["x", "time", "E", "w"]], "time", "E", weights_col="w", robust=True)
    x = df[["x"]].to_numpy(float)
    cov = sandwich_covariance(x, np.zeros(len(df)), df["time"].to_numpy(), df["E"].to_numpy(), df["w"].to_numpy(),
                              np.arange(len(df)), ref.params_.to_numpy())
    assert np.sqrt(cov[0, 0]) == pytest.approx(ref.standard_errors_["x"], rel=1e-3)
    # Splitting each patient's follow-up into two rows (delayed entry) changes nothing when clustered.
    cut = df["time"].to_numpy() / 2
    xs = np.vstack([x, x])
    start = np.concatenate([np.zeros(len(df)), cut])
    stop = np.concatenate([cut, df["time"].to_numpy()])
    ev = np.concatenate([np.zeros(len(df), int), df["E"].to_numpy()])
    w = np.concatenate([df["w"].to_numpy(), df["w"].to_numpy()])
    split = sandwich_covariance(xs, start, stop, ev, w, np.concatenate([np.arange(len(df))] * 2), ref.params_.to_numpy())
    assert split[0, 0] == pytest.approx(cov[0, 0], rel=1e-9)


def _fine_gray_design(rng, n, b=0.7, p=0.4):
    """Fine & Gray (JASA 1999, section 5): cause 1 has subdistribution F1(t|x) = 1 - (1 - p(1 - e^-t))^exp(bx),
    so the true subdistribution log hazard ratio is b; cause 2 exponential given not cause 1."""
    x = rng.normal(size=n)
    f1_inf = 1 - (1 - p) ** np.exp(b * x)
    c1 = rng.random(n) < f1_inf
    v = rng.random(n) * f1_inf
    t1 = -np.log(1 - (1 - (1 - v) ** np.exp(-b * x)) / p)
    t = np.where(c1, t1, rng.exponential(1.0, n))
    c = rng.exponential(2.0, n)
    return pd.DataFrame({"x": x, "time": np.minimum(t, c), "status": np.where(t <= c, np.where(c1, 1, 2), 0)})


def test_fine_gray_recovers_the_subdistribution_hazard_ratio_of_the_fine_gray_design():
    fg = FineGray(["x"]).fit(_fine_gray_design(np.random.default_rng(3), 800)).summary.iloc[0]
    assert abs(fg["coef"] - 0.7) < 3 * fg["se"]
    # the cause-specific hazard ratio of the same data is a different number (attenuated here)
    cs = CauseSpecificCox(["x"]).fit(_fine_gray_design(np.random.default_rng(3), 800)).summary.iloc[0]
    assert abs(cs["coef"] - fg["coef"]) > 0.05


@pytest.mark.slow
def test_fine_gray_confidence_intervals_cover_in_the_fine_gray_design():
    rng = np.random.default_rng(11)
    fits = [FineGray(["x"]).fit(_fine_gray_design(rng, 300)).summary.iloc[0] for _ in range(60)]
    est = np.array([f["coef"] for f in fits])
    se = np.array([f["se"] for f in fits])
    assert abs(est.mean() - 0.7) < 3 * est.std(ddof=1) / np.sqrt(len(est))
    assert 0.88 <= np.mean(np.abs(est - 0.7) <= 1.959964 * se) <= 1.0
    assert 0.8 < se.mean() / est.std(ddof=1) < 1.25
