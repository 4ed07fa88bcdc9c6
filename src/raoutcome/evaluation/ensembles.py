"""Ensembles of prediction sets by averaging, and the "add the next-ranked model" curve.

RA2-DREAM (seeds/000, Ensemble Modeling): rank the models by their own score,
then average the top 1, top 2, ..., all n models and score each average; a
paired bootstrap Bayes factor tells whether an ensemble beats the best single
model (K > 3) or ties with it.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from raoutcome.errors import InputError
from raoutcome.evaluation._common import as_array, same_length
from raoutcome.evaluation.bootstrap import Metric, bootstrap_metrics, compare_samples, selecting, truth_tuple


def average_predictions(predictions: Mapping[str, ArrayLike] | Sequence[ArrayLike]) -> np.ndarray:
    """Row-wise mean of several prediction sets; a model missing a row (NaN) is skipped there."""
    items = predictions.items() if isinstance(predictions, Mapping) else enumerate(predictions)
    arrays = {str(name): as_array(p, f"predictions[{name}]") for name, p in items}
    if not arrays:
        raise InputError("average_predictions: no prediction sets")
    same_length(arrays)
    stack = np.vstack(list(arrays.values()))
    n = np.isfinite(stack).sum(axis=0)
    total = np.nansum(stack, axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, total / np.maximum(n, 1), np.nan)


def ensemble_curve(truth: ArrayLike | Sequence[ArrayLike], predictions: Mapping[str, ArrayLike], metric: Metric,
                   larger_is_better: bool = False, patient_ids: ArrayLike | None = None, n_boot: int = 1000,
                   level: float = 0.95, seed: int | None = 0, threshold: float = 3.0,
                   progress: bool | None = None) -> pd.DataFrame:
    """Score the averages of the top-k models, k = 1..n, against the best single model.

    ``truth`` is ``y_true`` or a tuple such as ``(time, event)``; the metric is
    called as ``metric(*truth, pred)``. One row per k: ``k``, ``added`` (the
    model joining at k), ``score`` with its bootstrap ``ci_low``/``ci_high``,
    and ``bayes_factor`` / ``verdict`` ("ensemble better", "top model better",
    "tied") of the k-ensemble against the top model (k = 1 compares the top
    model with itself: K = 1, tied).
    """
    if not predictions:
        raise InputError("ensemble_curve: no prediction sets")
    truth_arrays = truth_tuple(truth)
    m = len(truth_arrays)
    cols = list(range(m))
    names = list(predictions)
    preds = [as_array(predictions[name], f"predictions[{name}]") for name in names]
    own = {name: float(metric(*truth_arrays, p)) for name, p in zip(names, preds)}
    unusable = [name for name, s in own.items() if not np.isfinite(s)]
    if unusable:
        raise InputError(f"ensemble_curve: metric is not finite for model(s) {unusable}")
    ranked = sorted(names, key=lambda name: own[name], reverse=larger_is_better)
    by_name = dict(zip(names, preds))
    ensembles = [average_predictions([by_name[name] for name in ranked[:k]]) for k in range(1, len(ranked) + 1)]
    metrics = {f"k{k}": selecting(metric, cols + [m + k - 1]) for k in range(1, len(ranked) + 1)}
    res = bootstrap_metrics(metrics, *truth_arrays, *ensembles, patient_ids=patient_ids, n_boot=n_boot,
                            level=level, seed=seed, progress=progress)
    top = res["k1"].samples
    rows = []
    for k, name in enumerate(ranked, start=1):
        r = res[f"k{k}"]
        bf, _, _, _, verdict = compare_samples(r.samples, top, larger_is_better, threshold)
        verdict = {"A better": "ensemble better", "B better": "top model better"}.get(verdict, verdict)
        rows.append({"k": k, "added": name, "own_score": own[name], "score": r.estimate, "ci_low": r.ci_low,
                     "ci_high": r.ci_high, "bayes_factor": bf, "verdict": verdict})
    return pd.DataFrame(rows)
