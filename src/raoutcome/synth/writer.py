"""Output of the simulator: DICOM Part-10 / 16-bit PNG images, uint8 label maps, streamed CSV tables.

DICOM files carry realistic acquisition tags (CR, PA, laterality, pixel spacing, MONOCHROME2,
12 bits stored) and synthetic identities only: PatientName ``SYNTH^P0001``, no birth date, address
or institution; UIDs come from :func:`pydicom.uid.generate_uid` with a prefix derived from the seed
and entropy from (seed, patient, visit, view), so a rerun gives identical bytes.
"""
from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

import numpy as np
from PIL import Image

CR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.1"
ROOT = "1.2.826.0.1.3680043.8.498."  # pydicom's root; our seed-derived arc follows


def uid_prefix(seed: int) -> str:
    return f"{ROOT}{(int(seed) % 999_983) + 1}."


def to_uint(img: np.ndarray, bits: int) -> np.ndarray:
    return np.round(np.clip(img, 0.0, 1.0) * (2 ** bits - 1)).astype(np.uint16)


def write_png16(path: Path, img: np.ndarray) -> None:
    Image.fromarray(to_uint(img, 16)).save(path, format="PNG", compress_level=1)


def write_labels(path: Path, label: np.ndarray) -> None:
    Image.fromarray(label.astype(np.uint8), mode="L").save(path, format="PNG", compress_level=1)


def write_dicom(path: Path, img: np.ndarray, *, seed: int, patient_id: str, sex: str, visit_id: str,
                view: str, study_date: dt.date, pixel_spacing_mm: float, age_years: float) -> None:
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    prefix = uid_prefix(seed)
    key = [str(seed), patient_id, visit_id]
    study_uid = generate_uid(prefix, entropy_srcs=key + ["study"])
    series_uid = generate_uid(prefix, entropy_srcs=key + [view, "series"])
    sop_uid = generate_uid(prefix, entropy_srcs=key + [view, "image"])

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CR_IMAGE_STORAGE
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = prefix + "1"
    meta.ImplementationVersionName = "RAOUTCOME_SYNTH"

    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    date = study_date.strftime("%Y%m%d")
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["DERIVED", "PRIMARY"]
    ds.SOPClassUID = CR_IMAGE_STORAGE
    ds.SOPInstanceUID = sop_uid
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = date
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = "090000"
    ds.AccessionNumber = ""
    ds.Modality = "CR"
    ds.Manufacturer = "raoutcome synthetic phantom"
    ds.ReferringPhysicianName = ""
    ds.StudyDescription = "SYNTHETIC RA FOLLOW-UP"
    ds.SeriesDescription = f"{view.replace('_', ' ').upper()} PA"
    ds.PatientName = f"SYNTH^{patient_id}"
    ds.PatientID = patient_id
    ds.PatientSex = sex
    ds.PatientAge = f"{int(age_years):03d}Y"
    ds.BodyPartExamined = "HAND" if view.startswith("hand") else "FOOT"
    ds.ViewPosition = "PA"
    ds.Laterality = ds.ImageLaterality = "L" if view.endswith("left") else "R"
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.StudyID = visit_id
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    ds.PatientOrientation = ["L", "F"] if view.endswith("left") else ["R", "F"]
    spacing = f"{pixel_spacing_mm:.4f}"
    ds.PixelSpacing = [spacing, spacing]
    ds.ImagerPixelSpacing = [spacing, spacing]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = img.shape
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.WindowCenter = 2048
    ds.WindowWidth = 4096
    ds.PixelData = to_uint(img, 12).tobytes()
    ds.save_as(path, enforce_file_format=True)


class TableWriter:
    """Append rows to CSV tables as they arrive (memory flat in cohort size)."""

    def __init__(self, root: Path, columns: dict[str, list[str]]):
        self.columns = columns
        self._fh = {}
        self._w = {}
        for name, cols in columns.items():
            path = root / f"{name}.csv"
            path.parent.mkdir(parents=True, exist_ok=True)
            fh = open(path, "w", newline="", encoding="utf-8")
            w = csv.DictWriter(fh, fieldnames=cols, extrasaction="raise", lineterminator="\n")
            w.writeheader()
            self._fh[name], self._w[name] = fh, w

    def write(self, name: str, rows: list[dict]) -> None:
        self._w[name].writerows(_fmt(r) for r in rows)

    def close(self) -> None:
        for fh in self._fh.values():
            fh.close()


def _fmt(row: dict) -> dict:
    out = {}
    for k, v in row.items():
        if isinstance(v, (float, np.floating)):
            v = float(v)
            out[k] = "" if np.isnan(v) else repr(round(v, 6))
        elif isinstance(v, np.integer):
            out[k] = int(v)
        else:
            out[k] = v
    return out
