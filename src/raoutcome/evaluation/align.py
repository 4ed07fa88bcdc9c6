"""Pair a Predictions dataset with the cohort's observed outcomes, ready for the metrics.

Predictions are read through :mod:`raoutcome.predictions` (``to_frame``); the
observed side is the cohort's ``visits`` table and its event table
(``Cohort.event_table(event)``: ``patient_id, time_years, observed``).
"""
from __future__ import annotations

import pandas as pd
import xarray as xr

from raoutcome.errors import InputError
from raoutcome.outcomes import event_outcome, output_columns
from raoutcome.predictions import to_frame


def visit_pairs(predictions: xr.Dataset, visits: pd.DataFrame, head: str, outcome: str | None = None
                ) -> pd.DataFrame:
    """One row per visit with both a prediction and an observed value.

    Columns: ``patient_id, visit_id, time_years, fold, y_true, y_pred``.
    ``outcome`` defaults to the head's cohort column (:func:`raoutcome.outcomes.output_columns`).
    """
    outcome = outcome or output_columns().get(head)
    if outcome is None:
        raise InputError(f"no observed outcome known for head {head!r}; pass outcome=")
    if head not in predictions:
        raise InputError(f"predictions hold no {head!r} variable")
    missing = {"patient_id", "visit_id", outcome} - set(visits.columns)
    if missing:
        raise InputError(f"visits table lacks column(s) {sorted(missing)}")
    pred = to_frame(predictions)
    keep = [c for c in ("patient_id", "visit_id", "time_years", "fold") if c in pred and c != head]
    # Each side's value column gets its final name before the merge, so a head and an
    # outcome that share a name (``haq``, ``pain``, or an outcome such as ``time_years``)
    # never collide; any other shared column keeps the prediction side's value.
    pred_side = pd.concat([pred[keep], pred[head].rename("y_pred")], axis=1)
    obs = pd.DataFrame({"patient_id": visits["patient_id"].astype(str),
                        "visit_id": visits["visit_id"].astype(str),
                        "y_true": visits[outcome]})
    merged = pred_side.merge(obs, on=["patient_id", "visit_id"], how="inner", suffixes=("", "_observed"))
    merged = merged.dropna(subset=["y_true", "y_pred"])
    if merged.empty:
        raise InputError(f"no visit has both a {head!r} prediction and an observed {outcome!r}")
    return merged.reset_index(drop=True)


def event_pairs(predictions: xr.Dataset, events: pd.DataFrame, score: str | None = None, visit: str = "first"
                ) -> pd.DataFrame:
    """One row per patient: ``patient_id, time, event, marker`` (+ ``fold``).

    ``marker`` (the prognostic marker, as survival-metric packages call it) is the patient's ``score`` (default: the registered time-to-event outcome's) at their first visit with one
    (``visit="first"``, the landmark the event times count from) or last
    (``visit="last"``; beware: later visits may already show the outcome).
    """
    if visit not in ("first", "last"):
        raise InputError(f"visit must be 'first' or 'last', got {visit!r}")
    score = score or event_outcome().name
    if score not in predictions:
        raise InputError(f"predictions hold no {score!r} variable")
    missing = {"patient_id", "time_years", "observed"} - set(events.columns)
    if missing:
        raise InputError(f"event table lacks column(s) {sorted(missing)}")
    pred = to_frame(predictions).dropna(subset=[score]).sort_values(["patient_id", "time_years"])
    chosen = pred.groupby("patient_id", sort=False).nth(0 if visit == "first" else -1)
    cols = ["patient_id", score] + (["fold"] if "fold" in chosen else [])
    ev = events[["patient_id", "time_years", "observed"]].astype({"patient_id": str})
    merged = chosen[cols].merge(ev, on="patient_id", how="inner")
    merged = merged.rename(columns={score: "marker", "time_years": "time", "observed": "event"})
    if merged.empty:
        raise InputError(f"no patient has both a {score!r} prediction and an event-table row")
    return merged[["patient_id", "time", "event", "marker"] + (["fold"] if "fold" in merged else [])
                  ].reset_index(drop=True)
