"""Spine views through the manifest validator and the attribution regions (issue #24, item 3)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from raoutcome.synth.phantom.render import Acquisition
from raoutcome.synth.phantom.spine import SpineState, render_spine_view


@pytest.fixture(scope="module")
def spine_cohort(tmp_path_factory):
    from raoutcome.synth.config import VisitsConfig
    from raoutcome.synth.spine_cohort import simulate_spine
    from raoutcome.synth.spine_course import SpineCohortConfig

    cfg = SpineCohortConfig(n_patients=2, image_size=64, seed=4,
                            visits=VisitsConfig(times_years=(0.0, 2.0), jitter_years=0.05, dropout=0.0))
    return simulate_spine(out_dir=tmp_path_factory.mktemp("spine") / "as", config=cfg)


def _copy(src, dst):
    import shutil

    shutil.copytree(src, dst)
    return dst


def test_a_spine_manifest_validates_and_a_bad_row_is_named(spine_cohort, tmp_path):
    """`raoutcome validate` accepts the spine cohort (views spine_cervical / spine_lumbar, mSASSS corners) and
    refuses, with exit 2 and file / row / column / value, an unknown view, an unknown corner and a grade 4."""
    from typer.testing import CliRunner

    from raoutcome.cli import app

    runner = CliRunner()
    r = runner.invoke(app, ["validate", str(spine_cohort)])
    assert r.exit_code == 0, r.output
    assert "spine_cervical" in r.output and "spine_lumbar" in r.output
    bad = _copy(spine_cohort, tmp_path / "bad")
    images = pd.read_csv(bad / "images.csv")
    images.loc[1, "view"] = "spine_thoracic"
    images.to_csv(bad / "images.csv", index=False)
    joints = pd.read_csv(bad / "joints.csv")
    joints.loc[2, "score"] = 4
    joints.loc[4, "joint"] = "spine_cervical:C1_sup"
    joints.to_csv(bad / "joints.csv", index=False)
    r = runner.invoke(app, ["validate", str(bad)])
    assert r.exit_code == 2 and "Traceback" not in r.output
    out = " ".join(r.output.split())
    assert "images.csv, row 2, column 'view': unknown view" in out and "(value: 'spine_thoracic')" in out
    assert "joints.csv, row 5, column 'joint'" in out and "(value: 'spine_cervical:C1_sup')" in out
    assert "joints.csv, row 3, column 'score': score out of range [0, 3]" in out and "(value: '4')" in out


def test_spine_regions_from_landmarks_match_the_phantom_truth():
    """Without a truth label map, the landmarks give the scored corners (``msasss_corner``) close to the phantom's
    own corner labels; an attribution map on the corners is densest there; the regions follow the model frame."""
    from raoutcome.anatomy import REGIONS
    from raoutcome.attribution.regions import image_regions, model_frame_regions
    from raoutcome.attribution.stats import region_table

    code = REGIONS["msasss_corner"]
    for view, seed in (("spine_cervical", 1), ("spine_lumbar", 2)):
        rng = np.random.default_rng(seed)
        acq = Acquisition(rotation=0.08, scale=1.05, noise_sd=0.01)
        img, truth, lm, _ = render_spine_view(view, SpineState(), 192, acq, rng)
        rm = image_regions(img, None, lm)
        assert rm.source == "landmarks"
        a, b = rm.labels == code, truth == code
        assert (a & b).sum() / (a | b).sum() > 0.5, view  # IoU with the phantom's corner labels
        for k in (k for k in lm if not k.endswith("_c")):
            x, y = lm[k]
            assert rm.labels[int(round(y)), int(round(x))] == code, k
        assert {REGIONS["shaft"], REGIONS["soft_tissue"], REGIONS["background"]} <= set(np.unique(rm.labels))
        yy, xx = np.mgrid[0:192, 0:192]
        att = sum(np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / 8.0) for k, (x, y) in lm.items() if not k.endswith("_c"))
        table = region_table({"msasss": att[None]}, rm.labels[None], pd.DataFrame({"patient_id": ["p"]}))
        dens = table.set_index("region")["relative_density"]
        assert dens.idxmax() == "msasss_corner" and dens["msasss_corner"] > 3 * dens.drop("msasss_corner").max()
        framed = model_frame_regions(img, view, 96, landmarks=lm)
        assert framed.shape == (96, 96) and (framed.labels == code).any()


def test_outcome_model_commands_send_a_spine_cohort_to_msasss(spine_cohort, tmp_path):
    """`raoutcome train / predict / attribute` with an AS cohort: exit 2, no traceback, a message naming the
    `raoutcome msasss` command to use instead, nothing written."""
    from typer.testing import CliRunner

    from raoutcome.cli import app

    runner = CliRunner()
    cfg = tmp_path / "train.toml"
    cfg.write_text("")
    for args, hint in ((["train", "--config", str(cfg)], "raoutcome msasss fit"),
                       (["predict", "--run", str(tmp_path)], "raoutcome msasss read"),
                       (["attribute", "--run", str(tmp_path)], "raoutcome msasss study")):
        r = runner.invoke(app, [*args, "--cohort", str(spine_cohort), "--out", str(tmp_path / "o")])
        out = " ".join(r.output.split())
        assert r.exit_code == 2 and "Traceback" not in r.output, r.output
        assert hint in out and "ankylosing spondylitis" in out and "spine_cervical" in out, out
    assert not (tmp_path / "o").exists()
