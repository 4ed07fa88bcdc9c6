"""An AS study on lateral spine radiographs: read every corner, total mSASSS, change endpoints, the report.

:func:`run_spine_study` takes an AS cohort (manifest with ``spine_cervical`` / ``spine_lumbar`` images and their
landmarks, given or detected) and a trained corner reader, and writes to ``out``:

* ``corners.csv``: per image and corner ``p_scorable, p0..p3, expected, sd, grade``;
* ``totals.csv``: per visit the learned total (expected grades of the corners called scorable, missing corners
  imputed within their segment) beside the human ``msasss`` of ``visits.csv``;
* ``endpoints.csv``: the human mSASSS change and the learned change score (``24/n Σ ΔE`` over the corners
  scorable at both visits) from the first visit to the visit nearest ``years`` (:func:`endpoint_table`: n, mean,
  SD, SRM, SDC, % progressors, patients per arm for a treatment that shrinks progression by ``effect``), the
  human SDC of that change from the retest reading (``retest.csv``, the same visits) when the cohort has one;
* ``power.csv``: simulated two-arm trials of ``trial_n`` patients per arm for each endpoint;
* ``agreement.json`` when the cohort is a simulation with ``truth/corners.csv``: per-corner accuracy, confusion,
  per-lesion accuracy, total r, for the reader and for the human reading;
* ``report.html`` (:mod:`raoutcome.reporting.spine_report`).
"""
from __future__ import annotations

__all__ = ["run_spine_study"]

import json
from pathlib import Path

import numpy as np
import pandas as pd

from raoutcome.errors import InputError


def _write_csv(frame: pd.DataFrame, path: Path) -> None:
    from raoutcome.io_utils import atomic_path

    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)


def _agreement(root: Path, pred: pd.DataFrame, visits: pd.DataFrame, totals: pd.DataFrame) -> dict | None:
    from raoutcome.evaluation.msasss import confusion, corner_agreement, per_lesion_accuracy

    path = root / "truth" / "corners.csv"
    if not path.is_file():
        return None
    truth = pd.read_csv(path, dtype={"patient_id": str, "visit_id": str})
    m = truth.merge(pred[["patient_id", "visit_id", "joint", "p_scorable", "grade"]],
                    on=["patient_id", "visit_id", "joint"], how="inner", suffixes=("", "_pred"))
    ps = (m["p_scorable"] >= 0.5).to_numpy()
    res = {"reader": corner_agreement(m["grade"], m["scorable"], m["grade_pred"], ps),
           "human": corner_agreement(m["grade"], m["scorable"], m["read1"], m["scorable"])}
    res["reader"]["confusion"] = confusion(m["grade"], m["scorable"], m["grade_pred"], ps).to_dict(orient="index")
    les = per_lesion_accuracy(m["lesion"], m["grade"], m["grade_pred"], mask=(m["scorable"] == 1) & ps)
    hum = per_lesion_accuracy(m["lesion"], m["grade"], m["read1"], mask=m["scorable"] == 1)
    res["per_lesion"] = les.merge(hum, on="lesion", suffixes=("", "_human")).to_dict(orient="records")
    tv = root / "truth" / "visits.csv"
    if tv.is_file():
        t = pd.read_csv(tv, dtype={"patient_id": str, "visit_id": str})[["patient_id", "visit_id", "msasss_true"]]
        j = totals.merge(t, on=["patient_id", "visit_id"])
        for col, key in (("msasss_learned", "reader"), ("msasss", "human")):
            ok = j[col].notna() & j["msasss_true"].notna()
            if ok.sum() > 2:
                res[key]["total_r"] = float(np.corrcoef(j.loc[ok, col], j.loc[ok, "msasss_true"])[0, 1])
    return res


def run_spine_study(cohort_path: str | Path, reader: str | Path, out: str | Path, *,
                    landmarks: pd.DataFrame | None = None, years: float = 2.0, tolerance: float = 0.5,
                    effect: float = 0.5, trial_n: int = 100, n_sim: int = 400, seed: int = 0,
                    report: bool = True) -> Path:
    """Run the AS study (see the module docstring); returns ``out``. Raises :class:`InputError` for a cohort
    without spine images, landmarks or two visits per patient."""
    from raoutcome.analysis.endpoints import change_scores, endpoint_table, sdc, simulate_power
    from raoutcome.cohort import load
    from raoutcome.evaluation.msasss import corner_change, visit_totals
    from raoutcome.imaging.corner_patches import cohort_corner_patches
    from raoutcome.training.corner_train import load_corner_reader, predict_corners

    out = Path(out)
    reader = Path(reader)
    if not reader.is_file():
        raise InputError(f"corner reader {reader}: no such file (train one with `raoutcome msasss fit`)")
    cohort = load(cohort_path, images=True)
    model = load_corner_reader(reader)
    pred = predict_corners(model, cohort_corner_patches(cohort, landmarks=landmarks))
    out.mkdir(parents=True, exist_ok=True)
    _write_csv(pred, out / "corners.csv")
    pred = pred.assign(value=np.where(pred["p_scorable"] >= 0.5, pred["expected"], np.nan))
    learned = visit_totals(pred, "value").rename(columns={"msasss": "msasss_learned"})
    visits = cohort.visits.assign(patient_id=cohort.visits["patient_id"].astype(str),
                                  visit_id=cohort.visits["visit_id"].astype(str))
    human_cols = ["patient_id", "visit_id", "time_years"] + (["msasss"] if "msasss" in visits else [])
    totals = visits[human_cols].merge(learned, on=["patient_id", "visit_id"], how="left")
    _write_csv(totals, out / "totals.csv")

    # change from the first visit to the visit nearest `years`, the same visits for both endpoints
    imaged = totals.set_index(["patient_id", "visit_id"]).index.isin(
        pd.MultiIndex.from_frame(pred[["patient_id", "visit_id"]].drop_duplicates()))
    ref = change_scores(totals.assign(_t=np.where(imaged, 0.0, np.nan)), "_t", end=years, tolerance=tolerance)
    if ref.empty:
        raise InputError(f"{cohort.root}: no patient has two read visits {years:g} ± {tolerance:g} years apart")
    tv = totals.set_index(["patient_id", "time_years"])["visit_id"]
    changes: dict[str, pd.Series] = {}
    learned_change = []
    for row in ref.itertuples(index=False):
        v0, v1 = tv[(row.patient_id, row.t_start)], tv[(row.patient_id, row.t_end)]
        sub = pred[pred["patient_id"] == row.patient_id]
        c = corner_change(sub, v0, v1, value="value")
        learned_change.append(float(c.iloc[0]) if len(c) else np.nan)
    changes["learned change score"] = pd.Series(learned_change, index=ref["patient_id"])
    sdcs: dict[str, float] = {}
    if "msasss" in totals and totals["msasss"].notna().any():
        h = change_scores(totals, "msasss", end=years, tolerance=tolerance).set_index("patient_id")["change"]
        changes["human mSASSS change"] = h
        if cohort.retest is not None and "msasss" in cohort.retest:  # the same visits read again
            again = totals.drop(columns=["msasss"]).merge(
                cohort.retest.astype({"patient_id": str, "visit_id": str})[["patient_id", "visit_id", "msasss"]],
                on=["patient_id", "visit_id"])
            a = change_scores(totals, "msasss", end=years, tolerance=tolerance)
            b = change_scores(again, "msasss", end=years, tolerance=tolerance)
            pair = a.merge(b, on="patient_id", suffixes=("_a", "_b"))
            pair = pair[(pair["t_start_a"] == pair["t_start_b"]) & (pair["t_end_a"] == pair["t_end_b"])]
            if len(pair) >= 3:
                sdcs["human mSASSS change"] = sdc(pair["change_a"], pair["change_b"])
    both = pd.concat(changes, axis=1).dropna()
    if len(both) < 3:
        raise InputError(f"{cohort.root}: fewer than 3 patients with both change scores")
    order = [k for k in ("human mSASSS change", "learned change score") if k in both]
    table = endpoint_table({k: both[k].to_numpy() for k in order}, sdcs, effect=effect)
    _write_csv(table, out / "endpoints.csv")
    power = simulate_power({k: both[k].to_numpy() for k in order}, effects=[effect], n_per_arm=trial_n,
                           n_sim=n_sim, seed=seed)
    _write_csv(power, out / "power.csv")
    _write_csv(both.reset_index().rename(columns={"index": "patient_id"}), out / "changes.csv")
    agreement = _agreement(Path(cohort.root), pred, visits, totals)
    if agreement is not None:
        (out / "agreement.json").write_text(json.dumps(agreement, indent=1))
    if report:
        from raoutcome.reporting.spine_report import write_spine_report

        write_spine_report(out)
    return out
