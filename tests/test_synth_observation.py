"""The simulator observes as a clinic does: events found at visits (interval-censored), RA mortality as a
competing event from a published life table, and the events table's interval columns validated."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from raoutcome.cohort.validation import validate
from raoutcome.synth import simulate
from raoutcome.synth.config import from_dict
from raoutcome.synth.mortality import QX_FEMALE, QX_MALE, cumulative_hazard, draw_death_time
from raoutcome.synth.observation import detect_at_visits

CLINIC = dict(seed=11, n_patients=150, render=False, workers=1, visits={"times_years": [0.0, 1.0, 2.0, 3.0, 4.0]},
              outcomes={"hazard": {"at_visits": True, "death_smr": 1.5}})


def test_detection_interval_is_last_visit_without_to_first_visit_with():
    visits = np.array([0.0, 1.1, 2.0, 2.9])
    d = detect_at_visits(1.5, visits)
    assert (d.observed, d.lower, d.upper, d.time) == (1, 1.1, 2.0, 2.0)
    d = detect_at_visits(2.0, visits)  # on the visit day: seen that day
    assert (d.lower, d.upper) == (1.1, 2.0)
    d = detect_at_visits(3.5, visits)  # after the last attended visit: censored there
    assert (d.observed, d.lower, d.time) == (0, 2.9, 2.9) and d.upper == np.inf


def test_life_table_is_the_published_excerpt():
    # Arias, Heron & Xu, United States life tables 2011 (NVSR 64(11)): q_55 = 0.004564 (females),
    # 0.007779 (males); q_99 = 0.300271 / 0.339914. Ages 18..99 are reproduced.
    assert len(QX_FEMALE) == len(QX_MALE) == 82
    assert QX_FEMALE[55 - 18] == 0.004564 and QX_MALE[55 - 18] == 0.007779
    assert QX_FEMALE[-1] == 0.300271 and QX_MALE[-1] == 0.339914
    # With SMR 1: the one-year death probability at an integer age is q_x itself.
    assert 1 - np.exp(-cumulative_hazard(55.0, 1.0, female=0)) == pytest.approx(0.007779)
    # SMR multiplies the hazard: P(survive a year) = (1 - q)^SMR.
    assert np.exp(-cumulative_hazard(55.0, 1.0, 0, smr=1.5)) == pytest.approx((1 - 0.007779) ** 1.5)


def test_death_times_follow_the_cumulative_hazard():
    rng = np.random.default_rng(3)
    d = np.array([draw_death_time(62.4, 1, 1.5, rng) for _ in range(20000)])
    for t in (2.0, 10.0, 25.0):
        p = 1 - np.exp(-cumulative_hazard(62.4, t, 1, 1.5))
        assert abs((d <= t).mean() - p) < 4 * np.sqrt(p * (1 - p) / len(d))
    assert draw_death_time(50.0, 0, 0.0, rng) == np.inf


@pytest.fixture(scope="module")
def clinic(tmp_path_factory):
    return simulate(None, tmp_path_factory.mktemp("clinic") / "c", config=from_dict(CLINIC))


def test_clinic_cohort_events_are_intervals_around_the_true_time(clinic):
    ev = pd.read_csv(clinic / "events.csv")
    truth = pd.read_csv(clinic / "truth/patients.csv").set_index("patient_id")
    visits = pd.read_csv(clinic / "visits.csv")
    d = ev[ev["event"] == "deformity"].set_index("patient_id")
    seen = d[d["observed"] == 1]
    assert len(seen) > 10
    t_true = truth.loc[seen.index, "event_time_true"]
    assert ((seen["time_lower"] < t_true + 1e-4) & (t_true <= seen["time_upper"] + 1e-4)).all()
    assert (seen["time_years"] == seen["time_upper"]).all()
    # both bounds are visits of the patient
    vt = visits.groupby("patient_id")["time_years"].apply(set)
    assert all(r.time_lower in vt[p] and r.time_upper in vt[p] for p, r in seen.iterrows())
    cens = d[d["observed"] == 0]
    assert cens["time_upper"].isna().all() and np.allclose(cens["time_lower"], cens["time_years"])


def test_clinic_cohort_records_deaths_and_no_visit_after_death(clinic):
    ev = pd.read_csv(clinic / "events.csv")
    truth = pd.read_csv(clinic / "truth/patients.csv").set_index("patient_id")
    visits = pd.read_csv(clinic / "visits.csv")
    death = ev[ev["event"] == "death"].set_index("patient_id")
    assert len(death) == len(truth)
    died = death[death["observed"] == 1]
    assert len(died) > 0
    np.testing.assert_allclose(died["time_years"], truth.loc[died.index, "death_time_true"], atol=1e-4)
    last = visits.groupby("patient_id")["time_years"].max()
    assert (last.loc[died.index] <= died["time_years"] + 1e-4).all()
    assert validate(clinic, check_files=False) == []


def test_default_config_keeps_exact_times_and_no_death(tmp_path):
    out = simulate(None, tmp_path / "d", config=from_dict({**CLINIC, "n_patients": 20, "outcomes": {}}))
    ev = pd.read_csv(out / "events.csv")
    assert list(ev.columns) == ["patient_id", "event", "time_years", "observed"]
    assert set(ev["event"]) == {"deformity"}


@pytest.mark.parametrize("edit, column, message", [
    (lambda e, i, j: e.loc.__setitem__((i, "time_lower"), 9.0),
     "time_lower", "after time_upper"),
    (lambda e, i, j: e.loc.__setitem__((i, "time_upper"), np.nan), "time_upper", "needs time_upper"),
    (lambda e, i, j: e.loc.__setitem__((j, "time_upper"), 5.0), "time_upper", "no upper bound"),
    (lambda e, i, j: e.loc.__setitem__((j, "time_lower"), 0.1), "time_lower", "must equal its time_years"),
    (lambda e, i, j: e.loc.__setitem__((i, "time_years"), 0.01), "time_years", "outside its interval"),
    (lambda e, i, j: e.loc.__setitem__((i, "time_lower"), -1.0), "time_lower", "negative"),
])
def test_interval_columns_are_validated(clinic, tmp_path, edit, column, message):
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(clinic, bad)
    ev = pd.read_csv(bad / "events.csv")
    d = ev["event"] == "deformity"
    i = ev.index[d & (ev["observed"] == 1)][0]
    j = ev.index[d & (ev["observed"] == 0)][0]
    edit(ev, i, j)
    ev.to_csv(bad / "events.csv", index=False)
    problems = [p for p in validate(bad, check_files=False) if message in p.message]
    assert problems, validate(bad, check_files=False)
    assert problems[0].column == column and problems[0].file.endswith("events.csv")
