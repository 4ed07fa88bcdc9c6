"""The real cervical-spine MRI (../shared/data/cspine-mri, SCT errsm_30, MIT) through the MR volume path.

t2 is stored with axes (P, S, R) and t1w with (R, A, S); both must come out in the canonical sagittal
frame (columns anterior->posterior, rows superior->inferior, slices right->left) with the anatomy where
it belongs. Skips when the data are absent.
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("SimpleITK")
from raoutcome.imaging.volume import CANONICAL_DIRECTION, read_volume  # noqa: E402

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "cspine-mri"


@pytest.fixture(scope="module")
def data() -> Path:
    if not (DATA / "images" / "t2.nii.gz").exists():
        pytest.skip(f"{DATA} not present")
    return DATA


def _points(volume) -> dict[int, np.ndarray]:
    """Label value -> canonical voxel index (slice, row, column) of a single-voxel point-label volume."""
    arr = volume.array
    return {int(arr[tuple(p)]): p for p in np.argwhere(arr > 0)}


def test_both_series_read_into_canonical_frame(data):
    for name, stored in (("t2", "PSR"), ("t1w", "RAS")):
        v = read_volume(data / "images" / f"{name}.nii.gz")
        assert v.meta["source_orientation"] == stored
        np.testing.assert_allclose(v.direction, CANONICAL_DIRECTION, atol=1e-9)
        np.testing.assert_allclose(v.spacing, (1.0, 1.0, 1.0), atol=1e-4)
    t2 = read_volume(data / "images" / "t2.nii.gz")
    assert t2.array.shape == (52, 55, 60)  # R-L 52, S-I 55, A-P 60 (stored 60 P x 55 S x 52 R)


def test_point_labels_land_at_their_world_positions(data):
    """The canonical index of each label maps back to the world position PROVENANCE's CSV gives (RAS mm -> LPS)."""
    rows = [r for r in csv.DictReader(open(data / "point_labels.csv")) if r["label_file"] == "t2_labeled_center_manual.nii.gz"]
    labels = _points(read_volume(data / "annotations" / "t2_labeled_center_manual.nii.gz", label=True))
    ref = read_volume(data / "images" / "t2.nii.gz")
    assert sorted(labels) == sorted(int(r["label_value"]) for r in rows)
    for r in rows:
        k, row, col = labels[int(r["label_value"])]
        lps = ref.index_to_world((col, row, k))
        ras = np.array([float(r["x_mm"]), float(r["y_mm"]), float(r["z_mm"])])
        np.testing.assert_allclose(lps, ras * [-1, -1, 1], atol=1e-3)


def test_superior_is_up_levels_run_head_to_foot(data):
    """Both point-label files and the level-labelled cord mask: higher level value = lower in the image."""
    for name in ("t2_labeled_center_manual", "t2_labels"):
        pts = _points(read_volume(data / "annotations" / f"{name}.nii.gz", label=True))
        values = sorted(pts)
        assert len(values) >= 2
        rows = [pts[v][1] for v in values]
        assert all(b - a > 5 for a, b in zip(rows, rows[1:])), (name, rows)  # strictly down, >5 mm apart
    labelled = read_volume(data / "annotations" / "t2_seg-manual_labeled.nii.gz", label=True).array
    levels = sorted(int(v) for v in np.unique(labelled) if v > 0)
    mean_rows = [np.argwhere(labelled == v)[:, 1].mean() for v in levels]
    assert levels == [2, 3, 4, 5] and np.all(np.diff(mean_rows) > 5), mean_rows


def test_cord_masks_of_t2_and_t1w_agree_in_world_space(data):
    """Stored P,S,R and R,A,S: after canonicalisation the two cord masks overlap in world (LPS) space.

    A flipped axis in either path would put the two cords apart by about the crop size along that axis.
    """
    centres = {}
    for seg in ("t2_seg-manual", "t1w_seg-manual"):
        v = read_volume(data / "annotations" / f"{seg}.nii.gz", label=True)
        centres[seg] = (v, np.argwhere(v.array > 0))  # canonical (slice, row, column) of mask voxels
    t2v, t2p = centres["t2_seg-manual"]
    t1v, t1p = centres["t1w_seg-manual"]
    t2w = np.array([t2v.index_to_world((c, r, k)) for k, r, c in t2p])
    t1w = np.array([t1v.index_to_world((c, r, k)) for k, r, c in t1p])
    z_lo, z_hi = max(t2w[:, 2].min(), t1w[:, 2].min()), min(t2w[:, 2].max(), t1w[:, 2].max())
    assert z_hi - z_lo > 30  # the crops share > 3 cm of cord
    a = t2w[(t2w[:, 2] >= z_lo) & (t2w[:, 2] <= z_hi)].mean(axis=0)
    b = t1w[(t1w[:, 2] >= z_lo) & (t1w[:, 2] <= z_hi)].mean(axis=0)
    # left-right and anterior-posterior: the same cord within 3 mm (cord diameter ~ 8-10 mm)
    assert np.all(np.abs(a[:2] - b[:2]) < 3.0), (a, b)


def test_cord_lies_in_the_labelled_level_band(data):
    """The level labels sit on the cord (PROVENANCE): each label voxel is inside, or within 1 mm of, the cord mask."""
    cord = read_volume(data / "annotations" / "t2_seg-manual.nii.gz", label=True).array > 0
    pts = _points(read_volume(data / "annotations" / "t2_labeled_center_manual.nii.gz", label=True))
    for k, r, c in pts.values():
        assert cord[k, r, max(c - 1, 0):c + 2].any()


@pytest.mark.parametrize("seg", ["t2_seg-manual", "t1w_seg-manual"])
def test_anterior_is_forward_cord_follows_the_lordosis(seg, data):
    """The cervical cord curves with the lordosis, convex anteriorly: its centre is most anterior mid-crop.

    With columns running anterior->posterior, the centre column as a function of row is then a
    parabola opening towards larger columns (positive x^2 coefficient); an anterior-posterior flip
    changes the sign. The curvature in these crops is small (the centreline bows by about 1-2 mm over
    5-8 cm), so this is weak evidence on its own; it is the anatomy check the data allow (the level
    labels sit on the cord, not on the vertebral bodies, so "cord behind the labels" cannot be tested).
    """
    cord = read_volume(data / "annotations" / f"{seg}.nii.gz", label=True).array > 0
    p = np.argwhere(cord)
    rows = np.unique(p[:, 1])
    centre = np.array([p[p[:, 1] == r][:, 2].mean() for r in rows])
    quad = np.polyfit(rows, centre, 2)[0]
    bow = quad * ((rows.max() - rows.min()) / 2) ** 2  # sag of the fitted parabola over the crop (mm)
    assert bow > 0.5, (seg, quad, bow)
