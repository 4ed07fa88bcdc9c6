"""Wald, score and robust (Lin–Wei) Cox tests against lifelines, statsmodels PHReg, the log-rank test and
hand-coded (loop) definitions of the score residuals."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from cox_data import cox_sample
from lifelines import CoxPHFitter
from lifelines.statistics import logrank_test
from statsmodels.duration.hazard_regression import PHReg

from raoutcome.analysis.cox_newton import fit_cox
from raoutcome.analysis.cox_tests import cox_tests, score_and_information, score_residuals
from raoutcome.analysis.incremental import cox_lrt
from raoutcome.errors import InputError


def _data(n=300, seed=0, tied=False):
    return cox_sample(n, seed, tied)


def _loop_residuals(x, time, event, beta):
    """Breslow score residuals by their definition, one subject and one event at a time."""
    r = np.exp(x @ beta)
    out = np.zeros_like(x)
    for i in range(len(x)):
        out[i] = event[i] * (x[i] - _mean(x, time, r, time[i]))
        for j in np.flatnonzero(event.astype(bool) & (time <= time[i])):
            risk = time >= time[j]
            out[i] -= r[i] / r[risk].sum() * (x[i] - _mean(x, time, r, time[j]))
    return out


def _mean(x, time, r, at):
    risk = time >= at
    return (r[risk, None] * x[risk]).sum(axis=0) / r[risk].sum()


@pytest.mark.parametrize("tied", [False, True])
def test_score_residuals_match_statsmodels_and_the_definition(tied):
    x, t, e = _data(tied=tied)
    ref = PHReg(t, x, status=e, ties="breslow").fit()
    w = score_residuals(x, t, e, ref.params)
    np.testing.assert_allclose(w, ref.score_residuals, atol=1e-8)
    small = slice(0, 25)
    beta = np.array([0.3, -0.02, 0.5])  # away from the maximum: they then sum to the score, not 0
    loop = _loop_residuals(x[small], t[small], e[small], beta)
    u, _, w = score_and_information(x[small], t[small], e[small], beta)
    np.testing.assert_allclose(w, loop, atol=1e-10)
    np.testing.assert_allclose(u, loop.sum(axis=0), atol=1e-10)


def test_robust_wald_matches_lifelines_sandwich():
    x, t, e = _data()
    df = pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "c": x[:, 2], "T": t, "E": e})
    ref = CoxPHFitter().fit(df, "T", "E", robust=True)
    res = cox_tests(x[:, :2], x[:, 2], t, e)
    assert res.statistics["robust_wald"] == pytest.approx((ref.params_["c"] / ref.standard_errors_["c"]) ** 2,
                                                          rel=1e-5)
    plain = CoxPHFitter().fit(df, "T", "E")
    assert res.statistics["wald"] == pytest.approx((plain.params_["c"] / plain.standard_errors_["c"]) ** 2, rel=1e-5)


def test_score_test_of_one_group_is_the_log_rank_test():
    x, t, e = _data(seed=3)
    g = x[:, 2]
    lr = logrank_test(t[g == 1], t[g == 0], e[g == 1], e[g == 0])
    res = cox_tests(np.zeros((len(t), 0)), g, t, e)
    assert res.statistics["score"] == pytest.approx(lr.test_statistic, rel=1e-8)
    assert res.p_values["score"] == pytest.approx(lr.p_value, rel=1e-6)


def test_score_tests_by_numerical_derivatives_and_robust_score_by_hand():
    x, t, e = _data(n=120, seed=5)
    base, added = x[:, :2], x[:, 2:]
    res = cox_tests(base, added, t, e)
    beta0 = np.append(fit_cox(base, t, e).params, 0.0)

    def ll(b):
        return PHReg(t, x, status=e, ties="breslow").loglike(b)

    h = 1e-5
    grad = np.array([(ll(beta0 + h * d) - ll(beta0 - h * d)) / (2 * h) for d in np.eye(3)])
    hess = np.array([[(ll(beta0 + h * (a + b)) - ll(beta0 + h * (a - b)) - ll(beta0 - h * (a - b))
                       + ll(beta0 - h * (a + b))) / (4 * h * h) for b in np.eye(3)] for a in np.eye(3)])
    assert np.abs(grad[:2]).max() < 1e-4  # the base fit's score vanishes
    assert res.statistics["score"] == pytest.approx(grad[2] ** 2 * np.linalg.inv(-hess)[2, 2], rel=1e-4)
    # robust score: U_γ² / Σ (W_iγ − I_γβ I_ββ⁻¹ W_iβ)², residuals by their definition
    w = _loop_residuals(x, t, e, beta0)
    info = -hess
    eff = w[:, 2] - w[:, :2] @ np.linalg.solve(info[:2, :2], info[:2, 2])
    assert res.statistics["robust_score"] == pytest.approx(grad[2] ** 2 / (eff ** 2).sum(), rel=1e-4)
    # all four agree with the LRT to first order on a correctly specified model
    assert res.statistics["lrt"] == pytest.approx(res.statistics["score"], rel=0.1, abs=0.1)


def test_cox_lrt_methods_name_their_row_and_refuse_unknown():
    x, t, e = _data(seed=1)
    df = pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "c": x[:, 2], "T": t, "E": e})
    lrt = cox_lrt(df, ["a", "b"], ["c"], duration_col="T", event_col="E")
    rob = cox_lrt(df, ["a", "b"], ["c"], duration_col="T", event_col="E", method="robust_score")
    assert lrt.test == "cox_lrt" and rob.test == "cox_robust_score"
    assert rob.p_value == pytest.approx(lrt.extra["p_robust_score"])
    assert lrt.p_value == pytest.approx(lrt.extra["p_lrt"])
    with pytest.raises(InputError, match="method"):
        cox_lrt(df, ["a"], ["c"], duration_col="T", event_col="E", method="bootstrap")
