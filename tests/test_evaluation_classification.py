"""Binary metrics at a horizon (censoring handled) and severity classes, on hand-made examples."""
from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from raoutcome.errors import InputError
from raoutcome.evaluation import binary_metrics, horizon_labels, horizon_metrics, severity_class, severity_metrics
from raoutcome.evaluation.classification import auroc_score

# Horizon 2 years. Patient by patient:
#   p0 event at 1        -> positive      p3 censored at 2 (followed to the horizon) -> negative
#   p1 event at 3        -> negative      p4 event at 2 (by the horizon)              -> positive
#   p2 censored at 1.5   -> unknown, out  p5 censored at 5                            -> negative
TIME = [1.0, 3.0, 1.5, 2.0, 2.0, 5.0]
EVENT = [1, 1, 0, 0, 1, 0]
SCORE = [0.9, 0.6, 0.8, 0.2, 0.4, 0.1]


def test_horizon_labels_exclude_censored_before_horizon():
    label, keep = horizon_labels(TIME, EVENT, 2.0)
    assert keep.tolist() == [True, True, False, True, True, True]
    assert label[keep].tolist() == [1, 0, 0, 1, 0]


def test_horizon_metrics_by_hand():
    m = horizon_metrics(TIME, EVENT, SCORE, horizon=2.0, threshold=0.5)
    # kept: p0 (1, 0.9: TP), p1 (0, 0.6: FP), p3 (0, 0.2: TN), p4 (1, 0.4: FN), p5 (0, 0.1: TN)
    assert (m.tp, m.fp, m.tn, m.fn) == (1, 1, 2, 1)
    assert m.accuracy == pytest.approx(3 / 5)
    assert m.sensitivity == pytest.approx(1 / 2)
    assert m.specificity == pytest.approx(2 / 3)
    assert m.ppv == pytest.approx(1 / 2)
    assert m.npv == pytest.approx(2 / 3)
    # positives 0.9, 0.4 vs negatives 0.6, 0.2, 0.1: 3 + 2 of 6 pairs ordered right
    assert m.auroc == pytest.approx(5 / 6)
    assert m.n == 5 and m.n_excluded == 1 and m.prevalence == pytest.approx(2 / 5)


def test_binary_metrics_undefined_rates_are_nan_and_flags_checked():
    m = binary_metrics([0, 0, 1], [0.1, 0.2, 0.3], threshold=0.9)  # nothing predicted positive
    assert math.isnan(m.ppv) and m.npv == pytest.approx(2 / 3)
    assert math.isnan(binary_metrics([0, 0], [0.1, 0.7]).auroc)  # one class only
    with pytest.raises(InputError, match="value 2.0 at index 1 is not 0/1"):
        binary_metrics([0, 2], [0.1, 0.2])
    with pytest.raises(InputError, match="no patient has a known status"):
        horizon_metrics([1.0], [0], [0.5], horizon=2.0)


def test_rank_auroc_equals_sklearn_with_ties():
    rng = np.random.default_rng(3)
    y = rng.random(300) < 0.3
    s = np.round(rng.normal(size=300) + y, 1)  # rounding makes many tied scores
    assert auroc_score(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)


def test_severity_classes_and_metrics_by_hand():
    # default cut-offs = RA2-DREAM bins: 0 | 1 | 2-3 | 4-7 | 8-20 | 21-55 | 56-148 | >148
    assert severity_class([0, 0.4, 1, 3, 3.5, 20, 21, 148, 149]).tolist() == [0, 1, 1, 2, 3, 4, 5, 6, 7]
    true = [0, 2, 5, 30, 200]     # classes 0, 2, 3, 5, 7
    pred = [0.4, 3, 8, 25, 140]   # classes 1, 2, 4, 5, 6
    m = severity_metrics(true, pred)
    assert m.accuracy == pytest.approx(2 / 5)
    # 8 classes occur in truth or prediction; F1 is 1 for classes 2 and 5, 0 elsewhere
    assert m.macro_f1 == pytest.approx(2 / 8)
    assert m.per_class.set_index("class").loc[2, ["precision", "recall"]].tolist() == [1.0, 1.0]
    assert m.confusion.loc["0", "1"] == 1 and m.confusion.to_numpy().sum() == 5
    assert m.class_mae == pytest.approx(3 / 5)      # class differences 1, 0, 1, 0, -1
    assert m.class_rmse == pytest.approx(math.sqrt(3 / 5))


def test_custom_cutoffs():
    m = severity_metrics([1, 10, 50], [2, 45, 80], cutoffs=[5, 40])  # 45 lands one class up
    assert m.accuracy == pytest.approx(2 / 3)
    assert list(m.confusion.index) == ["<= 5", "(5, 40]", "> 40"]
    with pytest.raises(InputError, match="increase strictly"):
        severity_class([1], cutoffs=[5, 5])
