"""Experiment tracking for training runs: TensorBoard event files in a local folder, no server.

Why: a run folder holds the results, but comparing runs (learning curves, settings, readouts) is
easier in a tracker. Switched on in the training config (``[tracking] backend = "tensorboard"``),
off by default; :func:`open_tracker` returns a no-op :class:`Tracker` when off, so the training
loop calls it unconditionally from one place (:func:`raoutcome.training.run.train_run`).

What is logged (view with ``tensorboard --logdir RUN/tracking``):

* parameters: the resolved config as flat ``section.key`` hyper-parameters and as TOML text;
* per epoch and member (fold x seed): every training and validation loss, the early-stopping
  criterion, the learning rate and the epoch's seconds (``MEMBER/train/total`` ...);
* per member: the figure of its learning curves and its readout fits (``MEMBER/readouts``);
* artefacts: ``config.resolved.toml``, ``versions.json``, ``metrics.json`` and each member's
  ``done.json`` copied under ``artifacts/`` of the log folder.

TensorBoard comes with the ``[tracking]`` extra (``pip install raoutcome[tracking]``).
"""
from __future__ import annotations

__all__ = ["Tracker", "TensorBoardTracker", "open_tracker", "flat_params"]

import json
import logging
import math
import shutil
from pathlib import Path
from typing import Any, Mapping

from raoutcome.errors import ConfigError

log = logging.getLogger(__name__)

#: Files of the run folder copied as artefacts when the run ends (those present).
ARTEFACTS = ("config.resolved.toml", "versions.json", "metrics.json")


def flat_params(values: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """``{"train": {"lr": 0.001}}`` -> ``{"train.lr": 0.001}``; lists and tables become JSON text.

    Examples
    --------
    >>> flat_params({"train": {"lr": 0.001}, "model": {"views": ["hand_left"]}})
    {'train.lr': 0.001, 'model.views': '["hand_left"]'}
    """
    out: dict[str, Any] = {}
    for section, keys in values.items():
        for key, value in keys.items():
            ok = isinstance(value, (bool, int, float, str))
            out[f"{section}.{key}"] = value if ok else json.dumps(value, sort_keys=True)
    return out


class Tracker:
    """The no-op tracker (tracking off): every method does nothing."""

    def epoch(self, member: str, epoch: int, record: Mapping[str, Any]) -> None:
        """Log one epoch's record of one member (see :func:`raoutcome.training.trainer.fit`)."""

    def member(self, member: str, record: Mapping[str, Any]) -> None:
        """Log a finished member: its learning-curve figure and readouts (``record["history"]``)."""

    def close(self, run_dir: Path) -> None:
        """Copy the run's artefacts and flush."""


class TensorBoardTracker(Tracker):
    """Writes TensorBoard event files into ``log_dir`` (``torch.utils.tensorboard``)."""

    def __init__(self, log_dir: Path, params: Mapping[str, Any], config_text: str):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as err:  # tensorboard is an optional extra
            raise ConfigError("tracking.backend = 'tensorboard' needs the tensorboard package: "
                              "pip install 'raoutcome[tracking]'") from err
        self.log_dir = Path(log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.writer = SummaryWriter(log_dir=str(self.log_dir))
        self.writer.add_text("config", "```toml\n" + config_text + "\n```", 0)
        self.params = dict(params)
        self._members: list[str] = []
        log.info("tracking to TensorBoard in %s", self.log_dir)

    def epoch(self, member: str, epoch: int, record: Mapping[str, Any]) -> None:
        for part in ("train", "val"):
            for name, value in (record.get(part) or {}).items():
                self._scalar(f"{member}/{part}/{name}", value, epoch)
        for key in ("criterion", "lr", "seconds"):
            if key in record:
                self._scalar(f"{member}/{key}", record[key], epoch)
        self.writer.flush()

    def member(self, member: str, record: Mapping[str, Any]) -> None:
        self._members.append(member)
        history = list(record.get("history") or [])
        if history:
            self.writer.add_figure(f"{member}/learning_curves", learning_curve_figure(member, history),
                                   global_step=len(history) - 1, close=True)
        readouts = record.get("readouts") or {}
        if readouts:
            self.writer.add_text(f"{member}/readouts", "```json\n" + json.dumps(readouts, indent=1, default=str)
                                 + "\n```", 0)
        self.writer.flush()

    def close(self, run_dir: Path) -> None:
        art = self.log_dir / "artifacts"
        art.mkdir(exist_ok=True)
        for name in ARTEFACTS:
            if (run_dir / name).exists():
                shutil.copy2(run_dir / name, art / name)
        for member in self._members:
            if (run_dir / member / "done.json").exists():
                shutil.copy2(run_dir / member / "done.json", art / f"{member}.done.json")
        metrics = _final_metrics(run_dir / "metrics.json")
        self.writer.add_hparams(self.params, metrics or {"hparam/finished": 1.0}, run_name="hparams")
        self.writer.flush()
        self.writer.close()

    def _scalar(self, tag: str, value: Any, step: int) -> None:
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            self.writer.add_scalar(tag, float(value), step)


def _final_metrics(path: Path) -> dict[str, float]:
    """Numbers at the top level or one level down of ``metrics.json`` as ``hparam/...`` metrics."""
    if not path.exists():
        return {}
    data = json.loads(path.read_text())
    out: dict[str, float] = {}

    def take(prefix: str, obj: Any, depth: int) -> None:
        if isinstance(obj, (int, float)) and not isinstance(obj, bool):
            if math.isfinite(obj):
                out[f"hparam/{prefix}"] = float(obj)
        elif isinstance(obj, dict) and depth < 2:
            for k, v in obj.items():
                take(f"{prefix}.{k}" if prefix else str(k), v, depth + 1)

    take("", data, 0)
    return out


def learning_curve_figure(member: str, history: list[Mapping[str, Any]]):
    """Training loss and validation criterion (early stopping's) per epoch of one member (Figure)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5, 3.2))
    ax = fig.add_subplot()
    epochs = [int(r.get("epoch", i)) + 1 for i, r in enumerate(history)]
    train = [(r.get("train") or {}).get("total", math.nan) for r in history]
    ax.plot(epochs, train, "-o", color="C0", markersize=3, label="training loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel("training loss (weighted total)")
    crit = [r.get("criterion", math.nan) for r in history]
    if any(isinstance(c, (int, float)) and math.isfinite(c) for c in crit):
        right = ax.twinx()
        right.plot(epochs, crit, "--s", color="C1", markersize=3, label="validation criterion")
        right.set_ylabel("validation criterion")
        right.legend(loc="upper right")
    ax.legend(loc="upper left")
    ax.set_title(member)
    fig.tight_layout()
    return fig


def open_tracker(cfg, run_dir: Path) -> Tracker:
    """The tracker ``cfg.tracking`` asks for: :class:`Tracker` (off) or :class:`TensorBoardTracker`."""
    settings = getattr(cfg, "values", {}).get("tracking", {})
    backend = settings.get("backend", "")
    if not backend:
        return Tracker()
    log_dir = Path(settings.get("dir") or Path(run_dir) / "tracking")
    return TensorBoardTracker(log_dir, flat_params(cfg.values), cfg.to_toml())
