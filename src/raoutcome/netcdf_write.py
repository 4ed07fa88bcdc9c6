"""A fast netCDF-4 writer for plain datasets, such as Predictions: h5py directly, in h5netcdf's layout.

Why: ``Dataset.to_netcdf(engine="h5netcdf")`` spends ~5 ms per variable on dimension bookkeeping (h5netcdf looks
up h5py objects by path on every dimension query); for the site route's Predictions (21 variables, the ``joint``
dimension) that is ~0.1 s, against ~0.01 s for the same HDF5 calls made once. The file is the one h5netcdf
writes: every variable a contiguous dataset in the dataset's variable order (links in creation order, as
``track_order=True``), each dimension a dimension scale (its coordinate variable, or a ``>f4`` placeholder named
"This is a netCDF dimension but not a netCDF variable." where a dimension has no coordinate) with
``_Netcdf4Dimid``; each variable ``DIMENSION_LIST``, ``_Netcdf4Coordinates`` (its dimensions' ids) and
``_Netcdf4Dimid`` (its first dimension's id); floating data variables ``_FillValue = NaN`` (HDF5 fill value and
attribute, xarray's default encoding); strings variable-length UTF-8; numeric attributes 1-element arrays
(netCDF-C's convention); a root ``_NCProperties`` naming the writer. Tests compare the HDF5 structure and the
decoded dataset with h5netcdf's output.

Only a *plain* dataset takes this path (:func:`plain_reason` says why one does not): dimension coordinates only,
integer or string coordinates, float / integer / string variables of at least one dimension, no encoding (a
dataset read from a file carries one: chunks, compression, fill values), attributes of strings and numbers. Any
other dataset is written by xarray, so the output never depends on which path was taken.

References
----------
NetCDF-4 format with HDF5 dimension scales: https://docs.unidata.ucar.edu/netcdf-c/current/file_format_specifications.html
"""
from __future__ import annotations

__all__ = ["plain_reason", "write_plain_netcdf"]

import numbers
from pathlib import Path

import numpy as np
import xarray as xr

_NOT_A_VARIABLE = b"This is a netCDF dimension but not a netCDF variable."
#: attribute names that netCDF/HDF5 or xarray's CF encoding give a meaning: such a dataset goes through xarray
_RESERVED = frozenset({"coordinates", "scale_factor", "add_offset", "missing_value", "units", "calendar", "dtype",
                       "compress", "bounds", "grid_mapping", "formula_terms", "flag_values", "flag_meanings",
                       "valid_min", "valid_max", "valid_range", "CLASS", "NAME", "DIMENSION_LIST",
                       "REFERENCE_LIST"})


def _attr_ok(key, value) -> bool:
    if not isinstance(key, str) or key.startswith("_") or key in _RESERVED:
        return False
    if isinstance(value, str):
        return True
    return isinstance(value, (numbers.Integral, numbers.Real)) and not isinstance(value, (bool, np.bool_))


def plain_reason(ds: xr.Dataset) -> str | None:
    """Why ``ds`` is not plain enough for :func:`write_plain_netcdf` (None: it is)."""
    if ds.encoding.get("unlimited_dims"):
        return "unlimited dimensions"
    if any(size == 0 for size in ds.sizes.values()):
        return "an empty dimension"
    if not all(_attr_ok(k, v) for k, v in ds.attrs.items()):
        return "a global attribute that is not a plain string or number"
    for name, var in ds.variables.items():
        coord = name in ds.coords
        if coord and var.dims != (name,):
            return f"{name}: not a dimension coordinate"
        if not coord and name in ds.sizes:
            return f"{name}: a data variable named like a dimension"
        if var.ndim == 0:
            return f"{name}: a scalar variable"
        if var.encoding:
            return f"{name}: has an encoding"
        kind = var.dtype.kind
        if not (kind in "iuU" or (kind == "f" and not coord and var.dtype.itemsize in (4, 8))):
            return f"{name}: dtype {var.dtype}"
        if not all(_attr_ok(k, v) for k, v in var.attrs.items()):
            return f"{name}: an attribute that is not a plain string or number"
    return None


def _set_attrs(obj, attrs) -> None:
    for k, v in attrs.items():  # h5netcdf: strings as (variable-length) strings, numbers as 1-element arrays
        obj.attrs[k] = v if isinstance(v, str) else np.atleast_1d(v)


def write_plain_netcdf(ds: xr.Dataset, path: str | Path) -> bool:
    """Write ``ds`` as netCDF-4 to ``path`` (not atomically: the caller's temp file) and return True, or return
    False without touching ``path`` when ``ds`` is not plain (:func:`plain_reason`; write it with xarray)."""
    if plain_reason(ds) is not None:
        return False
    import h5py

    from raoutcome import __version__

    dims: dict[str, int] = {}  # dimension ids in order of first appearance (as xarray's set_dimensions)
    for var in ds.variables.values():
        for d in var.dims:
            dims.setdefault(d, len(dims))
    vlen = h5py.string_dtype("utf-8")
    with h5py.File(path, "w", track_order=True) as f:
        props = f"version=2,raoutcome={__version__},hdf5={h5py.version.hdf5_version},h5py={h5py.__version__}"
        f.attrs.create("_NCProperties", np.bytes_(props.encode("ascii")))
        _set_attrs(f, ds.attrs)
        scales = {}
        for d, dimid in dims.items():  # a dimension without a coordinate: a placeholder scale, created first
            if d not in ds.variables:
                s = f.create_dataset(d, shape=(ds.sizes[d],), dtype=">f4", track_order=True)
                s.attrs["_Netcdf4Dimid"] = np.int32(dimid)
                s.make_scale(_NOT_A_VARIABLE + f"{ds.sizes[d]:10}".encode("ascii"))
                scales[d] = s
        made = {}
        for name, var in ds.variables.items():
            values = var.values
            if values.dtype.kind == "U":
                made[name] = f.create_dataset(name, data=values.astype(object), dtype=vlen, track_order=True)
            elif values.dtype.kind == "f":
                made[name] = f.create_dataset(name, data=values, fillvalue=np.nan, track_order=True)
            else:
                made[name] = f.create_dataset(name, data=values, track_order=True)
        for name in ds.dims:  # coordinate variables are their dimension's scale
            if name in made:
                s = made[name]
                s.attrs["_Netcdf4Dimid"] = np.int32(dims[name])
                s.make_scale(name)
                s.attrs["_Netcdf4Coordinates"] = np.array([dims[name]], np.int32)
                scales[name] = s
        for name, var in ds.variables.items():
            if name in ds.dims:
                _set_attrs(made[name], var.attrs)
                continue
            h = made[name]
            for i, d in enumerate(var.dims):
                h.dims[i].attach_scale(scales[d])
            h.attrs["_Netcdf4Coordinates"] = np.array([dims[d] for d in var.dims], np.int32)
            h.attrs["_Netcdf4Dimid"] = np.int32(dims[var.dims[0]])
            if var.dtype.kind == "f":
                h.attrs["_FillValue"] = np.array([np.nan], var.dtype)
            _set_attrs(h, var.attrs)
    return True
