"""MR volumes: pydicom-written series read back with the right geometry, and bad series refused.

Each series is written here voxel by voxel with a known world position for every voxel
(PS3.3 C.7.6.2.1.1: P = S + c*dc*row_cos + r*dr*col_cos); the tests then ask the read,
canonicalised volume which value sits at that world position.
"""
from __future__ import annotations

import numpy as np
import pytest

sitk = pytest.importorskip("SimpleITK")
import pydicom  # noqa: E402
from pydicom.dataset import Dataset, FileMetaDataset  # noqa: E402
from pydicom.uid import ExplicitVRLittleEndian, generate_uid  # noqa: E402

from raoutcome.errors import InputError  # noqa: E402
from raoutcome.imaging.volume import (  # noqa: E402
    CANONICAL_DIRECTION,
    VOLUME_META_KEYS,
    SeriesError,
    read_volume,
)

MR = "1.2.840.10008.5.1.4.1.1.4"
ENHANCED_MR = "1.2.840.10008.5.1.4.1.1.4.1"
SAG_ROW = (0.0, 1.0, 0.0)    # columns run anterior -> posterior
SAG_COL = (0.0, 0.0, -1.0)   # rows run superior -> inferior


def _base(sop_class: str, series_uid: str, rows: int, cols: int) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.PatientName = "Secret^Patient"
    ds.PatientID = "ID-SECRET-42"
    ds.PatientBirthDate = "19500101"
    ds.InstitutionName = "Secret Hospital"
    ds.StudyInstanceUID = "1.2.3.4"
    ds.SeriesInstanceUID = series_uid
    ds.Modality = "MR"
    ds.SeriesDescription = "sag T2 Secret"
    ds.EchoTime = 100.0
    ds.RepetitionTime = 3000.0
    ds.Rows, ds.Columns = rows, cols
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    return ds


def world(origin, step_dir, step, row_cos, col_cos, dr, dc, k, r, c) -> np.ndarray:
    """World (LPS mm) position of voxel (slice k, row r, column c)."""
    return (np.asarray(origin) + k * step * np.asarray(step_dir)
            + c * dc * np.asarray(row_cos) + r * dr * np.asarray(col_cos))


def write_series(folder, vol, *, origin=(10.0, -20.0, 30.0), step_dir=(1.0, 0.0, 0.0), step=3.0,
                 row_cos=SAG_ROW, col_cos=SAG_COL, dr=0.8, dc=0.6, shuffle=True) -> list:
    """One single-frame file per slice k of ``vol[k, r, c]`` (file names shuffled)."""
    folder.mkdir(parents=True, exist_ok=True)
    uid = generate_uid()
    n = vol.shape[0]
    names = np.random.default_rng(0).permutation(n) if shuffle else np.arange(n)
    paths = []
    for k in range(n):
        ds = _base(MR, uid, vol.shape[1], vol.shape[2])
        ds.ImageType = ["ORIGINAL", "PRIMARY", "M"]
        ds.InstanceNumber = k + 1
        ds.ImagePositionPatient = [float(v) for v in world(origin, step_dir, step, row_cos, col_cos, dr, dc, k, 0, 0)]
        ds.ImageOrientationPatient = [*map(float, row_cos), *map(float, col_cos)]
        ds.PixelSpacing = [dr, dc]
        ds.SliceThickness = step
        ds.PixelData = vol[k].astype("<u2").tobytes()
        path = folder / f"IM{names[k]:04d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def write_enhanced(path, vol, *, origin=(10.0, -20.0, 30.0), step_dir=(1.0, 0.0, 0.0), step=3.0,
                   row_cos=SAG_ROW, col_cos=SAG_COL, dr=0.8, dc=0.6, frame_order=None):
    """One enhanced MR file; frame f holds slice ``frame_order[f]``."""
    n = vol.shape[0]
    frame_order = list(range(n)) if frame_order is None else list(frame_order)
    ds = _base(ENHANCED_MR, generate_uid(), vol.shape[1], vol.shape[2])
    ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "NONE"]
    ds.NumberOfFrames = n
    measures = Dataset()
    measures.PixelSpacing = [dr, dc]
    measures.SliceThickness = step
    orient = Dataset()
    orient.ImageOrientationPatient = [*map(float, row_cos), *map(float, col_cos)]
    shared = Dataset()
    shared.PixelMeasuresSequence = [measures]
    shared.PlaneOrientationSequence = [orient]
    ds.SharedFunctionalGroupsSequence = [shared]
    frames = []
    for k in frame_order:
        pos = Dataset()
        pos.ImagePositionPatient = [float(v) for v in world(origin, step_dir, step, row_cos, col_cos, dr, dc, k, 0, 0)]
        item = Dataset()
        item.PlanePositionSequence = [pos]
        frames.append(item)
    ds.PerFrameFunctionalGroupsSequence = frames
    ds.PixelData = vol[frame_order].astype("<u2").tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


def volume_values(shape=(5, 7, 9)) -> np.ndarray:
    return (np.arange(np.prod(shape)) + 1).reshape(shape).astype(np.uint16)


def value_at(volume, point) -> float:
    idx = np.rint(volume.world_to_index(point)).astype(int)
    arr = volume.array
    assert np.allclose(volume.world_to_index(point), idx, atol=1e-3), "voxel centre off the canonical grid"
    return float(arr[idx[2], idx[1], idx[0]])


GEOMETRIES = {
    "sagittal_left_to_right": dict(step_dir=(1.0, 0.0, 0.0)),
    "sagittal_right_to_left": dict(step_dir=(-1.0, 0.0, 0.0)),
    "sagittal_flipped_inplane": dict(row_cos=(0.0, -1.0, 0.0), col_cos=(0.0, 0.0, 1.0)),
    "axial": dict(row_cos=(1.0, 0.0, 0.0), col_cos=(0.0, 1.0, 0.0), step_dir=(0.0, 0.0, -1.0)),
}


def _check_exact(volume, vol, geom):
    g = dict(origin=(10.0, -20.0, 30.0), step_dir=(1.0, 0.0, 0.0), step=3.0, row_cos=SAG_ROW,
             col_cos=SAG_COL, dr=0.8, dc=0.6) | geom
    np.testing.assert_allclose(volume.direction, CANONICAL_DIRECTION, atol=1e-9)
    for k, r, c in [(0, 0, 0), (4, 6, 8), (2, 3, 1), (1, 5, 7), (3, 0, 8)]:
        p = world(g["origin"], g["step_dir"], g["step"], g["row_cos"], g["col_cos"], g["dr"], g["dc"], k, r, c)
        assert value_at(volume, p) == vol[k, r, c]


@pytest.mark.parametrize("name", sorted(GEOMETRIES))
def test_single_frame_series_values_land_where_written(tmp_path, name):
    vol = volume_values()
    write_series(tmp_path / name, vol, **GEOMETRIES[name])
    v = read_volume(tmp_path / name)
    _check_exact(v, vol, GEOMETRIES[name])
    assert v.meta["format"] == "dicom-series" and v.meta["n_files"] == 5
    assert v.array.shape[0] == (5 if name != "axial" else 9)  # canonical first axis is right -> left


def test_sagittal_spacing_maps_to_canonical_axes(tmp_path):
    write_series(tmp_path / "s", volume_values(), dr=0.8, dc=0.6, step=3.0)
    v = read_volume(tmp_path / "s")
    # canonical axes: anterior->posterior (column spacing), superior->inferior (row spacing), R->L (step);
    # stored: GDCM stacks along the normal row x col = -x, so the third stored axis points right (PIR)
    np.testing.assert_allclose(v.spacing, (0.6, 0.8, 3.0))
    assert v.array.shape == (5, 7, 9)
    assert v.meta["source_orientation"] == "PIR" and v.meta["oblique"] is False


@pytest.mark.parametrize("frame_order", [None, [3, 0, 4, 1, 2]])
def test_enhanced_multiframe_values_land_where_written(tmp_path, frame_order):
    vol = volume_values()
    path = write_enhanced(tmp_path / "enh.dcm", vol, step_dir=(-1.0, 0.0, 0.0), frame_order=frame_order)
    v = read_volume(path)
    _check_exact(v, vol, dict(step_dir=(-1.0, 0.0, 0.0)))
    np.testing.assert_allclose(v.spacing, (0.6, 0.8, 3.0))
    assert v.meta["format"] == "dicom-enhanced"


def test_oblique_series_resampled_to_canonical_frame(tmp_path):
    """A sagittal series tilted 20 degrees about the S axis, holding a linear field f(world)."""
    a = np.deg2rad(20.0)
    row = (np.sin(a), np.cos(a), 0.0)
    col = (0.0, 0.0, -1.0)
    normal = tuple(np.cross(row, col))
    g = dict(origin=(0.0, 0.0, 0.0), step_dir=normal, step=1.0, row_cos=row, col_cos=col, dr=1.0, dc=1.0)
    shape = (16, 20, 20)

    def f(p):
        return 2000.0 + 7.0 * p[0] + 11.0 * p[1] - 13.0 * p[2]

    vol = np.zeros(shape)
    for k in range(shape[0]):
        for r in range(shape[1]):
            for c in range(shape[2]):
                vol[k, r, c] = f(world(g["origin"], g["step_dir"], g["step"], row, col, 1.0, 1.0, k, r, c))
    write_series(tmp_path / "obl", np.rint(vol).astype(np.uint16), **g)
    v = read_volume(tmp_path / "obl")
    assert v.meta["oblique"] is True
    np.testing.assert_allclose(v.direction, CANONICAL_DIRECTION, atol=1e-9)
    np.testing.assert_allclose(v.spacing, (1.0, 1.0, 1.0))
    arr = v.array
    # canonical voxels well inside the stored slab (at its centre) carry f at their world position
    centre = world(g["origin"], g["step_dir"], 1.0, row, col, 1.0, 1.0, 7.5, 9.5, 9.5)
    checked = 0
    for d in [(0, 0, 0), (2, -3, 1), (-2, 4, -3), (1, 5, 2), (-3, -5, 3)]:
        idx = np.rint(v.world_to_index(centre + np.array(d, float))).astype(int)
        p = v.index_to_world(idx)
        assert abs(arr[idx[2], idx[1], idx[0]] - f(p)) <= 1.0
        checked += 1
    assert checked == 5


def test_nifti_read_into_canonical_frame(tmp_path):
    vol = volume_values((4, 6, 8))  # ITK array order [axis2, axis1, axis0]
    img = sitk.GetImageFromArray(vol)
    img.SetSpacing((0.5, 1.0, 2.0))
    img.SetOrigin((5.0, 6.0, 7.0))
    # stored axes P, S, R (like the real t2): columns of the direction matrix
    img.SetDirection((0.0, 0.0, -1.0,
                      1.0, 0.0, 0.0,
                      0.0, 1.0, 0.0))
    sitk.WriteImage(img, str(tmp_path / "v.nii.gz"))
    v = read_volume(tmp_path / "v.nii.gz")
    assert v.meta["source_orientation"] == "PSR"
    np.testing.assert_allclose(v.spacing, (0.5, 1.0, 2.0))  # P (stored axis 0), I (axis 1), L (axis 2)
    for k, j, i in [(0, 0, 0), (3, 5, 7), (1, 2, 6)]:
        p = img.TransformIndexToPhysicalPoint((i, j, k))
        assert value_at(v, p) == vol[k, j, i]


def test_identifying_fields_never_reach_outputs(tmp_path):
    write_series(tmp_path / "s", volume_values())
    v = read_volume(tmp_path / "s")
    assert set(v.meta) <= VOLUME_META_KEYS
    assert not v.image.GetMetaDataKeys()  # no DICOM header dictionary rides along
    text = repr(v.meta)
    for secret in ("Secret", "ID-SECRET-42", "19500101"):
        assert secret not in text


# ----------------------------------------------------------------------------- refusals

def _refused(folder, *words):
    with pytest.raises(SeriesError) as err:
        read_volume(folder)
    msg = str(err.value)
    assert isinstance(err.value, InputError)
    assert str(folder) in msg
    for w in words:
        assert w in msg, msg
    return msg


def test_missing_slice_refused(tmp_path):
    paths = write_series(tmp_path / "s", volume_values(), shuffle=False)
    paths[2].unlink()
    _refused(tmp_path / "s", "gap", paths[3].name)


def test_duplicate_slice_refused(tmp_path):
    paths = write_series(tmp_path / "s", volume_values(), shuffle=False)
    ds = pydicom.dcmread(paths[1])
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.save_as(tmp_path / "s" / "copy.dcm")
    msg = _refused(tmp_path / "s", "duplicate")
    assert "copy.dcm" in msg and paths[1].name in msg


def test_mixed_orientation_refused(tmp_path):
    paths = write_series(tmp_path / "s", volume_values(), shuffle=False)
    ds = pydicom.dcmread(paths[3])
    a = np.deg2rad(5.0)
    ds.ImageOrientationPatient = [np.sin(a), np.cos(a), 0.0, 0.0, 0.0, -1.0]
    ds.save_as(paths[3])
    _refused(tmp_path / "s", "mixed orientations", paths[3].name)


def test_mixed_spacing_refused(tmp_path):
    paths = write_series(tmp_path / "s", volume_values(), shuffle=False)
    ds = pydicom.dcmread(paths[4])
    ds.PixelSpacing = [0.9, 0.6]
    ds.save_as(paths[4])
    _refused(tmp_path / "s", "mixed spacings", paths[4].name)


def test_localiser_mixed_in_refused(tmp_path):
    paths = write_series(tmp_path / "s", volume_values(), shuffle=False)
    loc = write_series(tmp_path / "loc", volume_values((2, 7, 9)), row_cos=(1, 0, 0), col_cos=(0, 1, 0))[0]
    ds = pydicom.dcmread(loc)
    ds.ImageType = ["ORIGINAL", "PRIMARY", "LOCALIZER"]
    ds.SeriesInstanceUID = pydicom.dcmread(paths[0]).SeriesInstanceUID
    ds.save_as(tmp_path / "s" / "scout.dcm")
    _refused(tmp_path / "s", "localiser", "scout.dcm")


def test_enhanced_duplicate_frame_refused(tmp_path):
    path = write_enhanced(tmp_path / "enh.dcm", volume_values(), frame_order=[0, 1, 2, 2, 4])
    with pytest.raises(SeriesError, match=r"enh\.dcm frame \d: duplicate slice"):
        read_volume(path)


def test_missing_path_and_non_dicom_are_input_errors(tmp_path):
    with pytest.raises(InputError, match="no such"):
        read_volume(tmp_path / "nope")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "a.dcm").write_bytes(b"not dicom at all")
    with pytest.raises(SeriesError, match="a.dcm"):
        read_volume(tmp_path / "junk")
