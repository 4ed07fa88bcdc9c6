"""`raoutcome landmarks fit/detect`, the detection workflow, and training on simulated landmarks."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from raoutcome.cli import app
from raoutcome.models.landmarks import DetectorSpec, LandmarkNet, save_detector

TINY = dict(backbone="mobilenetv3_small_050", size=64, out_indices=(1, 2, 3), decoder=8)


@pytest.fixture(scope="module")
def sim_cohort(tmp_path_factory):
    """3 simulated patients, 2 visits, both hands and both feet, 64 px PNGs, exact landmarks."""
    from raoutcome.synth import simulate
    from raoutcome.synth.config import SimulationConfig, VisitsConfig

    cfg = SimulationConfig(seed=7, n_patients=3, views=("hand_left", "hand_right", "foot_left", "foot_right"),
                           image_size=64, image_format="png", workers=1, visits=VisitsConfig(times_years=(0.0, 1.0)))
    return simulate(out_dir=tmp_path_factory.mktemp("lmk") / "sim", config=cfg)


@pytest.fixture(scope="module")
def tiny_detector(tmp_path_factory):
    torch.manual_seed(0)
    return save_detector(LandmarkNet(DetectorSpec(**TINY)), tmp_path_factory.mktemp("det") / "tiny.safetensors")


def test_detect_writes_every_landmark_of_every_hand_and_foot_image(sim_cohort, tiny_detector, tmp_path):
    out = tmp_path / "landmarks.csv"
    res = CliRunner().invoke(app, ["landmarks", "detect", "--cohort", str(sim_cohort), "--detector",
                                   str(tiny_detector), "--out", str(out)])
    assert res.exit_code == 0, res.output
    table = pd.read_csv(out)
    assert list(table.columns) == ["path", "landmark", "x", "y", "confidence", "qc"]
    images = pd.read_csv(sim_cohort / "images.csv")
    assert set(table.path) == set(images.path)
    from raoutcome.anatomy import LANDMARK_TEMPLATES

    for path, g in table.groupby("path"):
        part = "foot" if "foot" in path else "hand"
        assert set(g.landmark) == set(LANDMARK_TEMPLATES[part])
    assert table.confidence.between(0, 1).all() and table.qc.notna().all()
    # an untrained detector is not confident: QC must say so
    assert (table.qc != "ok").all()
    # the table is a valid landmarks table of the cohort (extra columns allowed)
    from raoutcome.cohort import load
    import shutil

    copy = tmp_path / "cohort"
    shutil.copytree(sim_cohort, copy)
    table.to_csv(copy / "landmarks.csv", index=False)
    cohort = load(copy)
    assert {"confidence", "qc"} <= set(cohort.landmarks.columns)


def test_detect_and_fit_errors_exit_2(sim_cohort, tmp_path):
    runner = CliRunner()
    res = runner.invoke(app, ["landmarks", "detect", "--cohort", str(sim_cohort), "--detector",
                              str(tmp_path / "missing.safetensors"), "--out", str(tmp_path / "x.csv")])
    assert res.exit_code == 2 and "not found" in res.output
    assert not (tmp_path / "x.csv").exists()
    bare = tmp_path / "bare"
    import shutil

    shutil.copytree(sim_cohort, bare)
    (bare / "landmarks.csv").unlink()
    res = runner.invoke(app, ["landmarks", "fit", "--cohort", str(bare), "--out", str(tmp_path / "d.safetensors"),
                              "--steps", "1"])
    assert res.exit_code == 2 and "no landmarks table" in res.output
    res = runner.invoke(app, ["landmarks", "fit", "--cohort", str(sim_cohort), "--out", str(tmp_path / "d.pt")])
    assert res.exit_code == 2 and "safetensors" in res.output


def test_fit_cli_tiny_writes_a_loadable_detector(sim_cohort, tmp_path):
    out = tmp_path / "det.safetensors"
    res = CliRunner().invoke(app, ["landmarks", "fit", "--cohort", str(sim_cohort), "--out", str(out), "--steps", "2",
                                   "--batch", "2", "--size", "64", "--backbone", "mobilenetv3_small_050"])
    assert res.exit_code == 0, res.output
    from raoutcome.models.landmarks import load_detector

    det = load_detector(out)
    assert det.spec.size == 64 and str(sim_cohort) in det.spec.trained_on


def test_validation_groups_are_whole_patients(sim_cohort):
    from raoutcome.cohort import load
    from raoutcome.training.landmarks import fit_detector, samples_from_cohort

    spec = DetectorSpec(**TINY)
    samples = samples_from_cohort(load(sim_cohort), spec, tag="a:")
    res = fit_detector(samples, spec, steps=1, batch=2, val_fraction=0.3, eval_every=1, log=None)
    assert len(res.val_groups) == 1
    train_groups = {s.group for s in samples} - res.val_groups
    assert train_groups and not (train_groups & res.val_groups)
    assert res.history and "val_mre_px" in res.history[0]
    # a hand sample supervises its own landmarks and the foot channels (absent), a foot the reverse
    hand = next(s for s in samples if s.part == "hand")
    foot_idx = spec.part_channels("foot")
    assert hand.mask[foot_idx].all() and np.isnan(hand.coords[foot_idx]).all()
    assert np.isfinite(hand.coords[spec.part_channels("hand")]).all()


@pytest.mark.slow
def test_training_learns_simulated_landmarks(tmp_path):
    """A small detector trained a few minutes on simulated hands beats its untrained self by far."""
    from raoutcome.synth import simulate
    from raoutcome.synth.config import SimulationConfig, VisitsConfig
    from raoutcome.cohort import load
    from raoutcome.training.landmarks import evaluate, fit_detector, samples_from_cohort

    cfg = SimulationConfig(seed=11, n_patients=12, views=("hand_left", "hand_right"), image_size=128,
                           image_format="png", workers=1, visits=VisitsConfig(times_years=(0.0, 1.0)))
    cohort = load(simulate(out_dir=tmp_path / "sim", config=cfg))
    spec = DetectorSpec(backbone="mobilenetv3_small_050", size=96, out_indices=(1, 2, 3), decoder=16)
    samples = samples_from_cohort(cohort, spec)
    torch.manual_seed(0)
    before = evaluate(LandmarkNet(spec), samples)
    res = fit_detector(samples, spec, steps=300, batch=8, lr=3e-3, eval_every=100, log=None)
    after = res.best
    assert after["val_mre_px"] < 0.4 * before["mre_px"]


def test_detect_cli_refines_unless_told_not_to(sim_cohort, tmp_path):
    """A detector file with a refiner: `detect` refines (64-px images reach this refiner's 64-px reference),
    `--no-refine` gives the coarse positions; confidences come from the coarse pass either way."""
    from raoutcome.models.landmark_refine import RefineSpec, attach_refiner

    torch.manual_seed(0)
    model = LandmarkNet(DetectorSpec(**TINY))
    ref = attach_refiner(model, RefineSpec(patch=32, window=16, reference=64, backbone="mobilenetv3_small_050",
                                           out_indices=(1, 2), decoder=8))
    with torch.no_grad():   # confident everywhere: the refined position is the crop's corner cell
        ref.net.head.weight.zero_()
        ref.net.head.bias.fill_(5.0)
    det = save_detector(model.eval(), tmp_path / "with_refiner.safetensors")
    outs = {}
    for flag in ("--refine", "--no-refine"):
        outs[flag] = tmp_path / f"{flag}.csv"
        res = CliRunner().invoke(app, ["landmarks", "detect", "--cohort", str(sim_cohort), "--detector", str(det),
                                       "--out", str(outs[flag]), flag])
        assert res.exit_code == 0, res.output
    a, b = pd.read_csv(outs["--refine"]), pd.read_csv(outs["--no-refine"])
    assert len(a) == len(b) and (a.confidence == b.confidence).all()
    assert not np.allclose(a[["x", "y"]], b[["x", "y"]])
