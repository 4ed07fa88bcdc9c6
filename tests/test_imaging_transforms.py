"""Orientation, percentile contrast and aspect-keeping resize/pad."""
from __future__ import annotations

import numpy as np
import pytest

from raoutcome.imaging.transforms import (
    ResizeGeometry, canonical_orientation, percentile_normalize, preprocess, resize_pad,
)


def test_right_views_are_mirrored_left_and_others_untouched():
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    for view in ("hand_right", "foot_right"):
        np.testing.assert_array_equal(canonical_orientation(x, view), x[:, ::-1])
    for view in ("hand_left", "foot_left", "spine_cervical", "spine_lumbar", None):
        np.testing.assert_array_equal(canonical_orientation(x, view), x)
    with pytest.raises(ValueError, match="unknown view"):
        canonical_orientation(x, "hand")


def test_percentile_normalize_maps_percentiles_to_0_and_1():
    rng = np.random.default_rng(0)
    x = (0.2 + 0.1 * rng.random((50, 50))).astype(np.float32)  # a dim image using 10% of the range
    y = percentile_normalize(x, 1, 99)
    lo, hi = np.percentile(x, [1, 99])
    np.testing.assert_allclose(y, np.clip((x - lo) / (hi - lo), 0, 1), atol=1e-5)
    assert y.min() == 0.0 and y.max() == 1.0
    assert not percentile_normalize(np.full((4, 4), 0.3, np.float32)).any()


def test_resize_pad_keeps_aspect_and_centres():
    img = np.ones((100, 50), np.float32)  # portrait 2:1
    out = resize_pad(img, 64)
    assert out.shape == (64, 64) and out.dtype == np.float32
    cols = np.flatnonzero(out.max(axis=0) > 0.5)
    assert (cols.min(), cols.max()) == (16, 47)  # 32 columns wide, centred
    assert out[:, :16].max() == 0.0 and out[:, 48:].max() == 0.0
    np.testing.assert_allclose(out[:, 16:48], 1.0, atol=1e-6)  # no darkening at the image edge


def test_resize_geometry_maps_points_like_the_pixels():
    img = np.zeros((90, 60), np.float32)
    img[30, 20] = 1.0
    geom = ResizeGeometry.fit(90, 60, 180)  # exact 2x upscale, padded left/right by 30
    out = resize_pad(img, 180)
    x, y = geom.to_square(20, 30)
    r, c = np.unravel_index(np.argmax(out), out.shape)
    assert abs(x - c) <= 1 and abs(y - r) <= 1
    np.testing.assert_allclose(geom.from_square(x, y), (20, 30))


def test_preprocess_orients_before_padding():
    img = np.zeros((40, 20), np.float32)
    img[:, :5] = 1.0  # bright stripe on the left edge of a right hand
    out = preprocess(img, "hand_right", 40)
    assert out[:, 25:30].mean() > 0.9 and out[:, 10:15].max() == 0.0
