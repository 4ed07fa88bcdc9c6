"""RMSE, MAE, bias and correlations on hand-computed vectors; missing values masked."""
from __future__ import annotations

import math

import numpy as np
import pytest

from raoutcome.errors import InputError
from raoutcome.evaluation import bias, mae, pearson, pearson_r, r2, rmse, spearman, spearman_rho

Y = [1.0, 2.0, 3.0, 4.0]
P = [2.0, 2.0, 1.0, 4.0]  # errors +1, 0, -2, 0


def test_error_metrics_by_hand():
    assert rmse(Y, P) == pytest.approx(math.sqrt((1 + 0 + 4 + 0) / 4))
    assert mae(Y, P) == pytest.approx(3 / 4)
    assert bias(Y, P) == pytest.approx(-1 / 4)


def test_r2_by_hand_and_batched():
    # SSE = 1 + 0 + 4 + 0 = 5; mean 2.5, SST = 2.25 + 0.25 + 0.25 + 2.25 = 5 -> R² = 0
    assert r2(Y, P) == pytest.approx(0.0)
    assert r2(Y, [1.5, 2.0, 3.0, 4.0]) == pytest.approx(1 - 0.25 / 5)
    assert r2([1.0, 2.0, 3.0], [3.0, 3.0, 3.0]) == pytest.approx(1 - 5 / 2)  # worse than the mean: negative
    assert math.isnan(r2([2.0, 2.0, 2.0], [1.0, 2.0, 3.0]))  # no spread in the observed values
    w = np.array([[1.0, 1.0, 1.0, 1.0], [2.0, 0.0, 1.0, 1.0]])  # a bootstrap resample as counts per row
    twice = [Y[0], Y[0], Y[2], Y[3]], [P[0], P[0], P[2], P[3]]
    assert np.allclose(r2.batched(w, np.array(Y), np.array(P)), [r2(Y, P), r2(*twice)])


def test_missing_rows_are_masked_not_propagated():
    assert rmse(Y + [np.nan], P + [7.0]) == pytest.approx(rmse(Y, P))
    assert mae([np.nan] + Y, [1.0] + P) == pytest.approx(mae(Y, P))


def test_correlations_by_hand():
    x = [1.0, 2.0, 3.0, 4.0, 5.0]
    y = [2.0, 1.0, 4.0, 3.0, 5.0]
    # deviations x: -2..2, y: -1,-2,1,0,2 -> sxy = 2+2+0+0+4 = 8, sxx = 10, syy = 10 -> r = 0.8
    assert pearson_r(x, y) == pytest.approx(0.8)
    assert spearman_rho(x, y) == pytest.approx(0.8)  # ranks equal the values here
    res = pearson(x, y)
    # Fisher z interval: tanh(atanh(0.8) -/+ 1.96 / sqrt(n - 3))
    z, se = math.atanh(0.8), 1 / math.sqrt(2)
    assert res.ci_low == pytest.approx(math.tanh(z - 1.959964 * se), abs=1e-5)
    assert res.ci_high == pytest.approx(math.tanh(z + 1.959964 * se), abs=1e-5)
    assert res.n == 5 and res.method == "pearson"
    assert math.isnan(spearman(x, y).ci_low)  # scipy gives no interval for Spearman


def test_constant_input_gives_nan_and_bad_input_raises():
    assert math.isnan(pearson_r([1, 2, 3], [4, 4, 4]))
    with pytest.raises(InputError, match="differ in length"):
        rmse([1, 2], [1, 2, 3])
    with pytest.raises(InputError, match="expected numbers"):
        mae(["a", "b"], [1, 2])
    with pytest.raises(InputError, match="0 complete row"):
        rmse([np.nan], [1.0])
