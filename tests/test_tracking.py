"""Experiment tracking: a tiny cross-fitted run with ``[tracking] backend = "tensorboard"`` writes the
params, every epoch's losses, one learning-curve figure per member and the artefacts; off by default."""
from __future__ import annotations

import json

import pytest
import torch

from conftest import TINY_MODEL_TOML, write_tiny_cohort
from raoutcome.cohort import load
from raoutcome.errors import ConfigError
from raoutcome.training import train_run
from raoutcome.training.config import load_config
from raoutcome.training.tracking import Tracker, flat_params, open_tracker

pytest.importorskip("tensorboard", reason="tensorboard (the [tracking] extra) is not installed")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402

torch.set_num_threads(1)

CONFIG = TINY_MODEL_TOML + """[train]
epochs = 2
batch_patients = 2
num_workers = 0
val_fraction = 0.25
[cv]
folds = 2
[readout]
heads = []
[data]
cache_dir = "{cache}"
{tracking}
"""


def _train(tmp_path, tracking: str):
    root = write_tiny_cohort(tmp_path / "cohort", n_patients=8, n_visits=3)
    cfg = tmp_path / "train.toml"
    cfg.write_text(CONFIG.format(cache=tmp_path / "cache", tracking=tracking))
    return train_run(load(root), cfg, tmp_path / "run")


def test_tensorboard_tracking_logs_params_epochs_figures_and_artefacts(tmp_path):
    run = _train(tmp_path, '[tracking]\nbackend = "tensorboard"')
    log_dir = run / "tracking"
    acc = EventAccumulator(str(log_dir), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    acc.Reload()
    tags = acc.Tags()
    members = sorted(p.name for p in run.glob("fold_*") if (p / "done.json").exists())
    assert members == ["fold_0", "fold_1"]
    for member in members:
        history = json.loads((run / member / "checkpoint.pt").with_name("done.json").read_text())
        # every epoch's training loss is logged with its epoch as the step and equals the run's own record
        events = acc.Scalars(f"{member}/train/total")
        state = torch.load(run / member / "checkpoint.pt", weights_only=False)["state"]["history"]
        assert [e.step for e in events] == [r["epoch"] for r in state]
        assert [e.value for e in events] == pytest.approx([r["train"]["total"] for r in state], rel=1e-6)
        crit = acc.Scalars(f"{member}/criterion")
        assert [e.value for e in crit] == pytest.approx([r["criterion"] for r in state], rel=1e-6)
        assert f"{member}/val/svdh" in tags["scalars"] and f"{member}/lr" in tags["scalars"]
        assert f"{member}/learning_curves" in tags["images"]
        assert history["member"] == member
    assert "config/text_summary" in tags["tensors"]
    art = log_dir / "artifacts"
    for name in ("config.resolved.toml", "versions.json", "metrics.json"):
        assert (art / name).read_bytes() == (run / name).read_bytes()
    for member in members:
        assert (art / f"{member}.done.json").read_bytes() == (run / member / "done.json").read_bytes()
    # the hyper-parameters (flattened config) were written as their own run
    assert any(p.name == "hparams" for p in log_dir.iterdir())


def test_tracking_is_off_by_default(tmp_path):
    assert type(open_tracker(load_config(None), tmp_path)) is Tracker
    run = _train(tmp_path, "")
    assert not (run / "tracking").exists()


def test_bad_backend_is_a_config_error(tmp_path):
    path = tmp_path / "t.toml"
    path.write_text('[tracking]\nbackend = "wandb"\n')
    with pytest.raises(ConfigError, match="tracking.*backend|backend.*wandb"):
        load_config(path)


def test_flat_params_keeps_scalars_and_serialises_tables():
    flat = flat_params({"train": {"lr": 0.001, "augment": True}, "loss": {"weights": {"haq": 1.0}}})
    assert flat == {"train.lr": 0.001, "train.augment": True, "loss.weights": '{"haq": 1.0}'}
