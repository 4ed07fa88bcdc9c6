"""Runs on a tiny cohort: cross-fitting, predictions schema, checkpoints, exact resume, CLI."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import xarray as xr
from typer.testing import CliRunner

from conftest import TINY_MODEL_TOML, write_tiny_cohort
from raoutcome.cli import app
from raoutcome.cohort import load
from raoutcome.errors import ConfigError, InputError
from raoutcome.imaging.dataset import PatientSequences, collate_patients
from raoutcome.predictions import load_predictions
from raoutcome.training import load_run, predict_run, train_run

torch.set_num_threads(1)

TINY = TINY_MODEL_TOML + """[train]
epochs = {epochs}
batch_patients = 2
num_workers = {workers}
val_fraction = 0.25
lr = 0.003
[cv]
folds = {folds}
[data]
cache_dir = "{cache}"
{extra}
"""


def _config(path, cache, epochs=2, folds=2, workers=0, extra=""):
    path.write_text(TINY.format(epochs=epochs, folds=folds, workers=workers, cache=cache, extra=extra))
    return path


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    root = write_tiny_cohort(tmp_path_factory.mktemp("tiny") / "cohort", n_patients=8, n_visits=3)
    return load(root)


@pytest.fixture(scope="module")
def run(cohort, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("run")
    cfg = _config(tmp / "train.toml", tmp / "cache")
    return train_run(cohort, cfg, tmp / "run")


def test_run_folder_contents(run):
    for name in ("config.resolved.toml", "versions.json", "metrics.json", "cv_predictions.nc",
                 "fold_0/checkpoint.pt", "fold_0/best.pt", "fold_1/checkpoint.pt", "fold_1/best.pt"):
        assert (run / name).exists(), name
    versions = json.loads((run / "versions.json").read_text())
    assert versions["packages"]["torch"] == torch.__version__.split("+")[0] or versions["packages"]["torch"]
    assert versions["hardware"]["cpu_count"] >= 1
    metrics = json.loads((run / "metrics.json").read_text())
    assert [m["member"] for m in metrics["members"]] == ["fold_0", "fold_1"]
    for m in metrics["members"]:
        crits = [h["criterion"] for h in m["history"]]
        assert m["best_epoch"] == int(np.argmin(crits))  # best.pt = lowest validation criterion
    assert "svdh" in metrics["out_of_fold"]


def test_checkpoints_load_with_weights_only(run):
    full = torch.load(run / "fold_0" / "checkpoint.pt", weights_only=True)
    assert {"model", "loss", "optimizer", "scheduler", "scaler", "rng", "state", "spec"} <= set(full)
    assert {"python", "numpy", "torch", "loader"} <= set(full["rng"])
    assert full["state"]["epoch"] == 1
    best = torch.load(run / "fold_0" / "best.pt", weights_only=True)
    assert "heads.risk.center" in best["model"]


def test_cross_fitting_each_patient_scored_by_the_fold_model_that_never_saw_them(run, cohort):
    ds = load_predictions(run / "cv_predictions.nc")
    assert ds.attrs["cross_fitted"] == 1
    models, _ = load_run(run)
    done = {m.fold: json.loads((run / m.member / "done.json").read_text()) for m in models}
    folds = ds["fold"].to_series()
    assert sorted(folds.index) == sorted(cohort.patient_ids)
    splits = cohort.kfold(2, seed=0)
    for f, (train_ids, test_ids) in enumerate(splits):
        assert sorted(folds[folds == f].index) == sorted(test_ids)
        assert not set(test_ids) & set(done[f]["train_ids"] + done[f]["val_ids"])
        assert set(done[f]["train_ids"] + done[f]["val_ids"]) == set(train_ids)
    # every patient's OOF scores are exactly its fold model's, and not the other fold's
    for pid, f in folds.items():
        data = PatientSequences(cohort, _Loader(run, cohort), [pid])
        batch = collate_patients([data[0]])
        outs = []
        with torch.no_grad():
            for m in models:
                outs.append(m.forward_batch(batch)["svdh"][0].numpy())
        stored = ds["svdh"].sel(patient_id=pid).values
        assert np.allclose(stored, outs[f], rtol=1e-5)
        assert not np.allclose(stored, outs[1 - f], rtol=1e-5)


class _Loader:
    """The run's own image cache."""

    def __init__(self, run, cohort):
        from raoutcome.imaging.cache import ImageCache

        self.cache = ImageCache(run.parent / "cache", 32)

    def get(self, path, view=None):
        return self.cache.get(path, view)


def test_predict_writes_the_predictions_schema(run, cohort, tmp_path):
    out = predict_run(run, cohort, tmp_path / "pred.nc")
    ds = load_predictions(out)
    for name in ("svdh", "jsn", "erosion", "haq", "pain", "risk", "time_years"):
        assert ds[name].dims == ("patient_id", "visit_id")
    assert ds["embedding"].dims == ("patient_id", "visit_id", "feature")
    assert ds.sizes["feature"] == 32
    assert ds.sizes["patient_id"] == 8 and list(ds["visit_id"].values) == ["v0", "v1", "v2"]
    assert (ds["fold"].values == -1).all() and ds.attrs["cross_fitted"] == 0
    assert ds.attrs["heads"] == "svdh,haq,pain,risk" and ds.attrs["ensemble_size"] == 2
    assert np.isfinite(ds["svdh"].values).all()
    assert (ds["haq"].values >= 0).all() and (ds["haq"].values <= 3).all()
    # time_years copied from the cohort
    v = cohort.visits.set_index(["patient_id", "visit_id"])["time_years"]
    assert ds["time_years"].sel(patient_id="p2", visit_id="v1").item() == pytest.approx(v[("p2", "v1")])
    # ensemble = mean of the fold models
    models, _ = load_run(run)
    data = PatientSequences(cohort, _Loader(run, cohort), ["p4"])
    batch = collate_patients([data[0]])
    with torch.no_grad():
        mean = np.mean([m.forward_batch(batch)["haq"][0].numpy() for m in models], axis=0)
    # (the closed-form HAQ readout amplifies float rounding that differs with batch composition)
    assert np.allclose(ds["haq"].sel(patient_id="p4").values, mean, rtol=1e-5, atol=1e-3)
    # zarr too; other suffixes are refused
    z = load_predictions(predict_run(run, cohort, tmp_path / "pred.zarr"))
    assert np.allclose(z["risk"].values, ds["risk"].values)
    with pytest.raises(InputError, match="csv"):
        predict_run(run, cohort, tmp_path / "pred.csv")


def test_predict_on_a_cohort_with_missing_visits_and_views(run, cohort, tmp_path):
    sub = cohort.subset(["p1", "p2"])
    sub.images = sub.images[~((sub.images["patient_id"] == "p1") & (sub.images["view"] == "hand_right"))]
    sub.visits = sub.visits[~((sub.visits["patient_id"] == "p2") & (sub.visits["visit_id"] == "v2"))]
    ds = load_predictions(predict_run(run, sub, tmp_path / "p.nc"))
    assert math.isnan(ds["svdh"].sel(patient_id="p2", visit_id="v2").item())
    assert np.isfinite(ds["svdh"].sel(patient_id="p1").values).all()


def test_exact_resume_after_a_crash(cohort, tmp_path):
    """Killed in fold 1 after one epoch, resumed (with a DataLoader worker this time):
    bit-identical weights, optimizer state and predictions to an uninterrupted run."""
    cache = tmp_path / "cache"
    whole = train_run(cohort, _config(tmp_path / "a.toml", cache, epochs=3), tmp_path / "whole")

    class Crash(RuntimeError):
        pass

    def crash(member, epoch, record):
        if member == "fold_1" and epoch == 0:
            raise Crash

    cfg_b = _config(tmp_path / "b.toml", cache, epochs=3, workers=1)
    with pytest.raises(Crash):
        train_run(cohort, cfg_b, tmp_path / "resumed", on_epoch_end=crash)
    assert (tmp_path / "resumed" / "fold_0" / "done.json").exists()
    assert not (tmp_path / "resumed" / "fold_1" / "done.json").exists()
    assert not (tmp_path / "resumed" / "cv_predictions.nc").exists()
    seen = []
    train_run(cohort, cfg_b, tmp_path / "resumed", on_epoch_end=lambda m, e, r: seen.append((m, e)))
    assert seen == [("fold_1", 1), ("fold_1", 2)]  # fold 0 kept, fold 1 continued
    for member in ("fold_0", "fold_1"):
        a = torch.load(whole / member / "checkpoint.pt", weights_only=True)
        b = torch.load(tmp_path / "resumed" / member / "checkpoint.pt", weights_only=True)
        for key, value in a["model"].items():
            assert torch.equal(value, b["model"][key]), (member, key)
        for sa, sb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
            assert all(torch.equal(sa[k], sb[k]) for k in sa)
        best_a = torch.load(whole / member / "best.pt", weights_only=True)["model"]
        best_b = torch.load(tmp_path / "resumed" / member / "best.pt", weights_only=True)["model"]
        assert all(torch.equal(v, best_b[k]) for k, v in best_a.items())
    pa = xr.load_dataset(whole / "cv_predictions.nc", engine="h5netcdf")
    pb = xr.load_dataset(tmp_path / "resumed" / "cv_predictions.nc", engine="h5netcdf")
    assert np.array_equal(pa["svdh"].values, pb["svdh"].values, equal_nan=True)
    # the same folder with another config is refused, naming what changed
    with pytest.raises(ConfigError, match="train.lr"):
        train_run(cohort, _lr_changed(tmp_path, cache), tmp_path / "resumed")


def _lr_changed(tmp_path, cache):
    path = _config(tmp_path / "c.toml", cache, epochs=3)
    path.write_text(path.read_text().replace("lr = 0.003", "lr = 0.01"))
    return path


def test_no_human_score_model_via_the_cli(cohort, tmp_path):
    cfg = _config(tmp_path / "t.toml", tmp_path / "cache", epochs=1, folds=1, extra="[heads]\nsvdh = false\n")
    runner = CliRunner()
    result = runner.invoke(app, ["train", "--cohort", str(cohort.root), "--config", str(cfg),
                                 "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "run" / "cv_predictions.nc").exists()  # folds = 1: nothing cross-fitted
    models, cfg_loaded = load_run(tmp_path / "run")
    assert cfg_loaded.heads_on == ("haq", "pain", "risk") and "svdh" not in models[0].heads
    result = runner.invoke(app, ["predict", "--run", str(tmp_path / "run"), "--cohort", str(cohort.root),
                                 "--out", str(tmp_path / "p.nc")])
    assert result.exit_code == 0, result.output
    ds = load_predictions(tmp_path / "p.nc")
    assert np.isnan(ds["svdh"].values).all() and np.isnan(ds["erosion"].values).all()
    assert np.isfinite(ds["haq"].values).all() and ds.attrs["heads"] == "haq,pain,risk"
    # bad config and missing run folder -> exit 2 with the reason
    bad = tmp_path / "bad.toml"
    bad.write_text("[train]\nepochs = 'many'\n")
    result = runner.invoke(app, ["train", "--cohort", str(cohort.root), "--config", str(bad),
                                 "--out", str(tmp_path / "run2")])
    assert result.exit_code == 2 and "train.epochs" in result.output
    assert not (tmp_path / "run2").exists()
    result = runner.invoke(app, ["predict", "--run", str(tmp_path / "nope"), "--cohort", str(cohort.root),
                                 "--out", str(tmp_path / "p2.nc")])
    assert result.exit_code == 2


def test_a_head_without_labels_is_refused_before_anything_is_written(cohort, tmp_path):
    no_pain = cohort.subset(cohort.patient_ids)
    no_pain.visits = no_pain.visits.assign(pain=np.nan)
    with pytest.raises(ConfigError, match="heads.pain"):
        train_run(no_pain, _config(tmp_path / "t.toml", tmp_path / "cache"), tmp_path / "run")
    assert not (tmp_path / "run").exists()


STALL = "stall_epoch = 2\nstall_tolerance = {tol}\nstall_restarts = {restarts}\n"


def _stall_config(tmp_path, cache, name, tol, restarts, lr="1e-9", folds=2):
    path = _config(tmp_path / f"{name}.toml", cache, epochs=3, folds=folds)
    text = path.read_text().replace("lr = 0.003", f"lr = {lr}\n" + STALL.format(tol=tol, restarts=restarts))
    path.write_text(text)
    return path


def test_a_stalled_model_is_trained_again_from_a_new_seed_on_the_same_split(cohort, tmp_path, monkeypatch, caplog):
    """lr 1e-9 cannot move the criterion by 50 % in 2 epochs: each member is abandoned at epoch 2, trained again
    from restart_seed(seed, 1) on the same split (through learning.fit_until_learned, the site route's loop), and
    the abandoned attempt is recorded."""
    import functools

    from raoutcome.training import run as run_module
    from raoutcome.training.learning import fit_until_learned, restart_seed
    from raoutcome.training.config import load_config
    from raoutcome.training.run import IMAGE_RESTART_STRIDE, _plan, _validation_split, member_seed

    loops = []

    @functools.wraps(fit_until_learned)
    def spy(*args, **kwargs):
        model, rec = fit_until_learned(*args, **kwargs)
        loops.append(rec)
        return model, rec

    monkeypatch.setattr(run_module, "fit_until_learned", spy)
    seen = []
    with caplog.at_level("WARNING", logger="raoutcome.training.run"):
        cfg_path = _stall_config(tmp_path, tmp_path / "cache", "s", 0.5, 1)
        run = train_run(cohort, cfg_path, tmp_path / "run",
                        on_epoch_end=lambda m, e, r: seen.append((m, e)))
    assert [[(a["seed"], a["stalled"]) for a in rec["attempts"]] for rec in loops] == [
        [(member_seed(0, f, 0), True), (restart_seed(member_seed(0, f, 0), 1, IMAGE_RESTART_STRIDE), True)]
        for f in (0, 1)]  # the kept (last) attempt still stalled
    for f in (0, 1):
        seed = member_seed(0, f, 0)
        assert any(f"FOLD_{f} STALLED WITH SEED {seed}" in m
                   and f"RESTARTING WITH SEED {restart_seed(seed, 1, IMAGE_RESTART_STRIDE)}" in m for m in caplog.messages)
    assert seen == [("fold_0", 0), ("fold_0", 1), ("fold_0", 0), ("fold_0", 1), ("fold_0", 2),
                    ("fold_1", 0), ("fold_1", 1), ("fold_1", 0), ("fold_1", 1), ("fold_1", 2)]
    metrics = json.loads((run / "metrics.json").read_text())
    for fold, m in enumerate(metrics["members"]):
        seed = member_seed(0, fold, 0)
        assert [r["seed"] for r in m["restarts"]] == [seed]
        assert m["restarts"][0]["stalled"] is True and len(m["restarts"][0]["criterion"]) == 2
        assert m["seed"] == restart_seed(seed, 1, IMAGE_RESTART_STRIDE) == seed + 104729 and m["member_seed"] == seed
        assert len(m["history"]) == 3  # the last allowed attempt trains to the end
        assert m["stalled"] is True  # ... and is still reported as not learned
        done = json.loads((run / m["member"] / "done.json").read_text())
        assert done["seed"] == m["seed"]
    assert metrics["restarted_members"] == {"fold_0": [member_seed(0, 0, 0)], "fold_1": [member_seed(0, 1, 0)]}
    # the split never changes with the restart: each member validates on its own seed's split
    cfg = load_config(cfg_path)
    for fold, train_ids, _ in _plan(cohort, cfg):
        done = json.loads((run / f"fold_{fold}" / "done.json").read_text())
        assert (done["train_ids"], done["val_ids"]) == _validation_split(cohort, train_ids, cfg,
                                                                         member_seed(0, fold, 0))


def test_without_restarts_a_stalled_model_is_kept_and_reported(cohort, tmp_path):
    run = train_run(cohort, _stall_config(tmp_path, tmp_path / "cache", "p", 0.5, 0, folds=1), tmp_path / "plain")
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["restarted_members"] == {} and metrics["stalled_members"] == ["fold_0"]
    (m,) = metrics["members"]
    assert not m["restarts"] and m["seed"] == m["member_seed"] and len(m["history"]) == 3


def test_a_learning_model_is_never_restarted(cohort, tmp_path):
    run = train_run(cohort, _stall_config(tmp_path, tmp_path / "cache", "l", 0.0, 2, lr="0.003"), tmp_path / "run")
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["restarted_members"] == {}
    assert all(not m["restarts"] and m["seed"] == m["member_seed"] for m in metrics["members"])


def test_a_run_killed_during_a_restart_resumes_the_restarted_attempt(cohort, tmp_path):
    """Killed in fold 0's second attempt: the resumed run continues that attempt (not the abandoned one), keeps
    the abandoned one in its record and ends bit-identical to an uninterrupted run (one fold: the rule is per
    model)."""
    cache = tmp_path / "cache"
    whole = train_run(cohort, _stall_config(tmp_path, cache, "a", 0.5, 1, folds=1), tmp_path / "whole")
    calls = []

    class Crash(RuntimeError):
        pass

    def crash(member, epoch, record):
        calls.append((member, epoch))
        if len(calls) == 3:  # fold_0, the restarted attempt's first epoch
            raise Crash

    cfg = _stall_config(tmp_path, cache, "b", 0.5, 1, folds=1)
    with pytest.raises(Crash):
        train_run(cohort, cfg, tmp_path / "resumed", on_epoch_end=crash)
    seen = []
    train_run(cohort, cfg, tmp_path / "resumed", on_epoch_end=lambda m, e, r: seen.append((m, e)))
    assert seen == [("fold_0", 1), ("fold_0", 2)]  # the restarted attempt, not attempt 0 again
    # the attempt abandoned before the kill is kept in the record, as in the uninterrupted run
    restarts = [json.loads((r / "metrics.json").read_text())["restarted_members"]
                for r in (whole, tmp_path / "resumed")]
    assert restarts[0] == restarts[1] and list(restarts[0]) == ["fold_0"]
    done = [json.loads((r / "fold_0" / "done.json").read_text()) for r in (whole, tmp_path / "resumed")]
    assert done[0]["restarts"] == done[1]["restarts"] and done[0]["seed"] == done[1]["seed"]
    a = torch.load(whole / "fold_0" / "best.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "resumed" / "fold_0" / "best.pt", weights_only=True)["model"]
    assert all(torch.equal(v, b[k]) for k, v in a.items())
