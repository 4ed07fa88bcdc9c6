"""ADI / SAC / Ranawat measured on lateral cervical radiographs from detected landmarks, against truth.

* :func:`cervical_detector_spec` / :func:`fit_cervical_detector`: the heatmap detector of
  :mod:`raoutcome.models.landmarks` with the ``craniocervical`` channels, trained on a landmarked cohort's
  lateral radiographs (:func:`raoutcome.training.landmarks.fit_detector`, patient-grouped validation,
  augmentation without mirroring: anterior and posterior are not interchangeable on a lateral view); its
  validation patients are written next to it (``<name>.validation.json``).
* :func:`measure_images`: detect, refine the atlantodental edges to sub-pixel
  (:func:`raoutcome.imaging.atlantoaxial.refine_edges`; a fit that collapses below
  :data:`ADI_MIN_GAP_FRACTION` of the detected gap is refused and the detector's points kept), measure in mm with the image's pixel spacing
  (:func:`raoutcome.analysis.craniocervical.measure_points`), classify AAS / VT at the published cut-offs.
* :func:`measurement_sd` (landmark-error SDs per measure from a landmarked cohort: uncertainty) and
  :func:`agreement` (measured vs true: bias, limits of agreement, share within 1 mm, AAS sensitivity and
  specificity against the true class).
"""
from __future__ import annotations

__all__ = ["CERVICAL_AUGMENT", "ADI_MIN_GAP_FRACTION", "ADI_COLLAPSE_SIGMA", "cervical_detector_spec", "fit_cervical_detector", "measure_images",
           "measurement_sd", "agreement", "adi_bias", "correct_adi"]

import json
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from raoutcome.analysis.craniocervical import MEASURES, classify, measure_points
from raoutcome.anatomy import CRANIOCERVICAL_VIEWS
from raoutcome.errors import InputError
from raoutcome.imaging.landmark_augment import AugmentConfig
from raoutcome.io_utils import atomic_write

#: augmentation for lateral cervical radiographs: small rotations and zooms, never a mirror or a flip
CERVICAL_AUGMENT = AugmentConfig(rotation_deg=10.0, upside_down=0.0, scale=(0.9, 1.12), translation=0.06,
                                 mirror=0.0, invert=0.0, band=0.05)
MEASURED_VIEWS: tuple[str, ...] = ("cervical_neutral", "cervical_flexion")
#: a refined atlantodental gap narrower than this share of the detected one is a collapsed fit: the detector's
#: points are kept (chosen on the training seed 101's detector-validation patients among 0.3-0.7 by MAE and
#: share within 0.5 mm; docs/craniocervical.md)
ADI_MIN_GAP_FRACTION = 0.4
#: a collapsed fit is refitted with the blur fixed at this many px (chosen on the same patients among 0.3-1.1
#: by MAE; its edges need no offset); None keeps the detector's points instead
ADI_COLLAPSE_SIGMA: float | None = 0.5


def cervical_detector_spec(size: int = 128, backbone: str = "efficientnet_lite0"):
    """A detector spec with one heatmap per craniocervical landmark."""
    from raoutcome.models.landmarks import DetectorSpec, channel_names

    return DetectorSpec(backbone=backbone, size=size, channels=channel_names(("craniocervical",)), sigma=1.0,
                        contrast=(0.5, 99.5), trained_on="raoutcome craniocervical phantom")


def fit_cervical_detector(cohort_dir: str | Path, out: str | Path, *, steps: int = 1200, size: int = 128,
                          backbone: str = "efficientnet_lite0", batch: int = 8, seed: int = 0,
                          log: Callable[[str], None] | None = print):
    """Train the craniocervical detector on a cohort's landmarked lateral radiographs; write it to ``out``."""
    from raoutcome.cohort import load
    from raoutcome.models.landmarks import save_detector
    from raoutcome.training.landmarks import fit_detector, samples_from_cohort

    cohort = load(cohort_dir)
    spec = cervical_detector_spec(size, backbone)
    samples = samples_from_cohort(cohort, spec)
    result = fit_detector(samples, spec, steps=steps, batch=batch, seed=seed, augment_cfg=CERVICAL_AUGMENT,
                          eval_every=max(50, steps // 8), log=log)
    save_detector(result.model, out)
    # the validation patients: the measurement SDs (uncertainty) come from them, never from trained-on images
    with atomic_write(Path(out).with_suffix(".validation.json"), encoding="utf-8") as fh:
        json.dump({"validation_patients": sorted(result.val_groups), "best": result.best}, fh, indent=2)
    return result


def measure_images(model, root: str | Path, images: pd.DataFrame, *, refine: bool = True, batch: int = 32,
                   min_gap_fraction: float = ADI_MIN_GAP_FRACTION,
                   collapse_sigma: float | None = ADI_COLLAPSE_SIGMA) -> pd.DataFrame:
    """Detected landmarks -> measures (mm) and classes for the lateral radiographs in ``images``
    (``patient_id, visit_id, view, path``; other views are skipped). Columns: the ids, the measures of
    :data:`raoutcome.analysis.craniocervical.MEASURES`, ``adi_detected_mm`` (before refinement),
    ``refined`` and ``refine_reason`` (why a fit was refused, e.g. ``collapsed``; ``collapsed_refit``: accepted
    after the fixed-blur refit), ``min_confidence``, the AAS / VT classes, and every landmark as ``<name>_x`` / ``<name>_y``."""
    from raoutcome.imaging.atlantoaxial import refine_edges
    from raoutcome.imaging.io import read_image
    from raoutcome.workflows.landmarks import detect_images

    rows = images[images["view"].isin(CRANIOCERVICAL_VIEWS)].reset_index(drop=True)
    out = []
    for start in range(0, len(rows), batch):
        chunk = rows.iloc[start:start + batch]
        read = [read_image(Path(root) / p) for p in chunk["path"]]
        dets = detect_images(model, [(r.pixels, v) for r, v in zip(read, chunk["view"])])
        for row, img, det in zip(chunk.itertuples(index=False), read, dets):
            spacing = img.meta.get("pixel_spacing_mm")
            if not spacing:
                raise InputError(f"{row.path}: no pixel spacing in the image; ADI/SAC need millimetres")
            pts = dict(det.points)
            raw = measure_points(pts, spacing)
            fit = (refine_edges(img.pixels, pts["C1A"], pts["DA"], min_gap_fraction=min_gap_fraction,
                                collapse_sigma=collapse_sigma) if refine else None)
            if fit is not None and fit.accepted:
                pts["C1A"], pts["DA"] = fit.a, fit.b
            m = measure_points(pts, spacing)
            rec = dict(patient_id=row.patient_id, visit_id=row.visit_id, view=row.view, path=row.path, **m,
                       adi_detected_mm=raw["adi_mm"], refined=bool(fit is not None and fit.accepted),
                       refine_reason="" if fit is None else fit.reason,
                       min_confidence=float(min(det.confidence.values())))
            rec.update({f"{k}_{a}": v for k, (x, y) in pts.items() for a, v in (("x", x), ("y", y))})
            out.append(rec)
    table = pd.DataFrame(out)
    if table.empty:
        raise InputError("no lateral cervical radiograph to measure (views: " + ", ".join(CRANIOCERVICAL_VIEWS) + ")")
    return pd.concat([table, classify(table["adi_mm"], table["sac_mm"], table["ranawat_mm"])], axis=1)


def _offset_rows(frame: pd.DataFrame) -> pd.Series:
    """The rows whose ADI carries the edge model's constant offset: refined by the free fit (not the
    detector's points, not the fixed-blur refit). Without a ``refined`` column: every row."""
    rows = pd.Series(True, index=frame.index)
    if "refined" in frame:
        rows &= frame["refined"].astype(bool)
    if "refine_reason" in frame:
        rows &= frame["refine_reason"].fillna("").astype(str).eq("")
    return rows


def adi_bias(measured: pd.DataFrame, truth: pd.DataFrame) -> dict[str, float]:
    """Per view, the mean of measured - true ADI (mm) over the images of both tables (joined on ``path``)
    whose edges were refined by the free fit (``refined`` and an empty ``refine_reason``, when the columns
    exist): the constant offset of the edge-refined ADI, estimated on patients the detector was not trained on."""
    j = measured.merge(truth[["path", "adi_mm"]], on="path", suffixes=("", "_true"))
    j = j[_offset_rows(j)]
    return {str(v): float((g["adi_mm"] - g["adi_mm_true"]).mean()) for v, g in j.groupby("view")}


def correct_adi(measured: pd.DataFrame, bias: dict[str, float]) -> pd.DataFrame:
    """``measured`` with each view's ADI bias subtracted from the rows refined by the free fit (the
    detector's own ADI and the fixed-blur refit are left as they are), ``adi_uncorrected_mm`` kept, and the
    AAS / VT classes recomputed."""
    out = measured.copy()
    out["adi_uncorrected_mm"] = out["adi_mm"]
    shift = out["view"].map(bias).fillna(0.0).where(_offset_rows(out), 0.0)
    out["adi_mm"] = out["adi_mm"] - shift
    cls = classify(out["adi_mm"], out["sac_mm"], out["ranawat_mm"])
    for c in cls:
        out[c] = cls[c]
    return out


def measurement_sd(measured: pd.DataFrame, truth: pd.DataFrame) -> dict[str, float]:
    """Per-measure SD (mm) of measured - true over the images of both tables (joined on ``path``)."""
    j = measured.merge(truth, on="path", suffixes=("", "_true"))
    out = {}
    for m in MEASURES:  # a measure nobody measured (e.g. Redlund-Johnell outside the field) has no SD
        if m in j and f"{m}_true" in j:
            d = (j[m] - j[f"{m}_true"]).to_numpy(float)
            d = d[np.isfinite(d)]
            if len(d) > 1:
                out[m] = float(np.std(d, ddof=1))
    return out


def agreement(measured: pd.DataFrame, truth: pd.DataFrame, views: Sequence[str] = MEASURED_VIEWS) -> pd.DataFrame:
    """Measured vs true, per view and measure: n, bias, SD, 95 % limits of agreement, MAE, share within
    1 mm; for ADI and SAC also the sensitivity / specificity of the measured AAS class against the true one."""
    j = measured.merge(truth, on="path", suffixes=("", "_true"))
    if j.empty:
        raise InputError("agreement: no measured image has a true measurement (join on path)")
    cls_true = classify(j["adi_mm_true"], j["sac_mm_true"], j["ranawat_mm_true"])
    rows = []
    for view in views:
        sel = (j["view"] == view).to_numpy()
        for m in MEASURES:
            if m not in j or f"{m}_true" not in j:
                continue
            d = (j.loc[sel, m] - j.loc[sel, f"{m}_true"]).to_numpy(float)
            d = d[np.isfinite(d)]
            if not len(d):
                continue
            rec = dict(view=view, measure=m, n=len(d), bias=float(d.mean()), sd=float(d.std(ddof=1)),
                       loa_low=float(d.mean() - 1.96 * d.std(ddof=1)), loa_high=float(d.mean() + 1.96 * d.std(ddof=1)),
                       mae=float(np.abs(d).mean()), within_1mm=float(np.mean(np.abs(d) <= 1.0)))
            key = {"adi_mm": "aas_adi", "sac_mm": "aas_sac", "ranawat_mm": "vt_ranawat"}.get(m)
            if key:
                t = cls_true.loc[sel, key].to_numpy(float) == 1
                p = j.loc[sel, key].to_numpy(float) == 1
                rec.update(true_positive_n=int(t.sum()),
                           sensitivity=float(np.mean(p[t])) if t.any() else float("nan"),
                           specificity=float(np.mean(~p[~t])) if (~t).any() else float("nan"))
            rows.append(rec)
    return pd.DataFrame(rows)
