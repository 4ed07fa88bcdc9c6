"""An AS study on lateral spine radiographs: read every corner, total mSASSS, change endpoints, the report.

:func:`run_spine_study` takes an AS cohort (manifest with ``spine_cervical`` / ``spine_lumbar`` images and their
landmarks, given or detected) and a trained corner reader, and writes to ``out``:

* ``corners.csv``: per image and corner ``p_scorable, p0..p3, expected, sd, grade`` (``corners_reimaged.csv``:
  the same for the re-imaged films); landmarks: the cohort's, a given table (its rows of each film set; a film
  set it does not cover keeps its own landmarks), or detected on both film sets with ``detector`` (written to
  ``detected_landmarks.csv``; the way to compare like with like);
* ``totals.csv``: per visit the learned total (expected grades of the corners called scorable, missing corners
  imputed within their segment) beside the human ``msasss`` of ``visits.csv``;
* ``endpoints.csv``: the human mSASSS change and the learned change score (``24/n Σ ΔE`` over the corners
  scorable at both visits) from the first visit to the visit nearest ``years`` (:func:`endpoint_table`: n, mean,
  SD, SRM, SDC, % progressors, patients per arm for a treatment that shrinks progression by ``effect``) on the
  same patients;
* ``retest.csv``: the SDC of each change score from a test-retest pair over the same visits, on the patients of
  ``endpoints.csv`` (both change scores) that have the retest: the human change
  from the cohort's second reading of the same films (``retest.csv``: re-reading), and, where the cohort holds
  ``reimaged/`` (the same visits imaged again, a cohort folder of its own), the learned change score from the
  re-imaged films read by the same reader (re-imaging: a model reads one film the same way twice, so only a new
  acquisition measures its error) and the human change from the re-imaged films' reading;
  ``endpoints.csv`` takes the human SDC from re-reading and the learned one from re-imaging;
* ``power.csv``: two-arm trials of ``trial_n`` patients per arm for each endpoint, treatment shrinking
  progression by ``effect``: ``power`` simulated (patients' change scores resampled, Welch t-test, ``n_sim``
  trials), ``power_ttest`` from statsmodels' two-sample t-test power at ``effect_size_d`` =
  f·SRM / √((1 + (1 − f)²)/2);
* ``outcomes_association.csv``, ``outcomes_change.csv``, ``outcomes_bridge.csv``, ``outcomes_beyond.csv``: BASFI,
  BASDAI (per visit and change against change) and the time to a new bridge against the learned and the human
  mSASSS, and the learned beyond the human
  (:mod:`raoutcome.workflows.spine_outcomes`); these and the atlas from ``min_patients`` patients on;
* ``corner_atlas.npz``, ``corner_attribution.csv`` (``attribution``): Integrated Gradients of the reader's
  expected grade pooled per corner and per predicted grade (:mod:`raoutcome.workflows.corner_attribution`);
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

REIMAGED_DIR = "reimaged"  # the re-imaged visits, a cohort of their own (raoutcome.synth.spine_cohort)
HUMAN, LEARNED = "human mSASSS change", "learned change score"


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


def _read(cohort, model, landmarks: pd.DataFrame | None, with_patches: bool = False):
    """Per-corner predictions of a loaded cohort, with ``value`` = expected grade where called scorable (and
    the patches read, with ``with_patches``)."""
    from raoutcome.imaging.corner_patches import cohort_corner_patches
    from raoutcome.training.corner_train import predict_corners

    if landmarks is not None:  # a shared table (e.g. detected on both film sets): this cohort's images only
        landmarks = landmarks[landmarks["path"].isin(cohort.images["path"])]
        landmarks = landmarks if len(landmarks) else None
    patches = cohort_corner_patches(cohort, landmarks=landmarks)
    pred = predict_corners(model, patches)
    pred = pred.assign(value=np.where(pred["p_scorable"] >= 0.5, pred["expected"], np.nan))
    return (pred, patches) if with_patches else pred


def _learned_changes(pred: pd.DataFrame, pairs: pd.DataFrame) -> pd.Series:
    """The learned change score per patient over the visits ``pairs`` names (``patient_id, v_start, v_end``)."""
    from raoutcome.evaluation.msasss import corner_change

    out = {}
    for row in pairs.itertuples(index=False):
        sub = pred[pred["patient_id"] == row.patient_id]
        c = corner_change(sub, row.v_start, row.v_end, value="value")
        out[row.patient_id] = float(c.iloc[0]) if len(c) else np.nan
    return pd.Series(out, dtype=float)


def _visit_changes(table: pd.DataFrame, column: str, pairs: pd.DataFrame) -> pd.Series:
    """``column`` at ``v_end`` minus at ``v_start`` per patient of ``pairs`` (NaN where either is missing)."""
    v = table.set_index(["patient_id", "visit_id"])[column]
    a = v.reindex(pd.MultiIndex.from_arrays([pairs["patient_id"], pairs["v_start"]])).to_numpy(float)
    b = v.reindex(pd.MultiIndex.from_arrays([pairs["patient_id"], pairs["v_end"]])).to_numpy(float)
    return pd.Series(b - a, index=pairs["patient_id"].to_numpy())


def _retest_rows(endpoint: str, design: str, first: pd.Series, second: pd.Series) -> dict | None:
    """SDC of a change score from a test-retest pair (:func:`raoutcome.analysis.endpoints.sdc`)."""
    from raoutcome.analysis.endpoints import sdc

    both = pd.concat({"a": first, "b": second}, axis=1).dropna()
    if len(both) < 3:
        return None
    d = both["a"] - both["b"]
    return {"endpoint": endpoint, "design": design, "patients": int(len(both)),
            "mean_difference": float(d.mean()), "sd_difference": float(d.std(ddof=1)),
            "sdc": sdc(both["a"], both["b"])}


def run_spine_study(cohort_path: str | Path, reader: str | Path, out: str | Path, *,
                    landmarks: pd.DataFrame | None = None, detector: str | Path | None = None,
                    years: float = 2.0, tolerance: float = 0.5, effect: float = 0.5, trial_n: int = 100,
                    n_sim: int = 400, seed: int = 0, n_boot: int = 200, attribution: bool = True,
                    min_patients: int = 10, report: bool = True) -> Path:
    """Run the AS study (see the module docstring); returns ``out``. Raises :class:`InputError` for a cohort
    without spine images, landmarks or two visits per patient."""
    from raoutcome.analysis.endpoints import (change_scores, endpoint_table, shrink_effect_size, simulate_power,
                                              ttest_power)
    from raoutcome.cohort import load
    from raoutcome.evaluation.msasss import visit_totals
    from raoutcome.training.corner_train import load_corner_reader

    out = Path(out)
    reader = Path(reader)
    if not reader.is_file():
        raise InputError(f"corner reader {reader}: no such file (train one with `raoutcome msasss fit`)")
    cohort = load(cohort_path, images=True)
    root = Path(cohort.root)
    again = load(root / REIMAGED_DIR, images=True) if (root / REIMAGED_DIR / "images.csv").is_file() else None
    model = load_corner_reader(reader)
    if detector is not None:  # detect the corners of every film (and of the re-imaged films) with one detector
        from raoutcome.workflows.landmarks import detect_cohort

        landmarks = pd.concat([detect_cohort(c, detector=detector) for c in (cohort, again) if c is not None],
                              ignore_index=True)
        out.mkdir(parents=True, exist_ok=True)
        _write_csv(landmarks, out / "detected_landmarks.csv")
    pred, patches = _read(cohort, model, landmarks, with_patches=True)
    out.mkdir(parents=True, exist_ok=True)
    _write_csv(pred.drop(columns=["value"]), out / "corners.csv")
    learned = visit_totals(pred, "value").rename(columns={"msasss": "msasss_learned"})
    visits = cohort.visits.assign(patient_id=cohort.visits["patient_id"].astype(str),
                                  visit_id=cohort.visits["visit_id"].astype(str))
    human_cols = ["patient_id", "visit_id", "time_years"] + (["msasss"] if "msasss" in visits else [])
    totals = visits[human_cols].merge(learned, on=["patient_id", "visit_id"], how="left")
    _write_csv(totals, out / "totals.csv")

    # change from the first visit to the visit nearest `years`, the same visits for every endpoint and retest
    imaged = totals.set_index(["patient_id", "visit_id"]).index.isin(
        pd.MultiIndex.from_frame(pred[["patient_id", "visit_id"]].drop_duplicates()))
    ref = change_scores(totals.assign(_t=np.where(imaged, 0.0, np.nan)), "_t", end=years, tolerance=tolerance)
    if ref.empty:
        raise InputError(f"{cohort.root}: no patient has two read visits {years:g} ± {tolerance:g} years apart")
    tv = totals.set_index(["patient_id", "time_years"])["visit_id"]
    pairs = pd.DataFrame({"patient_id": ref["patient_id"].to_numpy(),
                          "v_start": [tv[(p, t)] for p, t in zip(ref["patient_id"], ref["t_start"])],
                          "v_end": [tv[(p, t)] for p, t in zip(ref["patient_id"], ref["t_end"])]})
    changes: dict[str, pd.Series] = {LEARNED: _learned_changes(pred, pairs)}
    seconds: list[tuple[str, str, pd.Series]] = []  # (endpoint, design, the second change score)
    if "msasss" in totals and totals["msasss"].notna().any():
        changes[HUMAN] = _visit_changes(totals, "msasss", pairs)
        if cohort.retest is not None and "msasss" in cohort.retest:  # the same films read again
            reread = cohort.retest.astype({"patient_id": str, "visit_id": str})
            seconds.append((HUMAN, "re-reading", _visit_changes(reread, "msasss", pairs)))
    if again is not None:  # the same visits imaged again: read by the reader, and by the human reader
        pred2 = _read(again, model, landmarks)
        _write_csv(pred2.drop(columns=["value"]), out / "corners_reimaged.csv")
        seconds.append((LEARNED, "re-imaging", _learned_changes(pred2, pairs)))
        v2 = again.visits.astype({"patient_id": str, "visit_id": str})
        if HUMAN in changes and "msasss" in v2:
            seconds.append((HUMAN, "re-imaging", _visit_changes(v2, "msasss", pairs)))
    both = pd.concat(changes, axis=1).dropna()
    if len(both) < 3:
        raise InputError(f"{cohort.root}: fewer than 3 patients with both change scores")
    # SDCs over the patients of the endpoints (those with both change scores) that have the retest
    rows = [_retest_rows(e, d, both[e], second.reindex(both.index)) for e, d, second in seconds]
    retest = pd.DataFrame([r for r in rows if r is not None],
                          columns=["endpoint", "design", "patients", "mean_difference", "sd_difference", "sdc"])
    _write_csv(retest, out / "retest.csv")
    # each endpoint's SDC from its own test-retest design: the human reading of the same films read again,
    # the learned score of the same visits imaged again (a model reads one film the same way twice)
    sdcs = {}
    for endpoint, design in ((HUMAN, "re-reading"), (LEARNED, "re-imaging")):
        row = retest[(retest["endpoint"] == endpoint) & (retest["design"] == design)]
        if len(row):
            sdcs[endpoint] = float(row["sdc"].iloc[0])
    order = [k for k in (HUMAN, LEARNED) if k in both]
    values = {k: both[k].to_numpy() for k in order}
    table = endpoint_table(values, sdcs, effect=effect)
    table["sdc_design"] = [{HUMAN: "re-reading", LEARNED: "re-imaging"}[k] if k in sdcs else "" for k in order]
    _write_csv(table, out / "endpoints.csv")
    power = simulate_power(values, effects=[effect], n_per_arm=trial_n, n_sim=n_sim, seed=seed)
    power["effect_size_d"] = [shrink_effect_size(values[k], effect) for k in power["endpoint"]]
    power["power_ttest"] = [ttest_power(d, trial_n) for d in power["effect_size_d"]]
    _write_csv(power, out / "power.csv")
    _write_csv(both.reset_index().rename(columns={"index": "patient_id"}), out / "changes.csv")
    from raoutcome.workflows.spine_outcomes import write_outcome_tables

    write_outcome_tables(out, cohort, totals, seed=seed, n_boot=n_boot, min_patients=min_patients)
    from raoutcome.workflows.corner_attribution import write_corner_atlas

    write_corner_atlas(out, model, patches, pred.drop(columns=["value"]), seed=seed,
                       min_patients=min_patients if attribution else None)
    agreement = _agreement(root, pred, visits, totals)
    if agreement is not None:
        (out / "agreement.json").write_text(json.dumps(agreement, indent=1))
    if report:
        from raoutcome.reporting.spine_report import write_spine_report

        write_spine_report(out)
    return out
