"""The site route: ordinal heads, posed site patches, per-joint predictions, visit totals, stall reporting,
and a cohort whose per-joint truth the simulator did not write (an independent generator below)."""
from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from raoutcome.evaluation.joints import agreement, joint_agreement, predicted_class, visit_totals
from raoutcome.models.site_model import OrdinalHead, coral_loss, ordinal_probabilities, ordinal_summary


# ----------------------------------------------------------------------------------------------- ordinal maths
def test_ordinal_probabilities_by_hand():
    logits = torch.tensor([[2.0, 0.0, -1.0]])   # P(y>0)=s(2), P(y>1)=1/2, P(y>2)=s(-1)
    s = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    p, mean, sd = ordinal_summary(logits)
    want = [1 - s(2), s(2) - 0.5, 0.5 - s(-1), s(-1)]
    assert p[0].tolist() == pytest.approx(want, abs=1e-6)
    e = sum(k * w for k, w in enumerate(want))
    assert float(mean) == pytest.approx(e, abs=1e-6)
    assert float(sd) == pytest.approx(math.sqrt(sum((k - e) ** 2 * w for k, w in enumerate(want))), abs=1e-6)


def test_head_thresholds_increase_and_probabilities_are_valid():
    torch.manual_seed(0)
    head = OrdinalHead(8, 6)
    with torch.no_grad():
        head.gaps.normal_(0, 3)
    assert bool((head.thresholds[1:] > head.thresholds[:-1]).all())
    p = ordinal_probabilities(head(torch.randn(50, 8)))
    assert bool((p >= 0).all()) and torch.allclose(p.sum(-1), torch.ones(50), atol=1e-5)
    head.init_from_prevalence([0.3, 0.1, 0.05, 0.02, 0.01])
    exceed = torch.sigmoid(-head.thresholds)
    assert exceed.tolist() == pytest.approx([0.3, 0.1, 0.05, 0.02, 0.01], abs=1e-3)


def test_coral_loss_masks_missing_readings():
    logits = torch.randn(4, 4)
    y = torch.tensor([0.0, 2.0, 4.0, 1.0])
    full = coral_loss(logits, y)
    with_missing = coral_loss(torch.cat([logits, torch.randn(3, 4)]), torch.cat([y, torch.full((3,), float("nan"))]))
    assert float(full) == pytest.approx(float(with_missing))
    assert float(coral_loss(logits, torch.full((4,), float("nan")))) == 0.0
    # a missing reading is not a 0: a 0 target changes the loss
    assert float(coral_loss(logits[:1], torch.tensor([0.0]))) != pytest.approx(0.0)


# ---------------------------------------------------------------------------------------- totals / agreement
def _pred(rows):
    f = pd.DataFrame(rows, columns=["patient_id", "visit_id", "joint", "kind", "score", "sd"])
    return f


def test_visit_totals_sum_and_impute_other_side():
    pred = _pred([("a", "v0", "hand_left:MCP2", "jsn", 1.0, 0.3), ("a", "v0", "hand_right:MCP2", "jsn", 2.0, 0.4),
                  ("a", "v0", "hand_left:MCP2", "erosion", 0.5, 0.5),
                  ("b", "v0", "hand_left:MCP2", "jsn", 3.0, 1.0)])
    tot = visit_totals(pred, {"jsn": ["hand_left:MCP2", "hand_right:MCP2"], "erosion": ["hand_left:MCP2"]}).set_index(
        "patient_id")
    assert tot.loc["a", "jsn"] == pytest.approx(3.0)
    assert tot.loc["a", "jsn_sd"] == pytest.approx(math.sqrt(0.09 + 0.16))
    assert tot.loc["a", "svdh"] == pytest.approx(3.5)
    assert tot.loc["a", "svdh_sd"] == pytest.approx(math.sqrt(0.09 + 0.16 + 0.25))
    # b lacks its right hand: the left MCP2 stands in for it, flagged
    assert tot.loc["b", "jsn"] == pytest.approx(6.0) and tot.loc["b", "n_imputed"] == 1
    assert tot.loc["b", "n_missing"] == 1  # its erosion reading has no other side to borrow
    assert tot.loc["b", "n_joints"] == 2 and tot.loc["a", "n_imputed"] == 0
    # a donor without a score still stands in (and adds nothing), as a reading without a score does
    nan = visit_totals(_pred([("c", "v0", "hand_left:MCP2", "jsn", np.nan, np.nan)]), {"jsn": ["hand_left:MCP2",
                                                                                              "hand_right:MCP2"]})
    assert nan["n_imputed"].tolist() == [1] and nan["jsn"].tolist() == [0.0] and np.isnan(nan.loc[0, "erosion"])


def test_agreement_counts():
    a = agreement(np.array([0, 1, 3, 2, 0]), np.array([0, 2, 1, 2, np.nan]))
    assert a["n"] == 4 and a["exact"] == pytest.approx(0.5) and a["within_1"] == pytest.approx(0.75)
    assert a["n_damaged"] == 3 and a["exact_damaged"] == pytest.approx(1 / 3)
    frame = pd.DataFrame({"p0": [0.1, 0.7], "p1": [0.2, 0.2], "p2": [0.7, 0.1], "score": [1.6, 0.4]})
    assert predicted_class(frame).tolist() == [2.0, 0.0]


# ------------------------------------------------------------------------ an independent per-joint generator
SITES = ("MCP2", "MCP3", "MCP4", "MCP5", "PIP2", "PIP3", "PIP4", "PIP5")


def _draw_joint(img: np.ndarray, x: float, y: float, jsn: int, erosion: int, rng) -> None:
    """A joint as two bright bone ends around a dark joint space: the space narrows 3 px per JSN grade
    (0-4) and ``erosion`` (0-5) bites a dark notch of radius 1.8 px per grade out of the proximal bone's edge."""
    h, w = img.shape
    yy, xx = np.mgrid[0:h, 0:w]
    gap = 14 - 3 * jsn
    half = 5
    bone = (np.abs(xx - x) <= half) & (np.abs(yy - y) >= gap / 2) & (np.abs(yy - y) <= gap / 2 + 14)
    img[bone] = 0.8 + 0.05 * rng.standard_normal()
    if erosion:
        r = 1.8 * erosion + 1
        notch = (xx - (x - half)) ** 2 + (yy - (y + gap / 2 + 5)) ** 2 <= r ** 2
        img[notch & bone] = 0.25


def independent_cohort(root: Path, n_patients: int, seed: int) -> Path:
    """Hand-left radiograph-like images (not the simulator's phantom) with landmarks at the template positions and
    per-joint grades drawn uniformly (so a reader must tell every grade apart, not just say 0)."""
    from PIL import Image

    from raoutcome.anatomy import LANDMARK_TEMPLATES

    rng = np.random.default_rng(seed)
    size = 256
    (root / "images").mkdir(parents=True, exist_ok=True)
    patients, visits, images, joints, marks, events = [], [], [], [], [], []
    for i in range(n_patients):
        pid = f"g{i:03d}"
        patients.append({"patient_id": pid})
        visits.append({"patient_id": pid, "visit_id": "v0", "time_years": 0.0})
        events.append({"patient_id": pid, "event": "deformity", "time_years": 1.0, "observed": 0})
        img = 0.15 + 0.02 * rng.standard_normal((size, size))
        rel = f"images/{pid}.png"
        for site in SITES:
            x, y = (c * size for c in LANDMARK_TEMPLATES["hand"][site])
            jsn, ero = int(rng.integers(0, 5)), int(rng.integers(0, 6))
            _draw_joint(img, x, y, jsn, ero, rng)
            joints += [{"patient_id": pid, "visit_id": "v0", "joint": f"hand_left:{site}", "kind": "jsn", "score": jsn},
                       {"patient_id": pid, "visit_id": "v0", "joint": f"hand_left:{site}", "kind": "erosion",
                        "score": ero}]
        for name, (x, y) in LANDMARK_TEMPLATES["hand"].items():
            marks.append({"path": rel, "landmark": name, "x": x * size, "y": y * size})
        Image.fromarray((np.clip(img, 0, 1) * 65535).astype(np.uint16)).save(root / rel)
        images.append({"patient_id": pid, "visit_id": "v0", "view": "hand_left", "path": rel})
    for name, rows in {"patients": patients, "visits": visits, "images": images, "events": events,
                       "joints": joints, "landmarks": marks}.items():
        pd.DataFrame(rows).to_csv(root / f"{name}.csv", index=False)
    return root


@pytest.mark.slow
def test_independent_generator_scored_within_one(tmp_path):
    from raoutcome.cohort import load
    from raoutcome.imaging.site_patches import cohort_site_patches
    from raoutcome.models.site_model import SiteSpec
    from raoutcome.training.site_train import SiteTrainSettings, cross_fit_sites

    torch.set_num_threads(1)
    cohort = load(independent_cohort(tmp_path / "gen", 64, seed=11))
    sp = cohort_site_patches(cohort)
    sp = sp.subset(cohort.patient_ids)
    keep = sp.table["site"].isin(SITES).to_numpy()
    from raoutcome.imaging.site_patches import SitePatches

    sp = SitePatches(sp.table[keep].reset_index(drop=True), sp.patches[keep], sp.grid, sp.half_width)
    res = cross_fit_sites(cohort, sp, SiteSpec(encoder="test_convnext", context=False),
                          SiteTrainSettings(epochs=40, batch_visits=2, lr=3e-3, folds=2), log=lambda m: None)
    agree = joint_agreement(res["joints"], cohort.joints)
    for kind in ("jsn", "erosion"):
        assert agree[kind]["n"] == 64 * len(SITES)
        assert agree[kind]["within_1"] >= 0.8, agree


# ------------------------------------------------------------------------------------- end to end (CLI)
@pytest.fixture(scope="module")
def sim_cohort(tmp_path_factory) -> Path:
    from raoutcome.synth import simulate
    from raoutcome.synth.config import load_config

    root = Path(__file__).resolve().parents[1]
    cfg = load_config(root / "cohorts" / "demo.toml")
    cfg = replace(cfg, n_patients=8, workers=1)
    out = tmp_path_factory.mktemp("sites") / "cohort"
    simulate(config=cfg, out_dir=out, seed=5)
    return out


def _site_config(tmp: Path, readout: tuple[str, ...] = (), folds: int = 2, **sites) -> Path:
    body = {"epochs": 1, "batch_visits": 4, "outcome_epochs": 3, **sites}
    lines = ["[model]", 'route = "sites"', "[sites]"] + [f"{k} = {v!r}".replace("'", '"') for k, v in body.items()]
    lines += ["[cv]", f"folds = {folds}", "[train]", "val_fraction = 0.25", "num_workers = 0"]
    lines += ["[readout]", *readout] if readout else []
    path = tmp / "sites.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_train_predict_joints_out_loads_back(sim_cohort, tmp_path, capsys):
    import json

    from typer.testing import CliRunner

    from raoutcome.cli import app
    from raoutcome.cohort import load
    from raoutcome.joint_predictions import joints_table
    from raoutcome.predictions import load_predictions

    runner = CliRunner()
    run = tmp_path / "run"
    measures = ("joint_density", "joint_contrast", "carpal_height_ratio")  # the recipe's ridges read them
    config = _site_config(tmp_path, readout=(f"measures = {list(measures)}".replace("'", '"'),))
    res = runner.invoke(app, ["train", "--cohort", str(sim_cohort), "--config", str(config), "--out", str(run)])
    assert res.exit_code == 0, res.output
    from raoutcome.training import checkpoint as ckpt

    readouts = ckpt.load(run / "fold_0" / "site_outcome.pt")["readouts"]
    assert readouts["haq"]["extras"] == list(measures) and set(readouts["measure_fill"]) == set(measures)
    assert len(readouts["haq"]["coef"]) == len(readouts["pain"]["coef"])  # both read the features, then the measures
    assert np.all(np.asarray(readouts["haq"]["coef"][-len(measures):]) != 0)
    metrics = json.loads((run / "metrics.json").read_text())
    assert [f["fold"] for f in metrics["folds"]] == [0, 1]
    assert all("stalled" in f and "svdh_pearson_r" in f for f in metrics["folds"])
    oof = load_predictions(run / "cv_predictions.nc")
    assert "joint_score" in oof and set(oof["fold"].values) == {0, 1}
    # the ordinal head on the total: class probabilities per visit, its most probable class, metrics recorded
    prob = oof["severity_prob"].values.reshape(-1, oof.sizes["severity_class"])
    seen = np.isfinite(prob).all(1)
    assert seen.any() and np.allclose(prob[seen].sum(1), 1.0, atol=1e-5)
    assert np.array_equal(oof["severity"].values.reshape(-1)[seen], prob[seen].argmax(1))
    assert {"head", "from_joints"} <= set(metrics["severity"]) and metrics["severity"]["head"]["n"] > 0
    # per-site attribution: `raoutcome attribute` on a site run writes the joint atlas
    res = runner.invoke(app, ["attribute", "--run", str(run), "--cohort", str(sim_cohort), "--out",
                              str(tmp_path / "attr"), "--max-images", "4"])
    assert res.exit_code == 0, res.output
    import xarray as xr

    atlas = xr.load_dataset(tmp_path / "attr" / "site_atlas.nc")
    summary = pd.read_csv(tmp_path / "attr" / "site_summary.csv")
    assert set(atlas["head"].values) == {"jsn", "erosion"} and atlas.sizes["y"] == atlas.sizes["x"] == 32
    assert (summary["n"] >= 1).all() and summary["centre_share"].between(0, 1).all()
    assert len(summary) == int(np.isfinite(atlas["atlas"].values).all((2, 3)).sum())
    assert sorted(p.name for p in (tmp_path / "attr" / "atlas").iterdir()) == ["site_atlas_erosion.png",
                                                                             "site_atlas_jsn.png"]
    from raoutcome.reporting.site_section import site_attribution_blocks

    assert len(site_attribution_blocks(tmp_path / "attr")) == 4  # table, two atlases, note
    out_csv = tmp_path / "joints.csv"
    res = runner.invoke(app, ["predict", "--run", str(run), "--cohort", str(sim_cohort), "--out",
                              str(tmp_path / "p.nc"), "--joints-out", str(out_csv)])
    assert res.exit_code == 0, res.output
    table = pd.read_csv(out_csv)
    assert list(table.columns[:7]) == ["patient_id", "visit_id", "joint", "kind", "score", "sd", "p0"]
    assert "p10" not in table  # hands only: erosion 0-5
    p = table[[c for c in table if c.startswith("p") and c[1:].isdigit()]].to_numpy(float)
    assert np.allclose(np.nansum(p, 1), 1.0, atol=1e-4)
    jsn = table["kind"] == "jsn"
    assert table.loc[jsn, "p5"].isna().all() and table.loc[~jsn, "p5"].notna().all()
    # visit totals are the sums of the joints
    ds = load_predictions(tmp_path / "p.nc")
    assert np.isfinite(ds["haq"].values).any() and np.isfinite(oof["haq"].values).any()
    sums = table.groupby(["patient_id", "visit_id"])["score"].sum()
    pid, vid = sums.index[0]
    assert float(ds["svdh"].sel(patient_id=pid, visit_id=vid)) == pytest.approx(sums.iloc[0], rel=1e-4)
    assert len(joints_table(ds)) == len(table)
    # the CSV loads back as a cohort's joints table
    back = tmp_path / "back"
    back.mkdir()
    for name in ("patients", "visits", "images", "events", "landmarks"):
        (back / f"{name}.csv").write_text((sim_cohort / f"{name}.csv").read_text())
    (back / "cohort.toml").write_text(f"root = {str(sim_cohort)!r}\n".replace("'", '"'))
    table.to_csv(back / "joints.csv", index=False)
    loaded = load(back)
    assert len(loaded.joints) == len(table)


def test_one_fold_trains_on_every_patient_and_predicts(sim_cohort, tmp_path):
    """``[cv] folds = 1`` (one model on every patient, as a deployment run): nothing out of fold, and predict reads
    the outcomes with the readouts fitted on all patients (an empty out-of-fold set once crashed the ridge)."""
    from raoutcome.cohort import load
    from raoutcome.predictions import load_predictions
    from raoutcome.training import predict_run, train_run
    from raoutcome.training.site_outcome_train import predict_site_outcome

    run = train_run(load(sim_cohort), _site_config(tmp_path, folds=1), tmp_path / "run")
    assert (run / "fold_0" / "site_outcome.pt").exists() and not (run / "fold_1").exists()
    predict_run(run, load(sim_cohort), tmp_path / "p.nc")
    ds = load_predictions(tmp_path / "p.nc")
    assert np.isfinite(ds["haq"].values).any() and np.isfinite(ds["risk"].values).any()
    from raoutcome.training.site_run import _load_outcome

    empty = predict_site_outcome(_load_outcome(run / "fold_0"), None, None, [])
    assert len(empty) == 0 and {"haq", "pain", "risk", "embedding"} <= set(empty.columns)


def test_no_human_score_model_trains_its_encoder_from_outcomes(sim_cohort, tmp_path):
    import json

    from typer.testing import CliRunner

    from raoutcome.cli import app
    from raoutcome.models.site_model import SiteModel, SiteSpec
    from raoutcome.predictions import load_predictions
    from raoutcome.training import checkpoint as ckpt

    cfg = tmp_path / "nohuman.toml"
    cfg.write_text('[model]\nroute = "sites"\n[sites]\nepochs = 2\nbatch_visits = 4\noutcome_epochs = 3\n'
                   'stall_restarts = 0\n[heads]\nsvdh = false\n[cv]\nfolds = 2\n[train]\nval_fraction = 0.25\n'
                   'num_workers = 0\nbatch_patients = 2\n')
    runner = CliRunner()
    run = tmp_path / "run"
    res = runner.invoke(app, ["train", "--cohort", str(sim_cohort), "--config", str(cfg), "--out", str(run)])
    assert res.exit_code == 0, res.output
    metrics = json.loads((run / "metrics.json").read_text())
    assert [f["fold"] for f in metrics["folds"]] == [0, 1]
    assert all(len(m["history"]) == 2 and not m["reads_joints"] for m in metrics["members"])
    oof = load_predictions(run / "cv_predictions.nc")
    assert "joint_score" not in oof and "severity" not in oof and oof.attrs["heads"] == "haq,pain,risk"
    assert np.isfinite(oof["haq"].values).any() and np.isnan(oof["svdh"].values).all()
    # the encoder learned from the outcomes: its weights left their (seeded) start
    state = ckpt.load(run / "fold_0" / "site_model.pt")
    torch.manual_seed(state["record"]["seed"])
    start = SiteModel(SiteSpec.from_dict(state["spec"]), load_pretrained=False).state_dict()
    moved = [k for k, v in state["model"].items() if k.startswith("encoder.") and not torch.equal(v, start[k])]
    assert moved
    res = runner.invoke(app, ["predict", "--run", str(run), "--cohort", str(sim_cohort), "--out",
                              str(tmp_path / "p.nc")])
    assert res.exit_code == 0, res.output
    assert np.isfinite(load_predictions(tmp_path / "p.nc")["risk"].values).any()
    res = runner.invoke(app, ["predict", "--run", str(run), "--cohort", str(sim_cohort), "--out",
                              str(tmp_path / "q.nc"), "--joints-out", str(tmp_path / "j.csv")])
    assert res.exit_code == 2 and "no human score" in res.output


def test_image_run_refuses_joints_out(tmp_path, small_study):
    from typer.testing import CliRunner

    from raoutcome.cli import app

    res = CliRunner().invoke(app, ["predict", "--run", str(small_study["run"]), "--cohort", str(small_study["cohort"]),
                                   "--out", str(tmp_path / "p.nc"), "--joints-out", str(tmp_path / "j.csv")])
    assert res.exit_code == 2 and "site-level run" in res.output


def test_a_fold_that_does_not_learn_is_reported(sim_cohort, tmp_path, caplog):
    import json
    import logging

    from raoutcome.cohort import load
    from raoutcome.training import train_run

    # the outcome model on sites: a tolerance of 1 (its loss would have to reach 0) stalls it at epoch 1
    # (outcome_epochs 2: with the restart's abandoned epoch as many outcome epochs as the test ran before)
    cfg = _site_config(tmp_path, lr=1e-9, epochs=2, stall_epoch=1, outcome_epochs=2, outcome_stall_epoch=1,
                       outcome_stall_tolerance=1.0, outcome_stall_restarts=1)
    with caplog.at_level(logging.INFO, logger="raoutcome"):  # the library logs, it does not print
        run = train_run(load(sim_cohort), cfg, tmp_path / "run")
    err = caplog.text
    assert "HAS NOT LEARNED" in err and "DID NOT LEARN" in err
    assert any(r.levelno == logging.WARNING and "DID NOT LEARN" in r.getMessage() for r in caplog.records)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["stalled_folds"] == [0, 1]
    # each stalled fold was trained again from new seeds (2 restarts by default), stopping a stalled attempt at
    # the check; the last attempt ran in full; every attempt's seed is recorded
    assert metrics["restarted_folds"] == [0, 1]
    for fold in metrics["folds"]:
        seeds = [a["seed"] for a in fold["attempts"]]
        assert fold["restarts"] == 2 and len(set(seeds)) == 3 and fold["seed"] == seeds[-1]
        assert [a["epochs"] for a in fold["attempts"]] == [1, 1, 2] and all(a["stalled"] for a in fold["attempts"])
    assert "RESTARTING WITH SEED" in err
    # its outcome models were restarted once each by the [sites] outcome_stall_* keys, and are reported
    assert metrics["outcome_stalled_folds"] == metrics["outcome_restarted_folds"] == [0, 1]
    assert all(f["outcome_restarts"] == 1 and f["outcome_stalled"] for f in metrics["folds"])
    assert [[a["epochs"] for a in m["outcome"]["attempts"]] for m in metrics["members"]] == [[1, 2], [1, 2]]
    assert "THE OUTCOME MODEL OF FOLD(S) [0, 1] DID NOT LEARN" in err


def test_a_stalled_start_is_restarted_until_it_learns():
    from raoutcome.training.learning import fit_until_learned, restart_seed

    calls = []

    def fit(seed, last):  # stalls unless started from the second restart's seed
        calls.append((seed, last))
        stalled = seed != restart_seed(7, 2)
        return f"model {seed}", {"stalled": stalled, "moved": 0.01 if stalled else 0.3, "history": [{}] * (1 + stalled)}

    model, rec = fit_until_learned(fit, 7, restarts=3)
    assert model == f"model {restart_seed(7, 2)}" and rec["restarts"] == 2 and not rec["stalled"]
    assert [c[0] for c in calls] == [7, restart_seed(7, 1), restart_seed(7, 2)]
    assert not any(last for _, last in calls)  # the last allowed attempt (3rd restart) was not needed
    assert [a["stalled"] for a in rec["attempts"]] == [True, True, False]
    # a learning first attempt is kept as it is
    model, rec = fit_until_learned(lambda seed, last: (seed, {"stalled": False}), 7, restarts=3)
    assert model == 7 and rec["restarts"] == 0 and len(rec["attempts"]) == 1
    # no restart allowed: one full attempt, reported stalled
    model, rec = fit_until_learned(lambda seed, last: (last, {"stalled": True}), 7, restarts=0)
    assert model is True and rec["stalled"] and rec["restarts"] == 0
    assert len({restart_seed(s, k) for s in (0, 1009, 2018) for k in range(4)}) == 12  # never another fold's seed


def test_severity_classes_in_predictions_by_hand():
    from raoutcome.predictions import from_frame
    from raoutcome.severity import add_severity, class_metrics, observed_classes

    assert observed_classes([0, 1.0, np.nan, 1000.0]).tolist()[:2] == [0.0, 1.0]
    assert np.isnan(observed_classes([np.nan])[0])
    m = class_metrics([0, 1, 2, np.nan], [0, 2, 2, 1])
    assert m["n"] == 3 and m["accuracy"] == pytest.approx(2 / 3) and m["class_mae"] == pytest.approx(1 / 3)
    assert m["class_pcc"] == pytest.approx(np.corrcoef([0, 2, 2], [0, 1, 2])[0, 1])
    ds = from_frame(pd.DataFrame({"patient_id": ["a", "a", "b"], "visit_id": ["v0", "v1", "v0"],
                                  "time_years": [0.0, 1.0, 0.0]}))
    probs = pd.DataFrame({"patient_id": ["a", "b"], "visit_id": ["v1", "v0"], "severity_p0": [0.2, 0.7],
                          "severity_p1": [0.5, 0.2], "severity_p2": [0.3, 0.1]})
    out = add_severity(ds, probs)
    assert float(out["severity"].sel(patient_id="a", visit_id="v1")) == 1.0
    assert float(out["severity"].sel(patient_id="b", visit_id="v0")) == 0.0
    assert np.isnan(float(out["severity"].sel(patient_id="a", visit_id="v0")))
    assert add_severity(ds, probs[["patient_id", "visit_id"]]) is ds


def test_centre_share_and_learning_blocks(tmp_path):
    import json

    from raoutcome.reporting.html import Text
    from raoutcome.reporting.learning_section import learning_blocks
    from raoutcome.workflows.site_attribution import centre_share

    m = np.zeros((32, 32))
    m[15:17, 15:17] = 1.0
    share, area = centre_share(m)
    assert share == 1.0 and area == pytest.approx((np.hypot(*(np.mgrid[:32, :32] - 15.5)) <= 8).mean())
    m[0, 0] = 4.0
    assert centre_share(m)[0] == pytest.approx(0.5)
    (tmp_path / "metrics.json").write_text(json.dumps({"folds": [
        {"fold": 0, "seed": 0, "restarts": 0, "stalled": False, "val_loss_start": 2.0, "best_val_loss": 1.0},
        {"fold": 1, "seed": 8928, "restarts": 1, "stalled": True, "val_loss_start": 2.0, "best_val_loss": 1.9}]}))
    blocks = learning_blocks(tmp_path)
    assert isinstance(blocks[0], Text) and blocks[0].kind == "warning" and "1 DID NOT LEARN" in blocks[0].text
    assert list(blocks[1].frame["restarts"]) == [0, 1] and "Fold(s) 1 stalled at first" in blocks[1].caption
    assert learning_blocks(tmp_path / "missing") == []


def test_total_distribution_and_severity_by_hand():
    from raoutcome.evaluation.joints import severity_from_joints, total_distribution

    # two joints: P(0)=0.5, P(1)=0.5 and P(0)=0.2, P(2)=0.8 -> total 0:0.1, 1:0.1, 2:0.4, 3:0.4
    frame = pd.DataFrame({"patient_id": ["a", "a"], "visit_id": ["v0", "v0"], "joint": ["x", "y"],
                          "kind": ["jsn", "jsn"], "p0": [0.5, 0.2], "p1": [0.5, 0.0], "p2": [np.nan, 0.8]})
    d = total_distribution(frame)[("a", "v0")]
    assert d.tolist() == pytest.approx([0.1, 0.1, 0.4, 0.4])
    # classes with cut-offs (1, 3]: class 0 <= 1 (0.2), class 1 in (1, 3] (0.8) -> predicted 1
    truth = pd.DataFrame({"patient_id": ["a"], "visit_id": ["v0"], "svdh_total": [2.0]})
    sev = severity_from_joints(frame, truth, cutoffs=[1.0, 3.0])
    assert sev["n"] == 1 and sev["accuracy"] == 1.0 and sev["class_mae"] == 0.0


def test_stall_rule():
    from raoutcome.training.learning import stall_check

    # the fold: 4.00 -> 3.92 over 14 epochs (2 % only at the very end) is stalled at epoch 8
    flat = [4.0, 3.99, 3.98, 3.97, 3.96, 3.95, 3.95, 3.94] + [3.93] * 5 + [3.92]
    assert stall_check(flat, 8, 0.02)["stalled"] is True
    assert stall_check([4.0, 3.5, 3.0], 3, 0.02)["stalled"] is False
    assert stall_check([4.0, 3.9], 3, 0.02)["stalled"] is None  # too few epochs to judge
    assert stall_check([1.0, 1.0], 2, 0.02, start=1.2)["stalled"] is False  # measured from the pre-training loss


def test_site_atlas_maps_explain_the_score():
    from raoutcome.attribution.methods import AttributionSettings, integrated_gradients
    from raoutcome.attribution.sites import SitePatchHeads, site_atlas
    from raoutcome.models.site_model import SiteModel, SiteSpec

    torch.manual_seed(0)
    model = SiteModel(SiteSpec(sites=("hand_left:MCP2", "hand_left:ULN"), encoder="test_convnext", context=False)).eval()
    x = torch.randn(3, 1, 32, 32)
    wrapped = SitePatchHeads(model)
    out = wrapped.forward_single_image(x, "hand_left:MCP2")
    assert out["jsn"].shape == (3,) and bool(((out["erosion"] >= 0) & (out["erosion"] <= 5)).all())
    # completeness of Integrated Gradients: the signed map sums to f(x) - f(baseline)
    attr, delta = integrated_gradients(wrapped, x, "hand_left:MCP2", "erosion",
                                       AttributionSettings(signed=True, n_steps=32), return_delta=True)
    f0 = wrapped.forward_single_image(torch.zeros_like(x), "hand_left:MCP2")["erosion"]
    gap = (out["erosion"] - f0).detach().numpy()
    assert np.allclose(attr.reshape(3, -1).sum(1), gap, atol=np.abs(delta).max() + 1e-3)
    atlas = site_atlas(model, x[:, 0].numpy().repeat(2, 0), ["hand_left:MCP2"] * 3 + ["hand_left:ULN"] * 3,
                       max_per_joint=2)
    assert set(atlas) == {("hand_left:MCP2", "jsn"), ("hand_left:MCP2", "erosion"), ("hand_left:ULN", "erosion")}
    assert atlas[("hand_left:ULN", "erosion")]["map"].shape == (32, 32) and atlas[("hand_left:ULN", "erosion")]["n"] == 2
