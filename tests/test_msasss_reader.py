"""Corner patches, the corner reader and the mSASSS evaluation tables (issue #24)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from raoutcome.evaluation.msasss import confusion, corner_agreement, corner_change, per_lesion_accuracy, visit_totals
from raoutcome.imaging.corner_patches import corner_targets, image_corner_patches
from raoutcome.msasss import CORNERS, SPINE_VIEWS
from raoutcome.synth.phantom.render import Acquisition
from raoutcome.synth.phantom.spine import SpineState, render_spine_view

JOINTS = [f"{v}:{c}" for v in SPINE_VIEWS for c in CORNERS[v]]


def test_corner_patches_do_not_depend_on_pose_or_film_size():
    """The same spine turned by 10 degrees and zoomed 12 % gives the same corner patches (posed by each
    vertebra's own corner and centre), while a different lesion gives a different one."""
    st = SpineState(lesions={"L2_inf": "bridging", "L3_sup": "bridging"})
    a = render_spine_view("spine_lumbar", st, 256, Acquisition(noise_sd=0.0), np.random.default_rng(0))
    b = render_spine_view("spine_lumbar", st, 256, Acquisition(rotation=0.17, scale=1.12, tx=0.02, noise_sd=0.0),
                          np.random.default_rng(0))
    pa = image_corner_patches(a[0], "spine_lumbar", a[2])
    pb = image_corner_patches(b[0], "spine_lumbar", b[2])
    assert set(pa) == set(CORNERS["spine_lumbar"])
    r = [np.corrcoef(pa[c].ravel(), pb[c].ravel())[0, 1] for c in pa]
    assert min(r) > 0.9, r
    # upper corners are flipped: a bridge looks the same from either of its corners' side (disc below)
    assert np.corrcoef(pa["L2_inf"].ravel(), pa["L3_sup"].ravel())[0, 1] > 0.5
    plain = render_spine_view("spine_lumbar", SpineState(), 256, Acquisition(noise_sd=0.0), np.random.default_rng(0))
    pc = image_corner_patches(plain[0], "spine_lumbar", plain[2])
    assert np.abs(pc["L2_inf"] - pa["L2_inf"]).max() > 0.4
    assert np.abs(pc["L4_inf"] - pa["L4_inf"]).max() < 0.05


def test_corner_targets_mark_not_scorable_and_unknown():
    table = pd.DataFrame({"patient_id": "P1", "visit_id": ["v0", "v0", "v1"], "view": "spine_lumbar",
                          "joint": ["spine_lumbar:L1_sup", "spine_lumbar:L1_inf", "spine_lumbar:L1_sup"]})
    joints = pd.DataFrame({"patient_id": ["P1"], "visit_id": ["v0"], "joint": ["spine_lumbar:L1_sup"],
                           "kind": ["msasss"], "score": [2]})
    grade, scorable = corner_targets(table, joints)
    assert grade[0] == 2 and np.isnan(grade[1]) and np.isnan(grade[2])
    assert scorable[0] == 1 and scorable[1] == 0 and np.isnan(scorable[2])  # v1 was never read


def _table(values: dict[str, np.ndarray]) -> pd.DataFrame:
    rows = []
    for vid, vals in values.items():
        rows += [{"patient_id": "P1", "visit_id": vid, "joint": j, "grade": g, "expected": g}
                 for j, g in zip(JOINTS, vals)]
    return pd.DataFrame(rows)


def test_visit_totals_and_change_by_hand():
    v0 = np.zeros(24)
    v0[[0, 1]] = 3
    v0[13] = np.nan  # one lumbar corner not scorable: imputed by the lumbar mean (0)
    v1 = v0.copy()
    v1[20] = 2.5
    v1[5] = np.nan
    t = _table({"v0": v0, "v1": v1})
    tot = visit_totals(t).set_index("visit_id")["msasss"]
    assert tot["v0"] == pytest.approx(6.0)
    # v1: cervical 6 over 11 scorable corners + one imputed (6/11); lumbar 2.5 over 11 + 2.5/11
    assert tot["v1"] == pytest.approx(6 + 6 / 11 + 2.5 + 2.5 / 11)
    ch = corner_change(t, "v0", "v1", value="expected")
    assert ch["P1"] == pytest.approx(2.5 * 24 / 22)


def test_confusion_agreement_and_lesions():
    tg = np.array([0, 1, 2, 3, 3, 0, 1])
    ts = np.array([1, 1, 1, 1, 1, 0, 1])
    pg = np.array([0, 1, 1, 3, 2, 0, 1])
    ps = np.array([1, 1, 1, 1, 1, 0, 0])
    m = confusion(tg, ts, pg, ps)
    assert m.loc["2", "1"] == 1 and m.loc["3", "2"] == 1 and m.loc["NS", "NS"] == 1 and m.loc["1", "NS"] == 1
    assert m.to_numpy().sum() == 7
    a = corner_agreement(tg, ts, pg, ps)
    assert a["n"] == 5 and a["accuracy_4"] == pytest.approx(3 / 5)
    assert a["grade3_vs_rest"] == pytest.approx(4 / 5)
    assert a["lost_scorable"] == pytest.approx(1 / 6)
    les = per_lesion_accuracy(["none", "erosion", "syndesmophyte", "bridging", "bridging", "none", "erosion"],
                              tg, pg).set_index("lesion")
    assert les.loc["bridging", "accuracy"] == 0.5 and les.loc["bridging", "corners"] == 2


def test_corner_reader_learns_grades_and_scorability():
    """A tiny encoder separates grades drawn as bars of increasing length and 'not scorable' as noise."""
    torch = pytest.importorskip("torch")
    from raoutcome.imaging.corner_patches import CornerPatches
    from raoutcome.models.corner_reader import CornerSpec
    from raoutcome.training.corner_train import corner_vocabulary, fit_corner_reader, predict_corners

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    n = 360
    grade = rng.integers(0, 4, n).astype(float)
    scorable = (rng.random(n) > 0.15).astype(float)
    x = rng.normal(0, 0.3, (n, 32, 32)).astype(np.float32)
    for i in range(n):
        if scorable[i]:
            x[i, 14:18, 4:4 + 7 * (int(grade[i]) + 1)] += 2.0
        else:
            x[i] += rng.normal(0, 1.5, (32, 32)).astype(np.float32)
    grade[scorable == 0] = np.nan
    table = pd.DataFrame({"patient_id": [f"P{i % 40}" for i in range(n)], "visit_id": "v0", "view": "spine_lumbar",
                          "corner": "L1_sup", "joint": "spine_lumbar:L1_sup", "path": "x"})
    cp = CornerPatches(table, x)
    spec = CornerSpec(corners=corner_vocabulary(), encoder="resnet10t", d_model=32)
    fit = fit_corner_reader(cp, grade, scorable, spec, epochs=8, batch=64, lr=3e-3, augment=False, log=None)
    pred = predict_corners(fit.model, cp)
    val = table["patient_id"].isin(fit.val_patients).to_numpy()
    ok = val & (scorable == 1)
    assert (pred["grade"].to_numpy()[ok] == grade[ok]).mean() > 0.8
    assert ((pred["p_scorable"].to_numpy()[val] > 0.5) == (scorable[val] == 1)).mean() > 0.9
    assert set(pred.columns) >= {"p_scorable", "p0", "p3", "expected", "sd", "grade"}


def test_cli_simulate_fit_read_and_bad_input(tmp_path):
    """`raoutcome simulate` (AS config) -> `msasss fit` -> `msasss read`; a broken landmarks file exits 2."""
    from typer.testing import CliRunner

    from raoutcome.cli import app

    cfg = tmp_path / "as.toml"
    cfg.write_text('cohort = "as_spine"\nn_patients = 5\nimage_size = 128\n[visits]\ntimes_years = [0.0, 2.0]\n'
                   'dropout = 0.0\n[outcomes]\ndropout_rate = 0.0\n')
    runner = CliRunner()
    r = runner.invoke(app, ["simulate", "--config", str(cfg), "--out", str(tmp_path / "as"), "--seed", "3"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["msasss", "fit", "--cohort", str(tmp_path / "as"), "--out", str(tmp_path / "r.pt"),
                            "--epochs", "1"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["msasss", "read", "--reader", str(tmp_path / "r.pt"), "--cohort", str(tmp_path / "as"),
                            "--out", str(tmp_path / "c.csv"), "--totals-out", str(tmp_path / "t.csv")])
    assert r.exit_code == 0, r.output
    pred = pd.read_csv(tmp_path / "c.csv")
    images = pd.read_csv(tmp_path / "as" / "images.csv")
    assert len(pred) == 12 * len(images)
    assert np.allclose(pred[["p0", "p1", "p2", "p3"]].sum(1), 1.0, atol=1e-4)
    totals = pd.read_csv(tmp_path / "t.csv")
    assert len(totals) == images.groupby(["patient_id", "visit_id"]).ngroups
    r = runner.invoke(app, ["msasss", "study", "--reader", str(tmp_path / "r.pt"), "--cohort", str(tmp_path / "as"),
                            "--out", str(tmp_path / "study"), "--trial-n", "20"])
    assert r.exit_code == 0, r.output
    ends = pd.read_csv(tmp_path / "study" / "endpoints.csv").set_index("endpoint")
    assert set(ends.index) == {"human mSASSS change", "learned change score"}
    assert np.isfinite(ends.loc["human mSASSS change", "sdc"])  # from the retest reading
    human = pd.read_csv(tmp_path / "study" / "changes.csv")["human mSASSS change"]
    assert ends.loc["human mSASSS change", "srm"] == pytest.approx(human.mean() / human.std(ddof=1))
    html = (tmp_path / "study" / "report.html").read_text()
    assert "Change endpoints" in html and "Agreement with the simulation" in html
    bad = tmp_path / "bad.csv"
    bad.write_text("path,landmark,x,y\nimages/a.png,C2_c,oops,3\n")
    r = runner.invoke(app, ["msasss", "read", "--reader", str(tmp_path / "r.pt"), "--cohort", str(tmp_path / "as"),
                            "--out", str(tmp_path / "c2.csv"), "--landmarks", str(bad)])
    assert r.exit_code == 2 and "row 2, column x" in r.output and "Traceback" not in r.output
    assert not (tmp_path / "c2.csv").exists()


def test_landmark_qc_on_spine_views():
    """The spine template drives the QC fit: the phantom's own landmarks pass, a lumbar detection given as
    cervical is called another part, a spine turned upside down is flagged."""
    from raoutcome.anatomy import landmark_template
    from raoutcome.imaging.landmark_qc import assess

    img, _, lm, _ = render_spine_view("spine_lumbar", SpineState(), 256, Acquisition(rotation=0.05, noise_sd=0.0),
                                      np.random.default_rng(0))
    conf = {k: 0.9 for k in lm}
    assert assess(lm, conf, "spine_lumbar").flags == []
    assert "looks_like_other_part" in assess(lm, {k: 0.2 for k in lm}, "spine_lumbar", other_confidence=0.8).flags
    flipped = {k: (255 - x, 255 - y) for k, (x, y) in lm.items()}
    assert "upside_down" in assess(flipped, conf, "spine_lumbar").flags
    assert set(landmark_template("spine_lumbar")) == set(lm)


def test_corner_patches_need_landmarks():
    from types import SimpleNamespace

    from raoutcome.errors import InputError
    from raoutcome.imaging.corner_patches import cohort_corner_patches, corner_pose

    with pytest.raises(InputError, match="needs spine landmarks"):
        cohort_corner_patches(SimpleNamespace(root="cohort_x", landmarks=None))
    assert corner_pose("spine_lumbar", "L1_sup", {"L1_sup": (10.0, 10.0)}) is None  # no centre
    assert corner_pose("spine_lumbar", "L1_sup", {"L1_sup": (10.0, 10.0), "L1_c": (10.0, 10.0)}) is None


def test_a_corrupt_or_foreign_reader_file_is_refused_with_exit_2(tmp_path):
    """`msasss read --reader` on a text file or a checkpoint of something else: an input error naming the file,
    exit 2, no traceback, nothing written."""
    import torch
    from typer.testing import CliRunner

    from raoutcome.cli import app
    from raoutcome.errors import InputError
    from raoutcome.training.corner_train import load_corner_reader

    text = tmp_path / "reader.pt"
    text.write_text("not,a,reader\n")
    with pytest.raises(InputError, match="reader.pt"):
        load_corner_reader(text)
    foreign = tmp_path / "foreign.pt"
    torch.save({"spec": {"unknown_field": 1}, "state": {}}, foreign)
    with pytest.raises(InputError, match="foreign.pt"):
        load_corner_reader(foreign)
    out = tmp_path / "corners.csv"
    res = CliRunner().invoke(app, ["msasss", "read", "--reader", str(text), "--cohort", str(tmp_path),
                                   "--out", str(out)])
    assert res.exit_code == 2 and "reader.pt" in res.output and "Traceback" not in res.output
    assert not out.exists()
