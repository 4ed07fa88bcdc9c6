"""The joint anomaly as a readout input of the site route (#23): the scorer is fitted on a fold's training patients
only, scores visits as the NumPy estimator does, survives a checkpoint, the ridge and Cox readouts of the outcome
model on sites read it, a run saves it and predict applies it, and a cohort without landmarks is refused."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from raoutcome.errors import InputError
from raoutcome.imaging.joint_anomaly import PATCH_SIDE, JointAnomaly
from raoutcome.models.site_outcome import SiteOutcomeSpec
from raoutcome.training import checkpoint as ckpt
from raoutcome.training.site_anomaly import (AnomalyPatches, anomaly_patches, fit_scorer, scorer_from_state,
                                             scorer_state, visit_anomaly)
from raoutcome.training.site_outcome_train import (ANOMALY, SEVERITY_TARGET, OutcomeData, _fit_readouts,
                                                   count_features, predict_site_outcome)

torch.set_num_threads(1)
D = PATCH_SIDE * PATCH_SIDE
MARKS = ("MCP2", "MCP3", "PIP2")  # hand erosion sites


def _patches(n_patients: int = 16, seed: int = 0) -> AnomalyPatches:
    """Two visits x two hands per patient; each landmark's patches are a fixed pattern plus noise, and patient
    ``P00``'s second visit has damaged (very noisy) joints."""
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(len(MARKS), D))
    rows = [(f"P{p:02d}", f"V{v}", view) for p in range(n_patients) for v in range(2)
            for view in ("hand_left", "hand_right")]
    images = pd.DataFrame(rows, columns=["patient_id", "visit_id", "view"]).assign(path=[f"i{i}" for i in range(len(rows))])
    patches = base[None] + 0.3 * rng.normal(size=(len(rows), len(MARKS), D))
    damaged = ((images["patient_id"] == "P00") & (images["visit_id"] == "V1")).to_numpy()
    patches[damaged] += 3.0 * rng.normal(size=(int(damaged.sum()), len(MARKS), D))
    patches[3, 1] = np.nan  # an image without MCP3
    return AnomalyPatches(images, MARKS, patches.astype(np.float32))


def test_the_scorer_is_fitted_on_training_patients_only_and_scores_visits_as_the_numpy_estimator():
    ap = _patches()
    train = [f"P{p:02d}" for p in range(4, 16)]
    scorer = fit_scorer(ap, train)
    ref = ap.rows_of(train)
    want = JointAnomaly().fit({n: ap.patches[ref, i] for i, n in enumerate(MARKS)})
    # the test patients' patches do not enter the fit: changing them changes nothing
    other = AnomalyPatches(ap.images, MARKS, np.where(ref[:, None, None], ap.patches, 0.0).astype(np.float32))
    assert all(torch.equal(a, b) for a, b in zip(scorer.state_dict().values(), fit_scorer(other, train).state_dict().values()))
    visits = visit_anomaly(scorer, ap)
    assert len(visits) == 32 and list(visits.columns) == ["patient_id", "visit_id", ANOMALY]
    # by hand: per image the log mean exp of the landmark z-scores, per visit the mean over its two images
    z = want.score({n: ap.patches[:, i] for i, n in enumerate(MARKS)})
    s = np.stack([z[n] for n in MARKS], 1)
    per_image = np.array([np.log(np.mean(np.exp(r[np.isfinite(r)]))) for r in s])
    expected = ap.images.assign(a=per_image).groupby(["patient_id", "visit_id"])["a"].mean().to_numpy()
    np.testing.assert_allclose(visits[ANOMALY].to_numpy(), expected, atol=1e-3)
    damaged = visits.set_index(["patient_id", "visit_id"])[ANOMALY]
    assert damaged[("P00", "V1")] > damaged.drop(("P00", "V1")).max() + 3  # the damaged visit stands out
    only = visit_anomaly(scorer, ap, ["P01"])
    assert list(only["patient_id"]) == ["P01", "P01"]


def test_the_scorer_survives_a_checkpoint(tmp_path):
    ap = _patches()
    scorer = fit_scorer(ap, [f"P{p:02d}" for p in range(8)])
    ckpt.save({"anomaly": scorer_state(scorer)}, tmp_path / "a.pt")
    back = scorer_from_state(ckpt.load(tmp_path / "a.pt")["anomaly"])
    assert back.landmarks == scorer.landmarks
    pd.testing.assert_frame_equal(visit_anomaly(back, ap), visit_anomaly(scorer, ap))


def test_too_few_training_images_and_a_cohort_without_landmarks_are_refused(tiny_cohort):
    from raoutcome.cohort import load

    with pytest.raises(InputError, match="reference patches"):
        fit_scorer(_patches(), ["P00"])  # 4 images: fewer than a landmark's minimum reference
    (tiny_cohort / "landmarks.csv").unlink()
    cohort = load(tiny_cohort)
    with pytest.raises(InputError, match="landmarks"):
        anomaly_patches(cohort)


N_SITES, SITE_DIM = 3, 4


def _outcome_data(n_patients: int = 40, seed: int = 0) -> tuple[OutcomeData, torch.Tensor, pd.DataFrame]:
    """Patients with 2 visits of 3 sites; the site embeddings are noise, HAQ = 1 + the visit's anomaly, and the
    deformity comes sooner the higher the first visit's anomaly."""
    rng = np.random.default_rng(seed)
    h = torch.as_tensor(rng.normal(size=(n_patients * 2 * N_SITES, SITE_DIM)), dtype=torch.float32)
    visits, rows, events, anomaly = {}, {}, {}, []
    for p in range(n_patients):
        pid = f"P{p:02d}"
        a = rng.normal(size=2)
        visits[pid] = pd.DataFrame({"patient_id": pid, "visit_id": ["V0", "V1"], "time_years": [0.0, 1.0],
                                    "haq": 1.0 + 0.5 * a, SEVERITY_TARGET: np.nan, ANOMALY: a,
                                    **{c: np.nan for c in count_features()}})
        rows[pid] = (np.arange(p * 2 * N_SITES, (p + 1) * 2 * N_SITES), np.repeat([0, 1], N_SITES),
                     np.tile(np.arange(N_SITES), 2))
        t = float(rng.exponential(np.exp(-1.5 * a[0])))
        events[pid] = (min(t, 2.0), float(t < 2.0))
        anomaly.append(pd.DataFrame({"patient_id": pid, "visit_id": ["V0", "V1"], ANOMALY: a}))
    data = OutcomeData(sorted(visits), visits, rows, events, ("haq",), anomaly=True)
    return data, h, pd.concat(anomaly, ignore_index=True)


def test_the_ridge_and_cox_readouts_read_the_anomaly_and_predict_needs_it():
    from raoutcome.models.site_outcome import SiteOutcomeModel

    data, h, _ = _outcome_data()
    torch.manual_seed(0)
    model = SiteOutcomeModel(SiteOutcomeSpec(n_sites=N_SITES, site_dim=SITE_DIM, d_model=8, layers=1,
                                             attention_heads=2, counts=False, heads=("haq", "risk"))).eval()
    train, test = data.patients[:30], data.patients[30:]
    quiet = [].append
    model.readouts = _fit_readouts(model, data, h, train, quiet, "t", ())
    without = predict_site_outcome(model, data, h, test)
    model.readouts = _fit_readouts(model, data, h, train, quiet, "t", (ANOMALY,), extras=(ANOMALY,))
    assert model.readouts["haq"]["extras"] == [ANOMALY] and len(model.readouts["haq"]["coef"]) == 2 * 8 + SITE_DIM + 1
    assert model.readouts["risk"]["inputs"] == [ANOMALY] and model.readouts["risk"]["coef"][0] > 0.5
    with_a = predict_site_outcome(model, data, h, test)
    truth = pd.concat([data.visits[p] for p in test])["haq"].to_numpy()
    err_without = np.abs(without["haq"].to_numpy() - truth).mean()
    err_with = np.abs(with_a["haq"].to_numpy() - truth).mean()
    assert err_with < 0.2 * err_without  # HAQ is the anomaly: the ridge with it reads HAQ, without it cannot
    first = with_a.groupby("patient_id").head(1)
    a0 = pd.concat([data.visits[p] for p in test]).groupby("patient_id").head(1)[ANOMALY].to_numpy()
    assert model.readouts["risk"]["center"] == [0.0]  # the anomaly keeps its zero (the reference mean)
    np.testing.assert_allclose(first["risk"].to_numpy(), model.readouts["risk"]["coef"][0] * a0, rtol=1e-6)
    bare = replace(data, anomaly=False, _arrays={})
    with pytest.raises(ValueError, match="joint_anomaly"):
        predict_site_outcome(model, bare, h, test)
    with pytest.raises(ValueError, match="joint_anomaly"):
        _fit_readouts(model, bare, h, train, quiet, "t", (ANOMALY,))
    old = {**model.readouts, "haq": {k: v for k, v in model.readouts["haq"].items() if k != "extras"} | {ANOMALY: True}}
    model.readouts = old  # a checkpoint written before the image measures: the anomaly flag
    np.testing.assert_allclose(predict_site_outcome(model, data, h, test)["haq"], with_a["haq"])


def test_outcome_data_takes_the_visit_anomaly_and_fills_unscored_visits_with_the_reference_mean(tiny_cohort):
    from raoutcome.cohort import load

    cohort = load(tiny_cohort)
    table = cohort.images.assign(joint="hand_left:MCP2")[["patient_id", "visit_id", "joint"]]
    anomaly = pd.DataFrame({"patient_id": ["p1", "p2"], "visit_id": ["v0", "v1"], ANOMALY: [2.5, -1.0]})
    data = OutcomeData.build(cohort, table, {"hand_left:MCP2": 0}, None, anomaly=anomaly)
    assert data.anomaly
    got = pd.concat(data.visits.values()).set_index(["patient_id", "visit_id"])[ANOMALY]
    assert got[("p1", "v0")] == 2.5 and got[("p2", "v1")] == -1.0 and (got.drop([("p1", "v0"), ("p2", "v1")]) == 0).all()
    assert not OutcomeData.build(cohort, table, {"hand_left:MCP2": 0}, None).anomaly


def test_the_site_route_config_accepts_the_anomaly_readout(tmp_path):
    from raoutcome.errors import ConfigError
    from raoutcome.training.config import load_config

    path = tmp_path / "c.toml"
    path.write_text('[model]\nroute = "sites"\n[readout]\njoint_anomaly = true\nrisk_inputs = ["haq", "joint_anomaly"]\n')
    cfg = load_config(path)
    assert cfg.readout["joint_anomaly"] and cfg.readout["risk_inputs"] == ["haq", "joint_anomaly"]
    path.write_text('[model]\nroute = "sites"\n[readout]\nrisk_inputs = ["joint_anomaly"]\n')
    with pytest.raises(ConfigError, match="joint_anomaly"):
        load_config(path)


@pytest.mark.slow
def test_a_site_run_fits_saves_and_applies_the_anomaly_and_refuses_a_cohort_without_landmarks(small_study, tmp_path):
    import shutil

    from typer.testing import CliRunner

    from raoutcome.cli import app
    from raoutcome.cohort import load
    from raoutcome.predictions import load_predictions
    from raoutcome.training.site_run import _load_outcome

    cfg = tmp_path / "sites.toml"
    cfg.write_text('[model]\nroute = "sites"\n[sites]\nepochs = 1\nbatch_visits = 4\noutcome_epochs = 2\n'
                   'stall_restarts = 0\noutcome_stall_restarts = 0\n[readout]\njoint_anomaly = true\n'
                   'risk_inputs = ["log_erosion", "joint_anomaly"]\n[cv]\nfolds = 2\n[train]\nval_fraction = 0.25\n'
                   'num_workers = 0\n')
    runner = CliRunner()
    run = tmp_path / "run"
    cohort_dir = Path(small_study["cohort"])
    res = runner.invoke(app, ["train", "--cohort", str(cohort_dir), "--config", str(cfg), "--out", str(run)])
    assert res.exit_code == 0, res.output
    cohort = load(cohort_dir)
    ap = anomaly_patches(cohort)
    import json

    for fold in (0, 1):
        state = ckpt.load(run / f"fold_{fold}" / "site_outcome.pt")
        rec = json.loads((run / f"fold_{fold}" / "done.json").read_text())
        assert state["readouts"]["haq"]["extras"] == [ANOMALY]
        # the saved scorer is the PCA of the fold's training patients
        want = fit_scorer(ap, rec["train_ids"] + rec["val_ids"])
        got = _load_outcome(run / f"fold_{fold}").anomaly_scorer
        pd.testing.assert_frame_equal(visit_anomaly(got, ap), visit_anomaly(want, ap))
    res = runner.invoke(app, ["predict", "--run", str(run), "--cohort", str(cohort_dir), "--out", str(tmp_path / "p.nc")])
    assert res.exit_code == 0, res.output
    assert np.isfinite(load_predictions(tmp_path / "p.nc")["haq"].values).any()
    bare = tmp_path / "bare"
    shutil.copytree(cohort_dir, bare, ignore=shutil.ignore_patterns("landmarks.csv", "truth"))
    res = runner.invoke(app, ["predict", "--run", str(run), "--cohort", str(bare), "--out", str(tmp_path / "q.nc")])
    assert res.exit_code == 2 and "landmark" in res.output and "Traceback" not in res.output


def test_anomaly_patches_keep_erosion_sites_and_are_cached(tiny_cohort, tmp_path, monkeypatch):
    import raoutcome.imaging.joint_anomaly as ja
    from raoutcome.cohort import load

    cohort = load(tiny_cohort)  # landmarks MCP2, PIP3 (hand erosion sites) and W1 (not) on its first image
    ap = anomaly_patches(cohort, tmp_path / "cache")
    assert ap.landmarks == ("MCP2", "PIP3") and ap.patches.shape == (1, 2, D) and len(ap.images) == 1
    assert len(list((tmp_path / "cache").glob("anomaly_patches_*.npz"))) == 1

    def unreachable(*a, **k):
        raise AssertionError("the cached patches should be read, not the radiographs")

    monkeypatch.setattr(ja, "cohort_patches", unreachable)
    again = anomaly_patches(cohort, tmp_path / "cache")
    assert again.landmarks == ap.landmarks and np.array_equal(again.patches, ap.patches, equal_nan=True)
    pd.testing.assert_frame_equal(again.images, ap.images)
