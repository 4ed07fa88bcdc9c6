"""Per-joint damage overlays of a site-route run: which joint the model scored how, drawn on the radiograph.

Optional output of ``pacs score --overlay KIND`` for site-route runs (``KIND`` = ``erosion`` or ``jsn``): for every
scored image, each scored joint of that kind is a disc at its landmark (the position the site patch was posed at),
coloured by the joint's expected score as a fraction of its maximum (``h = E[score] / max``: JSN 0-4, hand erosion
0-5, foot erosion 0-10; :func:`raoutcome.anatomy.joint_max`) with the inferno colour map, blended over the grey
radiograph in the image's own frame (no mirroring: the landmarks are in the image's pixels):

    rgb = (1 - w) g + w inferno(h),   w = a (0.4 + 0.6 h) inside a disc of radius r,   a = 0.6

so a joint scored 0 still shows as a dark disc (scored, no damage) and a joint at its maximum as a bright one; an
unscored joint has no disc. ``r`` is 2.5 % of the image's long side. Images larger than ``max_side`` are drawn
downsampled (area averaging) to keep the Secondary Capture small. The overlays are stored as the whole-image
route's attribution overlays are (:func:`raoutcome.interop.overlay.build_overlay`): one Secondary Capture per
image, no text burned in.
"""
from __future__ import annotations

__all__ = ["overlay_kinds", "joint_overlay_rgb", "joint_fractions", "joint_overlays"]

from typing import Mapping

import numpy as np
import pandas as pd

ALPHA = 0.6
RADIUS = 0.025
MAX_SIDE = 1024


def overlay_kinds() -> tuple[str, ...]:
    """The per-joint score kinds a site-route overlay can draw: those of the outcome read site by site
    (:func:`raoutcome.outcomes.site_outcome`; SvdH: erosion, JSN), sorted."""
    from raoutcome.outcomes import site_outcome

    site = site_outcome()
    return tuple(sorted({p.site_kind for p in site.site_parts})) if site is not None else ()


def joint_overlay_rgb(image: np.ndarray, points: Mapping[str, tuple[float, float]], fractions: Mapping[str, float],
                      alpha: float = ALPHA, radius: float = RADIUS, max_side: int = MAX_SIDE) -> np.ndarray:
    """``uint8 (H', W', 3)``: the radiograph ``image`` in grey (scaled to [0, 1]) with a disc at ``points[site]``
    (x, y in image pixels) for every ``site`` of ``fractions`` (its expected score / maximum, clipped to [0, 1]);
    downsampled by an integer factor to at most ``max_side`` pixels on the long side."""
    import matplotlib

    g = np.asarray(image, dtype=np.float64)
    step = max(1, int(np.ceil(max(g.shape) / max_side)))
    if step > 1:  # area averaging over step x step blocks (edges cropped to whole blocks)
        h0, w0 = (g.shape[0] // step) * step, (g.shape[1] // step) * step
        g = g[:h0, :w0].reshape(h0 // step, step, w0 // step, step).mean(axis=(1, 3))
    lo, hi = float(g.min()), float(g.max())
    g = (g - lo) / (hi - lo) if hi > lo else np.zeros_like(g)
    rgb = np.repeat(g[..., None], 3, axis=-1)
    r = radius * max(g.shape)
    cmap = matplotlib.colormaps["inferno"]
    for site, fraction in fractions.items():
        if site not in points or not np.isfinite(fraction):
            continue
        x, y = (float(c) / step for c in points[site])
        h = float(np.clip(fraction, 0.0, 1.0))
        y0, y1 = max(0, int(np.floor(y - r))), min(g.shape[0], int(np.ceil(y + r)) + 1)  # the disc's bounding box
        x0, x1 = max(0, int(np.floor(x - r))), min(g.shape[1], int(np.ceil(x + r)) + 1)
        if y0 >= y1 or x0 >= x1:
            continue
        yy, xx = np.mgrid[y0:y1, x0:x1]
        disc = (xx - x) ** 2 + (yy - y) ** 2 <= r * r
        w = alpha * (0.4 + 0.6 * h)
        box = rgb[y0:y1, x0:x1]
        box[disc] = (1.0 - w) * box[disc] + w * np.asarray(cmap(h)[:3])
    return np.round(np.clip(rgb, 0.0, 1.0) * 255).astype(np.uint8)


def joint_fractions(predictions, patient_id: str, visit_id: str, view: str, kind: str) -> dict[str, float]:
    """``{site: E[score] / max}`` of ``view``'s joints of ``kind`` at one visit of the Predictions (variable
    ``joint_score``, dims ``patient_id, visit_id, joint, kind``); joints without a finite score are left out."""
    from raoutcome.anatomy import joint_max

    if "joint_score" not in predictions or "joint" not in predictions["joint_score"].dims:
        return {}
    try:
        s = predictions["joint_score"].sel(patient_id=str(patient_id), visit_id=str(visit_id), kind=kind)
    except KeyError:  # a visit (or kind) the Predictions do not hold
        return {}
    out = {}
    for joint, value in zip(map(str, s["joint"].values), np.asarray(s.values, dtype=float)):
        v, _, site = joint.partition(":")
        if v == view and np.isfinite(value):
            out[site] = float(value) / joint_max(joint, kind)
    return out


def joint_overlays(images: list[np.ndarray], items: list[tuple[str, str, str, str]], landmarks: pd.DataFrame,
                   predictions, kind: str) -> list[np.ndarray | None]:
    """One overlay per image (``items``: relative path, view, patient id, visit id, in ``landmarks``' path
    format), or None for an image without a landmark at a scored joint or without scores (not scored)."""
    from raoutcome.imaging.joint_targets import points_by_path
    from raoutcome.imaging.site_patches import locate_sites

    by_path = points_by_path(landmarks)
    out: list[np.ndarray | None] = []
    for pixels, (rel, view, patient_id, visit_id) in zip(images, items):
        points = locate_sites(view, by_path.get(rel, {}))
        fractions = joint_fractions(predictions, patient_id, visit_id, view, kind) if points else {}
        drawn = {s: f for s, f in fractions.items() if s in points}
        out.append(joint_overlay_rgb(pixels, points, drawn) if drawn else None)
    return out
