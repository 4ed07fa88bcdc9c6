"""The phantom draws what the scores say: narrower joint spaces, cortical defects, osteopenia,
swelling, carpal collapse; label maps and landmarks share the image geometry."""
from __future__ import annotations

import numpy as np
import pytest

from raoutcome.anatomy import HAND_EROSION_SITES, HAND_JSN_SITES, REGIONS
from raoutcome.synth.phantom import Acquisition, ViewState, render_view

CLEAN = Acquisition(noise_sd=0.0, blur_px=0.0, background=0.04)


def _render(size=256, view="hand_left", acq=CLEAN, seed=0, **kw):
    return render_view(view, ViewState(**kw), size, acq, np.random.default_rng(seed))


def _profile(img, centre, direction, half_len, step=0.25):
    """Bilinear intensity profile along ``direction`` through ``centre`` (pixel coordinates, centres at integers)."""
    from scipy.ndimage import map_coordinates
    s = np.arange(-half_len, half_len + step, step)
    x = centre[0] + s * direction[0]
    y = centre[1] + s * direction[1]
    return s, map_coordinates(img, [y, x], order=1)


def _axis_profile(img, lm, joint, proximal):
    c, p = np.array(lm[joint]), np.array(lm[proximal])
    return _profile(img, c, (c - p) / np.linalg.norm(c - p), 12.0)


def _gap_width(prof, threshold):
    """Length (pixels) of the run below ``threshold`` that contains the joint centre."""
    dark = prof < threshold
    mid = len(prof) // 2
    if not dark[mid - 4:mid + 5].any():  # no dark run at the joint itself
        return 0.0
    k = mid - 4 + int(np.argmax(dark[mid - 4:mid + 5]))
    lo = hi = k
    while lo - 1 >= 0 and dark[lo - 1]:
        lo -= 1
    while hi + 1 < len(dark) and dark[hi + 1]:
        hi += 1
    return (hi - lo + 1) * 0.25


@pytest.mark.parametrize("joint,proximal", [("MCP3", "CMC3"), ("PIP2", "MCP2")])
def test_jsn_narrows_the_joint_space_in_proportion(joint, proximal):
    profiles = {}
    for grade in (0, 2, 4):
        img, _, lm = _render(jsn={joint: grade})
        profiles[grade] = _axis_profile(img, lm, joint, proximal)[1]
    # dark = below halfway between bone and the empty joint space of the healthy joint
    threshold = 0.5 * (np.percentile(profiles[0], 90) + profiles[0].min())
    widths = {g: _gap_width(p, threshold) for g, p in profiles.items()}
    assert widths[0] >= 3.5
    assert widths[4] < widths[2] < widths[0]
    assert 0.3 * widths[0] <= widths[2] <= 0.75 * widths[0]
    assert widths[4] <= 1.0


def test_erosions_remove_cortex_in_proportion():
    base, lab, lm = _render()
    bright = np.median(base[lab == REGIONS["shaft"]])  # ordinary bone brightness
    yy, xx = np.mgrid[:256, :256] + 0.5
    counts = []
    for grade in (0, 2, 5):
        img, _, _ = _render(erosion={"MCP2": grade}, order={"MCP2": (0, 1, 2, 3)})
        cx, cy = lm["MCP2"]
        site = (xx - cx) ** 2 + (yy - cy) ** 2 <= 9.0 ** 2
        counts.append(int((img[site] >= bright).sum()))
    assert counts[0] > counts[1] > counts[2]
    assert counts[2] < 0.6 * counts[0]


def test_osteopenia_darkens_periarticular_bone_only():
    a, lab, _ = _render()
    b, _, _ = _render(osteopenia=1.0)
    peri = lab == REGIONS["periarticular"]
    shaft_far = lab == REGIONS["carpus"]
    assert (a[peri] - b[peri]).mean() > 0.05
    assert abs((a[shaft_far] - b[shaft_far]).mean()) < 0.005


def test_swelling_thickens_soft_tissue_and_collapse_shortens_carpus():
    a, lab_a, lm_a = _render()
    b, lab_b, _ = _render(swelling=1.0)
    soft = lab_a == REGIONS["soft_tissue"]
    assert (b[soft] - a[soft]).mean() > 0.01
    assert (lab_b > 0).sum() > (lab_a > 0).sum()  # wider soft-tissue outline
    _, _, lm_c = _render(collapse=1.0)
    height = lambda lm: lm["RADCAR"][1] - lm["CMC3"][1]  # noqa: E731
    assert height(lm_c) < 0.75 * height(lm_a)


def test_bone_is_bright_on_dark_background_monochrome2():
    img, lab, _ = _render()
    assert img[lab == REGIONS["background"]].mean() < 0.12
    assert img[lab == REGIONS["shaft"]].mean() > img[lab == REGIONS["soft_tissue"]].mean() + 0.2
    assert img[lab == REGIONS["soft_tissue"]].mean() > img[lab == REGIONS["background"]].mean() + 0.05


@pytest.mark.parametrize("size", [64, 256, 512])
def test_label_map_matches_image_and_sites_sit_in_svdh_regions(size):
    acq = Acquisition(rotation=0.06, scale=0.97, tx=0.02, ty=-0.01, noise_sd=0.01, blur_px=0.5)
    img, lab, lm = _render(size=size, acq=acq)
    assert img.shape == lab.shape == (size, size)
    assert img.dtype == np.float32 and 0.0 <= img.min() and img.max() <= 1.0
    assert set(np.unique(lab)) <= set(REGIONS.values())
    sites = set(HAND_EROSION_SITES) | set(HAND_JSN_SITES)
    named = {("MCP1" if k == "MP" else k): v for k, v in lm.items()}
    for site in sites:
        x, y = named[site]
        assert lab[int(round(y)), int(round(x))] == REGIONS["svdh_site"], site
    for code in ("soft_tissue", "shaft", "svdh_site", "periarticular", "carpus"):
        assert (lab == REGIONS[code]).sum() > 0, code


def test_right_hand_is_the_mirror_of_the_left():
    left, lab_l, lm_l = _render(view="hand_left")
    right, lab_r, lm_r = _render(view="hand_right", acq=Acquisition(mirror=True, noise_sd=0.0, blur_px=0.0,
                                                                    background=0.04))
    np.testing.assert_array_equal(lab_r, lab_l[:, ::-1])
    for k in lm_l:
        assert lm_r[k][0] == pytest.approx(256 - 1 - lm_l[k][0], abs=1e-6)  # pixel centres at integers
        assert lm_r[k][1] == pytest.approx(lm_l[k][1], abs=1e-6)
    # thumb on the right of a left hand (PA), on the left of a right hand
    assert lm_l["IP"][0] > lm_l["MCP5"][0] and lm_r["IP"][0] < lm_r["MCP5"][0]


def test_foot_sites_and_two_sided_erosions():
    img, lab, lm = _render(view="foot_left")
    assert set(lm) == {"IP", "MTP1", "MTP2", "MTP3", "MTP4", "MTP5"}
    for x, y in lm.values():
        assert lab[int(y), int(x)] == REGIONS["svdh_site"]
    e5, _, _ = _render(view="foot_left", erosion={"MTP5": 5}, order={"MTP5": (0, 1, 2, 3)})
    e10, _, _ = _render(view="foot_left", erosion={"MTP5": 10}, order={"MTP5": (0, 1, 2, 3)})
    assert img.sum() > e5.sum() > e10.sum()
