"""Label-free joint anomaly score: patches sit on the landmarks at any resolution, the score ignores
brightness and contrast but rises with a changed joint shape, it tracks simulated damage on held-out
patients, and on real hands it tells correctly placed joints from misplaced ones."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from scipy.ndimage import zoom
from sklearn.metrics import roc_auc_score

from raoutcome.errors import InputError
from raoutcome.imaging.joint_anomaly import (PATCH_GRID, PATCH_SIDE, SHIFT, JointAnomaly, iter_shift_windows, _standardise, cohort_joint_anomaly,
                                             image_anomaly, joint_patches, visit_anomaly)

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real-hands"
real_hands = pytest.mark.skipif(not (REAL / "landmarks.csv").exists(), reason="real hands not available")


def test_patches_are_centred_on_the_landmark_mirrored_on_request_and_resolution_free():
    img = np.zeros((128, 100), np.float32)
    img[40:43, 60:63] = 1.0  # a 3x3 spot centred on x = 61, y = 41
    img[41, 62:70] = 0.8      # a bar to the right of the spot
    patch = joint_patches(img, {"J": (61.0, 41.0)})["J"].reshape(PATCH_SIDE, PATCH_SIDE)
    c = PATCH_SIDE // 2
    assert patch[c - 1:c + 1, c - 1:c + 1].min() > 0.9  # the spot at the centre
    assert patch[c, c + 3:].mean() > patch[c, :c - 3].mean()  # the bar on the right
    flipped = joint_patches(img, {"J": (61.0, 41.0)}, mirror=True)["J"].reshape(PATCH_SIDE, PATCH_SIDE)
    np.testing.assert_array_equal(flipped, patch[:, ::-1])
    big = zoom(img, 4, order=1)  # the same anatomy at 4x the resolution
    patch4 = joint_patches(big, {"J": (61.0 * 4 + 1.5, 41.0 * 4 + 1.5)})["J"]
    assert np.corrcoef(patch4, patch.ravel())[0, 1] > 0.9


def _joint(rng, eroded=False, narrowed=False, gain=1.0, offset=0.0):
    """A toy joint: two bone ends (bright bars) across a joint space; an erosion bites a notch out
    of the upper bone end, narrowing closes the gap. Brightness/contrast vary like bone density."""
    img = np.full((48, 48), 0.1, np.float32)
    gap = 2 if narrowed else 6
    img[8:24 - gap // 2, 14:34] = 0.8
    img[24 + gap // 2:40, 14:34] = 0.8
    if eroded:
        img[16:21, 14:19] = 0.1
    img = img + rng.normal(0, 0.03, img.shape).astype(np.float32)
    return gain * img + offset


def _patches(images):
    return {"J": np.stack([joint_patches(im, {"J": (23.5, 23.5)}, half_width=0.4)["J"] for im in images])}


def test_shape_changes_score_higher_and_brightness_or_contrast_changes_not_at_all():
    rng = np.random.default_rng(0)
    model = JointAnomaly(n_components=3).fit(_patches([_joint(rng) for _ in range(60)]))
    assert model.landmarks_ == ("J",)
    normal = model.score(_patches([_joint(rng) for _ in range(20)]))["J"]
    eroded = model.score(_patches([_joint(rng, eroded=True) for _ in range(20)]))["J"]
    narrowed = model.score(_patches([_joint(rng, narrowed=True) for _ in range(20)]))["J"]
    labels = [0] * 20 + [1] * 20
    assert roc_auc_score(labels, np.r_[normal, eroded]) > 0.95
    assert roc_auc_score(labels, np.r_[normal, narrowed]) > 0.95
    # osteopenia-like: the same joints darker and flatter score exactly the same
    rng_a, rng_b = np.random.default_rng(7), np.random.default_rng(7)
    same = model.score(_patches([_joint(rng_a) for _ in range(5)]))["J"]
    dim = model.score(_patches([_joint(rng_b, gain=0.6, offset=0.2) for _ in range(5)]))["J"]
    np.testing.assert_allclose(dim, same, rtol=1e-5, atol=1e-5)


def test_shifted_windows_move_the_window_within_the_margin():
    side = 5
    patches = np.arange(2 * side * side, dtype=float).reshape(2, side * side)
    windows = np.stack(list(iter_shift_windows(patches, 1)))
    assert windows.shape == (9, 2, 9)  # (2 * 1 + 1)^2 shifts
    np.testing.assert_array_equal(windows[0, 0].reshape(3, 3), patches[0].reshape(5, 5)[1:4, 1:4])  # centred first
    moved = {tuple(w.reshape(3, 3)[0, :2]) for w in windows[:, 0]}
    assert len(moved) == 9  # nine distinct windows
    assert np.stack(list(iter_shift_windows(patches, 0))).shape == (1, 2, 25)
    with pytest.raises(ValueError, match="square"):
        next(iter_shift_windows(patches[:, :24], 1))


def test_the_shift_search_forgives_a_landmark_one_sample_off_but_not_damage():
    rng = np.random.default_rng(5)
    ref = _patches([_joint(rng) for _ in range(60)])
    on = [_joint(rng) for _ in range(20)]
    step = 2 * 0.4 * 48 / PATCH_GRID  # pixels per sample of _patches' grid
    off = {"J": np.stack([joint_patches(im, {"J": (23.5 + step, 23.5)}, half_width=0.4)["J"] for im in on])}
    eroded = _patches([_joint(rng, eroded=True) for _ in range(20)])
    searched, fixed = JointAnomaly(n_components=3).fit(ref), JointAnomaly(n_components=3, shift=0).fit(ref)
    on = _patches(on)
    # without the search a one-sample miss looks like damage; with it, like the landmark on the joint
    assert fixed.score(off)["J"].mean() > fixed.score(on)["J"].mean() + 1.0
    assert searched.score(off)["J"].mean() < searched.score(on)["J"].mean() + 0.5
    assert searched.score(eroded)["J"].mean() > searched.score(on)["J"].mean() + 1.0  # damage still counts
    with pytest.raises(ValueError, match="shift"):
        JointAnomaly(shift=-1)


def test_missing_patches_unfitted_models_and_too_few_references():
    rng = np.random.default_rng(1)
    ref = _patches([_joint(rng) for _ in range(12)])
    with pytest.raises(RuntimeError, match="not fitted"):
        JointAnomaly().score(ref)
    with pytest.raises(ValueError, match="reference patches"):
        JointAnomaly(min_reference=50).fit(ref)
    arr = ref["J"].copy()
    arr[3] = np.nan
    scores = JointAnomaly(n_components=2).fit({"J": arr}).score({"J": arr})["J"]
    assert np.isnan(scores[3]) and np.isfinite(np.delete(scores, 3)).all()


def test_the_pca_is_refitted_on_the_best_reconstructed_reference_and_scores_are_in_reference_sds():
    rng = np.random.default_rng(3)
    ref = _patches([_joint(rng) for _ in range(40)] + [_joint(rng, eroded=True) for _ in range(20)])
    untrimmed = JointAnomaly(n_components=3, trim=None).fit(ref)
    trimmed = JointAnomaly(n_components=3, trim=0.6).fit(ref)
    # the refit sees the 36 patches the first fit reconstructed best
    raw = untrimmed.models_["J"].raw_score(ref["J"].astype(np.float64))
    kept = ref["J"].astype(np.float64)[np.argsort(raw, kind="stable")[:36]]
    best = _standardise(next(iter_shift_windows(kept, SHIFT)))  # the PCA is on the centred windows
    np.testing.assert_allclose(trimmed.models_["J"].mean, best.mean(0), atol=1e-10)
    assert not np.allclose(untrimmed.models_["J"].mean, trimmed.models_["J"].mean)
    for model in (untrimmed, trimmed):  # scores are in SDs of the reference's own
        s = model.score(ref)["J"]
        assert abs(s.mean()) < 1e-9 and abs(s.std() - 1) < 1e-9
    # a small reference is never trimmed below min_reference
    small = {"J": ref["J"][:12]}
    assert JointAnomaly(n_components=3, min_reference=10, trim=0.5).fit(small).landmarks_ == ("J",)
    with pytest.raises(ValueError, match="trim"):
        JointAnomaly(trim=0.0)


def test_an_image_score_is_the_soft_maximum_over_its_views_erosion_site_landmarks():
    images = pd.DataFrame({"view": ["hand_left", "hand_right", "foot_left", "spine_lumbar"]})
    scores = pd.DataFrame({"MCP2": [1.0, 2.0, np.nan, 5.0], "MP": [3.0, np.nan, np.nan, 5.0],
                           "CMC3": [100.0, 100.0, np.nan, 5.0], "W1": [-50.0, -50.0, np.nan, 5.0],
                           "MTP2": [np.nan, np.nan, 4.0, 5.0]})
    out = image_anomaly(images, scores)
    # hands: MCP2 and the thumb's MP (= MCP1) are erosion sites, CMC3 (JSN only) and W1 are not
    assert out.iloc[0] == pytest.approx(np.log((np.exp(1.0) + np.exp(3.0)) / 2))
    assert out.iloc[1] == pytest.approx(2.0)  # MP missing: MCP2 alone
    assert out.iloc[2] == pytest.approx(4.0)  # the foot's MTP2
    assert np.isnan(out.iloc[3])  # no erosion site on a spine view


def test_the_soft_maximum_lies_between_the_mean_and_the_maximum_and_is_stable():
    from raoutcome.imaging.joint_anomaly import soft_maximum

    rng = np.random.default_rng(5)
    x = rng.normal(size=(50, 16))
    s = soft_maximum(x)
    assert (s >= x.mean(1) - 1e-12).all() and (s <= x.max(1) + 1e-12).all()
    np.testing.assert_allclose(soft_maximum(x + 1000.0), s + 1000.0)  # no overflow
    np.testing.assert_allclose(soft_maximum(np.full((2, 3), 0.7)), [0.7, 0.7])
    one_high = np.zeros((1, 16))
    one_high[0, 3] = 5.0  # one clearly damaged joint among intact ones moves it more than the mean
    assert soft_maximum(one_high)[0] - 0.0 > 3 * (one_high.mean() - 0.0)
    assert np.isnan(soft_maximum(np.full((1, 4), np.nan))[0])


def test_on_a_simulated_cohort_the_score_tracks_damage_in_held_out_patients(small_study):
    from raoutcome.cohort import load

    cohort = load(small_study["cohort"])
    ids = cohort.patient_ids
    reference = ids[::2]
    images = cohort_joint_anomaly(cohort, reference, progress=False)
    assert len(images) == len(cohort.images) and images["anomaly"].notna().all()
    held_out = images[~images["patient_id"].isin(reference)]
    visits = visit_anomaly(held_out)
    assert (visits["n_views"] >= 1).all()
    truth = pd.read_csv(small_study["cohort"] / "truth" / "visits.csv", dtype={"patient_id": str})
    merged = visits.merge(truth, on=["patient_id", "visit_id"])
    assert len(merged) == len(visits) > 30
    r_damage = np.corrcoef(merged["anomaly"], np.log1p(merged["svdh_total"]))[0, 1]
    r_density = np.corrcoef(merged["anomaly"], merged["osteopenia"])[0, 1]
    assert r_damage > 0.4 and r_damage > abs(r_density) + 0.2, (r_damage, r_density)


def test_a_cohort_without_landmarks_is_refused(small_study):
    from dataclasses import replace

    from raoutcome.cohort import load

    cohort = replace(load(small_study["cohort"]), landmarks=None)
    with pytest.raises(InputError, match="landmarks"):
        cohort_joint_anomaly(cohort, progress=False)


@real_hands
def test_real_hands_correct_joints_score_lower_than_misplaced_ones():
    """Leave one hand out: fitted on the other real hands (distinct hands only, the *_R files are
    mirrored copies), the held-out hand's joints look typical and the same joints shifted by 6 % of
    the image look atypical."""
    table = pd.read_csv(REAL / "landmarks.csv")
    names = sorted(n for n in table["image"].unique() if n.endswith("_L.png"))
    rng = np.random.default_rng(0)
    correct, shifted = {}, {}
    for name in names:
        pixels = np.asarray(Image.open(REAL / "images" / name).convert("L"), dtype=np.float32) / 255
        marks = {r.landmark: (r.x, r.y) for r in table[table["image"] == name].itertuples()}
        step = 0.06 * max(pixels.shape)
        moved = {k: (x + rng.choice([-1, 1]) * step, y + rng.choice([-1, 1]) * step) for k, (x, y) in marks.items()}
        correct[name], shifted[name] = joint_patches(pixels, marks), joint_patches(pixels, moved)
    good, bad = [], []
    for name in names:
        ref = {k: np.stack([correct[o][k] for o in names if o != name]) for k in correct[name]}
        model = JointAnomaly(n_components=3, min_reference=5).fit(ref)
        assert len(model.landmarks_) == 15
        good.append(np.mean([s[0] for s in model.score({k: v[None] for k, v in correct[name].items()}).values()]))
        bad.append(np.mean([s[0] for s in model.score({k: v[None] for k, v in shifted[name].items()}).values()]))
    assert all(b > g for g, b in zip(good, bad)), (good, bad)


def _check_script():
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "analyses" / "joint_anomaly_check.py"
    spec = importlib.util.spec_from_file_location("joint_anomaly_check", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_the_check_script_scores_held_out_patients_and_refuses_a_cohort_without_landmarks(small_study, tmp_path):
    import json
    import shutil

    script = _check_script()
    out = tmp_path / "ja"
    assert script.main(["--cohort", str(small_study["cohort"]), "--out", str(out), "--folds", "2"]) == 0
    result = json.loads((out / "joint_anomaly_check.json").read_text())
    assert result["pearson_r"]["log_svdh"]["r"] > 0.4 and result["pearson_r"]["log_svdh"]["n"] > 50
    assert 0.0 <= result["survival"]["c_index_first_visit"] <= 1.0
    images = pd.read_csv(out / "image_scores.csv")
    assert set(images["fold"]) == {0, 1} and images["anomaly"].notna().all()
    assert images.groupby("patient_id")["fold"].nunique().max() == 1  # a patient is scored by one fold only
    assert (out / "anomaly_vs_svdh.png").stat().st_size > 0 and (out / "visit_scores.csv").exists()
    bare = tmp_path / "bare"
    shutil.copytree(small_study["cohort"], bare, ignore=shutil.ignore_patterns("landmarks.csv", "images"))
    (bare / "images").symlink_to(Path(small_study["cohort"]) / "images")
    assert script.main(["--cohort", str(bare), "--out", str(tmp_path / "ja2")]) == 2
    assert not (tmp_path / "ja2" / "joint_anomaly_check.json").exists()


def test_cli_writes_cross_fitted_visit_scores_and_refuses_bad_options(small_study, tmp_path):
    from typer.testing import CliRunner

    from raoutcome.cli import app

    runner = CliRunner()
    out = tmp_path / "anomaly.csv"
    result = runner.invoke(app, ["joint-anomaly", "--cohort", str(small_study["cohort"]), "--out", str(out),
                                 "--folds", "2"])
    assert result.exit_code == 0, result.output
    visits = pd.read_csv(out)
    assert list(visits.columns) == ["patient_id", "visit_id", "anomaly", "n_views"] and visits["anomaly"].notna().all()
    result = runner.invoke(app, ["joint-anomaly", "--cohort", str(small_study["cohort"]), "--out",
                                 str(tmp_path / "img.csv"), "--folds", "0", "--level", "image"])
    assert result.exit_code == 0, result.output
    assert "anomaly_MCP2" in pd.read_csv(tmp_path / "img.csv").columns
    for bad in (["--folds", "1"], ["--level", "joint"]):
        result = runner.invoke(app, ["joint-anomaly", "--cohort", str(small_study["cohort"]), "--out",
                                     str(tmp_path / "bad.csv"), *bad])
        assert result.exit_code == 2 and not (tmp_path / "bad.csv").exists()


def test_the_study_anomaly_stage_and_its_report_section(small_study, tmp_path):
    """The demo's anomaly stage on a copy of the small study (its earlier stages are reused), then the
    report section built from what the stage wrote."""
    import json
    import re
    import shutil

    from raoutcome.reporting.study_report import _anomaly_section
    from raoutcome.reporting.html import write_report
    from raoutcome.workflows.stages import StageRunner
    from raoutcome.workflows.study import StudySettings, build_stages

    out = tmp_path / "study"
    shutil.copytree(small_study["out_dir"], out, symlinks=True)
    settings = StudySettings(title="t", train_config=(out / "configs" / "train.toml").resolve(), attribution=False)
    stages = build_stages(settings, cohort_source=None, sim_config=(out / "configs" / "sim.toml").resolve(),
                          demo=True, record={})
    keep = [s for s in stages if s.name in ("simulate", "validate", "anomaly")]
    results = StageRunner(out, keep, record={}).run()
    assert results["simulate"].status == "skipped" and results["anomaly"].status == "ran"
    summary = json.loads((out / "anomaly" / "summary.json").read_text())
    assert summary["pearson_r"]["log_svdh"]["r"] > 0.4 and summary["folds"] == 3
    assert {"true_damage", "osteopenia"} <= set(summary["pearson_r"])  # the simulator's truth was joined
    assert 0.0 <= summary["survival"]["c_index_first_visit"] <= 1.0
    scores = pd.read_csv(out / "anomaly" / "visit_scores.csv")
    assert scores["anomaly"].notna().all() and not scores.duplicated(["patient_id", "visit_id"]).any()
    section = _anomaly_section(out / "anomaly" / "summary.json", out / "anomaly" / "anomaly_vs_svdh.png",
                               out / "anomaly" / "visit_scores.csv")
    html = write_report(tmp_path / "r.html", "t", [section]).read_text()
    text = re.sub(r"<[^>]+>", " ", html)
    assert "Harrell" in text and f"{summary['pearson_r']['log_svdh']['r']:.3f}" in text
    assert "data:image/png;base64," in html
