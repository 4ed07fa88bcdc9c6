"""Fit one model: AMP on CUDA, DDP under torchrun, checkpoint every epoch, exact resume,
early stopping on the validation loss.

The training loop holds no model math: the model and the loss come from
:mod:`raoutcome.models`.

**Exact resume.** ``checkpoint.pt`` (written atomically at the end of every epoch) holds
model, loss (learned task weights), optimizer, scheduler, grad scaler, the Python /
NumPy / torch / CUDA / DataLoader-generator RNG states, the epoch, the early-stopping
state and the history. The patient order of an epoch is drawn from ``(seed, epoch)`` and
augmentation from ``(seed, epoch, patient)``, so neither worker processes nor the
interruption point matter. Restarting after a crash therefore continues the exact same
sequence of updates: on CPU the final weights are bit-identical to an uninterrupted run.

**Validation criterion** (early stopping, ``best.pt``): ``sum_k w_k L_k / L_k^(1)``, each
head's validation loss relative to its value after the first epoch, so heads on
different scales count alike and learned (uncertainty) weights cannot move the goal
posts.
"""
from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, Sampler
from raoutcome.progress import tqdm

from raoutcome.imaging.dataset import PatientSequences, batch_to, collate_patients
from raoutcome.models.losses import SPACE_TRANSFORMS, MultitaskLoss, default_scales, patient_risk, task_loss
from raoutcome.models.multitask import LongitudinalOutcomeModel, ModelSpec
from raoutcome.errors import InputError
from raoutcome.outcomes import outcome_of_kind, output_outcome, outcomes
from raoutcome.training import checkpoint as ckpt
from raoutcome.training.distributed import DistInfo, barrier

EpochHook = Callable[[int, dict], None]


class TrainModule(nn.Module):
    """Model + loss in one module, so DDP sees (and averages) every trainable parameter."""

    def __init__(self, model: LongitudinalOutcomeModel, criterion: MultitaskLoss):
        super().__init__()
        self.model = model
        self.criterion = criterion

    def forward(self, batch: Mapping[str, torch.Tensor]):
        out = self.model.forward_batch(batch, return_maps=self.criterion.wants_maps(batch))
        loss, parts = self.criterion(out, batch)
        return loss, parts


class EpochShuffle(Sampler[int]):
    """A permutation drawn from ``(seed, epoch)`` alone: the order of an epoch never depends
    on what ran before it (worker processes, resumption), which exact resume needs."""

    def __init__(self, n: int, seed: int):
        self.n, self.seed, self.epoch = int(n), int(seed), 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __iter__(self):
        return iter(np.random.default_rng([self.seed, self.epoch]).permutation(self.n).tolist())

    def __len__(self) -> int:
        return self.n


log = logging.getLogger(__name__)


def loader_workers(num_workers: int, device: torch.device | None) -> int:
    """Worker processes actually used: on a CPU run with no core to spare beyond torch's own threads,
    workers only take cores from the model (predict on 2 cores: 0.88 of the bare encoder's speed
    with one worker, 0.91 loading in the main process), so loading runs in the main process."""
    if num_workers and (device is None or device.type == "cpu") and (os.cpu_count() or 1) <= torch.get_num_threads():
        return 0
    return num_workers


def make_loader(dataset, batch_size: int, num_workers: int, shuffle: bool = False,
                generator: torch.Generator | None = None, sampler=None, device: torch.device | None = None) -> DataLoader:
    num_workers = loader_workers(num_workers, device)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle if sampler is None else False, sampler=sampler,
                      num_workers=num_workers, collate_fn=collate_patients, generator=generator,
                      pin_memory=device is not None and device.type == "cuda",
                      persistent_workers=False, prefetch_factor=4 if num_workers else None)


def autocast(device: torch.device, enabled: bool):
    return torch.autocast(device_type=device.type, dtype=torch.float16, enabled=enabled)


@torch.no_grad()
def collect_outputs(model: LongitudinalOutcomeModel, loader: DataLoader, device: torch.device,
                    amp: bool = False) -> tuple[dict, dict]:
    """Run ``model`` (eval mode) over ``loader``; (outputs, batch) concatenated on the CPU.

    Per-visit tensors are padded to the longest sequence. Embeddings are dropped.
    """
    was_training = model.training
    model.eval()
    outs, batches = [], []
    for batch in loader:
        with autocast(device, amp):
            out = model.forward_batch(batch_to(batch, device))
        outs.append({k: v.float().cpu() for k, v in out.items() if k != "embedding"})
        batches.append({k: v for k, v in batch.items() if k not in ("images", "img_b", "img_t", "img_v")})
    model.train(was_training)
    return _cat_padded(outs), _cat_padded(batches)


def _cat_padded(parts: list[dict]) -> dict:
    if not parts:
        return {}
    n_vis = max(p["time"].shape[1] if "time" in p else next(iter(p.values())).shape[1] for p in parts)
    out = {}
    for key in parts[0]:
        tensors = []
        for p in parts:
            t = p[key]
            if t.dim() == 2 and t.shape[1] < n_vis:
                fill = False if t.dtype == torch.bool else (0 if key in ("time",) else math.nan)
                pad = torch.full((t.shape[0], n_vis - t.shape[1]), fill, dtype=t.dtype)
                t = torch.cat([t, pad], dim=1)
            tensors.append(t)
        out[key] = torch.cat(tensors)
    return out


def validation_losses(model: LongitudinalOutcomeModel, loader: DataLoader, device: torch.device,
                      amp: bool) -> dict[str, float]:
    """Each head's loss over the whole validation set at once (Cox over all its patients)."""
    out, batch = collect_outputs(model, loader, device, amp)
    if not out:
        return {}
    return {h: float(task_loss(h, out, batch)) for h in model.spec.heads}


@torch.no_grad()
def risk_center(model: LongitudinalOutcomeModel, loader: DataLoader, device: torch.device, amp: bool,
                name: str | None = None) -> float:
    """Mean patient risk (at each patient's risk visit) of time-to-event head ``name`` (default: the
    registered time-to-event outcome) over ``loader``'s patients."""
    name = name or getattr(outcome_of_kind("time_to_event"), "name", "")
    out, batch = collect_outputs(model, loader, device, amp)
    if name not in out:
        return 0.0
    risk = patient_risk(out[name], batch["risk_visit"])
    return float(risk.mean()) if len(risk) else 0.0


def target_scales(dataset: PatientSequences) -> dict[str, float]:
    """Standard deviation of each regression target over a dataset's visits, in its outcome's loss space
    (SvdH in log1p units).

    Targets with fewer than two values, or no spread, keep the default scale.
    """
    out = {}
    for name in default_scales():
        values = np.concatenate([t[f"target_{name}"] for t in dataset.targets if t] or [np.zeros(0)])
        values = values[np.isfinite(values)]
        values = SPACE_TRANSFORMS[output_outcome(name).loss_space](values)
        if len(values) >= 2 and values.std() > 1e-6:
            out[name] = float(values.std())
    return out


def _lr_lambda(total_steps: int, warmup_steps: int):
    def f(step: int) -> float:
        if warmup_steps and step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return 0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * progress))
    return f


def _param_groups(module: nn.Module, weight_decay: float) -> list[dict]:
    decay, no_decay = [], []
    for p in module.parameters():
        if p.requires_grad:
            (decay if p.ndim >= 2 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def uses_joint_targets(spec: ModelSpec, cfg) -> bool:
    """Joint-level density supervision is on: a count head (SvdH), lesion maps for its parts,
    ``loss.joint_weight > 0``.

    Per-joint readings are a human score: the "no human score" model (SvdH head off) never
    sees them."""
    counts = [o for o in outcomes(spec.heads) if o.kind == "count"]
    return bool(counts) and spec.lesion_maps >= len(counts[0].parts) and cfg.loss.get("joint_weight", 0.0) > 0


def fit(spec: ModelSpec, cfg, train_ds: PatientSequences, val_ds: PatientSequences | None, member_dir: Path,
        seed: int, device: torch.device, dist: DistInfo, on_epoch_end: EpochHook | None = None,
        desc: str = "", loss_scales: Mapping[str, float] | None = None,
        abandon: Callable[[list[dict]], dict | None] | None = None) -> FitResult:
    """Train one model into ``member_dir`` (``checkpoint.pt`` each epoch, ``best.pt``).

    Resumes from ``member_dir/checkpoint.pt`` if present. Returns the summary
    (best epoch, criterion, history, ...) and the model as it is after the last epoch.
    ``loss_scales``: per-target scales of the regression losses (see
    :mod:`raoutcome.models.losses`; default: :func:`target_scales` of ``train_ds``). ``on_epoch_end(epoch, record)`` runs on every
    rank after the epoch's checkpoint is on disk (progress reporting, tests). ``abandon(history)``, when given,
    runs after every epoch on the history so far; a non-None answer stops training at once and is returned in the
    summary as ``abandoned`` (the stall restart of :mod:`raoutcome.training.run`).
    """
    t = cfg.train
    member_dir = Path(member_dir)
    member_dir.mkdir(parents=True, exist_ok=True)
    ckpt.seed_everything(seed)
    if t["deterministic"]:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
    amp = device.type == "cuda" and t["amp"] in ("auto", "on")

    model = LongitudinalOutcomeModel(spec).to(device)
    if loss_scales is None:
        loss_scales = target_scales(train_ds)
    joint_weight = cfg.loss["joint_weight"] if uses_joint_targets(spec, cfg) else 0.0
    rank_weight = cfg.loss["progression_rank"]
    criterion = MultitaskLoss(spec.heads, cfg.loss["weighting"], cfg.loss["weights"], loss_scales,
                              joint_weight=joint_weight, rank_weight=rank_weight,
                              rank_channels=model.damage_maps).to(device)
    module = TrainModule(model, criterion)
    wrapped: nn.Module = module
    if dist.enabled:
        wrapped = DistributedDataParallel(module, device_ids=[device.index] if device.type == "cuda" else None)

    generator = torch.Generator().manual_seed(seed)
    if dist.enabled:
        sampler = DistributedSampler(train_ds, num_replicas=dist.world_size, rank=dist.rank, shuffle=True,
                                     seed=seed, drop_last=False)
    else:
        sampler = EpochShuffle(len(train_ds), seed)
    loader = make_loader(train_ds, t["batch_patients"], t["num_workers"], generator=generator,
                         sampler=sampler, device=device)
    val_loader = (make_loader(val_ds, t["batch_patients"], t["num_workers"], device=device)
                  if val_ds is not None and len(val_ds) else None)

    steps_per_epoch = max(1, len(loader))
    optimizer = torch.optim.AdamW(_param_groups(module, t["weight_decay"]), lr=t["lr"])
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, _lr_lambda(steps_per_epoch * t["epochs"], int(round(t["warmup_epochs"] * steps_per_epoch))))
    scaler = torch.amp.GradScaler(device.type, enabled=amp)

    state = {"epoch": -1, "best_criterion": math.inf, "best_epoch": -1, "bad_epochs": 0, "ref": {},
             "history": [], "finished": False, "seconds": 0.0}
    path = member_dir / "checkpoint.pt"
    if path.exists():
        saved = ckpt.load(path, required=("model", "loss", "optimizer", "scheduler", "scaler", "state", "rng"))
        try:
            module.model.load_state_dict(saved["model"])
            module.criterion.load_state_dict(saved["loss"])
            optimizer.load_state_dict(saved["optimizer"])
            scheduler.load_state_dict(saved["scheduler"])
            scaler.load_state_dict(saved["scaler"])
            state.update(saved["state"])
            ckpt.set_rng_state(saved["rng"], generator)
        except (KeyError, TypeError, ValueError, RuntimeError) as err:
            raise InputError(f"{path}: checkpoint does not fit this run ({type(err).__name__}: {err})") from err
    if state["finished"]:
        return FitResult(_summary(state), module.model)

    weights = dict(zip(spec.heads, criterion.weights.tolist()))
    show = dist.is_main
    for epoch in range(state["epoch"] + 1, t["epochs"]):
        started = time.perf_counter()
        train_ds.set_epoch(epoch)
        sampler.set_epoch(epoch)
        wrapped.train()
        sums: dict[str, float] = {}
        n_steps = 0
        bar = tqdm(loader, desc=f"{desc} epoch {epoch + 1}/{t['epochs']}".strip(), leave=False, disable=not show)
        for batch in bar:
            batch = batch_to(batch, device)
            with autocast(device, amp):
                loss, parts = wrapped(batch)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if t["grad_clip"]:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(module.parameters(), t["grad_clip"])
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            n_steps += 1
            for k, v in parts.items():
                sums[k] = sums.get(k, 0.0) + v
            sums["total"] = sums.get("total", 0.0) + float(loss.detach())
            bar.set_postfix(loss=f"{sums['total'] / n_steps:.3f}")
        train_losses = {k: v / max(n_steps, 1) for k, v in sums.items()}

        record = {"epoch": epoch, "train": train_losses, "steps": n_steps, "lr": scheduler.get_last_lr()[0],
                  "task_weights": criterion.task_weights()}
        improved = False
        if val_loader is not None:
            val = validation_losses(module.model, val_loader, device, amp)
            if not state["ref"]:
                state["ref"] = {k: v for k, v in val.items() if v > 0}
            crit = sum(weights[k] * v / state["ref"][k] for k, v in val.items() if k in state["ref"])
            record.update(val=val, criterion=crit)
            improved = crit < state["best_criterion"]
        else:
            crit = None
            improved = True  # no validation set: the last epoch is the best
        if improved:
            state.update(best_criterion=crit if crit is not None else math.nan, best_epoch=epoch, bad_epochs=0)
            if dist.is_main:
                ckpt.save({"model": module.model.state_dict(), "spec": spec.to_dict(), "epoch": epoch}, member_dir / "best.pt")
        else:
            state["bad_epochs"] += 1
        state["seconds"] += time.perf_counter() - started
        record["seconds"] = time.perf_counter() - started
        state["history"].append(record)
        state["epoch"] = epoch
        stop = state["bad_epochs"] >= t["patience"]
        state["finished"] = stop or epoch == t["epochs"] - 1
        state["stopped_early"] = stop and epoch < t["epochs"] - 1
        if dist.is_main:
            ckpt.save({"model": module.model.state_dict(), "loss": module.criterion.state_dict(),
                       "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                       "scaler": scaler.state_dict(), "state": state, "rng": ckpt.rng_state(generator),
                       "spec": spec.to_dict()}, path)
            val_txt = f" val {crit:.4f}" if crit is not None else ""
            log.info(f"{desc} epoch {epoch + 1}/{t['epochs']}: train {train_losses.get('total', math.nan):.4f}"
                     f"{val_txt}{' *' if improved else ''} ({record['seconds']:.0f}s)".strip())
        barrier(dist)
        if on_epoch_end is not None:
            on_epoch_end(epoch, record)
        why = abandon(state["history"]) if abandon is not None else None
        if why is not None:
            return FitResult({**_summary(state), "abandoned": why}, module.model)
        if stop:
            break
    return FitResult(_summary(state), module.model)


@dataclass
class FitResult:
    summary: dict
    model: LongitudinalOutcomeModel  # after the last epoch (best weights are in best.pt)


def _summary(state: dict) -> dict:
    return {k: state.get(k) for k in ("best_epoch", "best_criterion", "epoch", "stopped_early", "seconds", "history")}
