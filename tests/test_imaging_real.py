"""Real radiographs from ../shared/data (RSNA bone-age hands) read correctly.

Skipped where the folder is absent (e.g. on a user's machine)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from raoutcome.imaging import read_image
from raoutcome.imaging.transforms import canonical_orientation, preprocess

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
REAL_HANDS = DATA / "real-hands"
BONE_AGE = DATA / "bone-age-sample"


def _need(folder: Path) -> None:
    if not folder.is_dir():
        pytest.skip(f"{folder} not present")


def _border(p: np.ndarray) -> np.ndarray:
    b = max(4, int(0.04 * min(p.shape)))
    return np.concatenate([p[:b].ravel(), p[-b:].ravel(), p[:, :b].ravel(), p[:, -b:].ravel()])


def test_real_hands_shape_range_and_bright_joints():
    _need(REAL_HANDS)
    landmarks = pd.read_csv(REAL_HANDS / "landmarks.csv")
    assert landmarks["image"].nunique() == 12
    for name, rows in landmarks.groupby("image"):
        path = REAL_HANDS / "images" / name
        img = read_image(path)
        width, height = Image.open(path).size
        assert img.pixels.shape == (height, width)
        assert img.pixels.dtype == np.float32
        assert 0.0 <= img.pixels.min() and img.pixels.max() <= 1.0 and img.pixels.std() > 0.05
        # joint sites (bone) are brighter than the film border (air)
        patches = [img.pixels[int(y) - 3:int(y) + 4, int(x) - 3:int(x) + 4].mean()
                   for x, y in zip(rows["x"], rows["y"])]
        assert np.median(patches) > np.median(_border(img.pixels)) + 0.2, name


def test_mirrored_right_hand_matches_its_left_after_canonical_orientation():
    _need(REAL_HANDS)
    left = read_image(REAL_HANDS / "images" / "test_img5_L.png").pixels
    right = read_image(REAL_HANDS / "images" / "test_img5_R.png").pixels
    assert np.abs(canonical_orientation(right, "hand_right") - left).mean() < 0.01
    assert np.abs(right - left).mean() > 0.05


def test_bone_age_sample_reads_and_preprocesses():
    _need(BONE_AGE)
    labels = pd.read_csv(BONE_AGE / "labels.csv")
    assert len(labels) == 40
    for rel in labels["image"]:
        path = BONE_AGE / rel
        img = read_image(path)
        width, height = Image.open(path).size
        assert img.pixels.shape == (height, width)
        assert 0.0 <= img.pixels.min() and img.pixels.max() <= 1.0
        h, w = img.pixels.shape
        centre = img.pixels[h // 4:3 * h // 4, w // 4:3 * w // 4]
        assert centre.mean() > np.median(_border(img.pixels)) + 0.15, rel
    x = preprocess(img.pixels, None, 256)
    assert x.shape == (256, 256) and x.dtype == np.float32
    assert x[:, :10].max() == 0.0  # a portrait image is padded left and right
