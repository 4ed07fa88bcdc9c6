"""The AS report's outcome sections: BASFI / BASDAI / time to a new bridge against the learned and the human
mSASSS, and whether the learned reading adds to the human one.

Reads the tables :func:`raoutcome.workflows.spine_outcomes.write_outcome_tables` wrote; computes nothing.
"""
from __future__ import annotations

__all__ = ["outcome_sections"]

from pathlib import Path

import numpy as np
import pandas as pd

from raoutcome.reporting.html import KeyNumbers, Section, Table, Text

_LABEL = {"basfi": "BASFI", "basdai": "BASDAI", "new_bridge": "new bridge"}
_BEYOND_COLS = ["test", "outcome", "base", "added", "estimate", "statistic", "df", "p_value", "n", "ci_lower",
                "ci_upper", "c_base", "c_full"]


def _read(folder: Path, name: str) -> pd.DataFrame:
    path = folder / name
    return pd.read_csv(path) if path.is_file() else pd.DataFrame()


def _keys(assoc: pd.DataFrame, bridge: pd.DataFrame) -> list[tuple[str, str, str]]:
    keys = []
    for outcome in ("basfi", "basdai"):
        rows = assoc[assoc["outcome"] == outcome] if len(assoc) else assoc
        for r in rows.itertuples():
            if r.score in ("msasss_learned", "msasss"):
                keys.append((f"{_LABEL[outcome]} ~ {r.label}", f"{r.r2_cv:.2f}", "cross-fitted R²"))
    for r in bridge.itertuples() if len(bridge) else ():
        if r.score in ("msasss_learned", "msasss"):
            keys.append((f"new bridge ~ baseline {r.label}", f"{r.c_index_cv:.2f}", "out-of-fold C-index"))
    return keys


def outcome_sections(folder: str | Path) -> list[Section]:
    """Two report sections from the study folder's ``outcomes_*.csv`` (a note where they are absent)."""
    folder = Path(folder)
    assoc = _read(folder, "outcomes_association.csv")
    change = _read(folder, "outcomes_change.csv")
    bridge = _read(folder, "outcomes_bridge.csv")
    beyond = _read(folder, "outcomes_beyond.csv")
    if not len(assoc) and not len(bridge) and not len(beyond):
        note = Text("Outcome statistics not computed: fewer than 10 patients with a learned mSASSS, or no "
                    "BASFI / BASDAI / new-bridge data in this cohort.", kind="note")
        return [Section("outcomes", "AS outcomes against mSASSS", blocks=[note])]
    blocks: list = [KeyNumbers(_keys(assoc, bridge))]
    if len(assoc):
        blocks.append(Table(assoc.drop(columns=["converged"], errors="ignore"),
                            caption="Per visit: linear mixed model outcome ~ score with a random intercept per "
                                    "patient (REML); coefficient per 10 mSASSS units with its 95 % CI; r2_cv: "
                                    "R² of out-of-fold predictions over patient-grouped folds (a fold's patients "
                                    "predicted by the fixed effects fitted on the others; can be below 0)"))
    if len(change):
        blocks.append(Table(change, caption="Change against change, per patient from the first to the last visit "
                                            "with the outcome and every score read: OLS of the outcome's change "
                                            "on the score's change and the years between the visits (HC3 "
                                            "standard errors); coefficient per 10 mSASSS units of change with "
                                            "its 95 % CI, partial R² of the score's change; score_srm: the "
                                            "score change's standardized response mean (mean / SD). A reader's "
                                            "error weighs most on a small change, so this is where a more "
                                            "precise reading should matter."))
    if len(bridge):
        blocks.append(Table(bridge, caption="Time to the first new bridge (found at the visit that shows it): Cox "
                                            "model on the first visit's score, hazard ratio per 10 units; "
                                            "c_index of the fitted model, c_index_cv of out-of-fold risks"))
    else:
        blocks.append(Text("Time to a new bridge: fewer than 2 new bridges in this cohort, no Cox model.",
                           kind="note"))
    sections = [Section(
        "outcomes", "AS outcomes against mSASSS",
        intro="Function (BASFI), disease activity (BASDAI) and the time to a new bridge against each mSASSS, "
              "on the same visits and patients for every score. The learned mSASSS sums the reader's expected "
              "grades; the human mSASSS is the cohort's reading; in a simulation the true mSASSS is the "
              "reference a perfect reader would reach. In the simulator BASFI rises with damage and with disease "
              "activity; BASDAI follows activity only, so it relates to mSASSS only through activity (which "
              "also speeds progression).",
        blocks=blocks)]
    if len(beyond):
        question = str(beyond["question"].iloc[0]) if "question" in beyond else ""
        shown = beyond[[c for c in _BEYOND_COLS if c in beyond]].copy()
        shown["outcome"] = shown["outcome"].map(lambda o: _LABEL.get(o, o))
        tests = shown[shown["test"].isin(["mixed_lrt", "partial_r2_f", "cox_lrt"]) & np.isfinite(shown["p_value"])]
        verdict = (f"{int((tests['p_value'] < 0.05).sum())} of {len(tests)} likelihood-ratio / F-tests with "
                   "p < 0.05 (no correction for the number of tests)." if len(tests) else "")
        sections.append(Section(
            "beyond", "Does the learned mSASSS add to the human mSASSS?",
            intro=f"{question} Each test compares a base model holding the human mSASSS (a natural spline of "
                  "the mSASSS, or the reading itself where there are too few new bridges for a spline) "
                  "with the same model plus the learned mSASSS, fitted on the same rows: nested ML mixed "
                  "models per visit (random intercept, time) and the partial-R² F-test on each patient's last "
                  "visit for BASFI / BASDAI; for new bridges the Cox likelihood-ratio test on the baseline "
                  "scores, ΔC of out-of-fold risks (bootstrap CI) and the continuous NRI at the median follow-up. "
                  "The p-value answers: given the human reading of the same films, does the learned reading "
                  "improve the model of this outcome? It assumes the reader never saw these patients. A negative "
                  "ΔC means the model with both readings ranks patients worse out of fold than the human "
                  "reading alone (two nearly collinear readings fitted on few events).",
            blocks=[Text(verdict), Table(shown, caption="Nested-model tests (estimate: LR χ², partial R², ΔC "
                                                        "or NRI)")]))
    return sections
