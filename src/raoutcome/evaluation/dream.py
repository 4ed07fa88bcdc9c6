"""The RA2-DREAM Challenge score for SvdH predictions (seeds/000, Sun et al. 2022).

Weighted RMSE (the paper's formula, used here as the default)::

    wRMSE = sqrt( Σ wᵢ (log(yᵢ + 1) − log(sᵢ + 1))² / Σ wᵢ )

natural log, ``y`` the true and ``s`` the predicted score. Each weight comes
from the bin of the **true** score: bins 0, 1, 2–3, 4–7, 8–20, 21–55, 56–148,
> 148 with thresholds 0, 1, 1.1, 1.95, 3, 4, 5, 6 (the log of each bin's upper
limit, except the first two) and ``wᵢ = 2 ** threshold``. Bins are closed on
the right (``y ≤ 0``, ``≤ 1``, ``≤ 3``, ``≤ 7``, ``≤ 20``, ``≤ 55``, ``≤ 148``,
``> 148``), so a non-integer truth such as a mean of two readers (2.5) falls in
the bin whose upper limit it does not exceed (2–3).

Weighted absolute error (``dream_weighted_mae``): the same weights and log
transform with ``|·|`` in place of the square and no root. The organisers'
forum describes the subchallenge-1 leaderboard score as a weighted absolute
error; the official R scorer is not public, so both are offered and the paper's
RMSE is the default everywhere in this library.

For per-joint scores (subchallenges 2/3) the weights come from the patient's
overall score, not the joint's: pass that as ``weight_by``.

Predictions below zero are clipped to 0 before the log (no SvdH score is
negative); negative true scores are rejected.
"""
from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from raoutcome.evaluation._common import as_array, check_nonnegative, complete, finite_weights, safe_divide
from raoutcome.evaluation.bootstrap import with_batched

#: Upper limits (inclusive) of the eight RA2-DREAM bins of the true SvdH score.
DREAM_BIN_UPPER: tuple[float, ...] = (0.0, 1.0, 3.0, 7.0, 20.0, 55.0, 148.0, float("inf"))
#: Bin labels, as the challenge paper writes them.
DREAM_BIN_LABELS: tuple[str, ...] = ("0", "1", "2-3", "4-7", "8-20", "21-55", "56-148", ">148")
#: Threshold of each bin; the weight is ``2 ** threshold``.
DREAM_THRESHOLDS: tuple[float, ...] = (0.0, 1.0, 1.1, 1.95, 3.0, 4.0, 5.0, 6.0)


def dream_bin(y_true: ArrayLike) -> np.ndarray:
    """Bin index 0..7 of each true score (closed on the right)."""
    y = as_array(y_true, "y_true")
    return np.searchsorted(np.asarray(DREAM_BIN_UPPER[:-1]), y, side="left")


def dream_weights(y_true: ArrayLike) -> np.ndarray:
    """``2 ** threshold`` of each true score's bin."""
    return np.power(2.0, np.asarray(DREAM_THRESHOLDS)[dream_bin(y_true)])


def _prepare(y_true: ArrayLike, y_pred: ArrayLike, weight_by: ArrayLike | None
             ) -> tuple[np.ndarray, np.ndarray]:
    """Squared-error-ready log differences and their weights, complete rows only."""
    by = y_true if weight_by is None else weight_by
    t, p, b = complete(y_true=y_true, y_pred=y_pred, weight_by=by)
    check_nonnegative(t, "y_true")
    check_nonnegative(b, "weight_by")
    d = np.log1p(t) - np.log1p(np.clip(p, 0.0, None))
    return d, dream_weights(b)


def _batched(power: int, root: bool):
    def batched(w: np.ndarray, y_true: np.ndarray, y_pred: np.ndarray, weight_by: np.ndarray | None = None
                ) -> np.ndarray:
        by = y_true if weight_by is None else weight_by
        w, (t, p, b) = finite_weights(w, y_true, y_pred, by)
        d = np.abs(np.log1p(t) - np.log1p(np.clip(p, 0.0, None))) ** power
        wi = np.power(2.0, np.asarray(DREAM_THRESHOLDS)[dream_bin(b)])
        out = safe_divide(w @ (wi * d), w @ wi)
        return np.sqrt(out) if root else out
    return batched


@with_batched(_batched(2, root=True))
def dream_weighted_rmse(y_true: ArrayLike, y_pred: ArrayLike, weight_by: ArrayLike | None = None) -> float:
    """RA2-DREAM weighted RMSE on ``log(y + 1)`` (the paper's formula; lower is better)."""
    d, w = _prepare(y_true, y_pred, weight_by)
    return float(np.sqrt(np.sum(w * d ** 2) / np.sum(w)))


@with_batched(_batched(1, root=False))
def dream_weighted_mae(y_true: ArrayLike, y_pred: ArrayLike, weight_by: ArrayLike | None = None) -> float:
    """The absolute-error variant: ``Σ wᵢ |log(yᵢ+1) − log(sᵢ+1)| / Σ wᵢ`` (lower is better)."""
    d, w = _prepare(y_true, y_pred, weight_by)
    return float(np.sum(w * np.abs(d)) / np.sum(w))
