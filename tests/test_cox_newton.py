"""The vectorised Cox Newton-Raphson against lifelines (Efron = Breslow without tied events), statsmodels
PHReg (Breslow, tied events) and a hand-computed partial likelihood."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from cox_data import cox_sample
from lifelines import CoxPHFitter
from statsmodels.duration.hazard_regression import PHReg

from raoutcome.analysis.cox_newton import distinct_event_times, fit_cox
from raoutcome.analysis.incremental import cox_lrt
from raoutcome.errors import InputError


def _data(n=400, seed=0, tied=False):
    x, time, event = cox_sample(n, seed, tied)
    return pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "c": x[:, 2], "T": time, "E": event})


def test_hand_computed_partial_likelihood():
    # times 1, 2, 3, all events, one covariate 0, 1, 0 at beta = 0: risk sets of 3, 2, 1 -> -log 6
    fit = fit_cox(np.array([[0.0], [1.0], [0.0]]), [1, 2, 3], [1, 1, 1])
    assert fit.log_likelihood_null == pytest.approx(-np.log(6))
    # at the maximum the score vanishes: 1 - e^b/(2 + e^b) - e^b/(1 + e^b) = 0  ->  e^b = sqrt(2)
    assert fit.params[0] == pytest.approx(np.log(np.sqrt(2)), abs=1e-6)
    b = np.sqrt(2)
    assert fit.log_likelihood == pytest.approx(np.log(b) - np.log(2 + b) - np.log(1 + b), abs=1e-10)
    # information: Var of x in risk sets {0, 1, 0} and {1, 0} at e^b = √2: p(1 − p) = 3√2 − 4 each
    assert fit.covariance[0, 0] == pytest.approx(1 / (6 * np.sqrt(2) - 8), rel=1e-6)


def test_matches_lifelines_without_tied_events():
    df = _data()
    assert distinct_event_times(df["T"], df["E"])
    ref = CoxPHFitter().fit(df, "T", "E")
    fit = fit_cox(df[["a", "b", "c"]], df["T"], df["E"])
    assert fit.converged
    assert fit.log_likelihood == pytest.approx(ref.log_likelihood_, abs=1e-6)
    np.testing.assert_allclose(fit.params, ref.params_.to_numpy(), atol=1e-5)
    np.testing.assert_allclose(fit.covariance, ref.variance_matrix_.to_numpy(), rtol=1e-4)


def test_matches_statsmodels_breslow_with_tied_events():
    df = _data(tied=True)
    assert not distinct_event_times(df["T"], df["E"])
    ref = PHReg(df["T"].to_numpy(), df[["a", "b", "c"]].to_numpy(), status=df["E"].to_numpy(), ties="breslow").fit()
    fit = fit_cox(df[["a", "b", "c"]], df["T"], df["E"])
    assert fit.log_likelihood == pytest.approx(ref.llf, abs=1e-6)
    np.testing.assert_allclose(fit.params, ref.params, atol=1e-5)
    np.testing.assert_allclose(fit.covariance, ref.cov_params(), rtol=1e-4)


def test_cox_lrt_fast_path_equals_lifelines_and_ties_fall_back():
    df = _data(seed=1)
    fast = cox_lrt(df, ["a", "c"], ["b"], duration_col="T", event_col="E")
    full = CoxPHFitter().fit(df, "T", "E")
    reduced = CoxPHFitter().fit(df[["a", "c", "T", "E"]], "T", "E")
    assert fast.statistic == pytest.approx(2 * (full.log_likelihood_ - reduced.log_likelihood_), abs=1e-5)
    assert fast.extra["coef_added"] == pytest.approx(full.params_["b"], abs=1e-5)
    tied = _data(seed=1, tied=True)
    slow = cox_lrt(tied, ["a", "c"], ["b"], duration_col="T", event_col="E")  # Efron, by lifelines
    efron = CoxPHFitter().fit(tied, "T", "E").log_likelihood_
    assert slow.extra["ll_full"] == pytest.approx(efron, abs=1e-6)


def test_refuses_collinear_columns_and_no_events():
    df = _data(n=100)
    with pytest.raises(InputError, match="singular"):
        fit_cox(np.column_stack([df["a"], 2 * df["a"]]), df["T"], df["E"])
    with pytest.raises(InputError, match="no events"):
        fit_cox(df[["a"]], df["T"], np.zeros(len(df)))
