"""Runs of the site route (``[model] route = "sites"``): cross-fitted site readers, out-of-fold joints, predict.

Same run folder contract as :mod:`raoutcome.training.run` (``config.resolved.toml``, ``fold_<k>/done.json``,
``cv_predictions.nc``, ``metrics.json``), with per fold ``fold_<k>/site_model.pt`` (the site reader's spec
and weights). The Predictions carry the ``joint`` dimension (:mod:`raoutcome.joint_predictions`); the visit
subscores and total are the sums of the per-joint expected scores (:func:`raoutcome.evaluation.joints.visit_totals`).

Every fold says whether it learned: its epochs, its validation loss before training and at its best, whether
it stalled (:func:`raoutcome.training.site_train.train_site_model`) and its out-of-fold SvdH r are printed and
recorded in ``metrics.json``; a stalled fold is repeated in capitals at the end of the run.
"""
from __future__ import annotations

__all__ = ["predict_site_run", "site_settings", "train_site_run"]

import json
from dataclasses import replace
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch

from raoutcome.logs import log_message
from raoutcome.errors import InputError
from raoutcome.evaluation.classification import DEFAULT_SEVERITY_CUTOFFS
from raoutcome.imaging.site_patches import SitePatches, cohort_site_patches
from raoutcome.io_utils import atomic_write
from raoutcome.models.site_model import SiteModel, SiteSpec
from raoutcome import outcomes as registry
from raoutcome.training import checkpoint as ckpt
from raoutcome.training.config import TrainConfig
from raoutcome.training.site_train import (SiteData, SiteTrainSettings, _split, ensemble_joints, predict_sites,
                                           train_site_model)

SITE_MODEL = "site_model.pt"
SITE_OUTCOME = "site_outcome.pt"


def site_settings(cfg: TrainConfig) -> tuple[SiteSpec, SiteTrainSettings]:
    """The site reader's spec (no vocabulary yet) and training settings of a config."""
    s = cfg.sites
    spec = SiteSpec(encoder=s["encoder"], pretrained=cfg.model["pretrained"], grid=s["grid"], d_model=s["d_model"],
                    context=s["context"], dropout=cfg.model["dropout"])
    settings = SiteTrainSettings(epochs=s["epochs"], batch_visits=s["batch_visits"], lr=s["lr"],
                                 weight_decay=cfg.train["weight_decay"], val_fraction=cfg.train["val_fraction"],
                                 augment=cfg.train["augment"], seed=cfg.train["seed"], folds=cfg.cv["folds"],
                                 stall_epoch=s["stall_epoch"], stall_tolerance=s["stall_tolerance"],
                                 stall_restarts=s["stall_restarts"])
    return spec, settings


def _cache(cfg: TrainConfig, run_dir: Path) -> Path:
    return Path(cfg.data["cache_dir"]) if cfg.data["cache_dir"] else Path(run_dir) / "site_cache"


def _patches(cohort, cfg: TrainConfig, run_dir: Path) -> SitePatches:
    views = cfg.model["views"] or None
    return cohort_site_patches(cohort, cfg.sites["grid"], cfg.sites["half_width"], views=views,
                               cache_dir=_cache(cfg, run_dir))


def _write_json(path: Path, obj) -> None:
    with atomic_write(path) as fh:
        json.dump(obj, fh, indent=2, default=lambda o: o.item() if hasattr(o, "item") else str(o))
        fh.write("\n")


def _site_spec() -> registry.Outcome:
    spec = registry.site_outcome()
    if spec is None:
        raise InputError("the site route sums per-joint readings into an outcome, but no registered outcome is "
                         "read site by site (no part with a site_kind)")
    return spec


def _expected_joints(cohort, views) -> dict[str, list[str]]:
    from raoutcome.anatomy import joint_name, sites_for

    return {k: [joint_name(v, s) for v in views for s in sites_for(v, k)]
            for k in (p.site_kind for p in _site_spec().site_parts)}


def _totals(cohort, joints: pd.DataFrame | None, views) -> pd.DataFrame | None:
    """Visit subscores and total of per-joint predictions (:func:`raoutcome.evaluation.joints.visit_totals`); None
    without joints."""
    from raoutcome.evaluation.joints import visit_totals

    return visit_totals(joints, _expected_joints(cohort, views)) if joints is not None else None


def _predictions(cohort, joints: pd.DataFrame | None, views, folds: dict[str, int] | None, attrs: dict,
                 outcomes: pd.DataFrame | None = None, totals: pd.DataFrame | None = None):
    """Predictions (visit scores = sums of joints, their SDs, the joint dimension; HAQ, pain, risk and the visit
    embedding from ``outcomes``) for every visit of ``cohort``; ``joints`` None: a model that reads no joint (no
    human score), outcomes only; ``totals``: the joints' :func:`_totals` where the caller has them. Returns
    (Predictions, visit totals or None)."""
    from raoutcome.joint_predictions import add_joints
    from raoutcome.predictions import from_frame

    totals = totals if totals is not None or joints is None else _totals(cohort, joints, views)
    frame = cohort.visits[["patient_id", "visit_id", "time_years"]].astype({"patient_id": str, "visit_id": str})
    if totals is not None:
        frame = frame.merge(totals[["patient_id", "visit_id", *_site_spec().outputs]], how="left",
                            on=["patient_id", "visit_id"])
    embedding = None
    if outcomes is not None and len(outcomes):
        frame = frame.merge(outcomes, how="left", on=["patient_id", "visit_id"])
        width = len(next(e for e in frame["embedding"] if isinstance(e, np.ndarray)))
        embedding = np.stack([e if isinstance(e, np.ndarray) else np.full(width, np.nan) for e in frame["embedding"]])
        frame = frame.drop(columns="embedding")
    from raoutcome.severity import add_severity

    ds = from_frame(frame, embedding=embedding, folds=folds, attrs=attrs)
    if joints is not None:
        ds = add_joints(ds, joints, totals)
    return add_severity(ds, frame), totals


def _outcome_heads(cfg: TrainConfig) -> tuple[str, ...]:
    """The switched-on heads of the outcome model on sites: every outcome but the one read site by site."""
    return tuple(o.name for o in registry.outcomes() if not o.site_parts and cfg.heads.get(o.name))


def _outcome_spec(cfg: TrainConfig, spec: SiteSpec, counts: bool):
    """The outcome model on sites of a config: with ``counts`` (a reader's predicted totals) it also grades the
    total's severity; without (no human score) it reads the site embeddings only."""
    from raoutcome.models.site_outcome import SiteOutcomeSpec

    return SiteOutcomeSpec(n_sites=len(spec.sites), site_dim=spec.d_model, d_model=cfg.model["d_model"],
                           layers=cfg.model["layers"], attention_heads=cfg.model["attention_heads"],
                           dropout=cfg.model["dropout"], counts=counts, heads=_outcome_heads(cfg),
                           severity_classes=len(DEFAULT_SEVERITY_CUTOFFS) + 1 if counts else 0)


def _measures(sp, cohort, names) -> pd.DataFrame | None:
    """The visits' image measures ``names`` on the site patches ``sp`` (None without names)."""
    from raoutcome.imaging.visit_measures import visit_measures

    return visit_measures(sp, cohort, list(names)) if names else None


def _outcome_fold(cohort, cfg, spec, part, totals, h, record, mdir: Path, seed: int, log, ap=None, measures=None):
    """Train (or reload) the fold's outcome model on its reader's frozen site embeddings and predicted ``totals``
    (:func:`_totals`; None: an encoder that reads no joint); ``ap``: the cohort's anomaly patches
    (:func:`raoutcome.training.site_anomaly.anomaly_patches`), whose scorer is fitted on the fold's training
    patients and saved with the model (``model.anomaly_scorer``; None without); ``measures``: the visits' image
    measures (:func:`raoutcome.imaging.visit_measures.visit_measures`) its readouts read."""
    from raoutcome.training.site_anomaly import fit_scorer, scorer_state, visit_anomaly
    from raoutcome.training.site_outcome_train import OutcomeData, fit_site_outcome, outcome_stall_rule

    path = mdir / SITE_OUTCOME
    if path.exists():
        model = _load_outcome(mdir)
        return model, ckpt.load(path)["record"]
    scorer = fit_scorer(ap, record["train_ids"] + record["val_ids"]) if ap is not None else None
    data = OutcomeData.build(cohort, part.table, {s: i for i, s in enumerate(spec.sites)}, totals,
                             cfg.survival["event"], anomaly=visit_anomaly(scorer, ap) if scorer is not None else None,
                             measures=measures)
    ospec = _outcome_spec(cfg, spec, counts=totals is not None)
    model, orec = fit_site_outcome(ospec, data, torch.from_numpy(h), record["train_ids"], record["val_ids"], seed,
                                   epochs=cfg.sites["outcome_epochs"], stall=outcome_stall_rule(cfg.sites),
                                   name=f"{mdir.name} outcome", log=log,
                                   risk_inputs=tuple(cfg.readout["risk_inputs"]))
    readouts = {k: v for k, v in model.readouts.items() if not k.endswith("_info")}
    ckpt.save({"spec": ospec.to_dict(), "model": model.state_dict(), "readouts": readouts, "record": orec,
               **({"anomaly": scorer_state(scorer)} if scorer is not None else {})}, path)
    model.anomaly_scorer = scorer
    return model, orec


def _outcome_predict(cohort, model, spec, part, totals, h, ids, ap=None, measures=None) -> pd.DataFrame:
    """HAQ, pain, risk and the visit embedding of ``ids`` by a fold's outcome model on its reader's site embeddings
    ``h`` and ``totals`` (:func:`_totals`); a model with an anomaly scorer scores the visits' anomaly on ``ap``
    (:func:`raoutcome.training.site_anomaly.anomaly_patches` of ``cohort``); ``measures``: the visits' image
    measures, for a model whose readouts read them."""
    from raoutcome.training.site_anomaly import visit_anomaly
    from raoutcome.training.site_outcome_train import OutcomeData, predict_site_outcome

    scorer = getattr(model, "anomaly_scorer", None)
    anomaly = visit_anomaly(scorer, ap, [str(p) for p in ids]) if scorer is not None else None
    data = OutcomeData.build(cohort, part.table, {s: i for i, s in enumerate(spec.sites)}, totals, event=None,
                             anomaly=anomaly, measures=measures)
    return predict_site_outcome(model, data, torch.from_numpy(h), [str(p) for p in ids])


def train_site_run(cohort, cfg: TrainConfig, run_dir: Path, plan: list[tuple[int, list[str], list[str]]],
                   log: Callable[[str], None] | None = None) -> Path:
    """Train the site route's fold models (``plan``: fold, training ids, test ids) into ``run_dir`` (finished folds
    are kept), write out-of-fold Predictions and ``metrics.json``; returns ``run_dir``."""
    from raoutcome.evaluation.regression import pearson_r
    from raoutcome.imaging.site_patches import site_names
    from raoutcome.predictions import save_predictions

    log = log or log_message
    spec, settings = site_settings(cfg)
    sp = _patches(cohort, cfg, run_dir)
    views = sorted(sp.table["view"].unique())
    spec = replace(spec, sites=site_names(views), grid=sp.grid)
    reads = bool(cfg.heads.get(_site_spec().name))  # off: the "no human score" model on the same patches
    outcome_on = bool(_outcome_heads(cfg)) and cfg.sites["outcome_epochs"] > 0
    data = SiteData.build(sp, spec.sites, cohort.joints if reads else None)
    if reads and not (torch.isfinite(data.jsn).any() or torch.isfinite(data.erosion).any()):
        raise InputError(f"{cohort.root}: the site route learns per-joint scores, but the cohort has no per-joint "
                         "readings (joints.csv) at its landmarked sites")
    if not reads and not outcome_on:
        raise InputError(f"[heads] {_site_spec().name} = false trains the site encoder from the outcomes alone, "
                         "but no outcome head is on (or sites.outcome_epochs = 0)")
    ap = None
    if outcome_on and cfg.readout["joint_anomaly"]:  # the readouts read the label-free joint anomaly
        from raoutcome.training.site_anomaly import anomaly_patches

        ap = anomaly_patches(cohort, _cache(cfg, run_dir))
    measures = _measures(sp, cohort, cfg.readout["measures"]) if outcome_on else None
    parts, records, folds, outcome_parts = [], [], {}, []
    for fold, train_ids, test_ids in plan:
        mdir = run_dir / f"fold_{fold}"
        done = mdir / "done.json"
        seed = settings.seed + 1009 * fold
        if done.exists():
            record = json.loads(done.read_text())
            model = _load(mdir)
        elif (mdir / SITE_MODEL).exists():  # the reader finished, the outcome model did not: keep the reader
            model = _load(mdir)
            record = ckpt.load(mdir / SITE_MODEL)["record"]
        else:
            fit_ids, val_ids = _split(list(train_ids), settings.val_fraction, seed)
            if reads:
                model, record = train_site_model(spec, data.subset(fit_ids), data.subset(val_ids) if val_ids else None,
                                                 settings, seed, name=f"fold_{fold}", log=log)
            else:
                model, record = _train_encoder(cohort, cfg, spec, settings, data.subset(list(map(str, train_ids))),
                                               fit_ids, val_ids, seed, f"fold_{fold} encoder", log)
            record = {**record, "member": f"fold_{fold}", "fold": fold, "seed_index": 0, "train_ids": fit_ids,
                      "val_ids": val_ids, "test_ids": [str(p) for p in test_ids], "route": "sites",
                      "reads_joints": reads}
            mdir.mkdir(parents=True, exist_ok=True)
            ckpt.save({"spec": spec.to_dict(), "model": model.state_dict(), "record": record}, mdir / SITE_MODEL)
        if test_ids or outcome_on:
            every = sorted(set(map(str, train_ids)) | set(map(str, test_ids)))
            part = data.subset(every)
            frame, h = predict_sites(model, part, embeddings=outcome_on)
            frame = frame if reads else None  # an encoder trained without readings: its ordinal heads mean nothing
            if frame is not None:
                test = frame["patient_id"].isin(set(map(str, test_ids)))
                parts.append(frame[test].assign(fold=fold))
            folds.update({str(p): fold for p in test_ids})
            if outcome_on:
                totals = _totals(cohort, frame, views)
                omodel, orec = _outcome_fold(cohort, cfg, spec, part, totals, h, record, mdir, seed, log, ap,
                                             measures)
                record["outcome"] = orec
                if test_ids:  # one fold ([cv] folds = 1) trains on every patient: nothing out of fold to predict
                    outcome_parts.append(_outcome_predict(cohort, omodel, spec, part, totals, h, test_ids, ap,
                                                          measures))
        if not done.exists():
            _write_json(done, record)
        records.append(record)
    metrics: dict = {"route": "sites", "members": [], "folds": []}
    if parts or outcome_parts:
        joints = pd.concat(parts, ignore_index=True) if parts else None
        outcomes = pd.concat(outcome_parts, ignore_index=True) if outcome_parts else None
        heads = ([_site_spec().name] if reads else []) + list(_outcome_heads(cfg))
        ds, totals = _predictions(cohort, joints, views, folds, {"run": run_dir.name, "route": "sites",
                                                                 "heads": ",".join(heads),
                                                                 "embedding_source": "fold model of each patient"},
                                  outcomes)
        save_predictions(ds, run_dir / "cv_predictions.nc")
        obs = cohort.visits.astype({"patient_id": str, "visit_id": str})
        total, column = _site_spec().name, _site_spec().column
        merged = (totals.merge(obs, on=["patient_id", "visit_id"], suffixes=("", "_obs")).dropna(subset=[column, total])
                  if totals is not None and column in obs else pd.DataFrame(columns=["patient_id", column, total]))
        merged["fold"] = merged["patient_id"].map(folds)
        for rec in records:
            g = merged[merged["fold"] == rec["fold"]]
            r = pearson_r(g[column], g[total]) if len(g) > 2 and g[column].std() > 0 else float("nan")
            metrics["folds"].append({"fold": rec["fold"], "svdh_pearson_r": r, "n_visits": int(len(g)),
                                     "stalled": rec["stalled"], "best_epoch": rec["best_epoch"],
                                     "val_loss_start": rec["val_loss_start"], "best_val_loss": rec["best_val_loss"],
                                     "seed": rec.get("seed"), "restarts": rec.get("restarts", 0),
                                     "attempts": rec.get("attempts", []),
                                     "outcome_stalled": (rec.get("outcome") or {}).get("stalled"),
                                     "outcome_restarts": (rec.get("outcome") or {}).get("restarts", 0)})
            log(f"fold_{rec['fold']}: out-of-fold SvdH r {r:.3f} ({len(g)} visits); validation loss "
                f"{rec['val_loss_start']:.4f} -> {rec['best_val_loss']:.4f} (best epoch {rec['best_epoch']})"
                + (f"; seed {rec.get('seed')} after {rec['restarts']} restart(s) of a stalled start"
                   if rec.get("restarts") else "")
                + ("  ** STALLED: DID NOT LEARN **" if rec["stalled"] else ""))
        if joints is not None:
            metrics["severity"] = _severity_metrics(ds, joints, obs)
    metrics["members"] = [{k: v for k, v in r.items() if k not in ("train_ids", "val_ids", "test_ids")}
                          for r in records]
    metrics["stalled_folds"] = [r["fold"] for r in records if r["stalled"]]
    metrics["restarted_folds"] = [r["fold"] for r in records if r.get("restarts")]
    metrics["outcome_stalled_folds"] = [r["fold"] for r in records if (r.get("outcome") or {}).get("stalled")]
    metrics["outcome_restarted_folds"] = [r["fold"] for r in records if (r.get("outcome") or {}).get("restarts")]
    if metrics["outcome_stalled_folds"]:
        log(f"WARNING: THE OUTCOME MODEL OF FOLD(S) {metrics['outcome_stalled_folds']} DID NOT LEARN (validation "
            f"loss flat by epoch {cfg.sites['outcome_stall_epoch']}, after restarts); see metrics.json")
    if metrics["stalled_folds"]:
        log(f"WARNING: FOLD(S) {metrics['stalled_folds']} DID NOT LEARN (validation loss flat by epoch "
            f"{settings.stall_epoch}); see metrics.json")
    _write_json(run_dir / "metrics.json", metrics)
    return run_dir


def _train_encoder(cohort, cfg: TrainConfig, spec: SiteSpec, settings, part: SiteData, fit_ids, val_ids, seed: int,
                   name: str, log):
    """The "no human score" encoder of a fold: trained end to end from the outcomes of ``fit_ids`` (validation on
    ``val_ids``), :func:`raoutcome.training.site_encoder_train.train_site_encoder`."""
    from raoutcome.training.site_encoder_train import train_site_encoder
    from raoutcome.training.site_outcome_train import OutcomeData

    data = OutcomeData.build(cohort, part.table, {s: i for i, s in enumerate(spec.sites)}, None,
                             cfg.survival["event"])
    return train_site_encoder(spec, part, data, _outcome_spec(cfg, spec, counts=False), fit_ids, val_ids, settings,
                              seed, batch_patients=max(1, cfg.train["batch_patients"]), name=name, log=log)


def _severity_metrics(ds, joints: pd.DataFrame, obs: pd.DataFrame) -> dict:
    """Out-of-fold severity classes of the visit total against the read total's class (accuracy, class MAE, PCC):
    the ordinal head's (``head``) and the convolution of the per-joint distributions' (``from_joints``)."""
    from raoutcome.evaluation.joints import severity_from_joints
    from raoutcome.severity import class_metrics, observed_classes

    column = _site_spec().column
    out: dict = {}
    if column not in obs:
        return out
    if "severity" in ds:
        f = ds["severity"].to_dataframe().reset_index().merge(obs[["patient_id", "visit_id", column]],
                                                              on=["patient_id", "visit_id"])
        out["head"] = class_metrics(f["severity"], observed_classes(f[column]))
    out["from_joints"] = severity_from_joints(joints, obs[["patient_id", "visit_id", column]])
    return out


def _load(mdir: Path) -> SiteModel:
    state = ckpt.load(mdir / SITE_MODEL)
    model = SiteModel(SiteSpec.from_dict(state["spec"]), load_pretrained=False)
    model.load_state_dict(state["model"])
    model.reads_joints = bool((state.get("record") or {}).get("reads_joints", True))
    return model.eval()


def load_site_models(run_dir: Path) -> list[SiteModel]:
    """The run's fold readers (eval mode; ``.fold_dir`` set; ``.reads_joints``: False for an encoder trained
    without per-joint readings, whose ordinal heads are untrained)."""
    dirs = sorted(p.parent for p in Path(run_dir).glob(f"fold_*/{SITE_MODEL}"))
    if not dirs:
        raise InputError(f"{run_dir}: no trained site model found (expected fold_*/{SITE_MODEL})")
    models = []
    for d in dirs:
        m = _load(d)
        m.fold_dir = d
        models.append(m)
    return models


def _load_outcome(mdir: Path):
    from raoutcome.models.site_outcome import SiteOutcomeModel, SiteOutcomeSpec

    if not (mdir / SITE_OUTCOME).exists():
        return None
    state = ckpt.load(mdir / SITE_OUTCOME)
    model = SiteOutcomeModel(SiteOutcomeSpec.from_dict(state["spec"]))
    model.load_state_dict(state["model"])
    model.readouts = state["readouts"]
    model.anomaly_scorer = None
    if "anomaly" in state:  # its readouts read the joint anomaly, fitted on the fold's training patients
        from raoutcome.training.site_anomaly import scorer_from_state

        model.anomaly_scorer = scorer_from_state(state["anomaly"])
    return model.eval()


def predict_site_run(run_dir: Path, cohort, cfg: TrainConfig, out_path: Path,
                     joints_out: Path | None = None) -> Path:
    """Predictions of every visit of ``cohort`` by the run's fold models (class probabilities averaged; HAQ, pain
    and risk of the fold outcome models averaged; the embedding the first fold's), with the ``joint``
    dimension; ``joints_out``: also the per-joint CSV (:func:`raoutcome.joint_predictions.write_joints_csv`)."""
    from raoutcome.joint_predictions import write_joints_csv
    from raoutcome.predictions import save_predictions

    models = load_site_models(run_dir)
    sp = _patches(cohort, cfg, run_dir)
    spec = models[0].spec
    data = SiteData.build(sp, spec.sites, None)
    if not len(data.table):
        raise InputError(f"{cohort.root}: no landmarked site of the views this run was trained on "
                         f"({', '.join(sorted({s.split(':')[0] for s in spec.sites}))})")
    views = sorted({s.split(":")[0] for s in spec.sites} & set(sp.table["view"]))
    reads = all(m.reads_joints for m in models)
    if joints_out is not None and not reads:
        raise InputError(f"{run_dir}: this site run was trained without per-joint readings (no human score): it "
                         "writes no per-joint predictions (--joints-out)")
    frames, outcomes, totals, ap, measured = [], [], None, None, {}
    ids = sorted(data.visit_keys["patient_id"].unique())
    for m in models:
        outcome = _load_outcome(m.fold_dir)
        frame, h = predict_sites(m, data, embeddings=outcome is not None)
        frame = frame if reads else None
        frames.append(frame)
        if outcome is not None:
            totals = _totals(cohort, frame, views)
            if ap is None and outcome.anomaly_scorer is not None:
                from raoutcome.training.site_anomaly import anomaly_patches

                ap = anomaly_patches(cohort, _cache(cfg, run_dir))
            names = tuple(outcome.readouts.get("measure_fill", {}))
            if names not in measured:
                measured[names] = _measures(sp, cohort, names)
            measures = measured[names]
            outcomes.append(_outcome_predict(cohort, outcome, spec, data, totals, h, ids, ap, measures))
    joints = ensemble_joints(frames) if reads else None
    if len(models) > 1:  # one model: its joints are the ensemble's, and so are their totals
        totals = None
    merged = None
    heads = [_site_spec().name] if reads else []
    if outcomes:
        merged = outcomes[0].copy()
        for col in (c for c in merged if c not in ("patient_id", "visit_id", "embedding")):
            merged[col] = np.mean([o[col].to_numpy(float) for o in outcomes], axis=0)
            heads += [col] if col in registry.outcome_names() and merged[col].notna().any() else []
    ds, _ = _predictions(cohort, joints, views, None, {"run": Path(run_dir).name, "route": "sites",
                                                      "heads": ",".join(heads), "ensemble_size": len(models),
                                                      "embedding_source": "first model of the run"}, merged,
                          totals)
    save_predictions(ds, out_path)
    if joints_out is not None:
        write_joints_csv(joints, joints_out)
    return Path(out_path)
