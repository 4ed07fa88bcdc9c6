"""The :class:`Cohort`: validated, typed manifest tables plus the views everything else uses."""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd
import xarray as xr

from raoutcome.anatomy import DEFORMITY_EVENT
from raoutcome.cohort import splits
from raoutcome.cohort.validation import check, read_all
from raoutcome.errors import CohortValidationError, InputError
from raoutcome.grid import visit_grid
from raoutcome.outcomes import visit_columns


@dataclass(eq=False)
class Cohort:
    """A validated cohort.

    Tables are pandas DataFrames with string IDs:

    - ``patients``: ``patient_id`` + covariates, sorted by patient_id.
    - ``visits``: ``patient_id, visit_id, time_years`` (float, years since the patient's
      first visit) and every registered visit column (:func:`raoutcome.outcomes.visit_columns`) (float, NaN
      when missing), plus ``date`` if given; sorted by patient_id, time_years.
    - ``images``: ``patient_id, visit_id, view, path`` (posix path relative to ``root``).
    - ``events``: ``patient_id, event, time_years, observed`` (int 0/1).
    - ``joints`` (or None): ``patient_id, visit_id, joint, kind, score``.
    - ``landmarks`` (or None): ``path, landmark, x, y``.
    - ``retest`` (or None): a second reading of visits' scores, ``patient_id, visit_id`` + score columns.
    - ``retest_joints`` (or None): the second reading per joint, shaped like ``joints``.
    """

    root: Path
    patients: pd.DataFrame
    visits: pd.DataFrame
    images: pd.DataFrame
    events: pd.DataFrame
    joints: pd.DataFrame | None = None
    landmarks: pd.DataFrame | None = None
    retest: pd.DataFrame | None = None
    retest_joints: pd.DataFrame | None = None
    source: Path | None = None

    # ------------------------------------------------------------ basics
    def __repr__(self) -> str:
        return (f"Cohort(root={str(self.root)!r}, patients={len(self.patients)}, visits={len(self.visits)}, "
                f"images={len(self.images)}, events={len(self.events)})")

    @property
    def patient_ids(self) -> list[str]:
        """Every patient id, sorted."""
        return self.patients["patient_id"].tolist()

    def image_path(self, rel: str | Path) -> Path:
        """Absolute path of an image given its ``images.path`` (relative to ``root``)."""
        return self.root / Path(rel)

    def subset(self, patient_ids: Iterable[str]) -> "Cohort":
        """A cohort with only these patients (every table filtered; order kept)."""
        wanted = pd.Index([str(p) for p in patient_ids]).unique()
        unknown = wanted.difference(pd.Index(self.patients["patient_id"]))
        if len(unknown):
            shown = ", ".join(map(repr, unknown[:10]))
            raise KeyError(f"subset: {len(unknown)} patient id(s) not in the cohort: {shown}")

        def keep(frame: pd.DataFrame | None) -> pd.DataFrame | None:
            if frame is None:
                return None
            return frame[frame["patient_id"].isin(wanted)].reset_index(drop=True)

        images = keep(self.images)
        landmarks = None
        if self.landmarks is not None:
            landmarks = self.landmarks[self.landmarks["path"].isin(images["path"])].reset_index(drop=True)
        return replace(
            self,
            patients=keep(self.patients),
            visits=keep(self.visits),
            images=images,
            events=keep(self.events),
            joints=keep(self.joints),
            landmarks=landmarks,
            retest=keep(self.retest),
            retest_joints=keep(self.retest_joints),
        )

    # ------------------------------------------------------------ views
    def to_xarray(self) -> xr.Dataset:
        """Dataset on the grid Predictions use (:mod:`raoutcome.grid`): ``patient_id`` x ``visit_id``,
        visits ordered by time.

        Variables: ``time_years`` and every registered visit column (float, NaN where the patient has no
        such visit or value) and ``n_visits`` (per patient). Patients without visits keep an all-NaN row.
        """
        v = self.visits
        grid = visit_grid(v, patients=self.patients["patient_id"])
        data_vars: dict[str, tuple] = {name: (("patient_id", "visit_id"), grid.place(v[name]))
                                       for name in ("time_years", *visit_columns())}
        counts = (np.bincount(grid.row, minlength=len(grid.patients)) if len(v)
                  else np.zeros(len(grid.patients), dtype=np.int64))
        data_vars["n_visits"] = (("patient_id",), counts.astype(np.int64))
        return xr.Dataset(data_vars, coords=grid.coords(), attrs={"root": str(self.root)})

    def event_table(self, event: str = DEFORMITY_EVENT, censor_missing: bool = True) -> pd.DataFrame:
        """One row per patient: ``patient_id, time_years, observed`` for ``event``.

        Patients with no row for the event are, with ``censor_missing`` (default),
        censored at their last visit (observed 0); patients with neither an event row
        nor any visit are left out. Without ``censor_missing`` only the event rows are used.
        """
        ev = self.events[self.events["event"] == event][["patient_id", "time_years", "observed"]]
        if censor_missing:
            last = self.visits.groupby("patient_id", sort=True)["time_years"].max()
            missing = last.index.difference(pd.Index(ev["patient_id"]))
            extra = pd.DataFrame({"patient_id": missing, "time_years": last.loc[missing].to_numpy(),
                                  "observed": 0})
            ev = pd.concat([ev, extra], ignore_index=True) if len(extra) else ev
        ev = ev.astype({"time_years": float, "observed": np.int64})
        return ev.sort_values("patient_id").reset_index(drop=True)

    def event_status(self, event: str | None = DEFORMITY_EVENT) -> pd.Series:
        """Per patient (all patients, sorted): 1 if ``event`` was observed, else 0."""
        status = pd.Series(0, index=pd.Index(self.patients["patient_id"], name="patient_id"), dtype=np.int64)
        if event is None:
            return status
        ev = self.events[(self.events["event"] == event) & (self.events["observed"] == 1)]
        status[status.index.isin(ev["patient_id"])] = 1
        return status

    # ------------------------------------------------------------ splits
    def kfold(self, k: int = 5, seed: int = 0,
              stratify_event: str | None = DEFORMITY_EVENT) -> list[tuple[list[str], list[str]]]:
        """``k`` (train_ids, test_ids) patient lists; each patient is tested exactly once.

        Stratified on whether ``stratify_event`` was observed (None: not stratified).
        """
        status = self.event_status(stratify_event)
        return splits.kfold(status.index.tolist(), status.to_numpy(), k, seed=seed)

    def split(self, test: float = 0.2, val: float = 0.1, seed: int = 0,
              stratify_event: str | None = DEFORMITY_EVENT) -> splits.Split:
        """(train, validation, test) patient id lists, stratified on event status."""
        status = self.event_status(stratify_event)
        return splits.split(status.index.tolist(), status.to_numpy(), test=test, val=val, seed=seed)

    # ------------------------------------------------------------ text
    def summary(self) -> str:
        """A readable text summary (patients, visits, images per view, completeness, events)."""
        from raoutcome.cohort.summary import summarize

        return summarize(self)


# ---------------------------------------------------------------- loading

_LEADING = {
    "patients": ["patient_id"],
    "visits": ["patient_id", "visit_id", "time_years", *visit_columns()],
    "images": ["patient_id", "visit_id", "view", "path"],
    "events": ["patient_id", "event", "time_years", "observed"],
    "joints": ["patient_id", "visit_id", "joint", "kind", "score"],
    "landmarks": ["path", "landmark", "x", "y"],
    "retest": ["patient_id", "visit_id"],
    "retest_joints": ["patient_id", "visit_id", "joint", "kind", "score"],
}


def _finish(frame: pd.DataFrame | None, name: str) -> pd.DataFrame | None:
    """Final types, column order (ours first, then the user's extras) and row order."""
    if frame is None:
        return None
    if name == "patients":
        frame = frame.sort_values("patient_id", kind="stable")
    elif name == "visits":
        frame = frame.sort_values(["patient_id", "time_years"], kind="stable")
    elif name == "events":
        frame = frame.assign(observed=frame["observed"].astype(np.int64))
    lead = _LEADING[name]
    frame = frame[lead + [c for c in frame.columns if c not in lead]]
    return frame.reset_index(drop=True)


def load(path: str | Path, check_files: bool = True, images: bool = False) -> Cohort:
    """Read and validate a cohort (folder or cohort.toml).

    Raises :class:`~raoutcome.errors.CohortValidationError` listing every problem
    (file, row, column, value). ``check_files=False`` skips the image-file checks;
    ``images=True`` decodes every image first (:mod:`raoutcome.imaging.check`; cached,
    so a second load is cheap) and checks landmarks against their image's size.
    Nothing is written to the cohort.
    """
    if path is None:
        raise InputError("no cohort path given")
    spec, tables, problems = read_all(path)
    if spec.table_dir.is_dir():
        found, clean = check(spec, tables, check_files=check_files, images=images)
        problems = problems + found
    if problems:
        raise CohortValidationError(problems)
    return Cohort(
        root=spec.root.resolve(),
        patients=_finish(clean["patients"], "patients"),
        visits=_finish(clean["visits"], "visits"),
        images=_finish(clean["images"], "images"),
        events=_finish(clean["events"], "events"),
        joints=_finish(clean["joints"], "joints"),
        landmarks=_finish(clean["landmarks"], "landmarks"),
        retest=_finish(clean["retest"], "retest"),
        retest_joints=_finish(clean["retest_joints"], "retest_joints"),
        source=Path(path),
    )
