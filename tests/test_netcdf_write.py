"""The fast netCDF writer writes the file h5netcdf writes (HDF5 structure and decoded dataset), and leaves any
dataset that is not plain to xarray."""
from __future__ import annotations

import h5py
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from raoutcome.joint_predictions import add_joints
from raoutcome.netcdf_write import plain_reason, write_plain_netcdf
from raoutcome.predictions import from_frame, load_predictions, save_predictions


def _structure(path) -> list:
    """Every dataset of the file in link order: dtype, shape, layout, fill value and its attributes (references
    as the names they point to, attribute order ignored); root attributes but ``_NCProperties``'s value."""
    out = []
    with h5py.File(path, "r") as f:
        root = {k: repr(v) for k, v in f.attrs.items() if k != "_NCProperties"}
        out.append(("root", sorted(root.items()), "_NCProperties" in f.attrs))
        for name, obj in f.items():
            attrs = []
            for k, v in obj.attrs.items():
                if k == "DIMENSION_LIST":
                    v = [[f[r].name for r in refs] for refs in v]
                elif k == "REFERENCE_LIST":
                    v = [(f[r[0]].name, int(r[1])) for r in v]
                attrs.append((k, repr(v), str(obj.attrs.get_id(k).dtype), obj.attrs.get_id(k).shape))
            out.append((name, str(obj.dtype), h5py.check_string_dtype(obj.dtype), obj.shape, obj.maxshape,
                        obj.chunks, obj.compression, repr(obj.fillvalue), sorted(attrs)))
    return out


def _predictions() -> xr.Dataset:
    """A Predictions dataset with the joint dimension (two patients, three visits), plus what the writer must
    also carry: a dimension without coordinate, a string variable, variable and global attributes."""
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"patient_id": ["p1", "p1", "p2"], "visit_id": ["v0", "v1", "v0"],
                          "time_years": [0.0, 1.0, 0.0], "haq": [0.5, np.nan, 1.25]})
    rows = []
    for (p, v) in [("p1", "v0"), ("p1", "v1"), ("p2", "v0")]:
        for joint in ("hand_left:MCP2", "hand_left:PIP3", "foot_right:MTP1"):
            for kind, k in (("jsn", 5), ("erosion", 11 if joint.startswith("foot") else 6)):
                prob = rng.dirichlet(np.ones(k))
                rows.append({"patient_id": p, "visit_id": v, "joint": joint, "kind": kind,
                             "score": float(prob @ np.arange(k)), "sd": 0.5,
                             **{f"p{i}": prob[i] for i in range(k)}})
    joints = pd.DataFrame(rows)
    ds = add_joints(from_frame(frame, embedding=rng.normal(size=(3, 4)), folds={"p1": 0, "p2": 1},
                               attrs={"run": "r1", "ensemble_size": 2, "scale": 0.5}), joints, None)
    ds["haq"].attrs["long_name"] = "HAQ-DI"
    ds["fold"].attrs["k"] = np.int32(2)
    return ds.assign(extra=(("patient_id", "slot"), np.ones((2, 3), np.float32)),
                     label=(("patient_id",), np.array(["early", "late"])))


def test_the_file_is_the_one_h5netcdf_writes(tmp_path):
    ds = _predictions()
    assert plain_reason(ds) is None
    ds.to_netcdf(tmp_path / "ref.nc", engine="h5netcdf")
    assert write_plain_netcdf(ds, tmp_path / "fast.nc")
    assert _structure(tmp_path / "fast.nc") == _structure(tmp_path / "ref.nc")
    with xr.open_dataset(tmp_path / "ref.nc", engine="h5netcdf") as ref, \
            xr.open_dataset(tmp_path / "fast.nc", engine="h5netcdf") as fast:
        xr.testing.assert_identical(fast.load(), ref.load())
        assert list(fast.variables) == list(ref.variables)
        for name in ref.variables:
            assert repr(sorted((k, v) for k, v in fast[name].encoding.items() if k != "source")) == \
                   repr(sorted((k, v) for k, v in ref[name].encoding.items() if k != "source"))  # NaN fill


def test_save_predictions_round_trips_through_the_fast_path(tmp_path):
    ds = _predictions()
    back = load_predictions(save_predictions(ds, tmp_path / "p.nc"))
    with h5py.File(tmp_path / "p.nc", "r") as f:
        assert b"raoutcome=" in f.attrs["_NCProperties"]  # this writer took it
    xr.testing.assert_identical(back.drop_vars("label"), ds.drop_vars("label"))
    assert back["label"].values.tolist() == ["early", "late"]
    np.testing.assert_array_equal(back["joint_prob"].values, ds["joint_prob"].values)  # NaN where no grade


@pytest.mark.parametrize("change, why", [
    (lambda ds: ds.assign(flag=(("patient_id",), np.array([True, False]))), "dtype bool"),
    (lambda ds: ds.assign_coords(site=(("patient_id",), np.array(["a", "b"]))), "not a dimension coordinate"),
    (lambda ds: ds.assign(one=((), 1.0)), "a scalar variable"),
    (lambda ds: ds.assign_attrs(bad=[1, 2]), "global attribute"),
    (lambda ds: ds.assign_coords(visit_id=np.array([0.5, 1.5])), "dtype float64"),
])
def test_a_dataset_that_is_not_plain_goes_to_xarray(tmp_path, change, why):
    ds = change(_predictions())
    assert why in plain_reason(ds)
    assert not write_plain_netcdf(ds, tmp_path / "fast.nc")
    assert not (tmp_path / "fast.nc").exists()
    save_predictions(ds, tmp_path / "p.nc")  # still written, by xarray
    with h5py.File(tmp_path / "p.nc", "r") as f:
        assert b"h5netcdf=" in f.attrs["_NCProperties"]


def test_a_dataset_read_back_keeps_its_encoding_through_xarray(tmp_path):
    ds = _predictions()
    ds.to_netcdf(tmp_path / "z.nc", engine="h5netcdf", encoding={"haq": {"zlib": True, "complevel": 4}})
    back = load_predictions(tmp_path / "z.nc")
    assert "has an encoding" in plain_reason(back)
    save_predictions(back, tmp_path / "again.nc")
    with h5py.File(tmp_path / "again.nc", "r") as f:
        assert f["haq"].compression == "gzip"  # the encoding it was read with is honoured
