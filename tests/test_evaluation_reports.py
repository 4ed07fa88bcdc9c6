"""regression_report / survival_report tables and pairing Predictions with cohort outcomes."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from raoutcome.errors import InputError
from raoutcome.evaluation import (event_pairs, harrell_c, regression_report, rmse, survival_report,
                                  time_dependent_auc, visit_pairs)
from raoutcome.evaluation.reports import COLUMNS
from raoutcome.predictions import from_frame


def _visits(n_pat=40, n_vis=3, seed=0):
    rng = np.random.default_rng(seed)
    ids = np.repeat([f"p{i}" for i in range(n_pat)], n_vis)
    y = np.repeat(rng.gamma(1.0, 15, n_pat), n_vis) + rng.normal(0, 2, n_pat * n_vis).clip(0)
    return ids, y, y + rng.normal(0, 4, n_pat * n_vis)


def test_regression_report_table_with_patient_bootstrap():
    ids, y, p = _visits()
    y[0] = np.nan  # masked, not fatal
    table = regression_report(y, p, patient_ids=ids, n_boot=300, dream=True)
    assert list(table.columns) == COLUMNS
    assert list(table.index) == ["rmse", "mae", "bias", "r2", "pearson_r", "spearman_rho", "dream_weighted_rmse",
                                 "dream_weighted_mae"]
    assert (table["n"] == 119).all() and table.attrs["n_patients"] == 40
    assert (table["ci_method"] == "patient bootstrap").all()
    assert table.loc["rmse", "estimate"] == pytest.approx(rmse(y, p))
    assert (table["ci_low"] <= table["estimate"]).all() and (table["estimate"] <= table["ci_high"]).all()


def test_regression_report_without_bootstrap_uses_fisher_interval_for_pearson():
    ids, y, p = _visits()
    table = regression_report(y, p, patient_ids=ids, n_boot=0)
    assert table.loc["pearson_r", "ci_method"] == "fisher z"
    assert "independent" in table.loc["pearson_r", "note"]
    assert np.isnan(table.loc["rmse", "ci_low"]) and table.loc["rmse", "ci_method"] == "none"
    with pytest.raises(InputError, match="patient_ids: 3 values"):
        regression_report(y, p, patient_ids=ids[:3])


def _survival(n=150, seed=1):
    rng = np.random.default_rng(seed)
    risk = rng.normal(0, 1, n)
    event_time = rng.exponential(np.exp(-risk) * 4)
    censor = rng.uniform(1, 8, n)
    time = np.minimum(event_time, censor)
    event = (event_time <= censor).astype(float)
    times = np.array([1.0, 2.0, 3.0])
    surv = np.exp(-np.outer(np.exp(risk) / 4, times))  # the true S(t) of this simulation
    return time, event, risk, times, surv


def test_survival_report_rows_and_intervals():
    time, event, risk, times, surv = _survival()
    table = survival_report(time, event, risk, times=times, horizon=2.0, surv_prob=surv, n_boot=60)
    expected = {"harrell_c", "uno_c", "auc_t1", "auc_t2", "auc_t3", "mean_auc", "integrated_brier",
                "auroc_at_horizon", "accuracy_at_horizon", "sensitivity_at_horizon", "specificity_at_horizon",
                "ppv_at_horizon", "npv_at_horizon", "calibration_ici", "calibration_e50", "calibration_e90"}
    assert set(table.index) == expected
    assert table.loc["harrell_c", "estimate"] == pytest.approx(harrell_c(time, event, risk))
    assert 0.6 < table.loc["harrell_c", "estimate"] < 0.9  # the risk is the true log-hazard
    # rows sharing one computation per resample still get their own value and a real interval
    assert table.loc["auc_t2", "estimate"] == pytest.approx(time_dependent_auc(time, event, risk, [2.0]).auc[0])
    assert table.loc["auc_t1", "estimate"] != table.loc["auc_t3", "estimate"]
    assert (table.loc[["auc_t1", "auc_t2", "ppv_at_horizon"], "ci_low"]
            < table.loc[["auc_t1", "auc_t2", "ppv_at_horizon"], "ci_high"]).all()
    boot = table[table["ci_method"] == "bootstrap"]
    assert (boot["ci_low"] <= boot["estimate"]).all() and (boot["estimate"] <= boot["ci_high"]).all()
    assert table.loc["calibration_ici", "estimate"] < 0.1  # true probabilities are well calibrated


def test_survival_report_notes_what_cannot_be_computed_and_rejects_bad_flags():
    time, event, risk, _, _ = _survival()
    table = survival_report(time, event, risk, times=[100.0], horizon=2.0, threshold=0.0, n_boot=0)
    # nobody is followed to 100 years: the AUC row says why instead of stopping the table
    assert np.isnan(table.loc["auc_t100", "estimate"]) and "cumulative_dynamic_auc" in table.loc["auc_t100", "note"]
    assert np.isfinite(table.loc["harrell_c", "estimate"])
    assert np.isfinite(table.loc["accuracy_at_horizon", "estimate"])  # threshold on the risk score
    bad = event.copy()
    bad[4] = 3
    with pytest.raises(InputError, match="value 3.0 at index 4 is not 0/1"):
        survival_report(time, bad, risk, n_boot=0)


def test_visit_and_event_pairs_from_predictions():
    frame = pd.DataFrame({"patient_id": ["a", "a", "b", "b"], "visit_id": ["v0", "v1", "v0", "v1"],
                          "time_years": [0.0, 1.0, 0.0, 1.5], "svdh": [2.0, 4.0, 10.0, np.nan],
                          "risk": [0.3, 0.5, 1.2, 1.4]})
    ds = from_frame(frame, folds={"a": 0, "b": 1})
    visits = pd.DataFrame({"patient_id": ["a", "a", "b", "b"], "visit_id": ["v0", "v1", "v0", "v1"],
                           "svdh_total": [1.0, np.nan, 12.0, 13.0]})
    pairs = visit_pairs(ds, visits, "svdh")
    # (a, v1) has no observed score and (b, v1) no prediction: both dropped
    assert pairs[["patient_id", "visit_id", "y_true", "y_pred"]].values.tolist() == [["a", "v0", 1.0, 2.0],
                                                                                     ["b", "v0", 12.0, 10.0]]
    events = pd.DataFrame({"patient_id": ["a", "b"], "time_years": [3.0, 2.0], "observed": [0, 1]})
    first = event_pairs(ds, events)
    assert first["marker"].tolist() == [0.3, 1.2] and first["fold"].tolist() == [0, 1]
    assert event_pairs(ds, events, visit="last")["marker"].tolist() == [0.5, 1.4]
    with pytest.raises(InputError, match="no observed outcome known"):
        visit_pairs(ds, visits, "embedding")
    with pytest.raises(InputError, match="lacks column"):
        visit_pairs(ds, visits.drop(columns="svdh_total"), "svdh")


@pytest.mark.parametrize("head", ["haq", "pain"])
def test_visit_pairs_when_head_and_outcome_share_a_name(head):
    frame = pd.DataFrame({"patient_id": ["a", "a", "b"], "visit_id": ["v0", "v1", "v0"],
                          "time_years": [0.0, 1.0, 0.0], head: [0.5, 1.0, 2.0], "risk": [0.1, 0.2, 0.3]})
    ds = from_frame(frame, folds={"a": 0, "b": 1})
    visits = pd.DataFrame({"patient_id": ["a", "a", "b"], "visit_id": ["v0", "v1", "v0"],
                           "time_years": [0.0, 1.1, 0.0], head: [0.25, np.nan, 2.5]})
    pairs = visit_pairs(ds, visits, head)
    assert pairs[["patient_id", "visit_id", "y_true", "y_pred"]].values.tolist() == [["a", "v0", 0.25, 0.5],
                                                                                     ["b", "v0", 2.5, 2.0]]
    assert head not in pairs and pairs["fold"].tolist() == [0, 1]
    # an outcome that is also a prediction column other than the head (time_years) pairs too
    t = visit_pairs(ds, visits, head, outcome="time_years")
    assert t[["visit_id", "y_true", "y_pred", "time_years"]].values.tolist() == [["v0", 0.0, 0.5, 0.0],
                                                                                 ["v1", 1.1, 1.0, 1.0],
                                                                                 ["v0", 0.0, 2.0, 0.0]]
