"""Tiny cohorts whose events leave no comparable pair: the first-visit C and the oracle's C are skipped, not a
lifelines ZeroDivisionError reaching the user."""
from __future__ import annotations

import numpy as np
import pandas as pd
from lifelines.utils import concordance_index

from raoutcome.analysis.anomaly import first_visit_c_index


def _visits(scores) -> pd.DataFrame:
    ids = [f"P{i}" for i in range(len(scores))]
    return pd.DataFrame({"patient_id": ids * 2, "time_years": [0.0] * len(ids) + [1.0] * len(ids),
                         "anomaly": list(scores) + [99.0] * len(ids)})


def _events(times, observed) -> pd.DataFrame:
    return pd.DataFrame({"patient_id": [f"P{i}" for i in range(len(times))], "event": "deformity",
                         "time_years": times, "observed": observed})


def test_first_visit_c_is_empty_when_no_pair_is_comparable():
    # the only event comes after the other patient's censoring: no admissible pair
    assert first_visit_c_index(_visits([1.0, 2.0]), _events([1.0, 2.0], [0, 1]), "deformity") == {}


def test_first_visit_c_reads_the_first_visit_and_matches_lifelines():
    scores = [0.3, 2.0, 1.1, 0.7, 1.5]
    times, observed = [4.0, 1.0, 2.5, 3.0, 0.5], [0, 1, 1, 1, 0]
    got = first_visit_c_index(_visits(scores), _events(times, observed), "deformity")
    assert got["c_index_first_visit"] == concordance_index(times, -np.asarray(scores), observed)
    assert (got["n_patients"], got["n_events"]) == (5, 3)


def test_the_oracle_reports_nan_when_no_pair_is_comparable():
    from raoutcome.synth.oracle import oracle_from_tables

    tp = pd.DataFrame({"patient_id": ["P0", "P1"], "log_hazard": [0.1, 0.5]})
    tv = pd.DataFrame({"patient_id": ["P0", "P1"], "visit_id": "v0", "svdh_total": [3, 10], "haq_mean": [0.5, 1.0],
                       "pain_mean": [20.0, 40.0], "osteopenia": [0.2, 0.4], "swelling": [0.1, 0.3],
                       "carpal_collapse": [0.1, 0.2]})
    ov = tv[["patient_id", "visit_id"]].assign(haq=[0.625, 1.0], pain=[22.0, 35.0])
    out = oracle_from_tables(tv, ov, tp, _events([1.0, 2.0], [0, 1]), null=False)
    assert np.isnan(out["deformity"]["c_index_oracle"]) and out["deformity"]["n_events"] == 1
