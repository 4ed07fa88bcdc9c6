"""Nested 5-fold AUROC on a cervical TRAINING cohort: MR score, radiograph score, concatenated features, stacked
scores (issue 30: the choice of the ``both`` read-out, made on the training seed only).

Radiograph features here are the true measures (truth/measurements.csv), so the check does not need the
detector. Run:  PYTHONPATH=src python analyses/cervical_stacking_check.py STUDY/train
"""
from __future__ import annotations

import sys
import warnings

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict

from raoutcome.workflows import cervical_predict as cp


def main(train: str, horizon: float = 3.2) -> dict[str, float]:
    warnings.simplefilter("ignore")
    ev = cp.event_table(train).set_index("patient_id")
    xr = cp.radiograph_features(pd.read_csv(f"{train}/truth/measurements.csv"))
    ids = sorted(xr.index)
    mr, _ = cp.mr_features(train, ids)
    y, known = cp.horizon_status(ev.loc[ids], horizon)
    y, m, x = y[known], mr.to_numpy()[known], xr.loc[ids].to_numpy()[known]
    inner = StratifiedKFold(5, shuffle=True, random_state=0)
    res: dict[str, list[float]] = {"mr": [], "radiograph": [], "concatenated": [], "stacked": []}
    for tr, te in StratifiedKFold(5, shuffle=True, random_state=1).split(m, y):
        for name, a in (("mr", m), ("radiograph", x), ("concatenated", np.hstack([m, x]))):
            fit = cp._logistic(0).fit(a[tr], y[tr])
            res[name].append(roc_auc_score(y[te], fit.decision_function(a[te])))
        s_tr = np.column_stack([cross_val_predict(cp._logistic(0), a[tr], y[tr], cv=inner, method="decision_function")
                                for a in (m, x)])
        s_te = np.column_stack([cp._logistic(0).fit(a[tr], y[tr]).decision_function(a[te]) for a in (m, x)])
        res["stacked"].append(roc_auc_score(y[te], cp._logistic(0).fit(s_tr, y[tr]).decision_function(s_te)))
    return {k: round(float(np.mean(v)), 3) for k, v in res.items()}


if __name__ == "__main__":
    print(main(sys.argv[1] if len(sys.argv) > 1 else "cervical_study/train"))
