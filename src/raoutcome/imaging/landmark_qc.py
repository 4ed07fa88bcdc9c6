"""Is a detected landmark configuration a plausible hand (or foot) of the view it was given as?

Detected landmarks are compared with the view's template (the body part's ``landmarks`` in the anatomy
registry, :func:`raoutcome.anatomy.body_part_spec`: a standard-framed LEFT hand/foot) by ordinary Procrustes analysis (Gower 1975): the least-squares
similarity (translation, rotation, uniform scale) carrying the template onto the detected points, in
complex form

    z - mean(z)  ~  a * (t - mean(t)),     a = sum (z - zbar) conj(t - tbar) / sum |t - tbar|^2,

once as is and once with the template mirrored (``t -> -conj(t)``). The residuals, divided by the
configuration's RMS radius, are scale-free. :func:`assess` turns them into QC flags:

- ``blank``: the image has (almost) no contrast, nothing to detect;
- ``low_confidence``: the median confidence of the view's landmarks is below :data:`LOW_CONFIDENCE`;
- ``looks_like_foot`` / ``looks_like_hand``: the other body part's channels are more confident than the
  view's own (a foot radiograph given as a hand, or the reverse);
- ``mirrored``: the mirrored template fits clearly better (left/right mix-up: a right hand given as a
  left one, or stored unmirrored);
- ``rotated`` / ``upside_down``: the fitted rotation exceeds :data:`ROTATED_DEG` / :data:`UPSIDE_DOWN_DEG`;
- ``implausible``: the best (trimmed) fit's relative RMS residual exceeds :data:`IMPLAUSIBLE_RMS`, or more
  than a quarter of the landmarks are outliers;
- per landmark: ``outlier`` (its own residual above :data:`OUTLIER_RESIDUAL`) and ``low_confidence``.

The thresholds were chosen on simulated validation images of the tuning seed (docs/landmarks.md); real
hands vary more than the phantom, so the residual thresholds are generous.

References
----------
Gower JC. Generalized Procrustes analysis. Psychometrika 1975;40:33-51.
"""
from __future__ import annotations

__all__ = ["ProcrustesFit", "procrustes_fit", "assess", "QcResult", "image_is_blank", "LOW_CONFIDENCE",
           "ROTATED_DEG", "UPSIDE_DOWN_DEG", "IMPLAUSIBLE_RMS", "OUTLIER_RESIDUAL", "MIN_FIT_POINTS", "OK"]

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from raoutcome.anatomy import body_part_spec

LOW_CONFIDENCE = 0.3
ROTATED_DEG = 45.0
UPSIDE_DOWN_DEG = 135.0
IMPLAUSIBLE_RMS = 0.15
OUTLIER_RESIDUAL = 0.2
MIRROR_RATIO = 0.6  # mirrored fit's residual below this share of the proper fit's -> mirrored
MIN_FIT_POINTS = 4
BLANK_RANGE = 0.02
OK = "ok"


@dataclass(frozen=True)
class ProcrustesFit:
    """One similarity fit of a template onto points: ``pose = scale * exp(i angle)``, residuals."""

    pose: complex
    rms: float                    # relative RMS residual (residual RMS / configuration RMS radius)
    residuals: dict[str, float]   # each landmark's relative residual
    mirrored: bool

    @property
    def angle_deg(self) -> float:
        return float(np.degrees(np.angle(self.pose)))


def procrustes_fit(points: Mapping[str, tuple[float, float]], part: str, mirrored: bool = False,
                   robust: bool = True) -> ProcrustesFit | None:
    """Least-squares similarity of the ``part`` template (mirrored if asked) onto ``points`` (x, y pixels,
    canonical left orientation); ``None`` with fewer than :data:`MIN_FIT_POINTS` template landmarks or a
    degenerate configuration.

    ``robust``: trimmed fit: the worst point is left out and the pose refitted while its residual exceeds
    :data:`OUTLIER_RESIDUAL` and more than 60 % of the points (and :data:`MIN_FIT_POINTS`) remain, so one
    misplaced landmark does not drag the pose; the residuals are then those of every point to that pose.
    """
    try:
        template = body_part_spec(part).landmarks
    except KeyError:
        return None
    names = [n for n in points if n in template]
    if len(names) < MIN_FIT_POINTS:
        return None
    z_all = np.array([complex(*points[n]) for n in names])
    t_all = np.array([complex(*template[n]) for n in names])
    if mirrored:
        t_all = -t_all.conjugate()
    keep = np.ones(len(names), bool)
    while True:
        z, t = z_all[keep], t_all[keep]
        zc, tc = z - z.mean(), t - t.mean()
        spread = float(np.sqrt((np.abs(zc) ** 2).mean()))
        tt = float((np.abs(tc) ** 2).sum())
        if spread <= 0 or tt <= 0:
            return None
        pose = complex((zc * tc.conjugate()).sum() / tt)
        shift = z.mean() - pose * t.mean()
        res = np.abs(z_all - (pose * t_all + shift)) / spread
        worst = int(np.argmax(np.where(keep, res, -1.0)))
        if not robust or res[worst] <= OUTLIER_RESIDUAL or keep.sum() - 1 < max(MIN_FIT_POINTS, 0.6 * len(names)):
            break
        keep[worst] = False
    return ProcrustesFit(pose=pose, rms=float(np.sqrt((res[keep] ** 2).mean())),
                         residuals=dict(zip(names, res.tolist())), mirrored=mirrored)


def image_is_blank(pixels: np.ndarray) -> bool:
    """True when the 0.5-99.5 percentile range of the pixels (in [0, 1]) is below :data:`BLANK_RANGE`."""
    lo, hi = np.percentile(np.asarray(pixels, dtype=np.float32), [0.5, 99.5])
    return bool(hi - lo < BLANK_RANGE)


@dataclass
class QcResult:
    """Image-level flags and per-landmark flags; :meth:`label` gives one landmark's ``qc`` string."""

    flags: list[str] = field(default_factory=list)
    landmark_flags: dict[str, list[str]] = field(default_factory=dict)
    fit: ProcrustesFit | None = None

    def label(self, landmark: str) -> str:
        flags = self.flags + self.landmark_flags.get(landmark, [])
        return ";".join(dict.fromkeys(flags)) if flags else OK


def assess(points: Mapping[str, tuple[float, float]], confidence: Mapping[str, float], part: str,
           other_confidence: float | None = None, blank: bool = False) -> QcResult:
    """QC of one image's detection (see the module docstring).

    Parameters
    ----------
    points, confidence : the view's landmarks (canonical left orientation, pixels) and their confidences.
    part : the body part of the view the image was given as ("hand", "foot", "spine_cervical", ...).
    other_confidence : mean confidence of the other body parts' channels (None: not known); above the own
        part's: ``looks_like_foot`` / ``looks_like_hand`` (hands and feet), ``looks_like_other_part`` (others).
    blank : the image was found blank (:func:`image_is_blank`).
    """
    qc = QcResult()
    if blank:
        qc.flags.append("blank")
    own = float(np.median(list(confidence.values()))) if confidence else 0.0
    if own < LOW_CONFIDENCE:
        qc.flags.append("low_confidence")
    if other_confidence is not None and other_confidence > max(own, LOW_CONFIDENCE):
        qc.flags.append({"hand": "looks_like_foot", "foot": "looks_like_hand"}.get(part, "looks_like_other_part"))
    for name, c in confidence.items():
        if c < LOW_CONFIDENCE:
            qc.landmark_flags.setdefault(name, []).append("low_confidence")
    sure = {n: p for n, p in points.items() if confidence.get(n, 0.0) >= LOW_CONFIDENCE}
    proper = procrustes_fit(sure, part)
    if proper is None:
        if not blank and "low_confidence" not in qc.flags:
            qc.flags.append("implausible")
        return qc
    mirror = procrustes_fit(sure, part, mirrored=True)
    best = proper
    if mirror is not None and mirror.rms < MIRROR_RATIO * proper.rms and proper.rms > 0.5 * IMPLAUSIBLE_RMS:
        qc.flags.append("mirrored")
        best = mirror
    qc.fit = best
    angle = abs(best.angle_deg)
    if angle > UPSIDE_DOWN_DEG:
        qc.flags.append("upside_down")
    elif angle > ROTATED_DEG:
        qc.flags.append("rotated")
    outliers = [name for name, r in best.residuals.items() if r > OUTLIER_RESIDUAL]
    if best.rms > IMPLAUSIBLE_RMS or len(outliers) > 0.25 * len(best.residuals):
        qc.flags.append("implausible")
    for name in outliers:
        qc.landmark_flags.setdefault(name, []).append("outlier")
    return qc
