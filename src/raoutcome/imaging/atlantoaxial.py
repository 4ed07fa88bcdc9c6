"""Sub-pixel refinement of the atlantodental interval's two edges on a lateral radiograph.

A heatmap detector places the posterior margin of C1's anterior arch (``C1A``) and the anterior surface
of the dens (``DA``) to within about a pixel; an ADI of 1–3 mm is only a few pixels, so a pixel of error is
a large share of it. :func:`refine_edges` reads the intensity profile along the line through the two
detected points (bright arch – dark interval – bright dens) and fits the blurred two-edge model

    f(s) = c0 + c1 Phi((s0 - s) / sigma) + c2 Phi((s - s1) / sigma),   s0 <= s1,

by least squares (``scipy.optimize.least_squares``); the edges ``s0``, ``s1`` replace the detected points
when the fit is sound (a dark interval between two brighter sides, edges within ``max_shift`` px of the
detector's). The model ignores the bright cortical rims, so its edges sit slightly inside the interval: a
constant offset per view that the cervical study estimates on the detector's validation patients and
subtracts (``study.refine_adi``; figures in docs/craniocervical.md).

Collapse guard: when the interval is only 2–3 px wide the blur, the depth of the dip and its width trade off
and the fit can settle on a much narrower gap than the detector's (seen as ADI read 0.5–1 mm too low at true
ADIs of 0.6–2 mm). A fit whose gap is below ``min_gap_fraction`` of the detected gap is refused
(``reason = "collapsed"``) and the caller keeps the detector's points. 0.4 was chosen on the training seed's
detector-validation patients (candidates 0.3–0.7; docs/craniocervical.md). With ``collapse_sigma`` a
collapsed fit is first refitted with the blur fixed at that value (px), which removes the trade-off; if that
fit is sound and keeps the minimum gap, it is accepted with ``reason = "collapsed_refit"`` (its edges carry
no constant offset: none is subtracted from them). 0.5 px was chosen on the same patients (candidates
0.3–1.1).
Classical edge-model fitting for sub-pixel measurement: Ye J, Fu G, Poudel UP. High-accuracy edge detection
with blurred edge model. Image Vis Comput 2005;23:453-67.
"""
from __future__ import annotations

__all__ = ["EdgeFit", "refine_edges"]

from dataclasses import dataclass

import numpy as np
from scipy import ndimage, optimize
from scipy.special import ndtr


@dataclass(frozen=True)
class EdgeFit:
    """Refined edge points ``a``, ``b`` (x, y px), whether the fit was accepted, the fit's RMS residual and,
    when refused, why (``"degenerate"``, ``"failed"``, ``"shift"``, ``"contrast"``, ``"collapsed"``)."""

    a: tuple[float, float]
    b: tuple[float, float]
    accepted: bool
    rms: float
    reason: str = ""


def _model(p, s):
    c0, c1, c2, s0, s1, sig = p
    return c0 + c1 * ndtr((s0 - s) / sig) + c2 * ndtr((s - s1) / sig)


def refine_edges(pixels: np.ndarray, a: tuple[float, float], b: tuple[float, float], *, margin: float = 5.0,
                 step: float = 0.25, max_shift: float = 2.5, min_gap: float = 0.0,
                 min_gap_fraction: float = 0.0, collapse_sigma: float | None = None) -> EdgeFit:
    """Refine the two edges of a dark gap between ``a`` (bright side before it) and ``b`` (bright after).

    Parameters
    ----------
    pixels : 2-D image, bone bright.
    a, b : detected edge points (x = column, y = row).
    margin : profile extends this many px beyond each point.
    max_shift : a refined edge further than this from its detected point is refused (detected kept).
    min_gap : a refined gap narrower than this (px) is refused.
    min_gap_fraction : a refined gap narrower than this share of the detected gap ``|b - a|`` is refused as
        collapsed (0: no guard; :func:`raoutcome.workflows.cervical_measure.measure_images` uses 0.4).
    collapse_sigma : refit a collapsed fit with the blur fixed at this many px (None: no refit).

    Returns
    -------
    EdgeFit with the refined points on the line through ``a`` and ``b``.
    """
    pa, pb = np.asarray(a, float), np.asarray(b, float)
    d = pb - pa
    length = float(np.hypot(*d))
    if not np.isfinite(length) or length < 1e-6:
        return EdgeFit(tuple(pa), tuple(pb), False, float("nan"), "degenerate")
    d = d / length
    s = np.arange(-margin, length + margin + 1e-9, step)
    pts = pa[None, :] + s[:, None] * d[None, :]
    prof = ndimage.map_coordinates(np.asarray(pixels, float), [pts[:, 1], pts[:, 0]], order=1, mode="nearest")
    # average three parallel lines 0.75 px apart: less noise, same edges
    nrm = np.array([-d[1], d[0]])
    for off in (-0.75, 0.75):
        q = pts + off * nrm
        prof = prof + ndimage.map_coordinates(np.asarray(pixels, float), [q[:, 1], q[:, 0]], order=1, mode="nearest")
    prof = prof / 3.0
    lo, hi = float(prof.min()), float(prof.max())
    x0 = [lo, hi - lo, hi - lo, 0.0, length, 0.7]
    bounds = ([lo - 1, 0.0, 0.0, -max_shift, length - max_shift, 0.2],
              [hi + 1, 2.0, 2.0, length + max_shift, length + max_shift, 3.0])
    x0[3] = float(np.clip(x0[3], bounds[0][3] + 1e-6, bounds[1][3] - 1e-6))
    try:
        fit = optimize.least_squares(lambda p: _model(p, s) - prof, x0, bounds=bounds)
    except ValueError:
        return EdgeFit(tuple(pa), tuple(pb), False, float("nan"), "failed")
    c0, c1, c2, s0, s1, _ = fit.x
    rms = float(np.sqrt(np.mean(fit.fun ** 2)))
    floor = max(min_gap, min_gap_fraction * length)
    reason = _verdict(fit.success, c1, c2, s0, s1, rms, length, max_shift, floor)
    if reason == "collapsed" and collapse_sigma is not None:
        sig = float(collapse_sigma)
        try:
            refit = optimize.least_squares(lambda p: _model([*p, sig], s) - prof, x0[:5],
                                           bounds=(bounds[0][:5], bounds[1][:5]))
        except ValueError:
            return EdgeFit(tuple(pa), tuple(pb), False, rms, reason)
        c0, c1, c2, s0, s1 = refit.x
        rms2 = float(np.sqrt(np.mean(refit.fun ** 2)))
        if not _verdict(refit.success, c1, c2, s0, s1, rms2, length, max_shift, floor):
            return EdgeFit(tuple(pa + s0 * d), tuple(pa + s1 * d), True, rms2, "collapsed_refit")
    if reason:
        return EdgeFit(tuple(pa), tuple(pb), False, rms, reason)
    return EdgeFit(tuple(pa + s0 * d), tuple(pa + s1 * d), True, rms)


def _verdict(success: bool, c1: float, c2: float, s0: float, s1: float, rms: float, length: float,
             max_shift: float, floor: float) -> str:
    """Why a two-edge fit is refused (empty: accepted)."""
    return ("failed" if not success else
            "shift" if abs(s0) > max_shift or abs(s1 - length) > max_shift else
            "contrast" if not (c1 > 3 * rms and c2 > 3 * rms) else
            "collapsed" if s1 - s0 < floor else "")
