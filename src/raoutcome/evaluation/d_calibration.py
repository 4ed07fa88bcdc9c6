"""D-calibration: are a model's predicted survival probabilities at the observed times uniform?

If S_i is patient i's true survival function, S_i(T_i) is Uniform(0, 1). D-calibration (Haider,
Hoehn, Davis & Greiner, JMLR 2020, "Effective ways to build and evaluate individual survival
distributions", section 4.3) bins the predicted S_i(t_i) into ``n_bins`` equal intervals of [0, 1]:
an event adds 1 to the bin holding S_i(t_i); a patient censored at c_i with s = S_i(c_i) (their
probability is only known to lie in [0, s]) adds (s - lower edge)/s to the bin holding s and
width/s to every bin below it. Pearson's chi-square of the counts against n/B per bin, B - 1
degrees of freedom; a small p-value says the model is not D-calibrated.
"""
from __future__ import annotations

__all__ = ["DCalibration", "d_calibration"]

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike

from raoutcome.errors import InputError
from raoutcome.evaluation._common import check_events, complete


@dataclass(frozen=True)
class DCalibration:
    """Bin counts of S_i(t_i), the chi-square statistic and its p-value."""

    statistic: float
    p_value: float
    n: int
    n_bins: int
    counts: np.ndarray = field(repr=False)  # expected n / n_bins each


def d_calibration(surv_at_time: ArrayLike, event: ArrayLike, n_bins: int = 10) -> DCalibration:
    """D-calibration of predicted S_i(t_i) (``surv_at_time``) with event flags ``event`` (1 event, 0 censored)."""
    from scipy.stats import chi2

    s, e = complete(min_n=2, surv_at_time=surv_at_time, event=event)
    e = check_events(e)
    if np.any((s < 0) | (s > 1)):
        i = int(np.flatnonzero((s < 0) | (s > 1))[0])
        raise InputError(f"surv_at_time: value {float(s[i])!r} at complete row {i} is not a probability")
    if n_bins < 2:
        raise InputError("d_calibration: need at least 2 bins")
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    k = np.minimum(np.searchsorted(edges, s, side="right") - 1, n_bins - 1)  # bin holding each value
    counts = np.bincount(k[e], minlength=n_bins).astype(float)
    for si, ki in zip(s[~e], k[~e]):
        if si <= 0:
            counts[0] += 1.0
            continue
        counts[ki] += (si - edges[ki]) / si
        counts[:ki] += (edges[1] - edges[0]) / si
    expected = len(s) / n_bins
    stat = float(((counts - expected) ** 2 / expected).sum())
    return DCalibration(statistic=stat, p_value=float(chi2.sf(stat, n_bins - 1)), n=len(s), n_bins=n_bins,
                        counts=counts)
