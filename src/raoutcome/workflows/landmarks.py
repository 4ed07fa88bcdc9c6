"""Landmarks for cohorts that have none: fit a detector on landmarked cohorts, detect on any cohort.

- :func:`fit_from_cohorts` (``raoutcome landmarks fit``): samples from every cohort's ``landmarks``
  table (patients of different cohorts kept apart), :func:`raoutcome.training.landmarks.fit_detector`,
  weights written as safetensors.
- :func:`detect_images` / :func:`detect_cohort` (``raoutcome landmarks detect``): every image of a view
  the detector knows (hands and feet today) -> the ``landmarks`` table ``path, landmark, x, y`` plus
  ``confidence`` and ``qc`` (:mod:`raoutcome.imaging.landmark_qc`), read in batches so memory stays flat.
- :func:`with_detected_landmarks`: a cohort whose ``landmarks`` are the detected ones (study configs with
  ``landmarks = "detect"``); detection results are cached in a CSV so a resumed study does not redo them.
"""
from __future__ import annotations

__all__ = ["Detection", "detect_images", "detect_cohort", "write_landmarks", "fit_from_cohorts",
           "with_detected_landmarks", "LANDMARK_COLUMNS"]

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from raoutcome.anatomy import body_part
from raoutcome.errors import InputError

LANDMARK_COLUMNS = ["path", "landmark", "x", "y", "confidence", "qc"]


@dataclass
class Detection:
    """One image's detected landmarks (stored-image pixels), confidences and QC."""

    points: dict[str, tuple[float, float]]
    confidence: dict[str, float]
    qc: object  # raoutcome.imaging.landmark_qc.QcResult

    def rows(self, path: str) -> list[dict]:
        return [dict(path=path, landmark=n, x=round(float(x), 2), y=round(float(y), 2),
                     confidence=round(float(self.confidence[n]), 4), qc=self.qc.label(n))
                for n, (x, y) in self.points.items()]


def detect_images(model, items: Sequence[tuple[np.ndarray, str]], refine: bool | None = None) -> list[Detection]:
    """Detect on ``(pixels, view)`` pairs (2-D pixels in [0, 1]; views of a body part the detector knows).

    ``refine``: run the detector's local refinement pass (:mod:`raoutcome.models.landmark_refine`) when it
    has one; ``None`` (default): on images whose long side is at least ``min_source`` x its ``reference``
    side, 256 px (smaller ones hold no detail the coarse pass missed). Confidences and QC come from the coarse
    pass; QC judges the refined positions.
    """
    import torch

    from raoutcome.imaging.landmark_frame import to_input
    from raoutcome.imaging.landmark_qc import assess, image_is_blank
    from raoutcome.models.landmarks import decode_heatmaps

    spec = model.spec
    refiner = getattr(model, "refiner", None) if refine is not False else None
    prepared = []
    for pixels, view in items:
        part = body_part(view)
        if part not in spec.parts:
            raise InputError(f"the landmark detector knows {', '.join(spec.parts)} views, not {view!r}")
        img, frame = to_input(pixels, view, spec.size, spec.contrast)
        prepared.append((img, frame, part, image_is_blank(pixels)))
    if not prepared:
        return []
    with torch.no_grad():
        x = torch.from_numpy(np.stack([p[0] for p in prepared]))[:, None]
        coords, conf = decode_heatmaps(model(x))
    coords = coords.numpy().astype(float)
    out = []
    for j, ((_img, frame, part, blank), c, q) in enumerate(zip(prepared, coords, conf.numpy())):
        own = spec.part_channels(part)
        other = [i for i in range(len(spec.channels)) if i not in own]
        names = [spec.channels[i].split(":", 1)[1] for i in own]
        pixels, view = items[j]
        if refiner is not None and not blank and (
                refine or max(pixels.shape) >= refiner.rspec.min_source * refiner.rspec.reference):
            c = c.copy()
            c[own] = _refine(refiner, pixels, view, frame, c[own], own, spec.contrast)
        canon = {n: (float(c[i, 0]), float(c[i, 1])) for n, i in zip(names, own)}
        confidence = {n: float(q[i]) for n, i in zip(names, own)}
        qc = assess(canon, confidence, part, float(q[other].mean()) if other else None, blank=blank)
        xs, ys = frame.to_image(c[own, 0], c[own, 1])
        out.append(Detection({n: (float(a), float(b)) for n, a, b in zip(names, xs, ys)}, confidence, qc))
    return out


def _refine(refiner, pixels: np.ndarray, view: str, frame, coarse: np.ndarray, channels: list[int],
            contrast) -> np.ndarray:
    """Coarse-input coordinates ``coarse`` (K, 2) of ``channels``, refined on crops of the image."""
    from raoutcome.models.landmark_refine import refine_points, working_image

    rs = refiner.rspec
    work, d = working_image(pixels, view, rs, contrast)
    geo = frame.geometry
    ox, oy = geo.from_square(coarse[:, 0], coarse[:, 1])       # canonical image pixels (not un-mirrored)
    centres = np.stack([(ox + 0.5) / d[0] - 0.5, (oy + 0.5) / d[1] - 0.5], -1)
    # working pixels per patch pixel: the window is in pixels of a reference-px square holding the image
    step = rs.window * max(pixels.shape) / (rs.reference * float(d.mean()) * rs.patch)
    fine, conf = refine_points(refiner, work, centres, channels, step)
    fx, fy = geo.to_square((fine[:, 0] + 0.5) * d[0] - 0.5, (fine[:, 1] + 0.5) * d[1] - 0.5)
    refined = np.stack([fx, fy], -1)
    keep = (conf >= rs.min_confidence) & np.isfinite(refined).all(axis=1)
    return np.where(keep[:, None], refined, coarse)


def detect_cohort(cohort, detector: str | Path | None = None, batch: int = 16, model=None,
                  progress: bool = False, refine: bool | None = None) -> pd.DataFrame:
    """The ``landmarks`` table (:data:`LANDMARK_COLUMNS`) for every image of a known view of ``cohort``.

    ``detector``: a safetensors file from ``raoutcome landmarks fit`` (None: the default detector).
    """
    import torch

    from raoutcome.imaging.io import read_image
    from raoutcome.models.landmarks import load_detector

    model = model if model is not None else load_detector(detector)
    known = cohort.images[cohort.images["view"].map(body_part).isin(model.spec.parts)]
    if known.empty:
        raise InputError(f"{cohort.root}: no image of a view the landmark detector knows "
                         f"({', '.join(model.spec.parts)})")
    rows: list[dict] = []
    paths, views = known["path"].tolist(), known["view"].tolist()
    from raoutcome.progress import tqdm

    bar = tqdm(total=len(paths), desc="landmarks", unit="image", disable=not progress)
    with torch.inference_mode(), bar:
        for i in range(0, len(paths), batch):
            chunk = list(zip(paths[i:i + batch], views[i:i + batch]))
            items = [(read_image(cohort.image_path(p)).pixels, v) for p, v in chunk]
            for (p, _), det in zip(chunk, detect_images(model, items, refine=refine)):
                rows.extend(det.rows(p))
            bar.update(len(chunk))
    return pd.DataFrame(rows, columns=LANDMARK_COLUMNS)


def write_landmarks(table: pd.DataFrame, out: str | Path) -> Path:
    """Write a landmarks table as CSV, atomically."""
    from raoutcome.io_utils import atomic_write

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(out) as fh:
        table.to_csv(fh, index=False)
    return out


def fit_from_cohorts(cohorts: Iterable[str | Path], out: str | Path, *, steps: int = 1500, batch: int = 8,
                     seed: int = 0, size: int = 256, backbone: str = "efficientnet_lite0",
                     pretrained: str | None = "wheel:efficientnet_lite0", init: str | Path | None = None,
                     val_fraction: float = 0.15, lr: float = 1e-3, parts: tuple[str, ...] = ("hand", "foot"),
                     log=print):
    """Train a detector on the landmarked images of ``cohorts`` and write it to ``out`` (safetensors).

    ``init``: a detector file to fine-tune (its spec is kept); ``parts``: the body parts whose landmark
    templates are its channels (e.g. ``("spine_cervical", "spine_lumbar")``). Returns the
    :class:`~raoutcome.training.landmarks.FitResult`.
    """
    from raoutcome.cohort import load
    from raoutcome.models.landmarks import DetectorSpec, load_detector, save_detector
    from raoutcome.training.landmarks import fit_detector, samples_from_cohort

    model = load_detector(init) if init is not None else None
    if model is None and backbone != "efficientnet_lite0" and pretrained == "wheel:efficientnet_lite0":
        pretrained = None
    from raoutcome.models.landmarks import channel_names

    spec = (model.spec if model is not None
            else DetectorSpec(backbone=backbone, size=size, channels=channel_names(tuple(parts))))
    samples = []
    paths = [Path(c) for c in cohorts]
    if not paths:
        raise InputError("give at least one --cohort with a landmarks table")
    for i, path in enumerate(paths):
        samples += samples_from_cohort(load(path), spec, tag=f"c{i}:")
    result = fit_detector(samples, spec, steps=steps, batch=batch, seed=seed, val_fraction=val_fraction,
                          pretrained=pretrained, init=model, lr=lr, log=log)
    result.model.spec = replace(result.model.spec, trained_on="; ".join(str(p) for p in paths))
    save_detector(result.model, out)
    return result


def with_detected_landmarks(cohort, cache: str | Path, detector: str | Path | None = None):
    """``cohort`` with its ``landmarks`` replaced by detected ones (read from ``cache`` when present,
    else detected and written there)."""
    cache = Path(cache)
    if cache.is_file():
        table = pd.read_csv(cache)
    else:
        table = write_landmarks(detect_cohort(cohort, detector), cache) and pd.read_csv(cache)
    return replace(cohort, landmarks=table.reset_index(drop=True))
