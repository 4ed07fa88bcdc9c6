"""Patient-level bootstrap: percentile CIs for any metric and the RA2-DREAM Bayes factor.

Resampling
    With ``patient_ids``, each resample draws patients with replacement and
    keeps **all** of a drawn patient's rows (visits), as often as the patient
    is drawn; without them, rows are drawn. Every metric of one call sees the
    same resamples, which is what makes paired comparisons (the Bayes factor)
    paired. Draws come from ``numpy.random.default_rng(seed)`` in fixed
    chunks, so a seed gives the same resamples whatever the metrics.

Speed
    A metric carrying a ``batched`` form (RMSE, MAE, bias, Pearson r, the
    DREAM scores: see :func:`with_batched`) is
    evaluated for a whole chunk of resamples at once as a matrix product of
    resampling counts; any other metric is called once per resample. A
    resample on which a metric fails (e.g. no event, constant input) counts as
    failed and is left out of the interval; ``n_failed`` says how many.

Bayes factor (seeds/000; R package challengescoring, ``computeBayesFactor``)
    On each resample both prediction sets are scored; ``K = (#resamples where A
    is better) / (#resamples where B is better)``. ``K > 3``: A is better;
    ``K < 1/3``: B is better; otherwise tied (``"not tested"`` without resamples). Resamples on which the two scores
    are equal count half to each side (identical predictions give K = 1;
    challengescoring counts a tie for the candidate). K is infinite when B is
    never better.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterator, Mapping, Sequence

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from raoutcome.progress import tqdm

from raoutcome.errors import InputError
from raoutcome.evaluation._common import same_length

Metric = Callable[..., float]

def with_batched(batched: Callable[..., np.ndarray]) -> Callable[[Callable], Callable]:
    """Attach a vectorised bootstrap form to a metric (a decorator; the metric is returned unchanged).

    ``batched(weights, *arrays)`` takes a ``(B, n)`` matrix of resampling counts
    (how often each row is drawn in each of B resamples) and the metric's full
    arrays, and returns the B resampled metric values at once.
    :func:`bootstrap_metrics` uses it instead of calling the metric B times;
    results are identical.
    """
    def attach(metric: Callable) -> Callable:
        metric.batched = batched  # type: ignore[attr-defined]
        return metric
    return attach


#: Failures of a metric on one resample that the bootstrap records as NaN.
_RESAMPLE_ERRORS = (ValueError, ZeroDivisionError, FloatingPointError, np.linalg.LinAlgError, InputError)
#: Resampling-count matrices are built for at most this many cells at a time.
_CHUNK_CELLS = 4_000_000


@dataclass(frozen=True)
class BootstrapResult:
    """A metric on the full data with its percentile bootstrap interval."""

    estimate: float
    ci_low: float
    ci_high: float
    std_error: float
    level: float
    n_boot: int
    n_failed: int
    samples: np.ndarray = field(repr=False)


@dataclass(frozen=True)
class BayesFactor:
    """Paired bootstrap comparison of prediction sets A and B on one metric."""

    k: float
    n_a_better: int
    n_b_better: int
    n_ties: int
    verdict: str            # "A better", "B better" or "tied"
    score_a: float
    score_b: float
    samples_a: np.ndarray = field(repr=False)
    samples_b: np.ndarray = field(repr=False)


class Resampler:
    """Draws bootstrap resamples of rows, grouped by patient when ``groups`` is given."""

    def __init__(self, n_rows: int, groups: ArrayLike | None = None, seed: int | None = 0):
        self.n_rows = n_rows
        if groups is None:
            self.unit_of_row = np.arange(n_rows)
        else:
            labels = np.asarray(groups)
            if len(labels) != n_rows:
                raise InputError(f"patient_ids: {len(labels)} values for {n_rows} rows")
            if pd.isna(labels).any():
                raise InputError("patient_ids: missing patient id")
            self.unit_of_row = pd.factorize(labels)[0]
        self.n_units = int(self.unit_of_row.max()) + 1 if n_rows else 0
        order = np.argsort(self.unit_of_row, kind="stable")
        sizes = np.bincount(self.unit_of_row, minlength=self.n_units)
        self._order, self._sizes = order, sizes
        self._starts = np.concatenate(([0], np.cumsum(sizes)[:-1]))
        self.chunk = max(1, min(256, _CHUNK_CELLS // max(1, n_rows)))
        self._rng = np.random.default_rng(seed)

    def draws(self, n_boot: int) -> Iterator[np.ndarray]:
        """Chunks of unit draws, shape ``(chunk, n_units)``, ``n_boot`` rows in all."""
        done = 0
        while done < n_boot:
            size = min(self.chunk, n_boot - done)
            yield self._rng.integers(0, self.n_units, size=(size, self.n_units))
            done += size

    def rows(self, units: np.ndarray) -> np.ndarray:
        """Row indices of one resample (every row of each drawn unit)."""
        lengths = self._sizes[units]
        ends = np.cumsum(lengths)
        offsets = np.repeat(self._starts[units] - (ends - lengths), lengths)
        return self._order[offsets + np.arange(ends[-1] if len(ends) else 0)]

    def counts(self, draws: np.ndarray) -> np.ndarray:
        """Row resampling counts ``(chunk, n_rows)`` for a chunk of unit draws."""
        b = draws.shape[0]
        flat = (np.arange(b)[:, None] * self.n_units + draws).ravel()
        unit_counts = np.bincount(flat, minlength=b * self.n_units).reshape(b, self.n_units)
        return unit_counts[:, self.unit_of_row].astype(np.float64)


def _arrays(arrays: Sequence[ArrayLike]) -> tuple[np.ndarray, ...]:
    out = []
    for i, a in enumerate(arrays):
        arr = np.asarray(a)
        if arr.ndim == 0:
            raise InputError(f"array {i}: expected one value per row, got a scalar")
        out.append(arr.astype(np.float64) if arr.dtype.kind in "biuf" else arr)
    same_length({f"array {i}": a for i, a in enumerate(out)})
    return tuple(out)


def _call(metric: Metric, arrays: Sequence[np.ndarray]) -> float:
    try:
        value = float(metric(*arrays))
    except _RESAMPLE_ERRORS:
        return float("nan")
    return value


def bootstrap_metrics(metrics: Mapping[str, Metric], *arrays: ArrayLike, patient_ids: ArrayLike | None = None,
                      n_boot: int = 1000, level: float = 0.95, seed: int | None = 0,
                      progress: bool | None = None) -> dict[str, BootstrapResult]:
    """Bootstrap several metrics on the same resamples of ``arrays`` (one row per visit).

    Each metric is called as ``metric(*arrays)``. ``progress=None`` shows a
    progress bar when the work is large (metrics called one resample at a
    time, 2000 calls or more).
    """
    if n_boot < 0:
        raise InputError(f"n_boot must be >= 0, got {n_boot}")
    if not 0 < level < 1:
        raise InputError(f"level must be between 0 and 1, got {level}")
    data = _arrays(arrays)
    n_rows = len(data[0]) if data else 0
    if n_rows == 0:
        raise InputError("bootstrap: no rows")
    estimates = {name: _call(fn, data) for name, fn in metrics.items()}
    samples = {name: np.full(n_boot, np.nan) for name in metrics}
    looped = [name for name, fn in metrics.items() if getattr(fn, "batched", None) is None]
    if progress is None:
        progress = n_boot * len(looped) >= 2000
    batched = [name for name in metrics if name not in looped]
    resampler = Resampler(n_rows, patient_ids, seed)
    start = 0
    with tqdm(total=n_boot, disable=not progress or n_boot == 0, desc="bootstrap", leave=False) as bar:
        for draws in resampler.draws(n_boot):
            if batched:
                counts = resampler.counts(draws)
                for name in batched:
                    with np.errstate(all="ignore"):
                        samples[name][start:start + len(draws)] = metrics[name].batched(counts, *data)
            for j, units in enumerate(draws if looped else ()):
                rows = resampler.rows(units)
                picked = [a[rows] for a in data]
                for name in looped:
                    samples[name][start + j] = _call(metrics[name], picked)
            bar.update(len(draws))
            start += len(draws)
    return {name: _summarise(estimates[name], samples[name], level) for name in metrics}


def _summarise(estimate: float, samples: np.ndarray, level: float) -> BootstrapResult:
    ok = samples[np.isfinite(samples)]
    alpha = 1 - level
    if len(ok) >= 2:
        low, high = np.quantile(ok, [alpha / 2, 1 - alpha / 2])
        se = float(ok.std(ddof=1))
    else:
        low = high = se = float("nan")
    return BootstrapResult(estimate=estimate, ci_low=float(low), ci_high=float(high), std_error=se, level=level,
                           n_boot=len(samples), n_failed=int(len(samples) - len(ok)), samples=samples)


def bootstrap_ci(metric: Metric, *arrays: ArrayLike, patient_ids: ArrayLike | None = None, n_boot: int = 1000,
                 level: float = 0.95, seed: int | None = 0, progress: bool | None = None) -> BootstrapResult:
    """Percentile bootstrap CI of ``metric(*arrays)``, resampling patients when ``patient_ids`` is given."""
    return bootstrap_metrics({"metric": metric}, *arrays, patient_ids=patient_ids, n_boot=n_boot, level=level,
                             seed=seed, progress=progress)["metric"]


def compare_samples(samples_a: np.ndarray, samples_b: np.ndarray, larger_is_better: bool = False,
                    threshold: float = 3.0) -> tuple[float, int, int, int, str]:
    """``(K, n_a_better, n_b_better, n_ties, verdict)`` from paired bootstrap scores."""
    a, b = np.asarray(samples_a, float), np.asarray(samples_b, float)
    ok = np.isfinite(a) & np.isfinite(b)
    if not ok.any():
        return float("nan"), 0, 0, 0, "not tested"
    diff = (a[ok] - b[ok]) * (1 if larger_is_better else -1)
    n_a, n_b = int(np.sum(diff > 0)), int(np.sum(diff < 0))
    ties = int(ok.sum()) - n_a - n_b
    num, den = n_a + ties / 2, n_b + ties / 2
    if den == 0:
        k = float("inf") if num > 0 else float("nan")
    else:
        k = num / den
    verdict = "A better" if k > threshold else "B better" if k < 1 / threshold else "tied"
    return k, n_a, n_b, ties, verdict


def selecting(metric: Metric, columns: Sequence[int]) -> Metric:
    """``metric`` applied to the given columns of a wider array list (keeps its batched form)."""
    def picked(*arrays):
        return metric(*(arrays[i] for i in columns))

    batched = getattr(metric, "batched", None)
    if batched is not None:
        picked.batched = lambda w, *arrays: batched(w, *(arrays[i] for i in columns))  # type: ignore[attr-defined]
    return picked


def bayes_factor(truth: ArrayLike | Sequence[ArrayLike], pred_a: ArrayLike, pred_b: ArrayLike, metric: Metric,
                 larger_is_better: bool = False, patient_ids: ArrayLike | None = None, n_boot: int = 1000,
                 seed: int | None = 0, threshold: float = 3.0, progress: bool | None = None) -> BayesFactor:
    """Paired bootstrap Bayes factor of prediction set A over B.

    ``truth`` is ``y_true``, or a tuple of arrays for metrics that need more
    (``(time, event)`` for a C-index): the metric is called as
    ``metric(*truth, pred)``. Lower scores are better unless ``larger_is_better``.
    """
    truth_arrays = truth_tuple(truth)
    m = len(truth_arrays)
    cols = list(range(m))
    metrics = {"A": selecting(metric, cols + [m]), "B": selecting(metric, cols + [m + 1])}
    res = bootstrap_metrics(metrics, *truth_arrays, pred_a, pred_b, patient_ids=patient_ids, n_boot=n_boot,
                            seed=seed, progress=progress)
    k, n_a, n_b, ties, verdict = compare_samples(res["A"].samples, res["B"].samples, larger_is_better, threshold)
    return BayesFactor(k=k, n_a_better=n_a, n_b_better=n_b, n_ties=ties, verdict=verdict,
                       score_a=res["A"].estimate, score_b=res["B"].estimate,
                       samples_a=res["A"].samples, samples_b=res["B"].samples)


def truth_tuple(truth: ArrayLike | Sequence[ArrayLike]) -> tuple[ArrayLike, ...]:
    """``y_true`` as a 1-tuple; a tuple such as ``(time, event)`` as it is."""
    if isinstance(truth, tuple):
        return truth
    return (truth,)
