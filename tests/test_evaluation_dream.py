"""The RA2-DREAM weighted RMSE and its absolute variant on hand-computed vectors."""
from __future__ import annotations

import math

import numpy as np
import pytest

from raoutcome.errors import InputError
from raoutcome.evaluation import dream_bin, dream_weighted_mae, dream_weighted_rmse, dream_weights


def test_bins_and_weights_follow_the_paper():
    # bins 0, 1, 2-3, 4-7, 8-20, 21-55, 56-148, >148; thresholds 0, 1, 1.1, 1.95, 3, 4, 5, 6; weight 2**threshold
    y = [0, 1, 2, 3, 4, 7, 8, 20, 21, 55, 56, 148, 149, 448]
    assert dream_bin(y).tolist() == [0, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7]
    expected = [1, 2, 2 ** 1.1, 2 ** 1.1, 2 ** 1.95, 2 ** 1.95, 8, 8, 16, 16, 32, 32, 64, 64]
    np.testing.assert_allclose(dream_weights(y), expected)
    # non-integer truths (a mean of two readers) fall in the bin whose upper limit they do not exceed
    np.testing.assert_allclose(dream_weights([0.5, 2.5, 3.5, 148.5]), [2, 2 ** 1.1, 2 ** 1.95, 64])


def test_weighted_rmse_closed_form():
    # y = 0 (weight 1), prediction e - 1: log(0+1) - log(e) = -1;  y = 3 (weight 2**1.1), exact: 0.
    y, s = [0.0, 3.0], [math.e - 1, 3.0]
    total_w = 1 + 2 ** 1.1
    assert dream_weighted_rmse(y, s) == pytest.approx(math.sqrt(1 / total_w))   # 0.56402
    assert dream_weighted_mae(y, s) == pytest.approx(1 / total_w)               # 0.31811


def test_weighted_rmse_by_hand_over_every_bin():
    y = np.array([0, 1, 2.5, 5, 10, 30, 100, 200])
    s = np.array([1, 1, 2, 7, 10, 25, 150, 148])
    w = np.array([1, 2, 2 ** 1.1, 2 ** 1.95, 8, 16, 32, 64])  # one truth per bin, in bin order
    d = np.log(y + 1) - np.log(s + 1)
    assert dream_weighted_rmse(y, s) == pytest.approx(math.sqrt(np.sum(w * d ** 2) / np.sum(w)))
    assert dream_weighted_mae(y, s) == pytest.approx(np.sum(w * np.abs(d)) / np.sum(w))


def test_weights_come_from_truth_or_weight_by_not_prediction():
    # swapping truth and prediction changes the weights, hence the score
    y, s = [0.0, 100.0], [100.0, 0.0]
    assert dream_weighted_rmse(y, s) == pytest.approx(math.log(101))  # symmetric errors: weights cancel
    y2, s2 = [0.0, 50.0], [10.0, 50.0]
    assert dream_weighted_rmse(y2, s2) != pytest.approx(dream_weighted_rmse(s2, y2))
    # per-joint scoring weighted by the patient's overall score
    joint_true, joint_pred, overall = [0.0, 2.0], [1.0, 2.0], [200.0, 10.0]  # weights 64 and 8
    expected = math.sqrt(64 * math.log(2) ** 2 / 72)
    assert dream_weighted_rmse(joint_true, joint_pred, weight_by=overall) == pytest.approx(expected)


def test_missing_ignored_negative_prediction_clipped_negative_truth_rejected():
    assert dream_weighted_rmse([0, 3, np.nan], [math.e - 1, 3, 5]) == pytest.approx(math.sqrt(1 / (1 + 2 ** 1.1)))
    assert dream_weighted_rmse([0, 3], [-2, 3]) == 0.0
    with pytest.raises(InputError, match="y_true: value -1.0 at index 0 is negative"):
        dream_weighted_rmse([-1, 3], [0, 3])
    with pytest.raises(InputError, match="differ in length"):
        dream_weighted_rmse([1, 2, 3], [1, 2])
