"""The modified Stoke Ankylosing Spondylitis Spine Score (mSASSS): corners, lesions, totals, AS outcomes.

mSASSS (Creemers et al. 2005) scores 24 anterior vertebral corners on two lateral radiographs: from the
lower corner of C2 to the upper corner of T1 (cervical, 12 corners) and from the lower corner of T12 to the
upper corner of S1 (lumbar, 12 corners). Each corner is graded

    0 normal; 1 erosion, sclerosis or squaring; 2 non-bridging syndesmophyte; 3 bridging syndesmophyte,

so the total runs 0-72. A bridge joins the two facing corners of one disc (the lower corner of one vertebra
and the upper corner of the next) and scores 3 at both. Squaring is not scored at C3, whose anterior surface
is naturally straight (seeds/003, after Creemers 2005). Corners with an osteophyte, other ossification, a
blurred or hidden (shoulders) margin are not scored.

Corner names are ``<level>_sup`` / ``<level>_inf`` (upper / lower anterior corner), e.g. ``C2_inf``,
``C3_sup``; vertebral centres (landmarks only) are ``<level>_c``.

Missing corners (:func:`segment_total`): when at most ``max_missing`` (3) corners of a segment (cervical or
lumbar) are not scorable, each is replaced by the mean of the segment's scorable corners at the same reading;
with more missing the segment, and so the total, is missing. This is the rule commonly applied to mSASSS in
cohort studies (e.g. Ramiro et al. 2013, OASIS); it is stated here from the literature, not from seeds/003,
which does not say how it handled missing corners.

The AS outcomes (mSASSS, BASFI, BASDAI, time to a new bridge) are specs of the outcome registry
(:data:`SPINE_OUTCOMES`), registered on demand by :func:`register_spine_outcomes` (not at import: every
registered outcome becomes a Predictions variable and an ``analyze`` row of every RA study too); their visit
columns are registered at import so that any cohort may carry them and the validator checks their range.

References
----------
Creemers MC, Franssen MJ, van't Hof MA, et al. Assessment of outcome in ankylosing spondylitis: an extended
radiographic scoring system. Ann Rheum Dis 2005;64:127-129.
Ramiro S, van Tubergen A, Stolwijk C, et al. Scoring radiographic progression in ankylosing spondylitis:
should we use the mSASSS or the RASSS? Arthritis Res Ther 2013;15:R14.
"""
from __future__ import annotations

__all__ = ["CERVICAL_LEVELS", "LUMBAR_LEVELS", "SPINE_VIEWS", "LEVELS", "CORNERS", "FACING", "LESION_GRADE",
           "GRADE1_LESIONS", "NOT_SCORABLE_REASONS", "NO_SQUARING", "MAX_CORNER", "MAX_TOTAL", "MAX_MISSING",
           "corner_sites", "landmark_names", "facing", "level_of", "segment_total", "msasss_total",
           "bridge_consistent", "SPINE_OUTCOMES", "NEW_BRIDGE_EVENT", "register_spine_outcomes"]

import math
from typing import Mapping, Sequence

import numpy as np

from raoutcome import outcomes as _outcomes

CERVICAL_LEVELS: tuple[str, ...] = ("C2", "C3", "C4", "C5", "C6", "C7", "T1")
LUMBAR_LEVELS: tuple[str, ...] = ("T12", "L1", "L2", "L3", "L4", "L5", "S1")
SPINE_VIEWS: tuple[str, ...] = ("spine_cervical", "spine_lumbar")
LEVELS: dict[str, tuple[str, ...]] = {"spine_cervical": CERVICAL_LEVELS, "spine_lumbar": LUMBAR_LEVELS}

MAX_CORNER = 3
MAX_TOTAL = 72
MAX_MISSING = 3  # per segment; more missing corners -> the segment is missing
#: lesion -> corner grade
LESION_GRADE: dict[str, int] = {"none": 0, "erosion": 1, "sclerosis": 1, "squaring": 1, "syndesmophyte": 2,
                                "bridging": 3}
GRADE1_LESIONS: tuple[str, ...] = ("erosion", "sclerosis", "squaring")
#: why a corner is not scored (seeds/003: osteophyte; other ossification; not clearly visible or blurry);
#: "hidden": overlapped by the shoulders at the cervicothoracic junction; "outside": off the film
NOT_SCORABLE_REASONS: tuple[str, ...] = ("osteophyte", "other", "blurred", "hidden", "outside")
#: corners where squaring is not scored (C3's anterior surface is straight by nature)
NO_SQUARING: frozenset[str] = frozenset({"C3_sup", "C3_inf"})


def corner_sites(levels: Sequence[str]) -> tuple[str, ...]:
    """The scored anterior corners of a segment, cranial to caudal: the lower corner of the first level, both
    corners of the middle levels, the upper corner of the last (12 for the mSASSS segments)."""
    out = [f"{levels[0]}_inf"]
    for lv in levels[1:-1]:
        out += [f"{lv}_sup", f"{lv}_inf"]
    return (*out, f"{levels[-1]}_sup")


#: view -> its 12 scored corners
CORNERS: dict[str, tuple[str, ...]] = {v: corner_sites(lv) for v, lv in LEVELS.items()}


def landmark_names(view: str) -> tuple[str, ...]:
    """The landmarks of a spine view: per vertebra its scored anterior corner(s), then its centre."""
    corners = set(CORNERS[view])
    out: list[str] = []
    for lv in LEVELS[view]:
        out += [c for c in (f"{lv}_sup", f"{lv}_inf") if c in corners] + [f"{lv}_c"]
    return tuple(out)


def _facing() -> dict[str, str]:
    pairs = {}
    for levels in LEVELS.values():
        for a, b in zip(levels, levels[1:]):
            pairs[f"{a}_inf"], pairs[f"{b}_sup"] = f"{b}_sup", f"{a}_inf"
    return pairs


#: corner -> the corner facing it across the disc (a bridge joins the two)
FACING: dict[str, str] = _facing()


def facing(corner: str) -> str:
    return FACING[corner]


def level_of(corner: str) -> str:
    return corner.rsplit("_", 1)[0]


def segment_total(scores: np.ndarray, max_missing: int = MAX_MISSING) -> np.ndarray:
    """Segment sum over the last axis (the segment's corners; NaN = not scorable), with each missing corner
    replaced by the mean of the scorable ones when at most ``max_missing`` are missing, else NaN.

    ``total = sum(scorable) + n_missing * mean(scorable)``."""
    s = np.asarray(scores, dtype=float)
    ok = np.isfinite(s)
    n_ok = ok.sum(-1)
    n_missing = s.shape[-1] - n_ok
    total = np.where(ok, s, 0.0).sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = total / n_ok
    out = total + n_missing * np.where(n_ok > 0, mean, np.nan)
    return np.where((n_missing <= max_missing) & (n_ok > 0), out, np.nan)


def msasss_total(cervical: np.ndarray, lumbar: np.ndarray, max_missing: int = MAX_MISSING) -> np.ndarray:
    """Total mSASSS (0-72): the two segment totals (:func:`segment_total`) added; NaN if either is missing."""
    return segment_total(cervical, max_missing) + segment_total(lumbar, max_missing)


def bridge_consistent(grades: Mapping[str, float]) -> bool:
    """True when every grade-3 corner faces a grade-3 corner (a bridge scores both of its corners); corners
    absent or NaN are not checked."""
    for c, g in grades.items():
        f = grades.get(FACING.get(c, ""), math.nan)
        if g == 3 and np.isfinite(f) and f != 3:
            return False
    return True


# --------------------------------------------------------------------------- AS outcomes
NEW_BRIDGE_EVENT = "new_bridge"  # the events table's ``event`` for the time to a new bridge

#: visit columns any cohort may carry (BASFI: Bath AS Functional Index; BASDAI: Bath AS Disease Activity
#: Index; both 0-10)
_outcomes.register_column(_outcomes.Measure("basfi", 0.0, 10.0, "BASFI", "0–10"))
_outcomes.register_column(_outcomes.Measure("basdai", 0.0, 10.0, "BASDAI", "0–10"))

SPINE_OUTCOMES: tuple[_outcomes.Outcome, ...] = (
    _outcomes.Outcome("msasss", kind="count", column="msasss", upper=float(MAX_TOTAL), loss_space="log1p",
                      scale=1.0, label="mSASSS", unit="0–72", endpoint=True, short="mSASSS",
                      title="mSASSS total"),
    _outcomes.Outcome("basfi", kind="bounded", column="basfi", upper=10.0, scale=2.0, readout="ridge",
                      label="BASFI", unit="0–10", endpoint=True, title="BASFI (function)"),
    _outcomes.Outcome("basdai", kind="bounded", column="basdai", upper=10.0, scale=2.0, readout="ridge",
                      label="BASDAI", unit="0–10", title="BASDAI (disease activity)"),
    _outcomes.Outcome("new_bridge", kind="time_to_event", loss_space="cox", lower=-math.inf,
                      label="new-bridge risk", unit="log relative hazard", short="bridge",
                      title="Time to a new bridge"),
)


def register_spine_outcomes() -> tuple[_outcomes.Outcome, ...]:
    """Register the AS outcomes (idempotent); returns them. Off by default in training configs."""
    return tuple(_outcomes.register_outcome(o) for o in SPINE_OUTCOMES)
