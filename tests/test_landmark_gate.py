"""The landmark QC as the gate of site-route PACS scoring (raoutcome.interop.landmark_gate), without a PACS:
which images of a pulled study are scored, which are withheld and why, which landmarks are left out."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from raoutcome.models.landmarks import default_detector_path

pytestmark = pytest.mark.skipif(not default_detector_path().is_file(), reason="no shipped landmark detector")


@pytest.fixture(scope="module")
def pulled(tmp_path_factory):
    """A 'pulled study' as the scorer sees it: images and views, some filed wrongly (shipped detector, one
    simulated patient of a seed it never saw)."""
    from PIL import Image

    from raoutcome.cohort import load
    from raoutcome.imaging.io import read_image
    from raoutcome.synth import simulate
    from raoutcome.synth.config import SimulationConfig, VisitsConfig

    tmp = tmp_path_factory.mktemp("gate")
    cfg = SimulationConfig(seed=4243, n_patients=1, views=("hand_left", "hand_right", "foot_left"), image_size=128,
                           image_format="png", workers=1, visits=VisitsConfig(times_years=(0.0,)))
    sim = load(simulate(out_dir=tmp / "sim", config=cfg))
    px = {v: read_image(sim.image_path(sim.images[sim.images.view == v].path.iloc[0])).pixels
          for v in ("hand_left", "hand_right", "foot_left")}
    cases = {"left.png": (px["hand_left"], "hand_left"),                      # as filmed: scored
             "right.png": (px["hand_right"], "hand_right"),                   # as filmed: scored
             "foot_as_hand.png": (px["foot_left"], "hand_left"),              # a foot filed as a hand
             "swapped.png": (px["hand_left"][:, ::-1], "hand_left"),          # a right hand filed as the left
             "blank.png": (np.full_like(px["hand_left"], 0.4), "hand_left")}  # nothing on the film
    (tmp / "c").mkdir()
    for name, (pixels, _view) in cases.items():
        Image.fromarray((np.clip(pixels, 0, 1) * 65535).astype(np.uint16)).save(tmp / "c" / name)
    images = pd.DataFrame({"path": list(cases), "view": [v for _, v in cases.values()]})
    return SimpleNamespace(images=images, image_path=lambda rel: tmp / "c" / rel)


def test_the_qc_decides_what_is_scored(pulled):
    from raoutcome.interop.landmark_gate import EXCLUDING_FLAGS, detect_and_gate
    from raoutcome.models.landmarks import load_detector

    gated, detected, qc = detect_and_gate(pulled, load_detector(), batch=2)
    assert set(qc) == set(pulled.images.path)
    assert qc["left.png"].scored and qc["right.png"].scored
    assert not set(qc["left.png"].flags) & EXCLUDING_FLAGS
    for name, expected in (("foot_as_hand.png", "looks_like_foot"), ("blank.png", "blank")):
        assert not qc[name].scored and expected in qc[name].flags, qc[name]
    assert not qc["swapped.png"].scored and {"mirrored", "implausible"} & set(qc["swapped.png"].flags)
    assert "not scored: landmark QC flagged it" in qc["blank.png"].reason
    # the record keeps every detection with its QC label; the gate passes only scored images' unflagged landmarks
    assert set(detected.path) == set(qc) and list(detected.columns) == ["path", "landmark", "x", "y", "confidence",
                                                                           "qc"]
    assert set(gated.path) == {"left.png", "right.png"}
    for path in ("left.png", "right.png"):
        dropped = {d.split(":")[0] for d in qc[path].dropped}
        assert set(gated[gated.path == path].landmark) == set(detected[detected.path == path].landmark) - dropped
    assert (detected[detected.path == "blank.png"].qc.str.contains("blank")).all()


def test_the_run_folder_detector_is_preferred(tmp_path):
    from raoutcome.interop.landmark_gate import RUN_DETECTOR, default_detector_for

    assert default_detector_for(tmp_path) is None  # the shipped one
    (tmp_path / RUN_DETECTOR).write_bytes(b"x")
    assert default_detector_for(tmp_path) == tmp_path / RUN_DETECTOR
    assert default_detector_for(tmp_path, tmp_path / "other.safetensors") == tmp_path / "other.safetensors"
