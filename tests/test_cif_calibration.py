"""Calibration of a predicted cumulative incidence (``raoutcome.evaluation.cif_calibration``)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from raoutcome.analysis.competing_risks import FineGray, cumulative_incidence
from raoutcome.errors import InputError
from raoutcome.evaluation.cif_calibration import aalen_johansen_at, cif_calibration_at_horizon, cif_calibration_groups

B, P = 0.7, 0.4


def _design(rng, n):
    """Fine & Gray (JASA 1999, section 5): F1(t | x) = 1 - (1 - p(1 - e^-t))^exp(bx), known exactly."""
    x = rng.normal(size=n)
    f1_inf = 1 - (1 - P) ** np.exp(B * x)
    c1 = rng.random(n) < f1_inf
    v = rng.random(n) * f1_inf
    t1 = -np.log(1 - (1 - (1 - v) ** np.exp(-B * x)) / P)
    t = np.where(c1, t1, rng.exponential(1.0, n))
    c = rng.exponential(2.0, n)
    return pd.DataFrame({"x": x, "time": np.minimum(t, c), "status": np.where(t <= c, np.where(c1, 1, 2), 0)})


def _true_cif(x, h):
    return 1 - (1 - P * (1 - np.exp(-h))) ** np.exp(B * np.asarray(x))


def test_aalen_johansen_at_matches_lifelines_without_ties_and_a_hand_case_with_ties():
    d = _design(np.random.default_rng(2), 300)
    aj = cumulative_incidence(d["time"], d["status"])
    for h in (0.2, 0.7, 1.5):
        ref = float(aj.loc[aj["time"] <= h, "cif"].iloc[-1])
        assert aalen_johansen_at(d["time"], d["status"], h) == pytest.approx(ref, abs=1e-9)
    # by hand, times 1,1,2,2,3 with status 1,2,1,0,1: at 1, Y=5, S(1-)=1, d1=1 -> 1/5; S(1)=3/5.
    # at 2, Y=3, d1=1 -> + 3/5 * 1/3 = 1/5 (the censoring at 2 counts after); S(2) = 3/5 * 2/3 = 2/5.
    # at 3, Y=1 -> + 2/5.
    t, s = [1, 1, 2, 2, 3], [1, 2, 1, 0, 1]
    assert aalen_johansen_at(t, s, 1.0) == pytest.approx(0.2)
    assert aalen_johansen_at(t, s, 2.0) == pytest.approx(0.4)
    assert aalen_johansen_at(t, s, 3.0) == pytest.approx(0.8)
    assert aalen_johansen_at(t, s, 0.5) == 0.0


def test_true_cumulative_incidence_is_calibrated_and_a_distorted_one_is_not():
    d = _design(np.random.default_rng(5), 2000)
    h = 1.0
    truth = _true_cif(d["x"], h)
    good = cif_calibration_at_horizon(d["time"], d["status"], truth, h)
    # sampling noise only: the Aalen-Johansen SE of the overall incidence (about 0.3) is about 0.011 here
    assert good.ici < 0.03 and good.e90 < 0.05
    groups = cif_calibration_groups(d["time"], d["status"], truth, h)
    assert len(groups) == 10 and groups["n"].sum() == 2000
    # groups of 200: the Aalen-Johansen SE is about 0.03 per group
    assert np.mean(np.abs(groups["observed"] - groups["mean_predicted"])) < 0.05
    assert np.mean((groups["lower"] <= groups["mean_predicted"]) & (groups["mean_predicted"] <= groups["upper"])) >= 0.7
    # halving the predicted incidence: observed is about twice predicted, in every group, and ICI shows it
    bad = cif_calibration_at_horizon(d["time"], d["status"], truth / 2, h)
    assert bad.ici > 0.08 and bad.ici == pytest.approx(np.mean(truth / 2), rel=0.25)
    g_bad = cif_calibration_groups(d["time"], d["status"], truth / 2, h)
    assert np.all(g_bad["observed"] > g_bad["mean_predicted"])
    # the smoothed curve lies on the diagonal for the true model and above it for the halved one
    mid = len(good.predicted) // 2
    assert good.observed[mid] == pytest.approx(good.predicted[mid], abs=0.04)
    assert bad.observed[mid] > 1.5 * bad.predicted[mid]


def test_fine_gray_predictions_are_calibrated_in_sample_and_beat_ignoring_the_covariate():
    d = _design(np.random.default_rng(8), 1500)
    fg = FineGray(["x"]).fit(d)
    pred = fg.predict_cif(d, [0.5, 1.0])
    assert pred.shape == (1500, 2)
    fitted = cif_calibration_at_horizon(d["time"], d["status"], pred[:, 1], 1.0)
    flat = np.full(len(d), aalen_johansen_at(d["time"], d["status"], 1.0))
    # one number for everyone: calibration-in-the-large holds, but not within risk groups
    g_flat = cif_calibration_groups(d["time"], d["status"], flat + 1e-9 * d["x"].to_numpy(), 1.0)
    assert fitted.ici < 0.02  # in-sample: the baseline absorbs calibration-in-the-large
    assert g_flat["observed"].iloc[-1] - g_flat["observed"].iloc[0] > 0.2


def test_cif_calibration_rejects_bad_input():
    d = _design(np.random.default_rng(1), 200)
    p = _true_cif(d["x"], 1.0)
    with pytest.raises(InputError, match="predicted: value"):
        cif_calibration_at_horizon(d["time"], d["status"], np.where(np.arange(200) == 3, 1.5, p), 1.0)
    with pytest.raises(InputError, match="beyond every follow-up"):
        cif_calibration_groups(d["time"], d["status"], p, 1e6)
    with pytest.raises(InputError, match="no event"):
        cif_calibration_at_horizon(d["time"], np.where(d["status"] == 1, 2, d["status"]), p, 1.0)
    with pytest.raises(InputError, match="length"):
        cif_calibration_groups(d["time"][:-1], d["status"], p, 1.0)
