"""Attribution overlays as DICOM Secondary Capture: where the model looked, stored beside the SR.

Optional output of ``pacs score --overlay HEAD`` (whole-image runs): for every scored image of a study, the
attribution map of one outcome head (:func:`raoutcome.attribution.methods.attribute_images`, the library's
default Integrated Gradients: 16 steps from a black image, averaged over the run's models; Grad-CAM, whose ReLU
map can be empty for a small model, on request) is drawn over the radiograph as the
model saw it (its input frame: resized and padded to a square, contrast as in training) and turned back to
the side it was filmed from (right views are mirrored to the left for the model, and mirrored back here).
The picture: grey radiograph, and where ``|attribution|`` is high, the inferno colour map blended in with a
weight proportional to it (scaled by its 99th percentile):

    rgb = (1 - a h) g + a h inferno(h),   h = clip(|A| / q99(|A|), 0, 1),   a = 0.5

Each overlay is a Secondary Capture image (``highdicom.sc.SCImage``) filed in the scored study (patient and
study modules from the original header, held in memory only), ``ImageType DERIVED\\SECONDARY``,
``BurnedInAnnotation NO`` (no text is drawn), series "raoutcome attribution overlay (unverified)"; its UIDs
are derived from the study, the view, the head and the algorithm, so storing it twice stores one instance.

References
----------
Sundararajan et al., Axiomatic attribution for deep networks, ICML 2017; DICOM PS3.3 A.8.1 (Secondary Capture Image IOD).
"""
from __future__ import annotations

__all__ = ["OVERLAY_SERIES_DESCRIPTION", "JOINT_SERIES_DESCRIPTION", "overlay_rgb", "overlay_uids", "build_overlay",
           "attribution_overlays"]

from typing import Sequence

import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

OVERLAY_SERIES_DESCRIPTION = "raoutcome attribution overlay (unverified)"
JOINT_SERIES_DESCRIPTION = "raoutcome joint score overlay (unverified)"
OVERLAY_SERIES_NUMBER = 9902
ALPHA = 0.5


def overlay_rgb(image: np.ndarray, attribution: np.ndarray, alpha: float = ALPHA) -> np.ndarray:
    """``uint8 (H, W, 3)``: the radiograph ``image`` (any range, scaled to [0, 1]) in grey with ``attribution``
    (same shape) drawn over it (see the module docstring)."""
    import matplotlib

    g = np.asarray(image, dtype=np.float64)
    lo, hi = float(g.min()), float(g.max())
    g = (g - lo) / (hi - lo) if hi > lo else np.zeros_like(g)
    a = np.abs(np.asarray(attribution, dtype=np.float64))
    scale = float(np.percentile(a, 99)) or float(a.max()) or 1.0
    h = np.clip(a / scale, 0.0, 1.0)
    heat = matplotlib.colormaps["inferno"](h)[..., :3]
    w = alpha * h[..., None]
    rgb = (1.0 - w) * g[..., None] + w * heat
    return np.round(np.clip(rgb, 0.0, 1.0) * 255).astype(np.uint8)


def overlay_uids(study_uid: str, view: str, head: str, algorithm) -> tuple[str, str]:
    """(series UID, SOP instance UID) of the overlay of ``view`` in ``study_uid``: the same inputs, the same UIDs."""
    return (generate_uid(entropy_srcs=["raoutcome-overlay-series", study_uid, head, algorithm.key]),
            generate_uid(entropy_srcs=["raoutcome-overlay", study_uid, view, head, algorithm.key]))


def build_overlay(rgb: np.ndarray, source: Dataset, study_uid: str, view: str, head: str, algorithm,
                  instance_number: int, method: str = "integrated_gradients", joints: bool = False) -> Dataset:
    """The Secondary Capture of one overlay, filed in the study of ``source`` (the original header); ``joints``:
    a site-route run's per-joint scores of kind ``head`` (:mod:`raoutcome.interop.joint_overlay`), not an
    attribution map."""
    import highdicom as hd

    from raoutcome.interop.sr import _with_type2

    series_uid, sop_uid = overlay_uids(study_uid, view, head, algorithm)
    ref = _with_type2(source)
    orientation = tuple(str(v) for v in (ref.get("PatientOrientation") or ()) if str(v))
    sc = hd.sc.SCImage.from_ref_dataset(
        ref_dataset=ref, pixel_array=rgb, photometric_interpretation="RGB", bits_allocated=8,
        coordinate_system="PATIENT", series_instance_uid=series_uid, series_number=OVERLAY_SERIES_NUMBER,
        sop_instance_uid=sop_uid, instance_number=instance_number, manufacturer="raoutcome",
        patient_orientation=orientation if len(orientation) == 2 else ("L", "F"),  # placeholder, emptied below
        laterality="L" if view.endswith("_left") else ("R" if view.endswith("_right") else None))
    if len(orientation) != 2:
        sc.PatientOrientation = ""  # type 2: the original did not say, so neither does the overlay
    sc.SeriesDescription = JOINT_SERIES_DESCRIPTION if joints else OVERLAY_SERIES_DESCRIPTION
    sc.ImageType = ["DERIVED", "SECONDARY"]
    sc.BurnedInAnnotation = "NO"
    sc.DerivationDescription = (
        f"per-joint expected {head} score / maximum of {algorithm.name} {algorithm.version} ({algorithm.run}), one "
        "disc per scored joint at its landmark, inferno colour map; unverified" if joints else
        f"{method} attribution of the {head} head of {algorithm.name} {algorithm.version} "
        f"({algorithm.run}) over the radiograph in the model's input frame; unverified")
    return sc


def attribution_overlays(models: Sequence, images: Sequence[np.ndarray], views: Sequence[str], head: str,
                         size: int, contrast=None, pad_value: float = 0.0, method: str = "integrated_gradients",
                         device=None) -> list[np.ndarray]:
    """One RGB overlay per ``(image, view)`` (pixels as read, in [0, 1]): the image preprocessed as in training,
    attributed by ``models`` (averaged), drawn, and mirrored back for right views."""
    from raoutcome.attribution.methods import attribute_images, settings_from
    from raoutcome.imaging.transforms import needs_mirror, preprocess

    if not images:
        return []
    x = np.stack([preprocess(p, v, size, contrast=contrast, pad_value=pad_value) for p, v in zip(images, views)])
    maps = attribute_images(list(models), x, list(views), [head], settings_from(method), device=device)[head]
    out = []
    for xi, mi, view in zip(x, maps, views):
        rgb = overlay_rgb(xi, mi)
        out.append(np.ascontiguousarray(rgb[:, ::-1]) if needs_mirror(view) else rgb)
    return out
