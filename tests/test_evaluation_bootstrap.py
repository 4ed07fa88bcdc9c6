"""Patient-level bootstrap, the paired Bayes factor and the top-k ensemble curve."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from raoutcome.errors import InputError
from raoutcome.evaluation import (average_predictions, bayes_factor, bias, bootstrap_ci, bootstrap_metrics,
                                  dream_weighted_rmse, ensemble_curve, harrell_c, mae, pearson_r, rmse)
from raoutcome.evaluation.bootstrap import Resampler, compare_samples


def test_percentile_ci_covers_true_mean_at_nominal_rate():
    rng = np.random.default_rng(2024)
    hits = 0
    reps = 200
    for r in range(reps):
        x = rng.normal(3.0, 1.0, 60)
        res = bootstrap_ci(bias, np.zeros(60), x, n_boot=500, seed=r)  # bias(0, x) = mean of x
        hits += res.ci_low <= 3.0 <= res.ci_high
    # 95 % nominal; the percentile interval runs slightly narrow at n = 60
    assert 0.88 <= hits / reps <= 0.99


@settings(max_examples=30, deadline=None)
@given(sizes=st.lists(st.integers(1, 5), min_size=1, max_size=12), seed=st.integers(0, 10_000))
def test_patient_resamples_keep_every_visit_of_a_drawn_patient(sizes, seed):
    groups = np.repeat([f"p{i}" for i in range(len(sizes))], sizes)
    rng = np.random.default_rng(seed)
    groups = groups[rng.permutation(len(groups))]  # visits of a patient need not be adjacent
    sampler = Resampler(len(groups), groups, seed=seed)
    labels, inverse = np.unique(groups, return_inverse=True)
    for draws in sampler.draws(5):
        counts = sampler.counts(draws)
        for units, row_counts in zip(draws, counts):
            rows = sampler.rows(units)
            assert np.array_equal(np.bincount(rows, minlength=len(groups)), row_counts)
            drawn = np.bincount(units, minlength=len(sizes))
            for unit_rows in (np.flatnonzero(inverse == k) for k in range(len(labels))):
                # all rows of a patient appear equally often: whole patients, never single visits
                assert len(set(row_counts[unit_rows])) == 1
            assert sorted(np.unique(row_counts[row_counts > 0]).tolist()) == sorted(set(drawn[drawn > 0]))


def test_patient_bootstrap_is_wider_than_visit_bootstrap_for_clustered_errors():
    rng = np.random.default_rng(5)
    n_pat, n_vis = 60, 6
    ids = np.repeat(np.arange(n_pat), n_vis)
    truth = rng.normal(20, 5, n_pat * n_vis)
    pred = truth + np.repeat(rng.normal(0, 3, n_pat), n_vis) + rng.normal(0, 0.5, n_pat * n_vis)
    by_patient = bootstrap_ci(bias, truth, pred, patient_ids=ids, n_boot=800, seed=1)
    by_visit = bootstrap_ci(bias, truth, pred, n_boot=800, seed=1)
    assert by_patient.std_error > 1.8 * by_visit.std_error  # errors shared within a patient


def test_vectorised_and_per_resample_paths_agree_and_seed_reproduces():
    rng = np.random.default_rng(0)
    ids = np.repeat(np.arange(40), 3)
    y = rng.gamma(1.0, 20, 120).round()
    p = y + rng.normal(0, 4, 120)
    y[5] = np.nan  # a missing outcome is masked in both paths
    metrics = {"rmse": rmse, "rmse_loop": lambda a, b: rmse(a, b), "r": pearson_r, "r_loop": lambda a, b: pearson_r(a, b),
               "dream": dream_weighted_rmse, "dream_loop": lambda a, b: dream_weighted_rmse(a, b)}
    res = bootstrap_metrics(metrics, y, p, patient_ids=ids, n_boot=300, seed=7)
    for name in ("rmse", "r", "dream"):
        np.testing.assert_allclose(res[name].samples, res[f"{name}_loop"].samples, rtol=1e-9)
    again = bootstrap_ci(mae, y, p, patient_ids=ids, n_boot=300, seed=7)
    other = bootstrap_ci(mae, y, p, patient_ids=ids, n_boot=300, seed=8)
    assert np.array_equal(again.samples, bootstrap_ci(mae, y, p, patient_ids=ids, n_boot=300, seed=7).samples)
    assert not np.array_equal(again.samples, other.samples)


def test_failed_resamples_are_counted_not_hidden():
    # 2 events among 30 patients: some resamples hold no event and the C-index fails there
    time = np.arange(1.0, 31.0)
    event = np.zeros(30)
    event[[3, 20]] = 1
    risk = -time
    res = bootstrap_ci(harrell_c, time, event, risk, n_boot=300, seed=0)
    assert 0 < res.n_failed < 300
    assert np.isfinite(res.ci_low)


def test_bootstrap_rejects_bad_arguments():
    with pytest.raises(InputError, match="patient_ids: 2 values for 3 rows"):
        bootstrap_ci(rmse, [1, 2, 3], [1, 2, 3], patient_ids=["a", "b"])
    with pytest.raises(InputError, match="level"):
        bootstrap_ci(rmse, [1, 2, 3], [1, 2, 3], level=95)


def test_bayes_factor_large_when_a_clearly_better_and_one_when_identical():
    rng = np.random.default_rng(11)
    y = rng.gamma(1.0, 20, 200).round()
    good = y + rng.normal(0, 1, 200)
    bad = y + rng.normal(0, 10, 200)
    clear = bayes_factor(y, good, bad, rmse, n_boot=500)
    assert clear.k > 3 and clear.verdict == "A better" and clear.n_b_better == 0
    assert bayes_factor(y, bad, good, rmse, n_boot=500).verdict == "B better"
    same = bayes_factor(y, good, good.copy(), rmse, n_boot=500)
    assert same.k == 1.0 and same.verdict == "tied" and same.n_ties == 500
    # two different prediction sets of equal quality: no evidence either way
    twin = y + rng.normal(0, 1, 200)
    assert 1 / 3 < bayes_factor(y, good, twin, rmse, n_boot=500).k < 3
    # larger-is-better metrics flip the comparison; tuple truth for survival-style metrics
    assert bayes_factor(y, good, bad, pearson_r, larger_is_better=True, n_boot=300).verdict == "A better"


def test_compare_samples_counts_ties_half():
    k, n_a, n_b, ties, verdict = compare_samples([1.0, 2.0, 3.0, 3.0], [2.0, 2.0, 4.0, 1.0])
    # lower is better: A better on rows 0 and 2, tie on row 1, B better on row 3 -> (2 + .5) / (1 + .5)
    assert (n_a, n_b, ties) == (2, 1, 1) and k == pytest.approx(2.5 / 1.5) and verdict == "tied"
    assert compare_samples([np.nan], [np.nan])[-1] == "not tested"


def test_average_predictions_skips_missing_models():
    avg = average_predictions({"a": [1.0, 2.0, np.nan], "b": [3.0, np.nan, np.nan]})
    assert avg[:2].tolist() == [2.0, 2.0] and math.isnan(avg[2])


def test_ensemble_curve_ranks_models_and_tests_against_the_top():
    rng = np.random.default_rng(3)
    y = rng.gamma(1.0, 20, 300)
    preds = {"m_mid": y + rng.normal(0, 4, 300), "m_best": y + rng.normal(0, 3, 300),
             "m_low": y + rng.normal(0, 5, 300)}
    curve = ensemble_curve(y, preds, rmse, n_boot=400)
    assert curve["added"].tolist() == ["m_best", "m_mid", "m_low"]  # ranked by own RMSE
    assert curve.loc[0, "bayes_factor"] == 1.0 and curve.loc[0, "verdict"] == "tied"
    # independent errors average out: the top-3 mean beats the best single model clearly
    assert curve.loc[2, "score"] < curve.loc[0, "score"]
    assert curve.loc[2, "verdict"] == "ensemble better"
    assert (curve["ci_low"] <= curve["score"]).all() and (curve["score"] <= curve["ci_high"]).all()
    # C-index style metric: truth as (time, event), larger is better
    time = np.exp(-y / 20) + 0.01
    event = np.ones(300)
    surv_curve = ensemble_curve((time, event), preds, harrell_c, larger_is_better=True, n_boot=50)
    assert surv_curve.loc[0, "added"] == "m_best"


def test_with_batched_is_public_and_no_module_imports_the_private_helpers_across_packages():
    import ast
    from pathlib import Path

    from raoutcome.evaluation import with_batched

    calls = []

    def batched(weights, y):
        calls.append(weights.shape)
        return weights @ y / weights.sum(axis=1)

    @with_batched(batched)
    def weighted_mean(y):
        return float(np.mean(y))

    assert weighted_mean.batched is batched and weighted_mean(np.array([1.0, 3.0])) == 2.0
    y = np.random.default_rng(0).normal(size=30)
    fast = bootstrap_metrics({"m": weighted_mean}, y, n_boot=200, seed=4)["m"]
    slow = bootstrap_metrics({"m": lambda a: float(np.mean(a))}, y, n_boot=200, seed=4)["m"]
    assert calls and np.allclose(fast.samples, slow.samples)
    # only raoutcome.evaluation itself may import its private _common module
    src = Path(__file__).resolve().parents[1] / "src" / "raoutcome"
    offenders = []
    for path in src.rglob("*.py"):
        if path.parent.name == "evaluation":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("raoutcome.evaluation._"):
                offenders.append(f"{path.relative_to(src)}: {node.module}")
    assert offenders == []
