"""Survival estimators: published lifelines results on the Rossi data, PCA inside folds,
start/stop intervals from visits, Kaplan–Meier by tertile."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from lifelines import CoxPHFitter
from lifelines.datasets import load_rossi
from scipy import stats

from raoutcome.analysis import survival as sv
from raoutcome.errors import InputError

ROSSI_COVARIATES = ["fin", "age", "race", "wexp", "mar", "paro", "prio"]


@pytest.fixture(scope="module")
def rossi() -> pd.DataFrame:
    return load_rossi()


def test_cox_reproduces_lifelines_documented_rossi_coefficients(rossi):
    # Documented in the lifelines docs, "Survival Regression" page, CoxPHFitter example
    # (https://lifelines.readthedocs.io/en/latest/Survival%20Regression.html):
    # coef fin -0.38, age -0.06, race 0.31, wexp -0.15, mar -0.43, paro -0.08, prio 0.09;
    # exp(coef) prio 1.10, concordance 0.64, partial log-likelihood -658.75.
    model = sv.CoxModel(ROSSI_COVARIATES, duration_col="week", event_col="arrest").fit(rossi)
    coef = model.summary.set_index("covariate")["coef"]
    assert coef["prio"] == pytest.approx(0.0915, abs=5e-4)
    assert coef["age"] == pytest.approx(-0.0574, abs=5e-4)
    assert coef["fin"] == pytest.approx(-0.3794, abs=5e-4)
    assert coef["race"] == pytest.approx(0.3139, abs=5e-4)
    assert coef["mar"] == pytest.approx(-0.4337, abs=5e-4)
    hr = model.summary.set_index("covariate")
    assert hr.loc["prio", "hr"] == pytest.approx(1.10, abs=0.005)
    # the 95 % CI is exp(coef -+ 1.96 se), computed here independently
    assert hr.loc["age", "hr_lower"] == pytest.approx(np.exp(coef["age"] - 1.959964 * hr.loc["age", "se"]), rel=1e-6)
    assert model.log_likelihood_ == pytest.approx(-658.75, abs=0.01)
    assert model.score(rossi) == pytest.approx(0.64, abs=0.005)


def test_proportional_hazards_test_flags_age_and_wexp_as_in_lifelines_docs(rossi):
    # lifelines docs, "Testing the proportional hazard assumptions" (Rossi, rank transform):
    # age test statistic 11.45 (p < 0.005) and wexp 7.31 (p 0.01) violate PH; prio 0.02 does not.
    model = sv.CoxModel(ROSSI_COVARIATES, duration_col="week", event_col="arrest").fit(rossi)
    ph = model.check_proportional_hazards().set_index("covariate")
    assert ph.loc["age", "statistic"] == pytest.approx(11.45, abs=0.01)
    assert ph.loc["wexp", "statistic"] == pytest.approx(7.31, abs=0.01)
    assert ph.loc["age", "p"] < 0.005 and ph.loc["prio", "p"] > 0.5


def test_standardised_columns_give_hazard_ratios_per_sd(rossi):
    unit = sv.CoxModel(["age", "prio"], duration_col="week", event_col="arrest").fit(rossi)
    per_sd = sv.CoxModel(["age", "prio"], duration_col="week", event_col="arrest", standardize=["age"]).fit(rossi)
    a, b = unit.summary.set_index("covariate"), per_sd.summary.set_index("covariate")
    assert b.loc["age", "coef"] == pytest.approx(a.loc["age", "coef"] * rossi["age"].std(ddof=1), rel=1e-4)
    assert b.loc["prio", "coef"] == pytest.approx(a.loc["prio", "coef"], rel=1e-4)
    assert list(b["per"]) == ["SD", "unit"]


def test_risk_at_horizon_is_one_minus_lifelines_survival(rossi):
    model = sv.CoxModel(["age", "prio"], duration_col="week", event_col="arrest").fit(rossi)
    direct = CoxPHFitter().fit(rossi[["week", "arrest", "age", "prio"]], "week", "arrest")
    expected = 1 - direct.predict_survival_function(rossi[["age", "prio"]].head(5), times=[52]).to_numpy().ravel()
    np.testing.assert_allclose(model.predict_risk_at(rossi.head(5), 52), expected, rtol=1e-6)


def test_missing_inputs_give_nan_risk_and_are_dropped_from_fit(rossi):
    df = rossi.copy().astype(float)
    df.loc[:9, "age"] = np.nan
    model = sv.CoxModel(["age", "prio"], duration_col="week", event_col="arrest").fit(df)
    assert model.n_ == len(df) - 10
    risk = model.predict_risk(df)
    assert np.isnan(risk[:10]).all() and np.isfinite(risk[10:]).all()


def test_missing_column_is_reported(rossi):
    with pytest.raises(InputError, match="lacks column"):
        sv.CoxModel(["nope"], duration_col="week", event_col="arrest").fit(rossi)


def test_embedding_pca_is_fitted_inside_training_folds(monkeypatch):
    rng = np.random.default_rng(1)
    n = 120
    emb = rng.normal(size=(n, 6)) * [3, 1, 1, 1, 1, 1]  # the high-variance direction carries the signal
    time = rng.exponential(np.exp(-0.5 * emb[:, 0]))
    df = pd.DataFrame(emb, columns=[f"emb_{i}" for i in range(6)]).assign(
        duration=np.minimum(time, 2.0), observed=(time < 2.0).astype(int), age=rng.normal(50, 5, n))
    seen = []
    real_fit = sv.PCA.fit

    def spy(self, x, *args, **kwargs):
        seen.append(len(x))
        return real_fit(self, x, *args, **kwargs)

    monkeypatch.setattr(sv.PCA, "fit", spy)
    folds = np.arange(n) % 4
    model = sv.CoxNetModel(["age"], embedding_cols=[f"emb_{i}" for i in range(6)], n_components=3)
    risk = sv.cross_val_risk(model, df, folds=folds)
    assert seen == [90, 90, 90, 90]  # each PCA saw only the 3 training folds
    assert np.isfinite(risk).all()
    c = sv.harrell_c(df["duration"], df["observed"], risk)
    assert c > 0.7  # the first embedding dimension drives the hazard


def test_random_survival_forest_learns_a_strong_signal():
    rng = np.random.default_rng(2)
    n = 300
    x = rng.normal(size=n)
    t = rng.exponential(np.exp(-1.5 * x))
    df = pd.DataFrame({"x": x, "noise": rng.normal(size=n), "duration": np.minimum(t, 3.0),
                       "observed": (t < 3.0).astype(int)})
    risk = sv.cross_val_risk(sv.SurvivalForest(["x", "noise"], n_estimators=60, random_state=0), df, k=3)
    assert sv.harrell_c(df["duration"], df["observed"], risk) > 0.7


def test_counting_process_intervals_from_visits():
    visits = pd.DataFrame({"patient_id": ["a", "a", "a", "b", "b"], "time_years": [0.0, 1.0, 2.0, 0.0, 1.0],
                           "score": [1.0, np.nan, 3.0, 5.0, 6.0]})
    events = pd.DataFrame({"patient_id": ["a", "b"], "duration": [2.5, 0.5], "observed": [1, 0]})
    table = sv.counting_process_table(visits, events, ["score"]).sort_values(["patient_id", "start"])
    a = table[table["patient_id"] == "a"]
    # a missing reading carries the last value forward (so the visit at 1 changes nothing and
    # merges into the first interval); the event sits on the last interval only
    assert a[["start", "stop", "score", "observed"]].values.tolist() == [[0.0, 2.0, 1.0, 0], [2.0, 2.5, 3.0, 1]]
    b = table[table["patient_id"] == "b"]  # the visit after censoring is dropped
    assert b[["start", "stop", "score", "observed"]].values.tolist() == [[0.0, 0.5, 5.0, 0]]


def test_time_varying_cox_with_constant_covariates_equals_ordinary_cox(rossi):
    # covariates that never change give the same partial likelihood as the time-fixed Cox model
    df = rossi.assign(patient_id=[f"p{i}" for i in range(len(rossi))])
    visits = pd.concat([df.assign(time_years=0.0), df.assign(time_years=10.0)])[["patient_id", "time_years", "age", "prio"]]
    events = df.rename(columns={"week": "duration", "arrest": "observed"})[["patient_id", "duration", "observed"]]
    tv = sv.TimeVaryingCox(["age", "prio"]).fit(visits, events)
    fixed = sv.CoxModel(["age", "prio"], duration_col="week", event_col="arrest").fit(rossi)
    np.testing.assert_allclose(tv.summary["coef"], fixed.summary["coef"], atol=1e-5)
    assert tv.log_likelihood_ == pytest.approx(fixed.log_likelihood_, abs=1e-4)


def test_km_by_tertiles_and_logrank(rossi):
    km = sv.km_by_groups(rossi, "prio", duration_col="week", event_col="arrest")
    assert list(km.groups["group"]) == ["low", "middle", "high"]
    assert km.groups["n"].sum() == len(rossi)
    assert km.groups["events"].sum() == rossi["arrest"].sum()
    # log-rank for 3 groups: chi-square with 2 df, p from its statistic
    assert km.df == 2
    assert km.p_value == pytest.approx(stats.chi2.sf(km.statistic, 2), rel=1e-9)
    # Kaplan–Meier of one group, computed by hand at its first event time
    low = rossi.loc[rossi["prio"].rank(method="first") <= len(rossi) / 3]
    t1 = low.loc[low["arrest"] == 1, "week"].min()
    at_risk = (low["week"] >= t1).sum()
    deaths = ((low["week"] == t1) & (low["arrest"] == 1)).sum()
    curve = km.curves[(km.curves["group"] == "low") & (km.curves["time"] == t1)]
    assert curve["survival"].item() == pytest.approx(1 - deaths / at_risk)
    assert km.groups.iloc[2]["events"] > km.groups.iloc[0]["events"]  # more prior convictions, more arrests
