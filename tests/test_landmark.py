"""Landmark prediction: no look-ahead (any visit after the landmark changes nothing), the landmark data set,
and the time-varying Cox model used for prediction."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from raoutcome.analysis.landmark import LandmarkCox, landmark_data, landmark_features, lookahead_check, time_varying_risk
from raoutcome.analysis.survival import TimeVaryingCox


def _cohort(seed: int = 0, n: int = 300):
    rng = np.random.default_rng(seed)
    rows, events = [], []
    for i in range(n):
        pid = f"P{i:03d}"
        level = rng.normal()
        t_event = rng.exponential(1 / (0.25 * np.exp(0.8 * level)))
        end = min(t_event, 4.0)
        times = [0.0] + [v + rng.normal(0, 0.05) for v in (1.0, 2.0, 3.0, 4.0) if v < end]
        for t in times:
            rows.append({"patient_id": pid, "time_years": t, "score": level + 0.3 * t + rng.normal(0, 0.3),
                         "age": 50 + 5 * (i % 7)})
        events.append({"patient_id": pid, "duration": end, "observed": int(t_event <= 4.0)})
    return pd.DataFrame(rows), pd.DataFrame(events)


@pytest.fixture(scope="module")
def fitted():
    visits, events = _cohort()
    return visits, events, LandmarkCox(["score", "age"], landmarks=(1.0, 2.0), window=2.0).fit(visits, events)


def test_landmark_data_holds_the_event_free_and_their_last_values(fitted):
    visits, events, _ = fitted
    data = landmark_data(visits, events, ["score"], 1.0, 2.0)
    ev = events.set_index("patient_id")
    assert (ev.loc[data.index, "duration"] > 1.0).all()
    assert (data["last_visit"] <= 1.0).all() and (data["lm_time"] <= 2.0 + 1e-12).all()
    pid = data.index[0]
    past = visits[(visits["patient_id"] == pid) & (visits["time_years"] <= 1.0)]
    assert data.loc[pid, "score"] == past.sort_values("time_years")["score"].iloc[-1]
    # events after the window are censored at its end
    late = ev.loc[data.index, "duration"] > 3.0
    assert (data.loc[late, "lm_event"] == 0).all()


@settings(max_examples=25, deadline=None)
@given(st.sampled_from([1.0, 2.0]), st.integers(0, 2**31 - 1), st.floats(-50, 50), st.floats(0.001, 3.0))
def test_changing_any_visit_after_the_landmark_leaves_the_prediction_unchanged(fitted, landmark, seed, value, shift):
    visits, _, model = fitted
    before = model.predict(visits, landmark)
    rng = np.random.default_rng(seed)
    changed = visits.copy()
    late = np.flatnonzero(changed["time_years"].to_numpy() > landmark)
    pick = rng.choice(late, size=max(1, len(late) // 3), replace=False)
    changed.loc[changed.index[pick], "score"] = value
    changed.loc[changed.index[pick], "time_years"] += shift
    changed = pd.concat([changed, pd.DataFrame({"patient_id": ["P000"], "time_years": [landmark + shift],
                                                "score": [value], "age": [99]})], ignore_index=True)
    after = model.predict(changed, landmark)
    pd.testing.assert_series_equal(before, after)


def test_changing_a_visit_before_the_landmark_does_change_it(fitted):
    visits, _, model = fitted
    before = model.predict(visits, 2.0)
    changed = visits.copy()
    pid = before.index[0]
    rows = changed.index[(changed["patient_id"] == pid) & (changed["time_years"] <= 2.0)]
    changed.loc[rows[-1], "score"] += 5
    assert model.predict(changed, 2.0).loc[pid] != before.loc[pid]


def test_lookahead_check_reports_zero_change(fitted):
    visits, _, model = fitted
    check = lookahead_check(model, visits)
    assert list(check["landmark"]) == [1.0, 2.0]
    assert check["no_look_ahead"].all() and (check["visits_changed"] > 0).all()


def test_landmark_model_recovers_the_score_effect(fitted):
    _, _, model = fitted
    table = model.summary().set_index(["landmark", "covariate"])
    # the true log hazard is 0.8 x level and score = level + 0.3 t + noise(0.3): a clearly positive effect
    for s in (1.0, 2.0):
        assert table.loc[(s, "score"), "coef"] > 0.4


def test_time_varying_cox_predicts_from_the_last_visit_before_the_landmark(fitted):
    visits, events, _ = fitted
    tvc = TimeVaryingCox(["score"], duration_col="duration", standardize=True).fit(visits, events)
    risk = time_varying_risk(tvc, visits, 1.0)
    feats = landmark_features(visits, ["score"], 1.0)
    coef = tvc.fitter_.params_["score"]
    expected = (feats["score"] - tvc.scale_["mean"]["score"]) / tvc.scale_["sd"]["score"] * coef
    np.testing.assert_allclose(risk.to_numpy(), expected.loc[risk.index].to_numpy())
    late = visits.copy()
    late.loc[late["time_years"] > 1.0, "score"] = 100.0
    pd.testing.assert_series_equal(time_varying_risk(tvc, late, 1.0), risk)
