"""raoutcome.interop.joint_overlay: a site-route run's per-joint scores drawn at the joints' landmarks."""
from __future__ import annotations

import matplotlib
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from raoutcome.interop.joint_overlay import joint_fractions, joint_overlay_rgb, joint_overlays, overlay_kinds


def _image(h: int = 200, w: int = 160) -> np.ndarray:
    return np.tile(np.linspace(0.0, 1.0, w), (h, 1))


def _blend(grey: float, h: float, alpha: float = 0.6) -> np.ndarray:
    w = alpha * (0.4 + 0.6 * h)
    return np.round(np.clip((1 - w) * grey + w * np.asarray(matplotlib.colormaps["inferno"](h)[:3]), 0, 1) * 255)


def test_a_disc_at_each_scored_joint_coloured_by_its_fraction_and_grey_elsewhere():
    img = _image()
    rgb = joint_overlay_rgb(img, {"MCP2": (40.0, 50.0), "PIP3": (120.0, 150.0), "IP": (80.0, 100.0)},
                            {"MCP2": 0.0, "PIP3": 0.8, "WRIST": 1.0})
    assert rgb.shape == (200, 160, 3) and rgb.dtype == np.uint8
    grey = img / img.max()
    assert np.array_equal(rgb[50, 40], _blend(grey[50, 40], 0.0))   # scored 0: a dark disc, still drawn
    assert np.array_equal(rgb[150, 120], _blend(grey[150, 120], 0.8))
    r = 0.025 * 200
    assert np.array_equal(rgb[50, int(40 + r) + 2], np.round(np.repeat(grey[50, int(40 + r) + 2], 3) * 255))
    assert np.ptp(rgb[100, 80]) == 0          # IP has no score: no disc
    off = rgb.astype(int).std(axis=-1) > 0    # the only coloured pixels are the two discs
    assert 2 * np.pi * r * r * 0.8 < off.sum() < 2 * np.pi * r * r * 1.2


def test_the_kinds_are_the_site_read_outcomes_parts():
    assert overlay_kinds() == ("erosion", "jsn")


def test_a_large_image_is_drawn_downsampled_with_the_points_scaled():
    img = _image(3000, 2400)
    rgb = joint_overlay_rgb(img, {"MCP2": (1200.0, 1500.0)}, {"MCP2": 1.0}, max_side=1024)
    assert rgb.shape == (1000, 800, 3)  # step 3
    assert np.ptp(rgb[500, 400]) > 0 and np.ptp(rgb[10, 10]) == 0


def _predictions(score_left_mcp2: float = 2.5) -> xr.Dataset:
    joints = ["hand_left:MCP2", "hand_left:PIP3", "hand_right:MCP2", "foot_left:MTP1"]
    s = np.full((1, 2, len(joints), 2), np.nan)
    s[0, 0, 0] = [2.0, score_left_mcp2]    # jsn, erosion
    s[0, 0, 1, 0] = 1.0                    # PIP3: JSN only
    s[0, 0, 2] = [4.0, 5.0]
    s[0, 0, 3, 1] = 5.0                    # foot erosion, max 10
    return xr.Dataset({"joint_score": (("patient_id", "visit_id", "joint", "kind"), s)},
                      coords={"patient_id": ["P1"], "visit_id": ["v0", "v1"], "joint": joints,
                              "kind": ["jsn", "erosion"]})


def test_fractions_are_expected_score_over_the_joint_maximum_of_one_view_and_kind():
    ds = _predictions()
    assert joint_fractions(ds, "P1", "v0", "hand_left", "erosion") == {"MCP2": pytest.approx(0.5)}
    assert joint_fractions(ds, "P1", "v0", "hand_left", "jsn") == {"MCP2": 0.5, "PIP3": 0.25}
    assert joint_fractions(ds, "P1", "v0", "foot_left", "erosion") == {"MTP1": 0.5}
    assert joint_fractions(ds, "P1", "v1", "hand_left", "erosion") == {}   # nothing scored at that visit
    assert joint_fractions(ds, "P9", "v0", "hand_left", "erosion") == {}
    assert joint_fractions(xr.Dataset(), "P1", "v0", "hand_left", "erosion") == {}


def test_overlays_read_the_landmarks_of_each_image_and_skip_an_unscored_one():
    ds = _predictions()
    marks = pd.DataFrame({"path": ["a.dcm", "a.dcm"], "landmark": ["MCP2", "PIP3"], "x": [40.0, 90.0],
                          "y": [60.0, 120.0]})
    img = _image()
    got = joint_overlays([img, img, img], [("a.dcm", "hand_left", "P1", "v0"), ("b.dcm", "hand_left", "P1", "v0"),
                                            ("a.dcm", "hand_left", "P1", "v1")], marks, ds, "jsn")
    assert got[1] is None and got[2] is None   # no landmarks; no score at that visit
    assert np.array_equal(got[0], joint_overlay_rgb(img, {"MCP2": (40.0, 60.0), "PIP3": (90.0, 120.0)},
                                                    {"MCP2": 0.5, "PIP3": 0.25}))
