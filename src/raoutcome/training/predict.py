"""Streaming prediction into a Predictions dataset.

Patients are read in batches through the DataLoader; only the small per-visit scores are
kept in memory and each batch's embeddings go straight into a memory-mapped ``.npy``
file, so memory stays flat as the cohort grows. At the end the per-visit rows and the
embedding file are assembled with :func:`raoutcome.predictions.from_frame` and saved
atomically (netCDF or zarr).

Ensembles: the scores of every model in a group are averaged. Embeddings of different
models live in different (unaligned) spaces, so a group's embedding is its *first*
model's, giving one consistent space per group (attrs ``embedding_source``).
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import torch

from raoutcome.imaging.dataset import PatientSequences, batch_to
from raoutcome.models.multitask import LongitudinalOutcomeModel
from raoutcome.outcomes import score_variables
from raoutcome.predictions import from_frame, save_predictions
from raoutcome.progress import tqdm
from raoutcome.training.trainer import autocast, make_loader


class PredictionGroup:
    """Models whose scores are averaged, the patients they predict, and their fold (-1: none)."""

    def __init__(self, models: Sequence[LongitudinalOutcomeModel], patient_ids: Sequence[str], fold: int = -1):
        self.models, self.patient_ids, self.fold = list(models), list(patient_ids), int(fold)


@torch.inference_mode()
def _predict_batch(models: Sequence[LongitudinalOutcomeModel], batch: dict, device: torch.device,
                   amp: bool) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    batch = batch_to(batch, device)
    sums: dict[str, torch.Tensor] = {}
    embedding = None
    for i, model in enumerate(models):
        with autocast(device, amp):
            out = model.forward_batch(batch)
        for k, v in out.items():
            if k == "embedding":
                if i == 0:
                    embedding = v.float()
            else:
                sums[k] = sums.get(k, 0) + v.float()
    return {k: (v / len(models)).cpu() for k, v in sums.items()}, embedding.cpu()


def write_predictions(groups: Sequence[PredictionGroup], cohort, loader_factory, out_path: str | Path,
                      batch_patients: int, num_workers: int, device: torch.device, amp: bool,
                      attrs: dict, dataset_kwargs: dict | None = None, progress: bool = False) -> Path:
    """Predict every group's patients and save one Predictions dataset at ``out_path``.

    ``loader_factory()`` returns the image loader (e.g. an ``ImageCache``).
    """
    out_path = Path(out_path)
    if out_path.suffix not in (".nc", ".nc4", ".netcdf", ".zarr"):
        from raoutcome.errors import InputError

        raise InputError(f"{out_path}: predictions must end in .nc or .zarr")
    for group in groups:
        for model in group.models:
            model.to(device).eval()
    image_loader = loader_factory()
    datasets = [PatientSequences(cohort, image_loader, g.patient_ids, **(dataset_kwargs or {})) for g in groups]
    n_rows = sum(ds.n_visits for ds in datasets)
    emb_dim = groups[0].models[0].embedding_dim
    outputs = [o for o in score_variables() if o in groups[0].models[0].outputs]
    bar = tqdm(total=sum(len(g.patient_ids) for g in groups), desc="predict", unit="patient") if progress else None
    tmpdir = Path(tempfile.mkdtemp(prefix=".predict-", dir=out_path.parent if out_path.parent.exists() else None))
    try:
        emb = np.lib.format.open_memmap(tmpdir / "embedding.npy", mode="w+", dtype=np.float32,
                                        shape=(max(n_rows, 1), emb_dim))
        pids, vids, times = [], [], []
        scores: dict[str, list[np.ndarray]] = {o: [] for o in outputs}
        folds: dict[str, int] = {}
        row = 0
        done = 0
        for group, ds in zip(groups, datasets):
            loader = make_loader(ds, batch_patients, num_workers, device=device)
            for batch in loader:
                out, embedding = _predict_batch(group.models, batch, device, amp)
                mask = batch["visit_mask"].numpy()
                b_idx, t_idx = np.nonzero(mask)
                n = len(b_idx)
                for bi, ti in zip(b_idx, t_idx):
                    p = int(batch["index"][bi])
                    pids.append(ds.patient_ids[p])
                    vids.append(ds.visit_ids[p][ti])
                times.append(batch["time"].numpy()[mask])
                for o in outputs:
                    scores[o].append(out[o].numpy()[mask])
                emb[row:row + n] = embedding.numpy()[mask]
                row += n
                done += len(batch["index"])
                if bar is not None:
                    bar.update(len(batch["index"]))
            folds.update({p: group.fold for p in ds.patient_ids})
        if bar is not None:
            bar.close()
        frame = pd.DataFrame({"patient_id": pids, "visit_id": vids,
                              "time_years": np.concatenate(times) if times else np.zeros(0)})
        for o in outputs:
            frame[o] = np.concatenate(scores[o]) if scores[o] else np.zeros(0)
        emb.flush()
        ds_out = from_frame(frame, embedding=emb[:row], folds=folds if any(f >= 0 for f in folds.values()) else None,
                            attrs=attrs)
        if not any(f >= 0 for f in folds.values()):
            ds_out.attrs["cross_fitted"] = 0
        del emb
        save_predictions(ds_out, out_path)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    return out_path
