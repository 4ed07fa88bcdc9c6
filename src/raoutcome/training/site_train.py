"""Training, prediction and cross-fitting of the site-level reader (:class:`raoutcome.models.site_model.SiteModel`).

A batch is a set of visits with every site patch of each (so the attention over a visit's sites sees the
whole visit). The loss is the CORAL loss of each ordinal head on the finite per-joint readings; a joint
without a reading is masked. Each model keeps its weights at the best validation loss.

Every fold says whether it learned: the validation loss is measured before the first epoch and after each;
a model whose validation loss has not fallen by ``stall_tolerance`` (relative) from its start by epoch
``stall_epoch`` is *stalled*, reported on stderr in capitals and recorded (``stalled: true``) in its
history, so a run never passes silently on a fold that did not learn. A stalled model stops at the check and
is trained again from a new seed, up to ``stall_restarts`` times (:func:`raoutcome.training.learning.fit_until_learned`;
the seeds and figures of every attempt are recorded).

:func:`cross_fit_sites` trains one model per patient-grouped fold and scores each patient only by the model
that never saw them (out-of-fold joints). :func:`joints_frame` writes per-joint predictions as the
manifest's ``joints`` format plus ``sd`` and ``p0 .. pK``.
"""
from __future__ import annotations

__all__ = ["SiteData", "SiteTrainSettings", "cross_fit_sites", "ensemble_joints", "joints_frame", "predict_sites", "train_site_model",
           "visit_layout"]

import time
from dataclasses import asdict, dataclass, replace
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from raoutcome.logs import log_message
from raoutcome.imaging.site_patches import SitePatches, site_names, site_targets
from raoutcome.training.learning import fit_until_learned, stall_check
from raoutcome.models.site_model import ORDINAL_KINDS, SiteModel, SiteSpec, loss_terms, ordinal_summary


@dataclass(frozen=True)
class SiteTrainSettings:
    """Training settings of the site reader (chosen on simulator seed 20240601, the demo cohort)."""

    epochs: int = 8
    batch_visits: int = 16
    lr: float = 2e-3
    weight_decay: float = 1e-2
    val_fraction: float = 0.15
    augment: bool = True
    seed: int = 0
    folds: int = 3
    stall_epoch: int = 3            # by this epoch the validation loss must have moved ...
    stall_tolerance: float = 0.10   # ... by at least this fraction of its start (tuning seed: 23-28 %)
    stall_restarts: int = 2         # a stalled model is trained again from a new seed up to this many times

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class SiteData:
    """Tensors of a set of site patches: patches ``[N, 1, g, g]``, site index, visit index, targets."""

    table: pd.DataFrame
    patches: torch.Tensor
    site: torch.Tensor
    visit: np.ndarray          # visit number of each patch (0..n_visits-1)
    visit_keys: pd.DataFrame   # patient_id, visit_id of each visit number
    jsn: torch.Tensor
    erosion: torch.Tensor

    @classmethod
    def build(cls, sp: SitePatches, sites: Sequence[str], joints: pd.DataFrame | None) -> "SiteData":
        site = pd.Index(sites).get_indexer(sp.table["joint"])
        keep = site >= 0
        every = bool(keep.all())  # the usual case: no copy of the table or of the patches
        table = sp.table if every else sp.table[keep].reset_index(drop=True)
        keys = table[["patient_id", "visit_id"]].astype(str)
        codes = _visit_codes(keys)
        first = np.unique(codes, return_index=True)[1]
        visit_keys = keys.iloc[first].reset_index(drop=True)
        t = site_targets(table, joints)
        patches = sp.patches[:, None] if every else sp.patches[keep][:, None]
        return cls(table, torch.from_numpy(np.ascontiguousarray(patches)),
                   torch.as_tensor(site[keep], dtype=torch.long), codes,
                   visit_keys, torch.as_tensor(t["jsn"], dtype=torch.float32),
                   torch.as_tensor(t["erosion"], dtype=torch.float32))

    def subset(self, patient_ids: Sequence[str]) -> "SiteData":
        """The patches of ``patient_ids`` (visits renumbered)."""
        return _subset(self, patient_ids)

    @property
    def n_visits(self) -> int:
        return len(self.visit_keys)

    def batches(self, batch_visits: int, rng: np.random.Generator | None = None):
        """Patch indices of each batch of whole visits (shuffled with ``rng``)."""
        order = np.arange(self.n_visits) if rng is None else rng.permutation(self.n_visits)
        by_visit = np.argsort(self.visit, kind="stable")
        starts = np.searchsorted(self.visit[by_visit], np.arange(self.n_visits + 1))
        for i in range(0, len(order), batch_visits):
            chosen = order[i:i + batch_visits]
            yield np.concatenate([by_visit[starts[v]:starts[v + 1]] for v in chosen])


def _visit_codes(keys: pd.DataFrame) -> np.ndarray:
    """Visit number of each row of ``keys`` (``patient_id, visit_id``), in order of first appearance (as
    ``pd.factorize`` of the pairs, from the codes of each column: no tuple per row)."""
    p, _ = pd.factorize(keys["patient_id"])
    v, vu = pd.factorize(keys["visit_id"])
    codes, _ = pd.factorize(p.astype(np.int64) * max(len(vu), 1) + v)
    return codes.astype(np.int64)


def visit_layout(visit: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, int]:
    """(group ``[N]`` numbering the visits of a batch 0..G-1, position ``[N]`` within its visit, G)."""
    codes, uniques = pd.factorize(visit)
    order = np.argsort(codes, kind="stable")
    position = np.empty(len(codes), np.int64)
    counts = np.bincount(codes, minlength=len(uniques))
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    position[order] = np.arange(len(codes)) - np.repeat(starts, counts)
    return torch.as_tensor(codes, dtype=torch.long), torch.as_tensor(position), len(uniques)


def _augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Shift each patch by up to 2 samples and jitter its grey levels (gain 0.9-1.1, offset +-0.1 SD)."""
    n, _, g, _ = x.shape
    pad = F.pad(x, (2, 2, 2, 2), mode="replicate")
    dy, dx = torch.randint(0, 5, (2,), generator=gen).tolist()
    x = pad[:, :, dy:dy + g, dx:dx + g]
    gain = 0.9 + 0.2 * torch.rand(n, 1, 1, 1, generator=gen)
    offset = 0.1 * torch.randn(n, 1, 1, 1, generator=gen)
    return x * gain + offset


def _forward(model: SiteModel, data: SiteData, idx: np.ndarray, patches: torch.Tensor | None = None):
    group, position, n = visit_layout(data.visit[idx])
    site = data.site[idx]
    x = data.patches[idx] if patches is None else patches
    return model(x, site, group, position, n), site


def _loss(model: SiteModel, data: SiteData, idx: np.ndarray, patches: torch.Tensor | None = None
          ) -> tuple[torch.Tensor, int]:
    out, site = _forward(model, data, idx, patches)
    terms = loss_terms(out, data.jsn[idx], data.erosion[idx], model.erosion_head(site))
    return sum(terms.values()), int(len(idx))


@torch.no_grad()
def _val_loss(model: SiteModel, data: SiteData, batch_visits: int) -> float:
    model.eval()
    total, n = 0.0, 0
    for idx in data.batches(batch_visits * 2):
        loss, k = _loss(model, data, idx)
        total += float(loss) * k
        n += k
    return total / max(n, 1)


def _init_thresholds(model: SiteModel, data: SiteData) -> None:
    foot = model.is_foot[data.site].numpy()
    targets = {"jsn": data.jsn.numpy(), "erosion_hand": np.where(foot, np.nan, data.erosion.numpy()),
               "erosion_foot": np.where(foot, data.erosion.numpy(), np.nan)}
    for name, y in targets.items():
        y = y[np.isfinite(y)]
        if len(y):
            model.heads[name].init_from_prevalence([(y > k).mean() for k in range(ORDINAL_KINDS[name] - 1)])


def train_site_model(spec: SiteSpec, fit_data: SiteData, val_data: SiteData | None, settings: SiteTrainSettings,
                     seed: int, name: str = "site", log: Callable[[str], None] | None = None
                     ) -> tuple[SiteModel, dict]:
    """Train a :class:`SiteModel`; returns it (weights of the best validation epoch, eval mode) and its record:
    per-epoch ``history`` (train and validation loss, seconds), ``best_epoch``, ``val_loss_start``, ``stalled``,
    ``moved`` (relative drop by the stall check), ``seed`` (the attempt kept), ``restarts`` and ``attempts``
    (a stalled attempt is restarted from a new seed, up to ``settings.stall_restarts`` times)."""
    log = log or log_message
    return fit_until_learned(
        lambda s, last: _train_attempt(spec, fit_data, val_data, settings, s, name, log, stop_on_stall=not last),
        seed, settings.stall_restarts, name, log)


def _train_attempt(spec: SiteSpec, fit_data: SiteData, val_data: SiteData | None, settings: SiteTrainSettings,
                   seed: int, name: str, log: Callable[[str], None], stop_on_stall: bool) -> tuple[SiteModel, dict]:
    """One training of a :class:`SiteModel` from ``seed``; ``stop_on_stall``: end at the stall check if stalled."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    model = SiteModel(spec)
    _init_thresholds(model, fit_data)
    opt = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    steps = settings.epochs * int(np.ceil(fit_data.n_visits / settings.batch_visits))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, settings.lr, total_steps=max(steps, 1), pct_start=0.15)
    start = _val_loss(model, val_data, settings.batch_visits) if val_data is not None else float("nan")
    history, best, best_state, stalled, moved, best_epoch = [], float("inf"), None, False, float("nan"), 0
    for epoch in range(settings.epochs):
        t0 = time.perf_counter()
        model.train()
        tot, n = 0.0, 0
        for idx in fit_data.batches(settings.batch_visits, rng):
            x = fit_data.patches[idx]
            if settings.augment:
                x = _augment(x, gen)
            loss, k = _loss(model, fit_data, idx, x)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
            sched.step()
            tot += float(loss.detach()) * k
            n += k
        val = _val_loss(model, val_data, settings.batch_visits) if val_data is not None else tot / max(n, 1)
        history.append({"epoch": epoch + 1, "train_loss": tot / max(n, 1), "val_loss": val,
                        "seconds": time.perf_counter() - t0})
        log(f"{name} epoch {epoch + 1}/{settings.epochs}: train {tot / max(n, 1):.4f} val {val:.4f} "
            f"(start {start:.4f}) {history[-1]['seconds']:.0f}s")
        if val < best:
            best, best_state = val, {k: v.detach().clone() for k, v in model.state_dict().items()}
            best_epoch = epoch + 1
        if epoch + 1 == settings.stall_epoch and np.isfinite(start):
            check = stall_check([h["val_loss"] for h in history], settings.stall_epoch, settings.stall_tolerance, start)
            moved = check["moved"]
            if check["stalled"]:
                stalled = True
                log(f"WARNING {name.upper()} HAS NOT LEARNED: validation loss {start:.4f} -> {val:.4f} by epoch "
                    f"{epoch + 1} (moved {100 * moved:.1f} % < {100 * settings.stall_tolerance:.0f} %)")
                if stop_on_stall:
                    break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return model, {"name": name, "history": history, "best_epoch": best_epoch, "best_val_loss": best,
                   "val_loss_start": start, "stalled": stalled, "moved": moved, "seed": seed}


@torch.inference_mode()  # as the bench's bare encoder: no autograd bookkeeping (version counters, views)
def predict_sites(model: SiteModel, data: SiteData, batch_visits: int = 32, embeddings: bool = False
                  ) -> tuple[pd.DataFrame, np.ndarray | None]:
    """Per-joint predictions (:func:`joints_frame` columns, one row per patch and scored kind) and, with
    ``embeddings``, the per-site embeddings ``h`` (``float32[len(data.table), d_model]``, rows as ``data.table``)."""
    model.eval()
    n = len(data.table)
    kmax = max(ORDINAL_KINDS.values())
    probs = {k: np.full((n, kmax), np.nan, np.float32) for k in ("jsn", "erosion")}
    mean = {k: np.full(n, np.nan) for k in ("jsn", "erosion")}
    sd = {k: np.full(n, np.nan) for k in ("jsn", "erosion")}
    emb = np.zeros((n, model.embedding_dim), np.float32) if embeddings else None
    for idx in data.batches(batch_visits):
        out, site = _forward(model, data, idx)
        foot = model.erosion_head(site).numpy()
        for kind, head_out in (("jsn", out["jsn"]), ("erosion", None)):
            if kind == "erosion":
                p_h, m_h, s_h = ordinal_summary(out["erosion_hand"])
                p_f, m_f, s_f = ordinal_summary(out["erosion_foot"])
                p = np.full((len(idx), kmax), np.nan, np.float32)
                p[~foot, :p_h.shape[1]] = p_h.numpy()[~foot]
                p[foot, :p_f.shape[1]] = p_f.numpy()[foot]
                m = np.where(foot, m_f.numpy(), m_h.numpy())
                s = np.where(foot, s_f.numpy(), s_h.numpy())
            else:
                pt, mt, st = ordinal_summary(head_out)
                p = np.full((len(idx), kmax), np.nan, np.float32)
                p[:, :pt.shape[1]] = pt.numpy()
                m, s = mt.numpy(), st.numpy()
            probs[kind][idx], mean[kind][idx], sd[kind][idx] = p, m, s
        if emb is not None:
            emb[idx] = out["h"].numpy()
    return joints_frame(data.table, probs, mean, sd), emb


def joints_frame(table: pd.DataFrame, probs: dict, mean: dict, sd: dict) -> pd.DataFrame:
    """One row per (patch, kind) the site is scored for: ``patient_id, visit_id, joint, kind, score, sd,
    p0 .. pK`` (``score`` the expected score; ``p`` beyond the kind's maximum NaN)."""
    from raoutcome.anatomy import sites_for

    from raoutcome.anatomy import joint_name

    keys = {c: table[c].to_numpy() for c in ("patient_id", "visit_id", "joint")}
    chosen = []
    for kind in ("jsn", "erosion"):
        names = {joint_name(view, s) for view in pd.unique(table["view"]) for s in sites_for(view, kind)}
        chosen.append(np.flatnonzero(table["joint"].isin(names).to_numpy()))
    rows = np.concatenate(chosen)  # the jsn rows, then the erosion rows (each in table order)
    kinds = np.repeat(np.array(["jsn", "erosion"], dtype=object), [len(c) for c in chosen])
    p = np.concatenate([probs[k][c] for k, c in zip(("jsn", "erosion"), chosen)])
    used = ~np.isnan(p).all(0)  # no column beyond the largest maximum among the kinds read
    columns = {**{c: v[rows] for c, v in keys.items()}, "kind": kinds,
               "score": np.concatenate([mean[k][c] for k, c in zip(("jsn", "erosion"), chosen)]),
               "sd": np.concatenate([sd[k][c] for k, c in zip(("jsn", "erosion"), chosen)]),
               **{f"p{k}": p[:, k] for k in range(p.shape[1]) if used[k]}}
    return pd.DataFrame(columns)  # built at once: ~5x faster than column by column


def ensemble_joints(frames: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """Per-joint predictions of several models of the same rows: class probabilities averaged, expected score and
    SD recomputed from the average (the mixture's mean and SD)."""
    if len(frames) == 1:
        return frames[0]
    first = frames[0]
    pcols = [c for c in first.columns if c.startswith("p") and c[1:].isdigit()]
    p = np.mean([f[pcols].to_numpy(float) for f in frames], axis=0)
    k = np.arange(len(pcols), dtype=float)
    mean = np.nansum(p * k, axis=1)
    sd = np.sqrt(np.nansum(p * (k - mean[:, None]) ** 2, axis=1))
    out = first.copy()
    out[pcols] = p
    out["score"], out["sd"] = mean, sd
    return out


def _split(ids: list[str], frac: float, seed: int) -> tuple[list[str], list[str]]:
    rng = np.random.default_rng(seed)
    ids = sorted(ids)
    n_val = int(round(frac * len(ids))) if len(ids) >= 4 else 0
    order = rng.permutation(len(ids))
    val = sorted(ids[i] for i in order[:n_val])
    fit = sorted(ids[i] for i in order[n_val:])
    return fit, val


def cross_fit_sites(cohort, sp: SitePatches, spec: SiteSpec | None = None,
                    settings: SiteTrainSettings | None = None, log: Callable[[str], None] | None = None,
                    embeddings: bool = False, plan: Sequence[tuple[int, Sequence[str], Sequence[str]]] | None = None
                    ) -> dict:
    """Patient-grouped cross-fitting of the site reader on ``cohort`` (``sp``: its site patches).

    Returns ``{"joints": out-of-fold joints frame with a fold column, "folds": per-fold records,
    "models": the fold models, "embeddings": per patch (rows of ``sp.table`` kept), "table": that table}``.
    """
    settings = settings or SiteTrainSettings()
    sites = site_names(sorted(sp.table["view"].unique()))
    spec = replace(spec or SiteSpec(), sites=sites, grid=sp.grid)
    data = SiteData.build(sp, sites, cohort.joints)
    if plan is None:
        plan = [(f, tr, te) for f, (tr, te) in enumerate(cohort.kfold(settings.folds, seed=settings.seed))]
    parts, records, models = [], [], []
    emb = np.zeros((len(data.table), spec.d_model), np.float32) if embeddings else None
    fold_col = np.full(len(data.table), -1)
    for f, train_ids, test_ids in plan:
        seed = settings.seed + 1009 * f
        fit_ids, val_ids = _split(list(train_ids), settings.val_fraction, seed)
        pick = lambda ids: _subset(data, ids)  # noqa: E731
        model, record = train_site_model(spec, pick(fit_ids), pick(val_ids) if val_ids else None, settings, seed,
                                         name=f"site fold {f}", log=log)
        test = pick(test_ids)
        frame, h = predict_sites(model, test, embeddings=embeddings)
        frame["fold"] = f
        parts.append(frame)
        rows = data.table["patient_id"].isin(set(map(str, test_ids))).to_numpy()
        fold_col[rows] = f
        if emb is not None:
            emb[rows] = h
        records.append({**record, "fold": f, "n_fit": len(fit_ids), "n_val": len(val_ids), "n_test": len(test_ids)})
        models.append(model)
    return {"joints": pd.concat(parts, ignore_index=True), "folds": records, "models": models,
            "embeddings": emb, "table": data.table.assign(fold=fold_col), "spec": spec}


def _subset(data: SiteData, ids: Sequence[str]) -> SiteData:
    keep = data.table["patient_id"].isin({str(i) for i in ids}).to_numpy()
    table = data.table[keep].reset_index(drop=True)
    codes, uniques = pd.factorize(data.visit[keep])
    return SiteData(table, data.patches[torch.from_numpy(keep)], data.site[torch.from_numpy(keep)],
                    codes.astype(np.int64), data.visit_keys.iloc[uniques].reset_index(drop=True),
                    data.jsn[torch.from_numpy(keep)], data.erosion[torch.from_numpy(keep)])
