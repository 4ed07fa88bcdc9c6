"""analyses/site_readout_probe.py: scoring readout variants on out-of-fold plus never-seen patients."""
from __future__ import annotations

import types

import numpy as np
import pandas as pd
from conftest import load_analysis
from lifelines.utils import concordance_index


def _cohort(n: int, seed: int, prefix: str = "P"):
    """A stand-in cohort: two visits per patient (v1 listed first), exponential event times driven by ``lp``."""
    rng = np.random.default_rng(seed)
    ids = [f"{prefix}{i:03d}" for i in range(n)]
    lp = rng.normal(0.0, 1.0, n)
    t = rng.exponential(1.0 / np.exp(lp - 1.0))
    visits = pd.DataFrame({"patient_id": np.repeat(ids, 2), "visit_id": ["v1", "v0"] * n,
                           "time_years": np.tile([1.0, 0.0], n)})
    events = pd.DataFrame({"patient_id": ids, "time_years": np.minimum(t, 3.0), "observed": (t <= 3.0).astype(int)})
    cohort = types.SimpleNamespace(visits=visits, event_table=lambda event: events)
    return cohort, pd.Series(lp, index=ids)


def _frames(lp: pd.Series, noise: float, seed: int, folds: int = 1) -> list[pd.DataFrame]:
    """Per fold a prediction frame (both visits) whose first-visit risk is ``lp`` + noise."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(folds):
        r = lp.to_numpy() + rng.normal(0.0, noise, len(lp))
        out.append(pd.DataFrame({"patient_id": np.repeat(lp.index, 2), "visit_id": ["v0", "v1"] * len(lp),
                                 "risk": np.repeat(r, 2) + np.tile([0.0, 5.0], len(lp))}))
    return out


def test_first_visit_risk_is_the_ensemble_mean_at_the_earliest_visit_with_a_risk():
    mod = load_analysis("site_readout_probe")
    cohort, lp = _cohort(4, 0)
    a = pd.DataFrame({"patient_id": ["P000", "P000", "P001", "P001"], "visit_id": ["v0", "v1", "v0", "v1"],
                      "risk": [1.0, 9.0, np.nan, 4.0]})
    b = a.assign(risk=[3.0, 9.0, np.nan, 6.0])
    got = mod._first_visit_risk([a, b], cohort, "deformity", "t:").set_index("patient")
    assert list(got.index) == ["t:P000", "t:P001"]
    assert got.loc["t:P000", "risk"] == 2.0  # v0, the mean of the two folds
    assert got.loc["t:P001", "risk"] == 5.0  # v0 has no risk: the next visit
    events = cohort.event_table("deformity").set_index("patient_id")
    assert got.loc["t:P001", "time"] == events.loc["P001", "time_years"]


def test_never_seen_pools_both_groups_and_bootstraps_the_gain_over_the_first_variant():
    mod = load_analysis("site_readout_probe")
    cohort, lp = _cohort(100, 1)
    tcohort, tlp = _cohort(250, 2, prefix="T")
    noisy = (_frames(lp, 2.0, 3), _frames(tlp, 2.0, 4, folds=3))
    exact = (_frames(lp, 0.0, 5), _frames(tlp, 0.0, 6, folds=3))
    res = mod._never_seen({0: noisy[0], 1: exact[0]}, {0: noisy[1], 1: exact[1]}, cohort, tcohort, "deformity", 60)

    ev = pd.concat([cohort.event_table(None), tcohort.event_table(None)]).set_index("patient_id")
    risk = pd.concat([lp, tlp])
    by_hand = concordance_index(ev["time_years"], -risk.loc[ev.index], ev["observed"])
    assert res[1]["n_never_seen"] == 350
    assert abs(res[1]["never_seen_c"] - by_hand) < 1e-12
    test_by_hand = concordance_index(tcohort.event_table(None)["time_years"], -tlp.to_numpy(),
                                     tcohort.event_table(None)["observed"])
    assert abs(res[1]["test_c"] - test_by_hand) < 1e-12
    assert res[0]["gain_over_first"] == 0.0 and res[0]["p_gain_positive"] == 0.0
    assert res[1]["gain_over_first"] > 0.05 and res[1]["p_gain_positive"] > 0.99
