"""Images-table rows whose view is an MR view: the path is a series folder (or one DICOM / NIfTI file).

Why: a radiograph row points at one file; an MR row points at a whole series (a folder of
single-frame DICOM files, one enhanced multi-frame file, or a NIfTI file). Validation asks this
module which rows are MR rows (their view's ``anatomy.View.modality`` is ``"mr"``), which of their
paths are series folders (so the regular-file check skips them), and, for the deep check, reads
each series through :func:`raoutcome.imaging.volume.read_volume` so an inconsistent series is
reported against its rows like an undecodable radiograph.
"""
from __future__ import annotations

__all__ = ["check_series", "mr_rows", "series_folders"]

import os
from pathlib import Path

import pandas as pd

from raoutcome import anatomy
from raoutcome.errors import InputError


def mr_rows(views: pd.Series) -> pd.Series:
    """True where the row's (mapped) view is a registered view of modality ``"mr"``."""
    mr = {v for v in anatomy.view_names() if anatomy.view(v).modality == "mr"}
    return views.isin(mr) if mr else pd.Series(False, index=views.index)


def _inside(real: str, real_base: str) -> bool:
    return real == real_base or real.startswith(real_base.rstrip(os.sep) + os.sep)


def series_folders(root: str | os.PathLike, paths: pd.Series) -> tuple[set[str], dict[str, str]]:
    """Which of ``paths`` (relative to ``root``) are folders, and what is wrong with the bad ones.

    A folder must resolve inside the cohort folder and hold at least one file. Paths that are not
    folders are left to the ordinary file check.
    """
    base = os.fspath(root)
    real_base = os.path.realpath(base)
    folders: set[str] = set()
    bad: dict[str, str] = {}
    for rel in pd.unique(paths.dropna().to_numpy(dtype=object)).tolist():
        full = os.path.join(base, rel)
        if not os.path.isdir(full):
            continue
        folders.add(rel)
        if not _inside(os.path.realpath(full), real_base):
            bad[rel] = "MR series folder leaves the cohort folder through a symbolic link"
            continue
        try:
            with os.scandir(full) as entries:
                has_file = any(e.is_file() and not e.name.startswith(".") for e in entries)
        except OSError as err:
            bad[rel] = f"MR series folder cannot be listed: {err.strerror}"
            continue
        if not has_file:
            bad[rel] = "MR series folder holds no files"
    return folders, bad


def check_series(root: str | os.PathLike, paths: pd.Series) -> dict[str, str]:
    """Read each distinct series (no resampling); return ``{path: reason}`` for those refused."""
    from raoutcome.imaging.volume import read_volume

    bad: dict[str, str] = {}
    for rel in pd.unique(paths.dropna().to_numpy(dtype=object)).tolist():
        try:
            read_volume(Path(root) / rel, canonical=False)
        except InputError as err:
            bad[rel] = str(err)
        except ImportError:
            bad[rel] = "MR series need SimpleITK: pip install 'raoutcome[mri]'"
    return bad
