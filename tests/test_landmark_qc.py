"""Geometric plausibility of landmark configurations (Procrustes to the anatomy templates) and QC flags."""
import numpy as np
import pytest

from raoutcome.anatomy import LANDMARK_TEMPLATES
from raoutcome.imaging import landmark_qc as qc


def _hand(angle_deg=0.0, scale=300.0, shift=(40.0, 25.0), mirror=False, jitter=0.0, seed=0):
    rng = np.random.default_rng(seed)
    t = LANDMARK_TEMPLATES["hand"]
    a = np.deg2rad(angle_deg)
    out = {}
    for name, (x, y) in t.items():
        x = 1.0 - x if mirror else x
        u, v = x - 0.5, y - 0.5
        xr, yr = np.cos(a) * u - np.sin(a) * v, np.sin(a) * u + np.cos(a) * v
        out[name] = (scale * xr + 150 + shift[0] + rng.normal(0, jitter), scale * yr + 150 + shift[1] + rng.normal(0, jitter))
    return out


def _conf(points, value=0.9):
    return {n: value for n in points}


def test_procrustes_recovers_pose_and_zero_residual():
    pts = _hand(angle_deg=10.0, scale=250.0)
    fit = qc.procrustes_fit(pts, "hand")
    assert fit is not None
    assert fit.angle_deg == pytest.approx(10.0, abs=1e-6)
    assert abs(fit.pose) == pytest.approx(250.0, rel=1e-9)
    assert fit.rms < 1e-9


def test_plausible_hand_is_ok_even_tilted_and_noisy():
    pts = _hand(angle_deg=-20.0, jitter=3.0)
    res = qc.assess(pts, _conf(pts), "hand", other_confidence=0.05)
    assert res.flags == []
    assert res.label("MCP2") == qc.OK


def test_mirrored_hand_is_flagged_as_mirrored():
    pts = _hand(mirror=True)
    res = qc.assess(pts, _conf(pts), "hand", other_confidence=0.05)
    assert "mirrored" in res.flags
    assert res.fit is not None and res.fit.mirrored and res.fit.rms < 1e-6


def test_upside_down_and_rotated():
    up = _hand(angle_deg=180.0)
    assert "upside_down" in qc.assess(up, _conf(up), "hand").flags
    side = _hand(angle_deg=80.0)
    flags = qc.assess(side, _conf(side), "hand").flags
    assert "rotated" in flags and "upside_down" not in flags


def test_scrambled_configuration_is_implausible_and_outliers_named():
    pts = _hand()
    names = list(pts)
    rng = np.random.default_rng(3)
    scrambled = dict(zip(names, [pts[n] for n in rng.permutation(names)]))
    res = qc.assess(scrambled, _conf(scrambled), "hand")
    assert "implausible" in res.flags
    one_off = dict(pts)
    one_off["PIP3"] = (pts["PIP3"][0] + 150.0, pts["PIP3"][1] + 120.0)
    res = qc.assess(one_off, _conf(one_off), "hand")
    assert "outlier" in res.label("PIP3")
    assert "outlier" not in res.label("MCP2")


def test_confidence_flags_and_other_body_part():
    pts = _hand()
    low = qc.assess(pts, _conf(pts, 0.1), "hand")
    assert "low_confidence" in low.flags and "low_confidence" in low.label("IP")
    foot = qc.assess(pts, _conf(pts, 0.2), "hand", other_confidence=0.8)
    assert "looks_like_foot" in foot.flags
    hand = qc.assess({k: v for k, v in pts.items() if k in LANDMARK_TEMPLATES["foot"]} or pts,
                     _conf(pts, 0.2), "foot", other_confidence=0.8)
    assert "looks_like_hand" in hand.flags


def test_blank_image():
    assert qc.image_is_blank(np.zeros((50, 40), np.float32))
    assert qc.image_is_blank(np.full((50, 40), 0.5, np.float32) + np.random.default_rng(0).normal(0, 1e-4, (50, 40)))
    img = np.zeros((50, 40), np.float32)
    img[10:30, 10:20] = 0.8
    assert not qc.image_is_blank(img)
    res = qc.assess({}, {}, "hand", blank=True)
    assert "blank" in res.flags


def test_too_few_points_cannot_be_fitted():
    pts = dict(list(_hand().items())[:3])
    assert qc.procrustes_fit(pts, "hand") is None
    assert "implausible" in qc.assess(pts, _conf(pts), "hand").flags
