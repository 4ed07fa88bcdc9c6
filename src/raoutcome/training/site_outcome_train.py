"""Training the outcome model on sites (:class:`raoutcome.models.site_outcome.SiteOutcomeModel`) and its
closed-form readouts.

The full model reads frozen per-site embeddings (``h``) of a fold's site reader and the visit's predicted
totals; it trains its per-visit heads (HAQ, pain: masked MSE divided by the outcome's range width, from the
registry, :mod:`raoutcome.outcomes`) and its time-to-event head (the deformity event: Cox partial likelihood of
the first visit's risk, Efron ties, torchsurv), patients in batches with all their visits. As in the image
route (:mod:`raoutcome.training.readout`), the heads whose spec has ``readout = "ridge"`` are then refitted in
closed form by ridge on ``[visit embedding, mean site embedding, log totals]`` (clipped to the outcome's
range) and the ``readout = "cox"`` head by a Cox model on the first visit's risk inputs (``log1p`` predicted
subscores and refitted outcomes, :func:`raoutcome.outcomes.risk_inputs_for`), on the training patients only; the
risk is ``(x - c) . beta`` with ``c`` the fitted patients' mean for an image measure (no natural zero: otherwise
each fold's risk carries its own offset and pooled folds do not compare) and 0 for the others.
With the visit's label-free joint anomaly (``[readout] joint_anomaly``, :mod:`raoutcome.training.site_anomaly`) or
image measures (``[readout] measures``, :mod:`raoutcome.imaging.visit_measures`) in the data, the ridge readouts read
them as more features and the Cox readout may read them (inputs named as the columns). The
validation loss before training and per epoch is recorded; a model whose validation loss has not fallen by
``[sites] outcome_stall_tolerance`` by ``outcome_stall_epoch`` is reported loudly and, as the site reader, stopped
there and trained again from a new seed, up to ``outcome_stall_restarts`` times
(:func:`raoutcome.training.learning.fit_until_learned`; every attempt recorded, the last one runs in full).
"""
from __future__ import annotations

__all__ = ["ANOMALY", "OutcomeData", "fit_site_outcome", "outcome_stall_rule", "predict_site_outcome"]

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from raoutcome.logs import log_message
from raoutcome.models.site_outcome import SiteOutcomeModel, SiteOutcomeSpec
from raoutcome.outcomes import DEFAULT_EVENT, outcome, outcomes, risk_inputs_for, site_outcome
from raoutcome.severity import observed_classes
from raoutcome.training.learning import fit_until_learned, stall_check

#: the per-visit column of the observed total's severity class (NaN where the total is not read)
SEVERITY_TARGET = "_severity"
#: the visit's label-free joint anomaly (:mod:`raoutcome.training.site_anomaly`): a ridge feature and Cox input
ANOMALY = "joint_anomaly"


def count_features() -> tuple[str, ...]:
    """The visit's predicted subscores as the model reads them: ``log_<part>`` of each site-read part
    (``log_jsn``, ``log_erosion``)."""
    spec = site_outcome()
    return tuple(f"log_{p.name}" for p in spec.site_parts) if spec is not None else ()


def visit_targets(columns: Sequence[str]) -> tuple[str, ...]:
    """The per-visit outcomes an outcome model on sites can learn from a cohort with these visit ``columns``:
    registered, per visit, not read site by site, with their column present."""
    return tuple(o.name for o in outcomes() if o.per_visit and not o.site_parts and o.column in columns)


def default_risk_inputs(heads: Sequence[str], anomaly: bool = False) -> tuple[str, ...]:
    """The Cox readout's inputs of a site outcome model with ``heads``: the predicted subscores, then the
    risk inputs among its heads (:func:`raoutcome.outcomes.risk_inputs_for`), then (``anomaly``) the joint
    anomaly."""
    return count_features() + tuple(f for f in risk_inputs_for(heads, anomaly) if f not in count_features())


class _PatientVisits(Mapping):
    """Patient -> its rows of one visits frame, each sliced out (and kept) only when asked for: :meth:`OutcomeData.
    batch` reads the per-patient arrays that :meth:`OutcomeData.build` slices from whole columns instead."""

    def __init__(self, frame: pd.DataFrame, index: Mapping[str, np.ndarray]):
        self._frame, self._index, self._made = frame, index, {}

    def __getitem__(self, p: str) -> pd.DataFrame:
        got = self._made.get(p)
        if got is None:
            got = self._made[p] = self._frame.iloc[self._index[p]].reset_index(drop=True)
        return got

    def __contains__(self, p) -> bool:
        return p in self._index

    def __iter__(self):
        return iter(self._index)

    def __len__(self) -> int:
        return len(self._index)


@dataclass
class OutcomeData:
    """Per patient: its visits (sorted by time) and the rows of its site embeddings."""

    patients: list[str]
    visits: Mapping[str, pd.DataFrame]       # patient -> visit_id, time_years, targets, count features
    rows: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]  # patient -> (patch rows, visit position, site)
    events: dict[str, tuple[float, float]]   # patient -> (time, observed)
    targets: tuple[str, ...] = ()            # per-visit outcomes with labels (outcome names; their cohort columns)
    anomaly: bool = False                    # the visits carry the joint anomaly (column ANOMALY; 0 where unscored)
    measures: tuple[str, ...] = ()           # the visits' label-free image measures (columns; NaN where unmeasured)
    #: per patient, the float columns of its visits that :meth:`batch` reads (filled on first use)
    _arrays: dict[str, dict[str, np.ndarray]] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def build(cls, cohort, table: pd.DataFrame, site_index: dict[str, int], totals: pd.DataFrame | None,
              event: str | None = DEFAULT_EVENT, anomaly: pd.DataFrame | None = None,
              measures: pd.DataFrame | None = None) -> "OutcomeData":
        """The visits, site rows and ``event`` of the patients of the patch ``table`` (``event`` None: no event
        times, NaN, as prediction needs none); ``anomaly``: the visits' joint anomaly (``patient_id, visit_id,
        joint_anomaly``, :func:`raoutcome.training.site_anomaly.visit_anomaly`), 0 (the reference mean) for a visit
        it lacks; ``measures``: the visits' image measures (``patient_id, visit_id`` and one column each,
        :func:`raoutcome.imaging.visit_measures.visit_measures`), NaN for a visit it lacks."""
        v = cohort.visits.astype({"patient_id": str, "visit_id": str}).sort_values(["patient_id", "time_years"])
        targets = visit_targets(v.columns)
        v = v.assign(**{name: v[outcome(name).column] for name in targets})
        total = site_outcome().column if site_outcome() is not None else ""
        v[SEVERITY_TARGET] = observed_classes(v[total]) if total in v else np.nan
        parts = site_outcome().site_parts if site_outcome() is not None else ()
        if totals is not None:
            t = totals.astype({"patient_id": str, "visit_id": str})
            v = v.merge(t[["patient_id", "visit_id", *(p.name for p in parts)]].rename(
                columns={p.name: f"_{p.name}" for p in parts}), on=["patient_id", "visit_id"], how="left")
            v = v.assign(**{f: np.log1p(v[f"_{p.name}"].clip(lower=0)) for f, p in zip(count_features(), parts)})
        else:
            v = v.assign(**{f: np.nan for f in count_features()})
        if anomaly is not None:
            a = anomaly.astype({"patient_id": str, "visit_id": str})[["patient_id", "visit_id", ANOMALY]]
            v = v.drop(columns=ANOMALY, errors="ignore").merge(a, on=["patient_id", "visit_id"], how="left")
            v[ANOMALY] = v[ANOMALY].fillna(0.0)
        names = tuple(c for c in measures.columns if c not in ("patient_id", "visit_id")) if measures is not None else ()
        if names:
            m = measures.astype({"patient_id": str, "visit_id": str})
            v = v.drop(columns=list(names), errors="ignore").merge(m, on=["patient_id", "visit_id"], how="left")
        ev = cohort.event_table(event).astype({"patient_id": str}).set_index("patient_id") if event else None
        tab = table[["patient_id", "visit_id", "joint"]].reset_index(drop=True).astype({"patient_id": str,
                                                                                        "visit_id": str})
        patients = sorted(set(tab["patient_id"]))
        v = v[v["patient_id"].isin(patients)].reset_index(drop=True)
        # each patch row's visit position within its patient (-1: a visit the visits table lacks), from integer
        # codes of (patient, visit) rather than one index lookup per patient
        pcode = pd.Index(patients)
        vcode = pd.Index(pd.unique(np.concatenate([v["visit_id"].to_numpy(), tab["visit_id"].to_numpy()])))
        key_v = pcode.get_indexer(v["patient_id"]).astype(np.int64) * len(vcode) + vcode.get_indexer(v["visit_id"])
        key_t = pcode.get_indexer(tab["patient_id"]).astype(np.int64) * len(vcode) + vcode.get_indexer(tab["visit_id"])
        at = pd.Index(key_v).get_indexer(key_t)
        within = v.groupby("patient_id", sort=False).cumcount().to_numpy()
        position = np.where(at >= 0, within[np.maximum(at, 0)], -1)
        site_codes = tab["joint"].map(site_index).to_numpy()
        by_patient = tab.groupby("patient_id").indices
        evs = (ev.reindex(pd.Index(patients, name="patient_id"))[["time_years", "observed"]].to_numpy(float)
               if ev is not None else np.full((len(patients), 2), np.nan))
        index = v.groupby("patient_id", sort=True).indices
        keys = ("time_years", *targets, *count_features(), SEVERITY_TARGET,  # what batch() reads, sliced per patient
                *((ANOMALY,) if anomaly is not None else ()), *names)
        floats = {k: v[k].to_numpy(float) for k in keys}
        visit_ids = v["visit_id"].to_numpy()
        rows, events, arrays = {}, {}, {}
        for pid, ix in index.items():
            arrays[pid] = {k: a[ix] for k, a in floats.items()} | {"visit_id": visit_ids[ix]}
            idx = by_patient[pid]
            keep = position[idx] >= 0
            rows[pid] = (idx[keep], position[idx][keep], site_codes[idx][keep])
            time, observed = evs[pcode.get_loc(pid)]
            events[pid] = (float(time), float(observed))
        return cls([p for p in patients if p in index], _PatientVisits(v, index), rows, events, targets,
                   anomaly=anomaly is not None, measures=names, _arrays=arrays)

    @property
    def extras(self) -> tuple[str, ...]:
        """The visit columns the readouts may read besides the model's features: the joint anomaly, the measures."""
        return ((ANOMALY,) if self.anomaly else ()) + self.measures

    def _columns(self, p: str, keys: Sequence[str]) -> dict[str, np.ndarray]:
        """Patient ``p``'s visit columns ``time_years`` and ``keys`` as float arrays, and ``visit_id`` (computed
        once; :meth:`build` slices them from whole columns)."""
        got = self._arrays.get(p)
        if got is None or any(k not in got for k in ("visit_id", *keys)):
            vis = self.visits[p]
            got = {k: vis[k].to_numpy(float) for k in ("time_years", *keys)} | {"visit_id": vis["visit_id"].to_numpy()}
            self._arrays[p] = got
        return got

    def batch(self, pids: Sequence[str], h: torch.Tensor | None) -> dict:
        """The patients ``pids`` as one batch: their site embeddings (rows of ``h``; None: the caller computes
        them from the patches of ``rows``), visit layout, targets and events."""
        T = max(len(self._columns(p, ())["time_years"]) for p in pids)
        B = len(pids)
        counts = count_features()
        keys = (*self.targets, *counts, SEVERITY_TARGET)
        grid = {k: np.full((B, T), np.nan, np.float32) for k in ("time_years", *keys)}
        mask = np.zeros((B, T), dtype=bool)
        idx, ib, it, site = [], [], [], []
        for b, p in enumerate(pids):
            cols = self._columns(p, keys)
            n = len(cols["time_years"])
            mask[b, :n] = True
            for k in grid:
                grid[k][b, :n] = cols[k]
            r, pos, s = self.rows[p]
            idx.append(r), ib.append(np.full(len(r), b)), it.append(pos), site.append(s)
        time = torch.from_numpy(np.where(mask, grid.pop("time_years"), np.float32(0)))
        out = {k: torch.from_numpy(grid[k]) for k in keys}
        idx = np.concatenate(idx)
        ev = np.array([self.events[p] for p in pids], float)
        return {"h": h[torch.as_tensor(idx)] if h is not None else None, "rows": idx,
                "site": torch.as_tensor(np.concatenate(site), dtype=torch.long),
                "img_b": torch.as_tensor(np.concatenate(ib), dtype=torch.long),
                "img_t": torch.as_tensor(np.concatenate(it), dtype=torch.long), "time": time,
                "visit_mask": torch.from_numpy(mask),
                "log_totals": torch.stack([torch.nan_to_num(out[c]) for c in counts], -1), **out,
                "event_time": torch.as_tensor(ev[:, 0], dtype=torch.float32),
                "event_observed": torch.as_tensor(ev[:, 1], dtype=torch.float32), "pids": list(pids)}


def _loss(model: SiteOutcomeModel, batch: dict) -> torch.Tensor:
    from torchsurv.loss.cox import neg_partial_log_likelihood

    out = model(batch["h"], batch["site"], batch["img_b"], batch["img_t"], batch["time"], batch["visit_mask"],
                batch["log_totals"])
    total = out["embedding"].sum() * 0.0
    for spec in outcomes(model.spec.heads):
        if spec.per_visit and spec.name in batch:  # masked MSE on the outcome's range
            width = spec.upper - spec.lower if np.isfinite(spec.upper - spec.lower) else spec.scale
            y = batch[spec.name]
            ok = torch.isfinite(y) & batch["visit_mask"] & out["has_image"]
            if bool(ok.any()):
                total = total + (((out[spec.name] - torch.nan_to_num(y)) / width) ** 2)[ok].mean() * 10.0
        elif spec.kind == "time_to_event":  # Cox partial likelihood of the first visit's risk
            t, e = batch["event_time"], batch["event_observed"]
            ok = torch.isfinite(t) & torch.isfinite(e)
            if int(ok.sum()) >= 2 and float(e[ok].sum()) > 0:
                total = total + neg_partial_log_likelihood(out[spec.name][:, 0][ok], e[ok] > 0.5, t[ok],
                                                           ties_method="efron", reduction="mean")
    return total


def _epoch_loss(model, data: OutcomeData, pids: list[str], h: torch.Tensor, batch: int) -> float:
    model.eval()
    with torch.no_grad():
        losses = [float(_loss(model, data.batch(pids[i:i + batch], h))) for i in range(0, len(pids), batch)]
    return float(np.mean(losses)) if losses else float("nan")


def outcome_stall_rule(sites: Mapping[str, Any] | None = None) -> tuple[int, float, int]:
    """(epoch, tolerance, restarts) of the outcome model's stall rule from a config's ``[sites]`` table
    (``outcome_stall_epoch``, ``outcome_stall_tolerance``, ``outcome_stall_restarts``); None: their defaults
    (:class:`raoutcome.training.config.SitesSection`)."""
    if sites is None:
        from dataclasses import asdict

        from raoutcome.training.config import SitesSection

        sites = asdict(SitesSection())
    return (int(sites["outcome_stall_epoch"]), float(sites["outcome_stall_tolerance"]),
            int(sites["outcome_stall_restarts"]))


def fit_site_outcome(spec: SiteOutcomeSpec, data: OutcomeData, h: torch.Tensor, fit_ids: list[str],
                     val_ids: list[str], seed: int, epochs: int = 40, batch: int = 16, lr: float = 2e-3,
                     stall: tuple[int, float, int] | None = None, name: str = "outcome",
                     log: Callable[[str], None] | None = None, risk_inputs: Sequence[str] = ()
                     ) -> tuple[SiteOutcomeModel, dict]:
    """Train the outcome model on ``fit_ids`` (best validation epoch kept; a stalled attempt restarted from a new
    seed, ``stall`` = (epoch, tolerance, restarts), default :func:`outcome_stall_rule`), then fit its closed-form
    readouts on ``fit_ids + val_ids`` (``risk_inputs``: the Cox readout's inputs, default
    :func:`default_risk_inputs`). Returns the model and its record (history, stalled, seed, restarts, attempts,
    readouts)."""
    log = log or log_message
    stall_epoch, stall_tolerance, stall_restarts = stall or outcome_stall_rule()
    fit_ids = [p for p in fit_ids if p in data.visits]
    val_ids = [p for p in val_ids if p in data.visits]
    model, record = fit_until_learned(
        lambda s, last: _fit_attempt(spec, data, h, fit_ids, val_ids, s, epochs, batch, lr, stall_epoch,
                                     stall_tolerance, name, log, stop_on_stall=not last),
        seed, stall_restarts, name, log)
    log(f"{name}: validation loss {record['val_loss_start']:.4f} -> {record['best_val_loss']:.4f} (best epoch "
        f"{record['best_epoch']}/{epochs})" + ("  ** STALLED **" if record["stalled"] else ""))
    model.readouts = _fit_readouts(model, data, h, fit_ids + val_ids, log, name,
                                   tuple(risk_inputs) or default_risk_inputs(spec.heads, data.anomaly) + data.measures,
                                   extras=data.extras)
    severity = (_fit_severity(model, data, h, fit_ids, val_ids, record["seed"], log, name)
                if model.severity is not None else {})
    return model, {**record, "readouts": {k: v for k, v in model.readouts.items() if k.endswith("_info")},
                   "severity": severity}


def _fit_attempt(spec: SiteOutcomeSpec, data: OutcomeData, h: torch.Tensor, fit_ids: list[str], val_ids: list[str],
                 seed: int, epochs: int, batch: int, lr: float, stall_epoch: int, stall_tolerance: float, name: str,
                 log: Callable[[str], None], stop_on_stall: bool) -> tuple[SiteOutcomeModel, dict]:
    """One training of the outcome model from ``seed`` (best validation epoch kept); ``stop_on_stall``: end at the
    stall check if stalled."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = SiteOutcomeModel(spec)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-2)
    start = _epoch_loss(model, data, val_ids, h, batch) if val_ids else float("nan")
    history, best, best_state, stalled, best_epoch, moved = [], float("inf"), None, False, 0, float("nan")
    for epoch in range(epochs):
        model.train()
        order = [fit_ids[i] for i in rng.permutation(len(fit_ids))]
        tot = []
        for i in range(0, len(order), batch):
            loss = _loss(model, data.batch(order[i:i + batch], h))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            tot.append(float(loss.detach()))
        val = _epoch_loss(model, data, val_ids, h, batch) if val_ids else float(np.mean(tot))
        history.append({"epoch": epoch + 1, "train_loss": float(np.mean(tot)), "val_loss": val})
        if val < best:
            best, best_epoch = val, epoch + 1
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        if epoch + 1 == stall_epoch and np.isfinite(start):
            check = stall_check([r["val_loss"] for r in history], stall_epoch, stall_tolerance, start)
            moved = check["moved"]
            if check["stalled"]:
                stalled = True
                log(f"WARNING {name.upper()} HAS NOT LEARNED: validation loss {start:.4f} -> {val:.4f} by epoch "
                    f"{epoch + 1} (moved {100 * moved:.1f} % < {100 * stall_tolerance:.0f} %)")
                if stop_on_stall:
                    break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return model, {"history": history, "val_loss_start": start, "best_val_loss": best, "best_epoch": best_epoch,
                   "stalled": stalled, "moved": moved, "seed": seed}


def _fit_severity(model: SiteOutcomeModel, data: OutcomeData, h: torch.Tensor, fit_ids: list[str],
                  val_ids: list[str], seed: int, log, name: str, epochs: int = 300, lr: float = 0.05,
                  weight_decay: float = 1e-2) -> dict:
    """Fit the severity head on the frozen readout features of the ``fit_ids`` visits (full-batch AdamW on the
    CORAL loss; the epoch of the lowest ``val_ids`` loss kept, the last without validation visits)."""
    from raoutcome.models.site_model import coral_loss

    head = model.severity
    f = _features(model, data, h, fit_ids + val_ids)
    f = f[f["has_image"] & np.isfinite(f[f"obs_{SEVERITY_TARGET}"])]
    fit = f["patient_id"].isin(set(fit_ids)).to_numpy()
    if fit.sum() < 4:
        return {"fitted": False, "reason": f"{int(fit.sum())} training visits with a read total"}
    x = torch.as_tensor(_x(f), dtype=torch.float32)
    y = torch.as_tensor(f[f"obs_{SEVERITY_TARGET}"].to_numpy(float), dtype=torch.float32)
    with torch.no_grad():
        head.mean.copy_(x[fit].mean(0))
        head.scale.copy_(x[fit].std(0).clamp_min(1e-6))
        k = head.head.n_classes
        head.head.init_from_prevalence([float((y[fit] > c).float().mean()) for c in range(k - 1)])
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        opt = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=weight_decay)
        val = ~fit
        best, best_state, best_epoch = float("inf"), None, 0
        for epoch in range(epochs):
            head.train()
            loss = coral_loss(head(x[fit]), y[fit])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            with torch.no_grad():
                crit = float(coral_loss(head(x[val]), y[val])) if val.any() else float(loss)
            if crit < best:
                best, best_epoch = crit, epoch + 1
                best_state = {k_: v.detach().clone() for k_, v in head.state_dict().items()}
    head.load_state_dict(best_state)
    head.eval()
    info = {"fitted": True, "n_visits": int(fit.sum()), "best_epoch": best_epoch, "val_loss": best}
    log(f"{name} severity head: {k} classes, {info['n_visits']} visits, best epoch {best_epoch}")
    return info


def _features(model: SiteOutcomeModel, data: OutcomeData, h: torch.Tensor, pids: list[str]) -> pd.DataFrame:
    """Per visit (rows in the order of ``pids`` and their visits): outputs of the trained heads, the count
    features, the observed targets and the readout features ``x`` (a column of float64 rows; :func:`_x` stacks
    them)."""
    parts: list[dict[str, np.ndarray]] = []
    xs = []
    with torch.no_grad():
        for i in range(0, len(pids), 32):
            b = data.batch(pids[i:i + 32], h)
            out = model(b["h"], b["site"], b["img_b"], b["img_t"], b["time"], b["visit_mask"], b["log_totals"])
            x = torch.cat([out["embedding"], out["pooled"]], -1)
            n = [len(data._columns(p, ())["time_years"]) for p in b["pids"]]
            jb = torch.as_tensor(np.repeat(np.arange(len(n)), n))
            jt = torch.as_tensor(np.concatenate([np.arange(k) for k in n]))
            parts.append({"patient_id": np.repeat(np.array(b["pids"], dtype=object), n),
                          "visit_id": np.concatenate([data._columns(p, ())["visit_id"] for p in b["pids"]]),
                          "time_years": np.concatenate([data._columns(p, ())["time_years"] for p in b["pids"]]),
                          "position": jt.numpy(), "has_image": out["has_image"][jb, jt].numpy(),
                          **{k: out[k][jb, jt].double().numpy() for k in model.spec.heads if k in out},
                          **{k: b[k][jb, jt].double().numpy() for k in count_features()},
                          **{f"obs_{k}": b[k][jb, jt].double().numpy() for k in (*data.targets, SEVERITY_TARGET)},
                          **{e: np.concatenate([data._columns(p, (e,))[e] for p in b["pids"]])
                             for e in data.extras}})
            xs.append(x[jb, jt].double().numpy())
    if not parts:
        return pd.DataFrame(columns=["patient_id", "visit_id", "position", "time_years", "has_image", "x"])
    f = pd.DataFrame({k: np.concatenate([part[k] for part in parts]) for k in parts[0]})
    f["x"] = list(np.concatenate(xs))
    return f


def _x(f: pd.DataFrame) -> np.ndarray:
    """The readout features of the rows of ``f`` as one ``float64[n, k]`` array."""
    return np.stack(f["x"].to_numpy()) if len(f) else np.zeros((0, 1))


def _fit_readouts(model, data: OutcomeData, h, pids: list[str], log, name: str, risk_inputs: Sequence[str],
                  extras: Sequence[str] = ()) -> dict:
    """Ridge readouts of the ridge outcomes on the readout features and the visit columns ``extras`` (the joint
    anomaly, image measures; ``data`` must carry them), then the Cox readout on the first visit's ``risk_inputs``
    (inputs that are missing or constant are left out); each recorded with a ``<head>_info`` entry. A measure
    missing at a visit reads as its mean over the fitted visits (``measure_fill``, kept for prediction)."""
    from raoutcome.imaging.visit_measures import MEASURES
    from raoutcome.training.readout import fit_cox_readout, fit_ridge_readout

    lacking = [c for c in dict.fromkeys((*extras, *risk_inputs))
               if (c == ANOMALY or c in MEASURES) and c not in data.extras]
    if lacking:
        raise ValueError(f"the readouts read {lacking}, but the outcome data carry none (pass anomaly= / measures= "
                         "to OutcomeData.build)")
    f = _features(model, data, h, pids)
    f = f[f["has_image"]]
    fill = {m: float(np.nan_to_num(f[m].mean())) for m in data.measures}
    f = f.fillna(fill)
    x = _ridge_x(f, extras)
    readouts: dict = {"measure_fill": fill} if fill else {}
    specs = outcomes(model.spec.heads)
    for head in (o.name for o in specs if o.readout == "ridge" and o.name in data.targets):
        y = f[f"obs_{head}"].to_numpy(float)
        try:
            r = fit_ridge_readout(x, y, f["patient_id"].to_numpy())
        except ValueError as err:
            readouts[f"{head}_info"] = {"kept_trained_head": str(err)}
            continue
        readouts[head] = {"coef": r.coef.tolist(), "intercept": float(r.intercept), "extras": list(extras)}
        readouts[f"{head}_info"] = {"alpha": r.alpha, "cv_r2": r.cv_r2, "n_patients": r.n_patients}
    f = f.assign(**{o.name: _ridge(x, readouts[o.name], o) for o in specs if o.name in readouts})
    first = f.sort_values(["patient_id", "position"]).groupby("patient_id").head(1)
    ev = np.array([data.events[p] for p in first["patient_id"]], float)
    for risk in (o.name for o in specs if o.readout == "cox"):
        inputs = [c for c in risk_inputs if c in first and first[c].notna().all() and first[c].std() > 0]
        if not inputs:
            continue
        try:
            cox = fit_cox_readout(first[inputs].to_numpy(float), ev[:, 0], ev[:, 1], tuple(inputs))
            # an image measure has no natural zero: centred on the fitted patients' mean, so that the folds'
            # risks do not carry per-fold offsets (coef x mean); counts, outcomes and the anomaly keep their zero
            center = [float(first[c].mean()) if c in data.measures else 0.0 for c in inputs]
            readouts[risk] = {"inputs": list(inputs), "coef": cox.coef.tolist(), "center": center}
            readouts[f"{risk}_info"] = {"inputs": inputs, "coef": cox.coef.round(4).tolist(), "n_events": cox.n_events}
        except ValueError as err:
            readouts[f"{risk}_info"] = {"kept_trained_head": str(err)}
    log(f"{name} readouts: " + "; ".join(f"{k[:-5]} {v}" for k, v in readouts.items() if k.endswith("_info")))
    return readouts


def _ridge_x(f: pd.DataFrame, extras: Sequence[str]) -> np.ndarray:
    """The ridge readouts' features of the rows of ``f``: :func:`_x`, then the columns ``extras``."""
    x = _x(f)
    return np.column_stack([x, *(f[e].to_numpy(float) for e in extras)]) if extras else x


def _ridge_extras(readout: dict) -> list[str]:
    """The visit columns a ridge readout reads after the model's features (a checkpoint written before the image
    measures says ``joint_anomaly: true`` instead)."""
    return list(readout.get("extras", [ANOMALY] if readout.get(ANOMALY) else []))


def _ridge(x: np.ndarray, readout: dict, spec) -> np.ndarray:
    """A ridge readout's prediction, clipped to the outcome's range."""
    return np.clip(x @ np.asarray(readout["coef"]) + readout["intercept"], spec.lower, spec.upper)


def predict_site_outcome(model: SiteOutcomeModel, data: OutcomeData, h: torch.Tensor, pids: list[str]
                         ) -> pd.DataFrame:
    """Per visit of ``pids``: ``patient_id, visit_id``, one column per head of the model (``haq, pain, risk``;
    readouts where fitted, trained heads elsewhere) and the visit ``embedding`` (a column of arrays)."""
    f = _features(model, data, h, [p for p in pids if p in data.visits])
    if not len(f):  # no visit to predict: the columns, no rows (a ridge has no width to apply to)
        return pd.DataFrame(columns=["patient_id", "visit_id", *model.spec.heads, "embedding"])
    x = _x(f)
    ro = getattr(model, "readouts", {})
    f = f.fillna({m: v for m, v in ro.get("measure_fill", {}).items() if m in f})
    specs = outcomes(model.spec.heads)
    for spec in specs:
        if spec.name in ro and "intercept" in ro[spec.name]:  # ridge
            reads = _ridge_extras(ro[spec.name])
            lacking = [e for e in reads if e not in data.extras]
            if lacking:
                raise ValueError(f"the {spec.name} readout reads {lacking}, but the outcome data carry none")
            f[spec.name] = np.where(f["has_image"], _ridge(_ridge_x(f, reads), ro[spec.name], spec), f[spec.name])
    for spec in specs:
        if spec.name in ro and "inputs" in ro[spec.name]:  # Cox, on the refitted outputs
            lacking = [c for c in ro[spec.name]["inputs"] if c not in f]
            if lacking:
                raise ValueError(f"the {spec.name} readout reads {lacking}, but the outcome data carry none")
            cols = f[list(ro[spec.name]["inputs"])].to_numpy(float)
            cols = cols - np.asarray(ro[spec.name].get("center", np.zeros(cols.shape[1])))  # measures centred
            f[spec.name] = np.where(np.isfinite(cols).all(1), np.nan_to_num(cols) @ np.asarray(ro[spec.name]["coef"]),
                                    f[spec.name])
    f["embedding"] = list(x[:, :2 * model.spec.d_model]) if len(f) else []
    sev: list[str] = []
    if model.severity is not None and len(f):
        from raoutcome.models.site_model import ordinal_probabilities
        from raoutcome.severity import PROB_PREFIX

        with torch.no_grad():
            p = ordinal_probabilities(model.severity(torch.as_tensor(x, dtype=torch.float32))).numpy()
        p[~f["has_image"].to_numpy()] = np.nan
        sev = [f"{PROB_PREFIX}{k}" for k in range(p.shape[1])]
        f = pd.concat([f, pd.DataFrame(p, columns=sev, index=f.index)], axis=1)
    return f[["patient_id", "visit_id", *model.spec.heads, *sev, "embedding"]]
