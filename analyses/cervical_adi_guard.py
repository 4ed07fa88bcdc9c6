"""The ADI collapse guard's threshold (issue 30): chosen on the training seed's detector-validation patients,
reported on the held-out seed.

A finished cervical study folder measured with the guard off (``detected_*.csv`` columns ``adi_detected_mm``:
the detector's ADI, ``adi_mm`` / ``adi_uncorrected_mm``: the unguarded edge-refined ADI) holds everything a
guard needs: a fit is refused when refined / detected < r, the detector's ADI is kept, and the per-view
offset is re-estimated on the accepted validation fits. Prints, per r, within 1 mm / within 0.5 mm / MAE /
slope / share refused / offset; with ``report`` also the held-out seed's columns (look at them once, after
choosing on the training seed).

Run:  PYTHONPATH=src python analyses/cervical_adi_guard.py STUDY [report]
"""
from __future__ import annotations

import json
import sys

import numpy as np
import pandas as pd

VIEWS = ("cervical_neutral", "cervical_flexion")


def _load(study: str, name: str) -> pd.DataFrame:
    m = pd.read_csv(f"{study}/measured_{name}.csv")
    if "adi_uncorrected_mm" not in m:
        m["adi_uncorrected_mm"] = m["adi_mm"]
    t = pd.read_csv(f"{study}/{name}/truth/measurements.csv")
    return m.merge(t[["path", "adi_mm"]], on="path", suffixes=("", "_true"))


def _apply(j: pd.DataFrame, r: float, off: dict[str, float] | None = None):
    acc = (j["adi_uncorrected_mm"] / j["adi_detected_mm"] >= r).to_numpy()
    if off is None:
        off = {v: float((g["adi_uncorrected_mm"] - g["adi_mm_true"])[acc[j.index.get_indexer(g.index)]].mean())
               for v, g in j.groupby("view")}
    adi = np.where(acc, j["adi_uncorrected_mm"] - j["view"].map(off), j["adi_detected_mm"])
    return adi, acc, off


def main(study: str, report: bool = False) -> None:
    val = set(json.loads(open(f"{study}/detector.validation.json").read())["validation_patients"])
    train = _load(study, "train")
    parts = {"train validation": train[train["patient_id"].isin(val)].reset_index(drop=True)}
    if report:
        parts["held-out"] = _load(study, "test")
    for r in (0.0, 0.3, 0.4, 0.5, 0.6, 0.7):
        _, _, off = _apply(parts["train validation"], r)
        for name, j in parts.items():
            adi, acc, _ = _apply(j, r, off)
            for v in VIEWS:
                s = (j["view"] == v).to_numpy()
                e = adi[s] - j["adi_mm_true"].to_numpy()[s]
                slope = np.polyfit(j["adi_mm_true"].to_numpy()[s], adi[s], 1)[0]
                print(f"r={r:.1f} {name:16s} {v:17s} within1={np.mean(np.abs(e) <= 1):.3f} "
                      f"within0.5={np.mean(np.abs(e) <= 0.5):.3f} mae={np.mean(np.abs(e)):.3f} slope={slope:.2f} "
                      f"refused={1 - acc[s].mean():.3f} offset={off[v]:.2f}")


if __name__ == "__main__":
    main(sys.argv[1], len(sys.argv) > 2 and sys.argv[2] == "report")
