"""Analysis tables assembled from a Cohort and a Predictions dataset.

Two tables feed every analysis in :mod:`raoutcome.analysis`:

* the **visit table** — one row per cohort visit: ``patient_id``, ``visit_id``,
  ``time_years``, the observed outcomes (``svdh_total``, ``haq``, ...), the
  model's scores as ``pred_<head>`` (``pred_svdh``, ``pred_risk``, ...), the
  patient covariates and the cross-fitting ``fold``;
* the **patient table** — one row per patient at baseline (the first visit),
  with the time-to-event outcome: ``duration`` (years since the first visit)
  and ``observed`` (0/1).

The Cohort is used through its documented fields only (``patients``,
``visits``, ``events``), so any object holding those pandas tables works.
"""
from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
import xarray as xr

from raoutcome import anatomy
from raoutcome.errors import InputError, NotCrossFittedWarning
from raoutcome.outcomes import score_variables, visit_columns
from raoutcome.predictions import embedding_frame, from_frame, to_frame

PRED_PREFIX = "pred_"
DURATION = "duration"
OBSERVED = "observed"
# A covariate column is kept when at most this fraction of patients lack it.
MAX_COVARIATE_MISSING = 0.2
MAX_CATEGORIES = 8


@dataclass
class AnalysisData:
    """Everything the analyses read, in plain pandas."""

    visits: pd.DataFrame
    patients: pd.DataFrame
    covariates: list[str]
    heads: list[str]
    embedding_cols: list[str] = field(default_factory=list)
    cross_fitted: bool = False
    event: str = anatomy.DEFORMITY_EVENT

    def pred(self, head: str) -> str:
        """Column name of a head's score, e.g. ``pred_risk``."""
        return f"{PRED_PREFIX}{head}"


def covariate_table(patients: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Usable patient covariates: numeric columns, and categorical ones one-hot encoded.

    A column is used when it varies and at most 20 % of patients lack it; a
    text column only when it has 2–8 levels and at least two patients per level
    on average (identifier-like text is skipped).
    Returns ``(table with patient_id + covariates, covariate names)``.
    """
    out = pd.DataFrame({"patient_id": patients["patient_id"].astype(str).to_numpy()})
    names: list[str] = []
    for col in patients.columns:
        if col == "patient_id":
            continue
        values = patients[col]
        if values.isna().mean() > MAX_COVARIATE_MISSING:
            continue
        if pd.api.types.is_bool_dtype(values) or pd.api.types.is_numeric_dtype(values):
            numeric = values.astype(float).to_numpy()
            if np.nanstd(numeric) > 0:
                name = _safe_name(col)
                out[name] = numeric
                names.append(name)
            continue
        levels = sorted(values.dropna().astype(str).unique())
        if not 2 <= len(levels) <= min(MAX_CATEGORIES, values.notna().sum() / 2):
            continue
        text = values.astype("string")
        for level in levels[1:]:  # first level is the reference
            name = _safe_name(f"{col}_{level}")
            out[name] = np.where(text.isna(), np.nan, (text == level).astype(float))
            names.append(name)
    return out, names


def visit_table(cohort, predictions: xr.Dataset | None, *, embedding: bool = False) -> tuple[pd.DataFrame, list[str], list[str], list[str]]:
    """One row per cohort visit with observed outcomes, ``pred_<head>`` scores and covariates.

    Returns ``(table, covariate names, heads with any score, embedding column names)``.
    Predictions for visits outside the cohort are ignored; cohort visits
    without a prediction get NaN scores.
    """
    visits = cohort.visits.copy()
    visits["patient_id"] = visits["patient_id"].astype(str)
    visits["visit_id"] = visits["visit_id"].astype(str)
    keep = ["patient_id", "visit_id", "time_years", *[c for c in visit_columns() if c in visits]]
    table = visits[keep].copy()
    heads: list[str] = []
    emb_cols: list[str] = []
    if predictions is not None:
        preds = to_frame(predictions)
        heads = [h for h in score_variables() if h in preds and preds[h].notna().any()]
        scores = preds[["patient_id", "visit_id", *heads]].rename(columns={h: PRED_PREFIX + h for h in heads})
        table = table.merge(scores, on=["patient_id", "visit_id"], how="left")
        folds = predictions["fold"].to_series() if "fold" in predictions else None
        if folds is not None:
            folds.index = folds.index.astype(str)
            table["fold"] = table["patient_id"].map(folds).fillna(-1).astype(int)
        if embedding and "embedding" in predictions:
            emb = embedding_frame(predictions)
            emb_cols = [c for c in emb.columns if c.startswith("emb_")]
            table = table.merge(emb, on=["patient_id", "visit_id"], how="left")
        matched = table[[PRED_PREFIX + h for h in heads]].notna().any(axis=1).sum() if heads else 0
        if heads and matched == 0:
            raise InputError("predictions share no (patient_id, visit_id) with the cohort")
    if "fold" not in table:
        table["fold"] = -1
    covs, cov_names = covariate_table(cohort.patients)
    table = table.merge(covs, on="patient_id", how="left")
    table = table.sort_values(["patient_id", "time_years"], kind="mergesort").reset_index(drop=True)
    return table, cov_names, heads, emb_cols


def event_frame(cohort, event: str = anatomy.DEFORMITY_EVENT) -> pd.DataFrame:
    """``patient_id, duration, observed`` for one event (years since the first visit).

    From ``cohort.event_table(event)``: patients without an event row are
    censored at their last visit. Raises InputError when no patient has a row
    for ``event`` at all.
    """
    if not (cohort.events["event"].astype(str) == event).any():
        raise InputError(f"cohort has no '{event}' rows in its events table")
    table = cohort.event_table(event)
    return pd.DataFrame({
        "patient_id": table["patient_id"].astype(str).to_numpy(),
        DURATION: table["time_years"].astype(float).to_numpy(),
        OBSERVED: table["observed"].astype(int).to_numpy(),
    })


def baseline_table(visits: pd.DataFrame, events: pd.DataFrame | None = None) -> pd.DataFrame:
    """First visit of each patient, joined with ``duration`` / ``observed`` when given."""
    first = visits.sort_values(["patient_id", "time_years"], kind="mergesort").groupby("patient_id", sort=False).head(1)
    first = first.reset_index(drop=True)
    if events is not None:
        first = first.merge(events, on="patient_id", how="inner")
    return first


def analysis_data(cohort, predictions: xr.Dataset | None, *, event: str = anatomy.DEFORMITY_EVENT,
                  embedding: bool = True) -> AnalysisData:
    """Build the visit and patient tables for every analysis."""
    visits, covs, heads, emb_cols = visit_table(cohort, predictions, embedding=embedding)
    try:
        events = event_frame(cohort, event)
    except InputError:
        events = None
    patients = baseline_table(visits, events)
    return AnalysisData(visits=visits, patients=patients, covariates=covs, heads=heads,
                        embedding_cols=emb_cols, cross_fitted=is_cross_fitted(predictions), event=event)


def is_cross_fitted(predictions: xr.Dataset | None) -> bool:
    """True when every patient has a cross-fitting fold and the attrs say so."""
    if predictions is None:
        return False
    attr = int(predictions.attrs.get("cross_fitted", 0)) == 1
    folds_ok = "fold" in predictions and bool((predictions["fold"].values >= 0).all())
    return attr and folds_ok


def check_cross_fitted(predictions: xr.Dataset | None, require: bool = False) -> bool:
    """Warn (or, with ``require``, raise InputError) when scores are not cross-fitted.

    Incremental-value tests on scores from a model trained on the same patients
    are biased towards finding value: their p-values mean nothing.
    """
    if is_cross_fitted(predictions):
        return True
    msg = ("predictions are not cross-fitted (attrs cross_fitted != 1 or some fold == -1): "
           "image scores may come from a model trained on these patients, so incremental-value "
           "tests are biased towards significance")
    if require:
        raise InputError(msg)
    warnings.warn(msg, NotCrossFittedWarning, stacklevel=2)
    return False


def predictions_from_columns(table: pd.DataFrame, columns: Mapping[str, str], *,
                             embedding: Sequence[str] = (), folds: Mapping[str, int] | None = None,
                             run: str = "columns") -> xr.Dataset:
    """Predictions built from columns a user already has (or a simulator's latents).

    ``columns`` maps a head (``risk``, ``svdh``, ``haq``...) to a column of
    ``table`` (one row per visit with ``patient_id``, ``visit_id``,
    ``time_years``); ``embedding`` names columns to store as the embedding.
    A score not learned from these patients (a fixed formula,
    a reader's score, a true latent) needs no cross-fitting: without ``folds``
    every patient gets fold 0 and the dataset is marked ``cross_fitted``.
    """
    unknown = set(columns) - set(score_variables())
    if unknown:
        raise InputError(f"unknown head(s) {sorted(unknown)}; expected some of {list(score_variables())}")
    missing = [c for c in ("patient_id", "visit_id", "time_years", *columns.values(), *embedding) if c not in table]
    if missing:
        raise InputError(f"table lacks column(s) {missing}")
    frame = table[["patient_id", "visit_id", "time_years"]].copy()
    for head, col in columns.items():
        frame[head] = table[col].astype(float).to_numpy()
    ids = frame["patient_id"].astype(str).unique()
    fold_map = dict(folds) if folds is not None else {p: 0 for p in ids}
    emb = table[list(embedding)].to_numpy(dtype=float) if embedding else None
    return from_frame(frame, embedding=emb, folds=fold_map, attrs={"run": run, "heads": ",".join(columns)})


def complete_rows(df: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """Rows where every named column is present (complete-case analysis)."""
    missing = [c for c in columns if c not in df]
    if missing:
        raise InputError(f"analysis table lacks column(s) {missing}")
    return df.dropna(subset=list(columns)).reset_index(drop=True)


def _safe_name(name: str) -> str:
    cleaned = re.sub(r"\W+", "_", str(name)).strip("_").lower() or "x"
    return cleaned if not cleaned[0].isdigit() else f"x_{cleaned}"
