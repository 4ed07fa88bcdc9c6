"""The label-free joint anomaly as a readout input of the site route (``[readout] joint_anomaly = true``).

The whole-image route's readouts read the visit's joint anomaly (:mod:`raoutcome.models.anomaly_readout`); the
site route gets the same input from the same scorer. Each fold fits a
:class:`~raoutcome.imaging.joint_anomaly.JointAnomaly` (per-landmark trimmed PCA of posed, z-normalised joint
patches of the stored radiographs, :func:`~raoutcome.imaging.joint_anomaly.cohort_patches`) on its training
patients' images, loads it into a :class:`~raoutcome.models.anomaly_readout.JointAnomalyScorer` (saved with the
fold's outcome model, :func:`scorer_state`), and scores every visit:

    anomaly(visit) = mean over the visit's images of  log mean exp_{erosion-site landmarks} z_landmark(image)

(0, the reference mean, for a visit without a scored image). The outcome model on sites then reads it as one more
ridge feature and as the Cox readout input ``joint_anomaly`` (:mod:`raoutcome.training.site_outcome_train`). It
needs the cohort's landmarks table, as the site patches do; without one :func:`anomaly_patches` raises
:class:`~raoutcome.errors.InputError` (CLI exit 2).
"""
from __future__ import annotations

__all__ = ["ANOMALY", "AnomalyPatches", "anomaly_patches", "fit_scorer", "scorer_from_state", "scorer_state",
           "visit_anomaly"]

import hashlib
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd
import torch

from raoutcome.errors import InputError
from raoutcome.models.anomaly_readout import JointAnomalyScorer
from raoutcome.training.site_outcome_train import ANOMALY

_COLUMNS = ("patient_id", "visit_id", "view", "path")
_CACHE_FORMAT = 1  # part of the cache key


@dataclass(frozen=True)
class AnomalyPatches:
    """A cohort's joint patches for the anomaly: ``images`` (``patient_id, visit_id, view, path``, one row per
    image with landmarks) and ``patches`` ``float32[n_images, len(landmarks), side^2]`` (NaN rows: a landmark the
    image lacks)."""

    images: pd.DataFrame
    landmarks: tuple[str, ...]
    patches: np.ndarray

    def rows_of(self, patient_ids: Iterable[str]) -> np.ndarray:
        """Boolean mask of the images of ``patient_ids``."""
        return self.images["patient_id"].astype(str).isin({str(p) for p in patient_ids}).to_numpy()


def _cache_file(cohort, cache_dir) -> Path:
    """``anomaly_patches_<key>.npz`` in ``cache_dir``; the key hashes the cohort's root, images and landmarks
    tables and the patch settings (as the site patch cache, :mod:`raoutcome.imaging.site_patches`)."""
    from raoutcome.imaging.joint_anomaly import PATCH_GRID, PATCH_HALF_WIDTH, SHIFT

    h = hashlib.sha256()
    h.update(json.dumps([str(cohort.root), PATCH_GRID, PATCH_HALF_WIDTH, SHIFT, _CACHE_FORMAT]).encode())
    h.update(pd.util.hash_pandas_object(cohort.images, index=False).values.tobytes())
    h.update(pd.util.hash_pandas_object(cohort.landmarks, index=False).values.tobytes())
    return Path(cache_dir) / f"anomaly_patches_{h.hexdigest()[:16]}.npz"


def _save(ap: AnomalyPatches, path: Path) -> None:
    from raoutcome.io_utils import atomic_path

    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, patches=ap.patches, landmarks=np.array(ap.landmarks, dtype=str),
                     **{f"col_{c}": ap.images[c].to_numpy(str) for c in _COLUMNS})


def _load(path: Path) -> AnomalyPatches:
    with np.load(path, allow_pickle=False) as z:
        images = pd.DataFrame({c: z[f"col_{c}"].astype(object) for c in _COLUMNS})
        return AnomalyPatches(images, tuple(str(n) for n in z["landmarks"]), z["patches"])


def anomaly_patches(cohort, cache_dir: str | Path | None = None) -> AnomalyPatches:
    """The posed joint patches at the erosion-site landmarks of every landmarked image of ``cohort``
    (:func:`raoutcome.imaging.joint_anomaly.cohort_patches`); ``cache_dir``: kept there and reused (a warm
    ``predict`` reads them instead of the radiographs). Raises :class:`InputError` naming the cohort when it has
    no landmarks table or no landmarked image."""
    from raoutcome.imaging.joint_anomaly import cohort_patches

    if getattr(cohort, "landmarks", None) is None or not len(cohort.landmarks):
        raise InputError(f"{cohort.root}: readout.joint_anomaly = true reads the joint anomaly, which needs the "
                         "cohort's landmarks table (landmarks.csv; `raoutcome landmarks detect` writes one)")
    from raoutcome.imaging.joint_anomaly import erosion_site_landmarks

    cached = _cache_file(cohort, cache_dir) if cache_dir is not None else None
    if cached is not None and cached.exists():
        try:
            return _load(cached)
        except (OSError, ValueError, KeyError, zipfile.BadZipFile):  # cut short or foreign: build it again
            pass
    images, by_name = cohort_patches(cohort, progress=False)
    if not len(images):
        raise InputError(f"{cohort.root}: readout.joint_anomaly = true, but no image of the cohort has landmarks")
    # only the landmarks at an erosion site of some view enter the visit score (the soft maximum): fitting and
    # scoring the others would cost time and change nothing
    names = tuple(sorted({n for v in images["view"].unique() for n in erosion_site_landmarks(str(v), by_name)}))
    patches = np.stack([by_name[n] for n in names], axis=1) if names else np.zeros((len(images), 0, 0), np.float32)
    images = images[list(_COLUMNS)].astype({"patient_id": str, "visit_id": str})
    out = AnomalyPatches(images.reset_index(drop=True), names, patches)
    if cached is not None:
        _save(out, cached)
    return out


def fit_scorer(ap: AnomalyPatches, train_ids: Iterable[str]) -> JointAnomalyScorer:
    """A :class:`JointAnomalyScorer` whose PCA is fitted on the images of ``train_ids`` only (never a test
    patient's). Raises :class:`InputError` when they hold too few landmarked images to fit any landmark."""
    from raoutcome.imaging.joint_anomaly import JointAnomaly

    ref = ap.rows_of(train_ids)
    try:
        fitted = JointAnomaly().fit({n: ap.patches[ref, i] for i, n in enumerate(ap.landmarks)})
    except ValueError as err:
        raise InputError(f"the joint anomaly of the training patients: {err}") from err
    scorer = JointAnomalyScorer(ap.landmarks)
    scorer.load_fitted(fitted)
    return scorer.eval()


def visit_anomaly(scorer: JointAnomalyScorer, ap: AnomalyPatches, patient_ids: Iterable[str] | None = None
                  ) -> pd.DataFrame:
    """``patient_id, visit_id, joint_anomaly``: the mean image anomaly (:meth:`JointAnomalyScorer.forward`) over
    each visit's scored images, for the visits of ``patient_ids`` (None: all) that have a landmarked image. The
    patches' landmarks are matched to the scorer's by name (a landmark the scorer lacks is ignored; one the
    cohort lacks is missing)."""
    from raoutcome.anatomy import view_names

    rows = np.ones(len(ap.images), bool) if patient_ids is None else ap.rows_of(patient_ids)
    images = ap.images[rows].reset_index(drop=True)
    width = ap.patches.shape[2] if ap.patches.ndim == 3 else scorer.patch_width
    patches = np.full((len(images), len(scorer.landmarks), width), np.nan, np.float32)
    index = {n: i for i, n in enumerate(ap.landmarks)}
    for j, name in enumerate(scorer.landmarks):
        if name in index:
            patches[:, j] = ap.patches[rows, index[name]]
    views = {v: i for i, v in enumerate(view_names())}
    unknown = sorted(set(images["view"]) - set(views))
    if unknown:
        raise InputError(f"views {unknown} are not registered views; the joint anomaly cannot place their sites")
    img_v = torch.as_tensor(images["view"].map(views).to_numpy(np.int64))
    with torch.no_grad():
        score = scorer(torch.from_numpy(patches), img_v).numpy().astype(float) if len(images) else np.zeros(0)
    out = images[["patient_id", "visit_id"]].assign(**{ANOMALY: score})
    return out.dropna(subset=[ANOMALY]).groupby(["patient_id", "visit_id"], as_index=False, sort=True)[ANOMALY].mean()


def scorer_state(scorer: JointAnomalyScorer) -> dict:
    """What a checkpoint stores of a fitted scorer: its landmarks and buffers (tensors and strings only)."""
    return {"landmarks": list(scorer.landmarks), "state": {k: v.detach().clone() for k, v in scorer.state_dict().items()}}


def scorer_from_state(state: dict) -> JointAnomalyScorer:
    """The fitted scorer of :func:`scorer_state`."""
    scorer = JointAnomalyScorer(tuple(state["landmarks"]), n_components=state["state"]["components"].shape[1],
                                width=state["state"]["mean"].shape[1])
    scorer.load_state_dict(state["state"])
    return scorer.eval()
