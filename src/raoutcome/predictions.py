"""The Predictions dataset: the one object everything downstream of the model reads.

An xarray Dataset with coords ``patient_id`` (str) and ``visit_id`` (str) and
variables: one per output of every registered outcome (:func:`raoutcome.outcomes.score_variables`:
``svdh``, ``jsn``, ``erosion``, ``haq``, ``pain``, ``risk``, and any outcome registered since),
``time_years`` (patient_id x visit_id), ``embedding`` (patient_id x visit_id x
feature) and ``fold`` (patient_id). Missing visits and switched-off heads are
NaN. No torch here: any model, or a user's own columns, can produce one.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
import xarray as xr

from raoutcome.errors import InputError
from raoutcome.grid import visit_grid
from raoutcome.io_utils import atomic_path
from raoutcome.outcomes import score_variables

#: the built-in outcomes' score variables (the registry's :func:`score_variables` also has those registered since)
SCORE_VARIABLES: tuple[str, ...] = score_variables()


def from_frame(
    frame: pd.DataFrame,
    embedding: np.ndarray | None = None,
    folds: Mapping[str, int] | None = None,
    attrs: Mapping[str, object] | None = None,
) -> xr.Dataset:
    """Build Predictions from one row per visit.

    ``frame`` needs ``patient_id``, ``visit_id`` and any of ``time_years`` and the registered
    outcomes' outputs (:func:`raoutcome.outcomes.score_variables`); ``embedding`` (optional) has one row per frame row.
    """
    frame = frame.reset_index(drop=True).copy()
    frame["patient_id"] = frame["patient_id"].astype(str)
    frame["visit_id"] = frame["visit_id"].astype(str)
    if frame.duplicated(["patient_id", "visit_id"]).any():
        raise InputError("predictions: duplicate (patient_id, visit_id) rows")
    grid = visit_grid(frame)
    patients = grid.patients
    data_vars: dict[str, tuple] = {}
    for name in ("time_years", *score_variables()):
        values = frame[name] if name in frame else np.full(len(frame), np.nan)
        data_vars[name] = (("patient_id", "visit_id"), grid.place(values))
    coords: dict[str, object] = grid.coords()
    if embedding is not None:
        embedding = np.asarray(embedding, dtype=np.float32)
        if embedding.shape[0] != len(frame):
            raise ValueError("embedding must have one row per frame row")
        data_vars["embedding"] = (("patient_id", "visit_id", "feature"), grid.place(embedding, np.float32))
        coords["feature"] = np.arange(embedding.shape[1])
    fold = np.full(len(patients), -1, dtype=np.int64)
    if folds:
        fold = np.array([int(folds.get(p, -1)) for p in patients], dtype=np.int64)
    data_vars["fold"] = (("patient_id",), fold)
    ds = xr.Dataset(data_vars, coords=coords)
    ds.attrs.update({"cross_fitted": int((fold >= 0).all())})
    if attrs:
        ds.attrs.update({k: v for k, v in attrs.items()})
    return ds


def to_frame(ds: xr.Dataset) -> pd.DataFrame:
    """One row per existing visit (rows whose ``time_years`` is NaN are dropped), no embedding."""
    names = [n for n in ("time_years", *score_variables()) if n in ds]
    frame = ds[names].to_dataframe().reset_index()
    frame = frame.dropna(subset=["time_years"]) if "time_years" in frame else frame
    if "fold" in ds:
        frame = frame.merge(ds["fold"].to_dataframe().reset_index(), on="patient_id", how="left")
    return frame.reset_index(drop=True)


def embedding_frame(ds: xr.Dataset) -> pd.DataFrame:
    """Embeddings as a wide table: one row per existing visit, columns ``emb_0..emb_{F-1}``."""
    if "embedding" not in ds:
        raise InputError("predictions hold no 'embedding' variable")
    keep = to_frame(ds)[["patient_id", "visit_id"]]
    emb = ds["embedding"].sel(patient_id=xr.DataArray(keep["patient_id"].to_numpy()),
                              visit_id=xr.DataArray(keep["visit_id"].to_numpy())).values
    cols = pd.DataFrame(emb, columns=[f"emb_{i}" for i in range(emb.shape[1])])
    return pd.concat([keep.reset_index(drop=True), cols], axis=1)


def save_predictions(ds: xr.Dataset, path: str | Path) -> Path:
    """Write atomically as netCDF (``.nc``: h5netcdf's layout, :mod:`raoutcome.netcdf_write`) or zarr (``.zarr``)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        if path.suffix == ".zarr":
            ds.to_zarr(tmp, mode="w")
        elif path.suffix in (".nc", ".nc4", ".netcdf"):
            from raoutcome.netcdf_write import write_plain_netcdf

            if not write_plain_netcdf(ds, tmp):  # the same file, ~10x faster; xarray for anything not plain
                ds.to_netcdf(tmp, engine="h5netcdf")
        else:
            raise InputError(f"{path}: predictions must end in .nc or .zarr")
    return path


def load_predictions(path: str | Path) -> xr.Dataset:
    """Read a Predictions dataset written by :func:`save_predictions` (or by a user)."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: predictions file not found")
    try:
        if path.suffix == ".zarr" or path.is_dir():
            ds = xr.open_zarr(path).load()
        else:
            with xr.open_dataset(path, engine="h5netcdf") as opened:
                ds = opened.load()
    except Exception as err:  # noqa: BLE001 - any decoder failure is bad input
        raise InputError(f"{path}: cannot read predictions ({err})") from err
    missing = {"patient_id", "visit_id"} - set(ds.coords)
    if missing:
        raise InputError(f"{path}: predictions lack coordinate(s) {sorted(missing)}")
    ds = ds.assign_coords(patient_id=ds["patient_id"].astype(str), visit_id=ds["visit_id"].astype(str))
    return ds


__all__: Sequence[str] = ("SCORE_VARIABLES", "from_frame", "to_frame", "embedding_frame",
                          "save_predictions", "load_predictions")
