"""``raoutcome pacs pull``: radiographs from a PACS into a pseudonymised cohort folder.

Per study (QIDO-RS / C-FIND, since a date, by modality and body part) and per instance
(WADO-RS / C-GET / C-MOVE): the header decides the view (:func:`~raoutcome.interop.deid.view_of`),
the instance is de-identified (:func:`~raoutcome.interop.deid.deidentify`) and written to
``images/<pseudonym>/<study key>_<view>.dcm``, then decoded once with the library's own reader
(:func:`raoutcome.imaging.dicom.read_dicom`) so an undecodable file is refused now, not in training.
Refused instances go to ``unusable.csv`` with the reason. At the end the manifest is written from
the ledger: ``patients.csv``, ``visits.csv`` (one visit per study, ``visit_id`` = the study key,
``time_years`` = years since the patient's first pulled study), ``images.csv``, an empty
``events.csv``. Rerunning resumes: instances already in the ledger are not fetched again.
"""
from __future__ import annotations

__all__ = ["PullSummary", "pull", "save_instance", "write_manifest"]

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import pandas as pd
from pydicom.dataset import Dataset

from raoutcome.errors import ImageReadError
from raoutcome.interop.credentials import PacsError, ServerSpec
from raoutcome.interop.deid import deidentify, view_of
from raoutcome.interop.private import PrivateStore
from raoutcome.interop.server import connect
from raoutcome.io_utils import atomic_write

DEFAULT_MODALITIES = ("DX", "CR", "MR")


@dataclass(frozen=True)
class PullSummary:
    cohort: Path
    private: Path
    studies: int
    images: int
    unusable: int


def save_instance(ds: Dataset, store: PrivateStore, root: Path, taken: set[tuple[str, str]],
                  durable: bool = True) -> tuple[str, str, str | None, str | None]:
    """De-identify and write one retrieved instance under ``root/images``.

    Returns ``(pseudonym, study_key, relative path or None, reason or None)``; ``taken`` holds the
    (study key, view) pairs already written (one image per view and study). ``durable``: write
    atomically with fsync (a pulled cohort); False for the scorer's temporary chunk folders, which a
    crash discards anyway.
    """
    from raoutcome.imaging.dicom import read_dicom

    patient_id = str(ds.get("PatientID", "") or "")
    date = str(ds.get("StudyDate", "") or "")
    pseudo, key = store.remember_study(str(ds.StudyInstanceUID), patient_id, date)
    if not patient_id:
        return pseudo, key, None, "no PatientID"
    if len(date) != 8 or not date.isdigit():
        return pseudo, key, None, "no valid StudyDate (visits are placed in time by the study date)"
    view, reason = view_of(ds)
    if view is None:
        return pseudo, key, None, reason
    if (key, view) in taken:
        return pseudo, key, None, f"another {view} image of this study is used"
    rel = f"images/{pseudo}/{key}_{view}.dcm"
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    clean = deidentify(ds, pseudo, store.uid)
    if durable:
        with atomic_write(path, "wb") as fh:
            clean.save_as(fh, enforce_file_format=True)
    else:
        clean.save_as(path, enforce_file_format=True)
    try:
        read_dicom(path)
    except ImageReadError as err:
        path.unlink(missing_ok=True)
        return pseudo, key, None, str(err).replace(str(path), rel)
    taken.add((key, view))
    return pseudo, key, rel, None


def write_manifest(store: PrivateStore, root: Path, study_keys: Sequence[str] | None = None) -> dict[str, int]:
    """Write the cohort tables from the ledger (only ``study_keys`` when given). Returns counts."""
    q = ("SELECT s.pseudonym, s.study_key, s.study_date, i.view, i.path FROM instances i "
         "JOIN studies s ON s.study_key = i.study_key WHERE i.status = 'ok'")
    images = pd.DataFrame(store.db.execute(q).fetchall(), columns=["patient_id", "visit_id", "date", "view", "path"])
    bad = pd.DataFrame(store.db.execute("SELECT study_key, sop_key, reason FROM instances WHERE status != 'ok'")
                       .fetchall(), columns=["study", "instance", "reason"])
    images = images[[(root / rel).is_file() for rel in images["path"]]] if len(images) else images
    if study_keys is not None:
        images = images[images["visit_id"].isin(set(study_keys))]
        bad = bad[bad["study"].isin(set(study_keys))]
    images = images.sort_values(["patient_id", "date", "visit_id", "view"])
    visits = images.drop_duplicates("visit_id")[["patient_id", "visit_id", "date"]].copy()
    # one visit per date and patient: a second study on the same day cannot be placed in time
    same_day = visits.duplicated(["patient_id", "date"])
    for key in visits.loc[same_day, "visit_id"]:
        first = visits[(visits.patient_id == visits.loc[visits.visit_id == key, "patient_id"].iloc[0])
                       & (visits.date == visits.loc[visits.visit_id == key, "date"].iloc[0])].visit_id.iloc[0]
        for _, row in images[images.visit_id == key].iterrows():
            bad.loc[len(bad)] = [key, Path(row.path).stem, f"another study of the patient on the same day ({first}) is used"]
    visits = visits[~same_day]
    images = images[images["visit_id"].isin(set(visits["visit_id"]))]
    dates = pd.to_datetime(visits["date"], format="%Y%m%d")
    first = dates.groupby(visits["patient_id"]).transform("min")
    visits["time_years"] = ((dates - first).dt.days / 365.25).round(4)
    tables = {
        "patients": pd.DataFrame({"patient_id": sorted(visits["patient_id"].unique())}),
        "visits": visits[["patient_id", "visit_id", "time_years"]],
        "images": images[["patient_id", "visit_id", "view", "path"]],
        "events": pd.DataFrame(columns=["patient_id", "event", "time_years", "observed"]),
        "unusable": bad.sort_values(["study", "instance"]),
    }
    for name, frame in tables.items():
        with atomic_write(root / f"{name}.csv", newline="") as fh:
            frame.to_csv(fh, index=False)
    return {"studies": len(visits), "images": len(images), "unusable": len(bad)}


def pull(spec: ServerSpec, out: str | os.PathLike, since: dt.date | None = None, private: str | os.PathLike | None = None,
         modalities: Sequence[str] = DEFAULT_MODALITIES, body_parts: Sequence[str] = (),
         progress: Callable[[str], None] | None = None) -> PullSummary:
    """Pull every matching study into the cohort folder ``out`` (resumable; see the module docstring)."""
    root = Path(out)
    private_dir = Path(private) if private else root.parent / f"{root.name}.private"
    if private_dir.resolve().is_relative_to(root.resolve()):
        raise PacsError(f"{private_dir}: the private folder (pseudonym key and mapping) must be outside the cohort")
    root.mkdir(parents=True, exist_ok=True)
    store = PrivateStore(private_dir)
    server = connect(spec, label=store.study_key)
    taken = {(k, v) for k, v, rel in store.db.execute("SELECT study_key, view, path FROM instances WHERE status = 'ok'")
             if (root / rel).is_file()}
    try:
        for study in server.studies(since, modalities):
            key = store.study_key(study.study_uid)
            try:
                refs = server.instances(study.study_uid, modalities, body_parts)
            except PacsError as err:
                store.remember_study(study.study_uid, study.patient_id, study.study_date)
                store.record_instance("", key, "error", reason=str(err))
                continue
            for ref in refs:
                status, rel = store.instance_status(ref.sop_uid)
                if status == "unusable" or (status == "ok" and (root / rel).is_file()):
                    continue  # done before (a file of another cohort sharing the ledger is fetched again)
                try:
                    ds = server.retrieve(ref)
                except PacsError as err:
                    store.remember_study(study.study_uid, study.patient_id, study.study_date)
                    store.record_instance(ref.sop_uid, key, "error", reason=str(err))
                    continue
                _pseudo, key, rel, reason = save_instance(ds, store, root, taken)
                if rel:
                    view = Path(rel).stem.split("_", 1)[1]
                    store.record_instance(ref.sop_uid, key, "ok", view=view, path=rel)
                else:
                    store.record_instance(ref.sop_uid, key, "unusable", reason=reason)
            if progress:
                progress(f"study {key} done")
        counts = write_manifest(store, root)
        store.write_mapping()
    finally:
        server.close()
        store.close()
    return PullSummary(root, private_dir, counts["studies"], counts["images"], counts["unusable"])
