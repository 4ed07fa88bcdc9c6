"""How well a label-free visit score (the joint anomaly, :mod:`raoutcome.imaging.joint_anomaly`)
tracks damage and outcome: Pearson r with the Sharp score and, on a simulated cohort, with its
truth; Harrell's C of its first-visit value for an event (:func:`raoutcome.evaluation.harrell_c`).
Torch-free, so cohort analyses can use it without the model stack."""
from __future__ import annotations

import numpy as np
import pandas as pd

from raoutcome.analysis.truth import read_truth
from raoutcome.outcomes import damage_outcome

TRUTH_COLUMNS = ("damage", "osteopenia", "carpal_collapse", "swelling")


def references() -> dict[str, tuple[str, bool]]:
    """name -> (column, compare on log(1 + x)): the human damage reading's columns (``log_svdh``,
    ``log_jsn``, ``log_erosion``), then the simulator's truth columns."""
    damage = damage_outcome()
    recorded = {f"log_{out}": (col, True) for out, col in (damage.columns if damage else {}).items()}
    return {**recorded, "true_damage": ("damage", False), "osteopenia": ("osteopenia", False),
            "carpal_collapse": ("carpal_collapse", False), "swelling": ("swelling", False)}


def with_references(visit_scores: pd.DataFrame, cohort) -> pd.DataFrame:
    """``visit_scores`` (``patient_id, visit_id, ...``) beside the cohort's visit table (time, recorded
    SvdH, outcomes) and, for a simulated cohort (``truth/visits.csv`` beside it), the true damage and
    the features the Sharp score ignores."""
    out = visit_scores.merge(cohort.visits, on=["patient_id", "visit_id"], how="left")
    t = read_truth(cohort.root).visits
    if t is not None:
        keep = [c for c in TRUTH_COLUMNS if c in t]
        out = out.merge(t[["patient_id", "visit_id", *keep]], on=["patient_id", "visit_id"], how="left")
    return out


def score_correlations(visits: pd.DataFrame, score: str = "anomaly") -> dict[str, dict]:
    """``{reference: {"r", "n"}}`` for every column of :func:`references` present in ``visits`` with >= 3
    complete rows (``svdh_*`` are the recorded human scores; the others the simulator's truth)."""
    out = {}
    for name, (col, log) in references().items():
        if col not in visits:
            continue
        d = visits[[score, col]].dropna()
        if len(d) < 3 or d[col].nunique() < 2 or d[score].nunique() < 2:
            continue
        y = np.log1p(d[col].to_numpy(float)) if log else d[col].to_numpy(float)
        out[name] = {"r": float(np.corrcoef(d[score], y)[0, 1]), "n": int(len(d))}
    return out


def first_visit_c_index(visits: pd.DataFrame, events: pd.DataFrame, event: str, score: str = "anomaly") -> dict:
    """Harrell's C of each patient's first-visit ``score`` (higher = earlier event) against
    ``events`` of type ``event``; empty when no such event was observed or no pair of patients is comparable
    (a tiny cohort: every event after every other patient's censoring)."""
    from raoutcome.errors import InputError
    from raoutcome.evaluation import harrell_c

    first = visits.dropna(subset=[score]).sort_values("time_years").groupby("patient_id").head(1)
    first = first.set_index("patient_id")
    ev = events[events["event"] == event].set_index("patient_id").reindex(first.index).dropna(
        subset=["time_years", "observed"])
    if ev.empty or not ev["observed"].any():
        return {}
    try:
        c = harrell_c(ev["time_years"], ev["observed"], first.loc[ev.index, score].to_numpy(float))
    except InputError:  # no comparable pair
        return {}
    return {"c_index_first_visit": c, "event": event, "n_patients": int(len(ev)), "n_events": int(ev["observed"].sum())}


__all__ = ["with_references", "score_correlations", "first_visit_c_index", "references", "TRUTH_COLUMNS"]
