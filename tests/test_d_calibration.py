"""D-calibration: hand-computed bins, a true model passes, a wrong one fails."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import chi2

from raoutcome.errors import InputError
from raoutcome.evaluation.d_calibration import d_calibration


def test_counts_by_hand():
    # 4 bins. Events at S = 0.1, 0.6; a patient censored at S = 0.6 spreads 1 over [0, 0.6]:
    # bin [0.5, 0.75): (0.6 - 0.5)/0.6 = 1/6; bins [0, .25) and [.25, .5): 0.25/0.6 = 5/12 each.
    res = d_calibration([0.1, 0.6, 0.6], [1, 1, 0], n_bins=4)
    np.testing.assert_allclose(res.counts, [1 + 5 / 12, 5 / 12, 1 + 1 / 6, 0.0])
    expected = 3 / 4
    stat = sum((c - expected) ** 2 / expected for c in res.counts)
    assert res.statistic == pytest.approx(stat)
    assert res.p_value == pytest.approx(chi2.sf(stat, 3))
    assert res.counts.sum() == pytest.approx(3)


def _exp_data(rng, n, rate):
    t = rng.exponential(1 / rate)
    c = rng.exponential(1 / 0.1, n)
    return np.minimum(t, c), (t <= c).astype(int)


def test_true_model_is_d_calibrated_and_a_wrong_one_is_not():
    rng = np.random.default_rng(0)
    rate = np.exp(rng.normal(0, 0.7, 3000)) * 0.3
    time, event = _exp_data(rng, 3000, rate)
    assert d_calibration(np.exp(-rate * time), event).p_value > 0.01
    assert d_calibration(np.exp(-2 * rate * time), event).p_value < 1e-6


def test_bad_input():
    with pytest.raises(InputError, match="not a probability"):
        d_calibration([0.5, 1.2], [1, 0])
