"""Corner attribution: the corner's pixel in every patch, IG completeness, atlases per corner and grade (#24)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from raoutcome.attribution.corners import CornerPatchHeads, corner_atlas, corner_point, corner_share


def _reader():
    from raoutcome.models.corner_reader import CornerReader, CornerSpec

    torch.manual_seed(0)
    return CornerReader(CornerSpec(corners=("spine_lumbar:L3_sup", "spine_lumbar:L2_inf"), encoder="test_convnext",
                                   d_model=16)).eval()


def test_corner_point_is_where_the_landmark_lands_in_every_patch():
    """A bright dot drawn at a corner's landmark lands at corner_point in that corner's patch, for lower and
    (flipped) upper corners alike, whatever the film's rotation."""
    from raoutcome.imaging.corner_patches import image_corner_patches
    from raoutcome.synth.phantom.render import Acquisition
    from raoutcome.synth.phantom.spine import SpineState, render_spine_view

    _, _, lm, _ = render_spine_view("spine_lumbar", SpineState(), 128, Acquisition(rotation=0.15, noise_sd=0.0),
                                    np.random.default_rng(0))
    yy, xx = np.mgrid[0:128, 0:128]
    px, py = corner_point(32, 0.05)
    assert (px, py) == pytest.approx((18.7, 9.1))
    for corner in ("L2_inf", "L3_sup", "S1_sup"):
        x, y = lm[corner]
        dot = np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / 0.5).astype(np.float32)
        patch = image_corner_patches(dot, "spine_lumbar", lm)[corner]
        w = np.clip(patch - np.median(patch), 0, None)
        gy, gx = np.mgrid[0:32, 0:32]
        assert (float((w * gx).sum() / w.sum()), float((w * gy).sum() / w.sum())) == pytest.approx((px, py), abs=0.6)


def test_corner_share_by_hand():
    m = np.zeros((32, 32))
    m[9, 19] = 2.0
    share, enrichment = corner_share(m, (19.0, 9.0), 3.0)
    inside = sum((x - 19) ** 2 + (y - 9) ** 2 <= 9 for y in range(32) for x in range(32))
    assert share == 1.0 and enrichment == pytest.approx(1024 / inside)
    share, enrichment = corner_share(np.ones((32, 32)), (19.0, 9.0), 3.0)
    assert share == pytest.approx(inside / 1024) and enrichment == pytest.approx(1.0)


def test_integrated_gradients_of_the_expected_grade_is_complete():
    """The signed IG map of the expected grade sums to E(x) − E(all-zero patch) (Captum's convergence delta)."""
    from raoutcome.attribution.methods import AttributionSettings, integrated_gradients

    model = _reader()
    wrapped = CornerPatchHeads(model)
    x = torch.randn(3, 1, 32, 32)
    out = wrapped.forward_single_image(x, "spine_lumbar:L3_sup")
    assert out["grade"].shape == (3,) and bool(((out["grade"] >= 0) & (out["grade"] <= 3)).all())
    attr, delta = integrated_gradients(wrapped, x, "spine_lumbar:L3_sup", "grade",
                                       AttributionSettings(signed=True, n_steps=32), return_delta=True)
    with torch.no_grad():
        gap = (out["grade"] - wrapped.forward_single_image(torch.zeros_like(x), "spine_lumbar:L3_sup")["grade"]).numpy()
    assert np.abs(gap).max() > 1e-3  # a non-trivial difference to explain
    np.testing.assert_allclose(attr.reshape(3, -1).sum(1), gap, atol=np.abs(delta).max() + 1e-4)
    with pytest.raises(ValueError, match="does not know corner"):
        wrapped.forward_single_image(x, "spine_cervical:C3_sup")


def test_atlases_per_corner_and_grade_written_and_drawn(tmp_path):
    """write_corner_atlas pools |IG| per corner and per predicted grade over scorable patches, writes the npz
    and the table atomically, the report section draws them; too few patients: no files (stale ones removed)."""
    from raoutcome.imaging.corner_patches import CornerPatches
    from raoutcome.reporting.corner_attribution_section import attribution_section
    from raoutcome.reporting.html import render_report
    from raoutcome.workflows.corner_attribution import write_corner_atlas

    model = _reader()
    n = 12
    rng = np.random.default_rng(0)
    table = pd.DataFrame({"patient_id": [f"P{i % 6}" for i in range(n)], "visit_id": "v0", "view": "spine_lumbar",
                          "joint": ["spine_lumbar:L3_sup", "spine_lumbar:L2_inf"] * (n // 2)})
    patches = CornerPatches(table, rng.normal(size=(n, 32, 32)).astype(np.float32))
    pred = table.assign(p_scorable=[0.9] * (n - 1) + [0.1], grade=[0, 1, 2] * (n // 3))
    res = write_corner_atlas(tmp_path, model, patches, pred, max_per_group=3, max_per_grade=3, min_patients=6)
    got = res.set_index("group")
    assert set(got.index) == {"grade_0", "grade_1", "grade_2", "spine_lumbar:L3_sup", "spine_lumbar:L2_inf"}
    assert got.loc["spine_lumbar:L2_inf", "patches"] == 3  # 5 scorable, at most 3 drawn
    assert got.loc["grade_2", "patches"] == 3 and (got["enrichment"] > 0).all()
    with np.load(tmp_path / "corner_atlas.npz") as f:
        assert f["map_grade_1"].shape == (32, 32) and (f["map_grade_1"] >= 0).all()
        assert np.allclose(f["patch_grade_0"], patches.patches[[0, 3, 6, 9]].mean(0), atol=1e-6)
        assert f["corner_xy"] == pytest.approx(corner_point(32, 0.05))
    # a group of one corner: its atlas is the mean |IG| of its patches (all drawn: fewer than max_per_group)
    from raoutcome.attribution.methods import integrated_gradients

    one = corner_atlas(model, patches.patches[:2], ["spine_lumbar:L3_sup"] * 2, max_per_group=4)
    by_hand = integrated_gradients(CornerPatchHeads(model), patches.patches[:2], "spine_lumbar:L3_sup", "grade")
    assert one["spine_lumbar:L3_sup"]["n"] == 2
    np.testing.assert_allclose(one["spine_lumbar:L3_sup"]["map"], by_hand.mean(0), rtol=1e-4, atol=1e-7)
    html = render_report("t", [attribution_section(tmp_path)])
    assert html.count("<img") == 2 and "enrichment" in html
    assert write_corner_atlas(tmp_path, model, patches, pred, min_patients=7).empty
    assert not (tmp_path / "corner_atlas.npz").exists() and "No corner atlas" in render_report(
        "t", [attribution_section(tmp_path)])
    with pytest.raises(ValueError, match="predictions"):
        write_corner_atlas(tmp_path, model, patches, pred.iloc[:-1])


def test_below_share_by_hand():
    from raoutcome.attribution.corners import below_share

    m = np.zeros((32, 32))
    m[20, 18] = 1.0  # in the strip below (|x - 19| <= 3, y > 9 + 3)
    m[5, 5] = 1.0  # elsewhere
    share, enrichment = below_share(m, (19.0, 9.0), 3.0)
    area = 7 * (32 - 13)  # columns 16..22, rows 13..31
    assert share == pytest.approx(0.5) and enrichment == pytest.approx(0.5 / (area / 1024))
