"""The one per-visit grid: ``patient_id`` x ``visit_id``, visits ordered by time.

Both :meth:`raoutcome.cohort.Cohort.to_xarray` and the Predictions dataset
(:func:`raoutcome.predictions.from_frame`) lay per-visit values out on it, so a cohort variable and a
prediction line up by label (``ds.sel(patient_id=..., visit_id=...)``) with no reindexing. Patients keep
the order given (the cohort's patients table, or first appearance); visit ids are ordered by their median
``time_years`` over the patients that have them (a study's visit schedule), ties and missing times broken by
the number in the id and then the id itself (``v2`` before ``v10``). Torch-free.
"""
from __future__ import annotations

__all__ = ["Grid", "visit_grid", "visit_sort_key"]

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd


def visit_sort_key(visit_id: str) -> tuple:
    """``(number in the id, id)``: ``v2`` before ``v10``; an id without digits first."""
    digits = "".join(ch for ch in visit_id if ch.isdigit())
    return (int(digits) if digits else -1, visit_id)


@dataclass(frozen=True)
class Grid:
    """Row and column labels of the grid, and where each input row falls in it."""

    patients: pd.Index
    visits: pd.Index
    row: np.ndarray  # patient index of each input row
    col: np.ndarray  # visit index of each input row

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.patients), len(self.visits)

    def place(self, values, dtype=np.float64, fill=np.nan) -> np.ndarray:
        """``values`` (one per input row, or ``[rows, k]``) on the grid ``[patients, visits(, k)]``, ``fill`` elsewhere."""
        values = np.asarray(values, dtype=dtype)
        out = np.full(self.shape + values.shape[1:], fill, dtype=dtype)
        out[self.row, self.col] = values
        return out

    def coords(self) -> dict[str, np.ndarray]:
        return {"patient_id": self.patients.to_numpy(dtype=str), "visit_id": self.visits.to_numpy(dtype=str)}


def visit_grid(frame: pd.DataFrame, patients: Sequence[str] | None = None) -> Grid:
    """The grid of ``frame`` (one row per visit: ``patient_id``, ``visit_id``, optional ``time_years``).

    ``patients``: the row labels in order (default: the frame's patients, first appearance).
    """
    pids = frame["patient_id"].astype(str).to_numpy()
    vids = frame["visit_id"].astype(str).to_numpy()
    patients_ix = pd.Index(pd.unique(pids) if patients is None else [str(p) for p in patients], name="patient_id")
    ids = pd.unique(vids)
    if "time_years" in frame:
        median = pd.Series(frame["time_years"].to_numpy(dtype=float)).groupby(vids).median()
        order = sorted(ids, key=lambda v: (np.nan_to_num(median.get(v, np.nan), nan=np.inf), visit_sort_key(v)))
    else:
        order = sorted(ids, key=visit_sort_key)
    visits_ix = pd.Index(order, name="visit_id")
    return Grid(patients_ix, visits_ix, patients_ix.get_indexer(pids), visits_ix.get_indexer(vids))
