"""The AS study's outcome statistics: BASFI, BASDAI and the time to a new bridge against the learned and the
human mSASSS, and whether the learned reading adds to the human one (:mod:`raoutcome.analysis.as_outcomes`).

:func:`write_outcome_tables` joins the study's ``totals.csv`` (learned and human total per visit) to the
cohort's outcomes (``visits.csv`` ``basfi``/``basdai``, ``events.csv`` ``new_bridge``; a simulation's
``truth/visits.csv`` adds the true mSASSS as a reference) and writes, atomically, to the study folder:

* ``outcomes_association.csv``: per outcome and score, the random-intercept LMM coefficient per 10 mSASSS
  units, its CI and p, and the cross-fitted R² over patient-grouped folds (the same visits for every score);
* ``outcomes_change.csv``: per outcome and score, the outcome's change on the score's change (first to last
  read visit of each patient, OLS with HC3 and the years between them), with the score change's SRM;
* ``outcomes_bridge.csv``: Cox model of the time to a new bridge on each baseline score (HR per 10 units,
  Harrell's C in sample and out of fold; the same patients for every score);
* ``outcomes_beyond.csv``: the nested-model tests of the learned mSASSS beyond the human mSASSS.

With fewer than ``min_patients`` patients nothing is written (too few for a mixed or a Cox model).
"""
from __future__ import annotations

__all__ = ["OUTCOME_FILES", "write_outcome_tables", "outcome_summary"]

import warnings
from pathlib import Path

import pandas as pd

#: table name -> file in the study folder
OUTCOME_FILES = {"associations": "outcomes_association.csv", "change": "outcomes_change.csv",
                 "bridge": "outcomes_bridge.csv", "beyond_msasss": "outcomes_beyond.csv"}


def write_outcome_tables(out: str | Path, cohort, totals: pd.DataFrame, *, seed: int = 0, n_boot: int = 200,
                         folds: int = 5, min_patients: int = 10, cross_fitted: bool = True) -> dict[str, pd.DataFrame]:
    """Compute and write the outcome tables (see the module docstring); returns them ({} when skipped).

    ``cohort``: the loaded study cohort; ``totals``: per visit ``msasss`` (human) and ``msasss_learned``.
    ``cross_fitted``: whether the reader never saw these patients (False: a warning, tests anti-conservative)."""
    from raoutcome.analysis.as_outcomes import as_outcome_tables, baseline_table, outcome_visits
    from raoutcome.errors import AnalysisSkippedWarning
    from raoutcome.io_utils import atomic_path
    from raoutcome.msasss import NEW_BRIDGE_EVENT

    out = Path(out)
    for name in OUTCOME_FILES.values():  # no stale table of an earlier run
        (out / name).unlink(missing_ok=True)
    n = totals.dropna(subset=["msasss_learned"])["patient_id"].nunique()
    if n < min_patients:
        warnings.warn(f"outcome statistics skipped: {n} patients with a learned mSASSS (need {min_patients})",
                      AnalysisSkippedWarning, stacklevel=2)
        return {}
    truth_path = Path(cohort.root) / "truth" / "visits.csv"
    truth = pd.read_csv(truth_path, dtype={"patient_id": str, "visit_id": str}) if truth_path.is_file() else None
    table = outcome_visits(totals, cohort.visits, truth)
    patients = baseline_table(table, cohort.events, NEW_BRIDGE_EVENT)
    tables = dict(as_outcome_tables(table, patients, n_boot=n_boot, seed=seed, folds=folds,
                                         cross_fitted=cross_fitted))
    for key, frame in tables.items():
        if len(frame):
            with atomic_path(out / OUTCOME_FILES[key]) as tmp:
                frame.to_csv(tmp, index=False)
    return tables


def outcome_summary(folder: str | Path) -> list[str]:
    """A few printable lines from the study folder's outcome tables (empty when there are none)."""
    folder = Path(folder)
    read = {k: pd.read_csv(folder / f) for k, f in OUTCOME_FILES.items() if (folder / f).is_file()}
    lines = []
    short = {"msasss_learned": "learned", "msasss": "human", "msasss_true": "true"}
    assoc = read.get("associations")
    for outcome in ("basfi", "basdai"):
        rows = assoc[assoc["outcome"] == outcome] if assoc is not None else []
        if len(rows):
            lines.append(f"{outcome.upper()} per 10 mSASSS units (cross-fitted R²): " + "; ".join(
                f"{short.get(r.score, r.score)} {r.coef_per_10:+.2f} ({r.r2_cv:.2f})" for r in rows.itertuples()))
    change = read.get("change")
    for outcome in ("basfi", "basdai"):
        rows = change[change["outcome"] == outcome] if change is not None else []
        if len(rows):
            lines.append(f"{outcome.upper()} change per 10 mSASSS units of change (partial R²): " + "; ".join(
                f"{short.get(r.score, r.score)} {r.coef_per_10:+.2f} ({r.partial_r2:.2f})" for r in rows.itertuples()))
    bridge = read.get("bridge")
    if bridge is not None and len(bridge):
        lines.append(f"new bridge ({int(bridge['events'].iloc[0])} events), HR per 10 units, out-of-fold C: " +
                     "; ".join(f"{short.get(r.score, r.score)} {r.hr_per_10:.2f}, {r.c_index_cv:.2f}"
                               for r in bridge.itertuples()))
    beyond = read.get("beyond_msasss")
    if beyond is not None and len(beyond):
        tests = beyond[beyond["test"].isin(["mixed_lrt", "cox_lrt"])]
        lines.append("learned beyond human mSASSS (LR test p): " + "; ".join(
            f"{r.outcome} {r.p_value:.3g}" for r in tests.itertuples()))
    return lines
