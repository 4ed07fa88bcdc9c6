"""Severity classes of the visit total in Predictions: an ordinal head's class probabilities and their metrics.

Seeds/002 grades RA severity as classes of the SvdH total (here the RA2-DREAM bins,
:data:`raoutcome.evaluation.classification.DEFAULT_SEVERITY_CUTOFFS`) and asks for ordinal losses. The site
route's outcome model (:mod:`raoutcome.models.site_outcome`) has an ordinal head (CORAL, cumulative link) on the
visit's total; its class probabilities ``severity_p0 .. severity_pK`` per visit become, in a Predictions dataset,

* ``severity_prob`` (``patient_id`` x ``visit_id`` x ``severity_class``): ``P(class = k)``;
* ``severity`` (``patient_id`` x ``visit_id``): the most probable class (NaN where not predicted).

:func:`class_metrics` scores predicted against observed classes as seeds/002 does: accuracy, mean absolute
class error and the Pearson correlation of the class indices. No torch here.
"""
from __future__ import annotations

__all__ = ["PROB_PREFIX", "add_severity", "class_metrics", "observed_classes", "prob_columns"]

import numpy as np
import pandas as pd
import xarray as xr
from numpy.typing import ArrayLike

from raoutcome.evaluation.classification import DEFAULT_SEVERITY_CUTOFFS, severity_class

#: per-visit frame columns of the class probabilities: ``severity_p0``, ``severity_p1``, ...
PROB_PREFIX = "severity_p"


def prob_columns(frame: pd.DataFrame) -> list[str]:
    """The ``severity_p<k>`` columns of ``frame``, in class order."""
    cols = [c for c in frame.columns if c.startswith(PROB_PREFIX) and c[len(PROB_PREFIX):].isdigit()]
    return sorted(cols, key=lambda c: int(c[len(PROB_PREFIX):]))


def observed_classes(totals: ArrayLike, cutoffs: ArrayLike = DEFAULT_SEVERITY_CUTOFFS) -> np.ndarray:
    """Severity class of each observed total (float; NaN where the total is missing)."""
    t = np.asarray(totals, dtype=float)
    out = np.full(t.shape, np.nan)
    ok = np.isfinite(t)
    out[ok] = severity_class(t[ok], cutoffs)
    return out


def add_severity(ds: xr.Dataset, frame: pd.DataFrame) -> xr.Dataset:
    """``ds`` with ``severity_prob`` and ``severity`` from ``frame`` (``patient_id, visit_id, severity_p0 ..``);
    ``ds`` unchanged when ``frame`` has no probability columns. Visits absent from ``ds`` are dropped."""
    cols = prob_columns(frame)
    if not cols:
        return ds
    pids, vids = ds["patient_id"].values.astype(str), ds["visit_id"].values.astype(str)
    pi = pd.Index(pids).get_indexer(frame["patient_id"].astype(str))
    vi = pd.Index(vids).get_indexer(frame["visit_id"].astype(str))
    ok = (pi >= 0) & (vi >= 0)
    prob = np.full((len(pids), len(vids), len(cols)), np.nan, np.float32)
    prob[pi[ok], vi[ok]] = frame.loc[ok, cols].to_numpy(np.float32)
    known = np.isfinite(prob).all(-1)
    best = np.where(known, np.argmax(np.nan_to_num(prob, nan=-1.0), -1), -1).astype(float)
    best[~known] = np.nan
    out = ds.assign_coords(severity_class=np.arange(len(cols)))
    out["severity_prob"] = (("patient_id", "visit_id", "severity_class"), prob)
    out["severity"] = (("patient_id", "visit_id"), best)
    return out


def class_metrics(pred: ArrayLike, true: ArrayLike) -> dict:
    """Accuracy, mean absolute class error and Pearson correlation of predicted and observed classes (pairs with
    both finite); seeds/002 reports these for its severity classes."""
    p, t = np.asarray(pred, float), np.asarray(true, float)
    ok = np.isfinite(p) & np.isfinite(t)
    p, t = p[ok], t[ok]
    if not len(t):
        return {"n": 0, "accuracy": float("nan"), "class_mae": float("nan"), "class_pcc": float("nan")}
    pcc = float(np.corrcoef(t, p)[0, 1]) if len(t) > 1 and np.ptp(t) and np.ptp(p) else float("nan")
    return {"n": int(len(t)), "accuracy": float(np.mean(p == t)), "class_mae": float(np.mean(np.abs(p - t))),
            "class_pcc": pcc}
