"""What the ``landmarks`` table covers: which hand/foot/spine images have landmarks, which are doubtful.

Used by the cohort summary (``raoutcome validate``). A detected table (``raoutcome landmarks detect``)
carries ``confidence`` and ``qc`` columns; images with a landmark below :data:`LOW_CONFIDENCE` or any QC
flag are counted and the first few named, so a user sees where the detector was unsure before any
site-level analysis relies on it. Tables only: no pixels are read.
"""
from __future__ import annotations

__all__ = ["landmark_coverage", "coverage_lines", "LOW_CONFIDENCE"]

from collections import Counter

import pandas as pd

from raoutcome.anatomy import body_part

LOW_CONFIDENCE = 0.3  # as raoutcome.imaging.landmark_qc.LOW_CONFIDENCE


def landmark_coverage(images: pd.DataFrame, landmarks: pd.DataFrame | None) -> dict:
    """Counts: images of views with a landmark template (hand, foot, lateral spine), those with landmarks, low-confidence images, QC flags per kind."""
    known = images[images["view"].map(body_part).notna()]
    paths = set(known["path"])
    out = {"images": len(paths), "with_landmarks": 0, "low_confidence": [], "flagged": [], "flags": {}}
    if landmarks is None or landmarks.empty:
        return out
    lm = landmarks[landmarks["path"].isin(paths)]
    out["with_landmarks"] = int(lm["path"].nunique())
    if "confidence" in lm:
        conf = pd.to_numeric(lm["confidence"], errors="coerce")
        out["low_confidence"] = sorted(lm.loc[conf < LOW_CONFIDENCE, "path"].unique().tolist())
    if "qc" in lm:
        bad = lm[lm["qc"].fillna("ok").astype(str) != "ok"]
        out["flagged"] = sorted(bad["path"].unique().tolist())
        per_image = bad.groupby("path")["qc"].apply(lambda q: set(";".join(q.astype(str)).split(";")))
        out["flags"] = dict(Counter(f for flags in per_image for f in flags))
    return out


def coverage_lines(images: pd.DataFrame, landmarks: pd.DataFrame | None, show: int = 3) -> list[str]:
    """Lines for the cohort summary."""
    c = landmark_coverage(images, landmarks)
    if not c["images"]:
        return []
    pct = 100.0 * c["with_landmarks"] / c["images"]
    lines = [f"Landmark coverage: {c['with_landmarks']} of {c['images']} hand/foot/spine images ({pct:.0f}%)"
             + ("" if c["with_landmarks"] else "; `raoutcome landmarks detect` can add them")]
    if c["low_confidence"]:
        names = ", ".join(c["low_confidence"][:show]) + (" ..." if len(c["low_confidence"]) > show else "")
        lines.append(f"Low-confidence landmarks (< {LOW_CONFIDENCE}): {len(c['low_confidence'])} images ({names})")
    if c["flagged"]:
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(c["flags"].items()))
        lines.append(f"Landmark QC flags: {len(c['flagged'])} images ({kinds})")
    return lines
