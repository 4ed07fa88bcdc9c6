"""The "no human score" model on sites: the patch encoder trained end to end from HAQ, pain and events only.

The site reader (:mod:`raoutcome.training.site_train`) learns its patch encoder from per-joint readings. Here no
human score is used at all: the same posed patches go through the same :class:`raoutcome.models.site_model.SiteModel`
(timm patch encoder, site identity, attention over the visit's sites; its ordinal heads stay unused) into an outcome
model on sites (:class:`raoutcome.models.site_outcome.SiteOutcomeModel` with ``counts = False``), and both are
trained together on the outcome model's loss (:func:`raoutcome.training.site_outcome_train._loss`: HAQ and pain
masked MSE on their ranges, Cox partial likelihood of the first visit's risk), patients in batches with all their
visits and sites. The encoder of the epoch with the lowest validation loss is kept; the run then fits the outcome
model on its frozen embeddings exactly as for the full model (:func:`raoutcome.training.site_outcome_train.
fit_site_outcome`), so both configurations share one code path after the encoder.

The stall rule applies (:func:`raoutcome.training.learning.fit_until_learned`): an attempt whose validation loss
has not fallen by ``stall_tolerance`` by ``stall_epoch`` is restarted from a new seed.
"""
from __future__ import annotations

__all__ = ["train_site_encoder"]

import time
from typing import Callable

import numpy as np
import torch

from raoutcome.logs import log_message
from raoutcome.models.site_model import SiteModel, SiteSpec
from raoutcome.models.site_outcome import SiteOutcomeModel, SiteOutcomeSpec
from raoutcome.training.learning import fit_until_learned, stall_check
from raoutcome.training.site_outcome_train import OutcomeData, _loss
from raoutcome.training.site_train import SiteData, SiteTrainSettings, _augment, visit_layout

HEAD_LR = 2e-3  # the outcome model's learning rate (the encoder takes the site reader's, settings.lr)


def _batch_loss(encoder: SiteModel, model: SiteOutcomeModel, sites: SiteData, data: OutcomeData, pids,
                gen: torch.Generator | None) -> torch.Tensor:
    b = data.batch(pids, None)
    rows = b["rows"]
    x = sites.patches[rows]
    if gen is not None:
        x = _augment(x, gen)
    group, position, n = visit_layout(sites.visit[rows])
    b["h"] = encoder.embed(x, sites.site[rows], group, position, n)
    return _loss(model, b)


def _val_loss(encoder, model, sites, data, pids, batch: int) -> float:
    encoder.eval(), model.eval()
    with torch.no_grad():
        losses = [float(_batch_loss(encoder, model, sites, data, pids[i:i + batch], None))
                  for i in range(0, len(pids), batch)]
    return float(np.mean(losses)) if losses else float("nan")


def train_site_encoder(spec: SiteSpec, sites: SiteData, data: OutcomeData, ospec: SiteOutcomeSpec,
                       fit_ids: list[str], val_ids: list[str], settings: SiteTrainSettings, seed: int,
                       batch_patients: int = 8, name: str = "encoder", log: Callable[[str], None] | None = None
                       ) -> tuple[SiteModel, dict]:
    """Train a site encoder end to end with an outcome model on sites (``ospec``, no counts) on ``fit_ids``; returns
    the encoder (best validation epoch, eval mode) and its record (history, ``val_loss_start``, ``best_val_loss``,
    ``stalled``, ``moved``, ``seed``, ``restarts``, ``attempts``). ``sites`` and ``data`` hold the same rows."""
    log = log or log_message
    if ospec.counts:
        raise ValueError("the no-human-score encoder trains an outcome model without counts (ospec.counts = False)")
    return fit_until_learned(
        lambda s, last: _attempt(spec, sites, data, ospec, fit_ids, val_ids, settings, s, batch_patients, name, log,
                                 stop_on_stall=not last), seed, settings.stall_restarts, name, log)


def _attempt(spec, sites, data, ospec, fit_ids, val_ids, settings: SiteTrainSettings, seed: int, batch: int,
             name: str, log, stop_on_stall: bool) -> tuple[SiteModel, dict]:
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    encoder, model = SiteModel(spec), SiteOutcomeModel(ospec)
    opt = torch.optim.AdamW([{"params": encoder.parameters(), "lr": settings.lr},
                             {"params": model.parameters(), "lr": HEAD_LR}], weight_decay=settings.weight_decay)
    fit_ids = [p for p in fit_ids if p in data.visits]
    val_ids = [p for p in val_ids if p in data.visits]
    start = _val_loss(encoder, model, sites, data, val_ids, batch) if val_ids else float("nan")
    history, best, best_state, stalled, moved, best_epoch = [], float("inf"), None, False, float("nan"), 0
    params = list(encoder.parameters()) + list(model.parameters())
    for epoch in range(settings.epochs):
        t0 = time.perf_counter()
        encoder.train(), model.train()
        order = [fit_ids[i] for i in rng.permutation(len(fit_ids))]
        tot = []
        for i in range(0, len(order), batch):
            loss = _batch_loss(encoder, model, sites, data, order[i:i + batch], gen if settings.augment else None)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            tot.append(float(loss.detach()))
        val = _val_loss(encoder, model, sites, data, val_ids, batch) if val_ids else float(np.mean(tot))
        history.append({"epoch": epoch + 1, "train_loss": float(np.mean(tot)), "val_loss": val,
                        "seconds": time.perf_counter() - t0})
        log(f"{name} epoch {epoch + 1}/{settings.epochs}: train {np.mean(tot):.4f} val {val:.4f} (start {start:.4f}) "
            f"{history[-1]['seconds']:.0f}s")
        if val < best:
            best, best_epoch = val, epoch + 1
            best_state = {k: v.detach().clone() for k, v in encoder.state_dict().items()}
        if epoch + 1 == settings.stall_epoch and np.isfinite(start):
            check = stall_check([r["val_loss"] for r in history], settings.stall_epoch, settings.stall_tolerance, start)
            moved = check["moved"]
            if check["stalled"]:
                stalled = True
                log(f"WARNING {name.upper()} HAS NOT LEARNED: validation loss {start:.4f} -> {val:.4f} by epoch "
                    f"{epoch + 1} (moved {100 * moved:.1f} % < {100 * settings.stall_tolerance:.0f} %)")
                if stop_on_stall:
                    break
    if best_state is not None:
        encoder.load_state_dict(best_state)
    encoder.eval()
    return encoder, {"name": name, "history": history, "best_epoch": best_epoch, "best_val_loss": best,
                     "val_loss_start": start, "stalled": stalled, "moved": moved, "seed": seed}
