"""Anatomical region masks: real hands from landmarks, simulator label maps, the fallback, the model frame."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from raoutcome.anatomy import REGION_NAMES, REGIONS
from raoutcome.attribution.regions import (FOREGROUND, LANDMARK_SITE, fallback_regions, model_frame_regions,
                                           otsu_thresholds, regions_from_label_map, regions_from_landmarks)
from raoutcome.errors import InputError

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real-hands"
real_hands = pytest.mark.skipif(not (REAL / "landmarks.csv").exists(), reason="real hands not available")


def _real(name: str):
    table = pd.read_csv(REAL / "landmarks.csv")
    pixels = np.asarray(Image.open(REAL / "images" / name).convert("L"), dtype=np.float32) / 255
    return pixels, table[table["image"] == name]


def _assert_partition(rm):
    masks = rm.masks()
    total = np.sum([m.astype(int) for m in masks.values()], axis=0)
    assert (total == 1).all(), "region masks must be disjoint and cover every pixel"


@real_hands
@pytest.mark.parametrize("name", ["test_img1_L.png", "test_img5_R.png", "test_img3_L.png"])
def test_real_hand_landmark_regions(name):
    pixels, lm = _real(name)
    assert len(lm) == 15
    rm = regions_from_landmarks(pixels, lm)
    assert rm.source == "landmarks" and rm.shape == pixels.shape
    _assert_partition(rm)
    for r in lm.itertuples():
        y, x = int(r.y), int(r.x)
        assert rm.labels[y, x] == REGIONS["svdh_site"], f"{r.landmark} is not inside an SvdH site"
        assert rm.sites[LANDMARK_SITE.get(r.landmark, r.landmark)][y, x]
    sites = list(rm.sites.values())
    assert (np.sum(sites, axis=0) <= 1).all()  # per-site masks are disjoint too
    # The regions sit where the anatomy is: periarticular bone and carpus exist, the corners are background,
    # the carpus holds the centroid of the wrist points, the hand (foreground) is most of the bright pixels.
    area = {k: int(v.sum()) for k, v in rm.masks().items()}
    assert area["periarticular"] > 0 and area["carpus"] > 0 and area["shaft"] > area["svdh_site"]
    assert rm.labels[0, 0] == rm.labels[0, -1] == REGIONS["background"]
    wrist = lm[lm.landmark.str.startswith("W")][["x", "y"]].mean()
    assert rm.labels[int(wrist.y), int(wrist.x)] in (REGIONS["carpus"], REGIONS["svdh_site"])
    bright = pixels > 0.5
    assert (rm.labels[bright] != REGIONS["background"]).mean() > 0.9


@real_hands
def test_real_hand_in_model_frame_follows_preprocessing():
    from raoutcome.imaging.transforms import ResizeGeometry

    pixels, lm = _real("test_img5_R.png")
    size = 128
    rm = model_frame_regions(pixels, "hand_right", size, landmarks=lm)
    assert rm.shape == (size, size)
    _assert_partition(rm)
    geom = ResizeGeometry.fit(*pixels.shape, size)
    # the image is mirrored (hand_right), then scaled and padded: map the landmark the same way
    xs, ys = geom.to_square(pixels.shape[1] - 1 - lm["x"].to_numpy(), lm["y"].to_numpy())
    hits = [rm.labels[int(round(y)), int(round(x))] == REGIONS["svdh_site"] for x, y in zip(xs, ys)]
    assert np.mean(hits) >= 0.9
    assert (rm.labels[:, :geom.pad_left] == REGIONS["background"]).all()  # the padding is background


@real_hands
def test_downscaled_work_frame_agrees_with_full_resolution():
    pixels, lm = _real("test_img1_L.png")
    full = model_frame_regions(pixels, "hand_left", 128, landmarks=lm)
    small = model_frame_regions(pixels, "hand_left", 128, landmarks=lm, work_side=455)
    assert (full.labels == small.labels).mean() > 0.95


def test_label_map_path(tmp_path):
    labels = np.zeros((40, 60), dtype=np.uint8)
    labels[5:35, 10:50] = REGIONS["soft_tissue"]
    labels[10:30, 20:25] = REGIONS["shaft"]
    labels[12:16, 30:34] = REGIONS["svdh_site"]
    labels[16:20, 30:34] = REGIONS["periarticular"]
    labels[25:30, 35:45] = REGIONS["carpus"]
    path = tmp_path / "img.png"
    Image.fromarray(labels).save(path)
    rm = regions_from_label_map(path)
    assert rm.source == "truth"
    np.testing.assert_array_equal(rm.labels, labels)
    _assert_partition(rm)
    # in the model frame: mirrored (hand_right), scaled to 30 px wide, padded top/bottom
    mf = model_frame_regions(np.zeros((40, 60), np.float32), "hand_right", 30, label_map_path=path)
    assert set(np.unique(mf.labels)) <= set(REGION_NAMES)  # nearest neighbour: codes never blend
    # pixel-centre sampling picks source rows/cols 1, 3, 5, ... (of the mirrored map)
    np.testing.assert_array_equal(mf.labels[5:25], labels[1::2, ::-1][:, 1::2])
    assert (mf.labels[:5] == 0).all() and (mf.labels[25:] == 0).all()


def test_label_map_with_unknown_codes_is_rejected(tmp_path):
    path = tmp_path / "bad.png"
    Image.fromarray(np.full((8, 8), 77, dtype=np.uint8)).save(path)
    with pytest.raises(InputError, match=r"bad\.png.*unknown region codes \[77\]"):
        regions_from_label_map(path)


def test_fallback_is_foreground_background_with_a_warning():
    img = np.zeros((50, 50), np.float32)
    img[10:40, 15:35] = 0.6
    img[20:30, 22:28] = 0.9
    img[2:5, 2:5] = 0.7  # a side marker: not the largest component, stays background
    with pytest.warns(UserWarning, match="fall back to foreground/background"):
        rm = fallback_regions(img)
    assert set(np.unique(rm.labels)) == {0, FOREGROUND}
    assert rm.labels[25, 25] == FOREGROUND and rm.labels[3, 3] == 0 and rm.labels[0, 0] == 0
    _assert_partition(rm)
    assert set(rm.masks()) == {"background", "foreground"}


def test_landmark_regions_on_a_drawn_finger():
    # A vertical "finger": soft tissue band with a bone inside, joints at two landmarks.
    img = np.zeros((120, 80), np.float32)
    img[:, 25:55] = 0.35
    img[:, 33:47] = 0.85
    img[58:62, 33:47] = 0.4  # the MCP joint space
    rm = regions_from_landmarks(img, {"MCP3": (40, 60), "PIP3": (40, 20), "MCP4": (70, 62)})
    _assert_partition(rm)
    assert rm.labels[60, 40] == REGIONS["svdh_site"]
    assert rm.labels[72, 40] == REGIONS["periarticular"]  # bone just proximal to the MCP
    assert rm.labels[40, 40] == REGIONS["shaft"]  # mid proximal phalanx
    assert rm.labels[40, 28] == REGIONS["soft_tissue"]
    assert rm.labels[40, 5] == REGIONS["background"]


def test_otsu_splits_modes():
    rng = np.random.default_rng(0)
    v = np.concatenate([rng.normal(0.1, 0.02, 5000), rng.normal(0.5, 0.03, 3000), rng.normal(0.9, 0.02, 2000)])
    (t,) = otsu_thresholds(v[v < 0.7], classes=2)
    assert 0.15 < t < 0.45
    lo, hi = otsu_thresholds(v, classes=3)
    assert 0.15 < lo < 0.45 and 0.55 < hi < 0.85
