"""The detector shipped in the package: it loads, finds simulated joints of patients it never saw, and its QC
flags wrong inputs. (Held-out accuracy at scale: analyses/landmark_sim_check.py; real hands:
analyses/landmarks_real_hands.py; figures in docs/landmarks.md.)"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from raoutcome.models.landmarks import default_detector_path

pytestmark = pytest.mark.skipif(not default_detector_path().is_file(), reason="no shipped landmark detector")
REAL = __import__("pathlib").Path(__file__).resolve().parents[2] / "shared" / "data" / "real-hands"


@pytest.fixture(scope="module")
def default():
    from raoutcome.models.landmarks import load_detector

    return load_detector()


@pytest.fixture(scope="module")
def unseen(tmp_path_factory):
    """Two patients of a seed the detector never saw, hands and feet, 128 px (the demo's size)."""
    from raoutcome.synth import simulate
    from raoutcome.synth.config import SimulationConfig, VisitsConfig

    cfg = SimulationConfig(seed=4242, n_patients=2, views=("hand_left", "hand_right", "foot_left", "foot_right"),
                           image_size=128, image_format="png", workers=1, visits=VisitsConfig(times_years=(0.0,)))
    from raoutcome.cohort import load

    return load(simulate(out_dir=tmp_path_factory.mktemp("unseen") / "sim", config=cfg))


def test_default_detector_is_small_and_knows_hands_and_feet(default):
    assert default_detector_path().stat().st_size < 8_000_000
    assert default.spec.parts == ("hand", "foot")
    assert default.spec.trained_on
    assert default.refiner is not None and default.refiner.rspec.zoom == 2.0  # the local refinement pass ships


def test_default_finds_unseen_simulated_joints(default, unseen):
    from raoutcome.workflows.landmarks import detect_cohort

    table = detect_cohort(unseen, model=default)
    m = unseen.landmarks.merge(table, on=["path", "landmark"], suffixes=("", "_det"))
    assert len(m) == len(unseen.landmarks)
    err = np.hypot(m.x_det - m.x, m.y_det - m.y)
    assert (err <= 0.02 * 128).mean() >= 0.95
    assert (table.confidence > 0.3).mean() > 0.9


def test_default_qc_flags_wrong_inputs(default, unseen):
    from raoutcome.imaging.io import read_image
    from raoutcome.workflows.landmarks import detect_images

    im = unseen.images
    foot = read_image(unseen.image_path(im[im.view == "foot_left"].path.iloc[0])).pixels
    hand = read_image(unseen.image_path(im[im.view == "hand_left"].path.iloc[0])).pixels
    ok, foot_as_hand, upside, blank = detect_images(default, [(hand, "hand_left"), (foot, "hand_left"),
                                                              (hand[::-1, ::-1], "hand_left"),
                                                              (np.zeros_like(hand), "hand_left")])
    assert ok.qc.flags == []
    assert "looks_like_foot" in foot_as_hand.qc.flags
    assert "upside_down" in upside.qc.flags or "implausible" in upside.qc.flags
    assert "blank" in blank.qc.flags


@pytest.mark.skipif(not REAL.is_dir(), reason="real hands not available")
def test_default_on_real_hands_it_was_fitted_on(default):
    """A regression check on the 8 byte-distinct real images (the default saw them in training; the honest
    leave-one-hand-out figures are in docs/landmarks.md)."""
    from raoutcome.imaging.io import read_image
    from raoutcome.workflows.landmarks import detect_images

    lm = pd.read_csv(REAL / "landmarks.csv")
    names = ["test_img1_L.png", "test_img2_L.png", "test_img3_L.png", "test_img4_L.png", "test_img5_L.png",
             "test_img5_R.png", "test_img6_L.png", "test_img6_R.png"]
    errs = []
    for n in names:
        view = "hand_right" if n.endswith("_R.png") else "hand_left"
        det = detect_images(default, [(read_image(REAL / "images" / n).pixels, view)])[0]
        for r in lm[lm.image == n].itertuples():
            x, y = det.points[r.landmark]
            errs.append(np.hypot(x - r.x, y - r.y))
    assert np.mean(np.array(errs) <= 20.0) >= 0.8
