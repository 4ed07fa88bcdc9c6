"""mSASSS from per-corner readings: visit totals, change scores, and the per-corner agreement tables.

Torch-free. A per-corner table has ``patient_id, visit_id, joint`` (``spine_cervical:C3_sup``) and a grade
column (NaN = not scorable). Totals follow :func:`raoutcome.msasss.msasss_total` (missing corners imputed within
their segment when at most 3 are missing). The agreement tables are those of seeds/003's Table 5: the 0-3
confusion matrix of corners (here with a "not scorable" row and column), accuracy over all four grades, per-lesion
accuracy (each lesion kind's corners graded correctly), and grade 3 against 0-2 (Koo et al. 2022's task).

The learned change score (:func:`corner_change`) sums, over the corners scorable at both visits, the change of
the expected grade, scaled to 24 corners: ``24 / n * sum_c (E_c,end - E_c,start)``. Expected grades move by
fractions where a reader's grade jumps or stays, which is what makes it more sensitive to change.
"""
from __future__ import annotations

__all__ = ["GRADES", "visit_totals", "corner_change", "confusion", "corner_agreement", "per_lesion_accuracy"]

import numpy as np
import pandas as pd

from raoutcome.msasss import CORNERS, SPINE_VIEWS, msasss_total

GRADES = ("0", "1", "2", "3", "NS")


def _wide(table: pd.DataFrame, value: str) -> pd.DataFrame:
    cols = [f"{v}:{c}" for v in SPINE_VIEWS for c in CORNERS[v]]
    w = table.pivot_table(index=["patient_id", "visit_id"], columns="joint", values=value, aggfunc="first",
                          dropna=False)
    return w.reindex(columns=cols)


def visit_totals(table: pd.DataFrame, value: str = "grade") -> pd.DataFrame:
    """``patient_id, visit_id, msasss`` from per-corner ``value`` (NaN = not scorable / not imaged)."""
    w = _wide(table, value)
    n = len(CORNERS["spine_cervical"])
    arr = w.to_numpy(float)
    tot = msasss_total(arr[:, :n], arr[:, n:])
    return pd.DataFrame({"patient_id": [i[0] for i in w.index], "visit_id": [i[1] for i in w.index],
                         "msasss": tot})


def corner_change(table: pd.DataFrame, start: str, end: str, value: str = "expected",
                  min_corners: int = 12) -> pd.Series:
    """Per patient ``24 / n * sum(value_end - value_start)`` over the ``n`` corners finite at both visits
    (NaN with fewer than ``min_corners``)."""
    w = _wide(table, value)
    a = w.xs(start, level="visit_id") if start in w.index.get_level_values(1) else None
    b = w.xs(end, level="visit_id") if end in w.index.get_level_values(1) else None
    if a is None or b is None:
        return pd.Series(dtype=float)
    a, b = a.align(b, join="inner", axis=0)
    d = b.to_numpy(float) - a.to_numpy(float)
    n = np.isfinite(d).sum(1)
    s = np.where(n >= min_corners, np.nansum(d, 1) * d.shape[1] / np.maximum(n, 1), np.nan)
    return pd.Series(s, index=a.index, name="change")


def _label(grade: np.ndarray, scorable: np.ndarray) -> np.ndarray:
    g = np.asarray(grade, float)
    out = np.where(np.asarray(scorable, bool) & np.isfinite(g), np.nan_to_num(g).astype(int).astype(str), "NS")
    return out


def confusion(true_grade, true_scorable, pred_grade, pred_scorable) -> pd.DataFrame:
    """Counts, rows = truth, columns = prediction, over 0, 1, 2, 3 and NS (not scorable)."""
    t = _label(true_grade, true_scorable)
    p = _label(pred_grade, pred_scorable)
    m = pd.crosstab(pd.Categorical(t, GRADES), pd.Categorical(p, GRADES), dropna=False)
    m.index.name, m.columns.name = "truth", "predicted"
    return m


def corner_agreement(true_grade, true_scorable, pred_grade, pred_scorable) -> dict:
    """Accuracy over the four grades (corners scorable in truth), grade 3 vs 0-2 accuracy, scorable-call
    accuracy, and the share of truly scorable corners called not scorable."""
    tg, ts = np.asarray(true_grade, float), np.asarray(true_scorable, bool)
    pg, ps = np.asarray(pred_grade, float), np.asarray(pred_scorable, bool)
    both = ts & ps & np.isfinite(tg) & np.isfinite(pg)
    return {
        "accuracy_4": float(np.mean(pg[both] == tg[both])) if both.any() else float("nan"),
        "within_1": float(np.mean(np.abs(pg[both] - tg[both]) <= 1)) if both.any() else float("nan"),
        "grade3_vs_rest": float(np.mean((pg[both] == 3) == (tg[both] == 3))) if both.any() else float("nan"),
        "scorable_accuracy": float(np.mean(ps == ts)),
        "lost_scorable": float(np.mean(~ps[ts])) if ts.any() else float("nan"),
        "n": int(both.sum()),
    }


def per_lesion_accuracy(lesion, true_grade, pred_grade, mask=None) -> pd.DataFrame:
    """Per lesion kind (``none``, ``erosion``, ..., ``bridging``): corners and the share graded correctly."""
    df = pd.DataFrame({"lesion": np.asarray(lesion, object), "t": np.asarray(true_grade, float),
                       "p": np.asarray(pred_grade, float)})
    if mask is not None:
        df = df[np.asarray(mask, bool)]
    df = df[np.isfinite(df["t"]) & np.isfinite(df["p"])]
    out = df.assign(ok=df["t"] == df["p"]).groupby("lesion")["ok"].agg(["size", "mean"])
    return out.rename(columns={"size": "corners", "mean": "accuracy"}).reset_index()
