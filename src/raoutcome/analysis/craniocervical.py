"""Atlantoaxial measurements from landmarks on lateral cervical radiographs: ADI, SAC, Ranawat, BDI.

From the landmarks of the ``craniocervical`` body part (:data:`raoutcome.anatomy.CRANIOCERVICAL_LANDMARKS`)
in pixels and the pixel spacing (mm):

* **ADI** (anterior atlantodental interval) = ``|C1A - DA|``: posterior margin of the anterior arch of C1
  to the anterior surface of the dens;
* **SAC** (space available for the cord, posterior ADI) = ``|DP - C1P|``;
* **Ranawat** = distance from the C2 pedicle centre ``C2P`` to the C1 transverse axis (the line through
  the anterior and posterior arch centres ``C1AT``, ``C1PT``): ``|cross(b - a, p - a)| / |b - a|``;
* **BDI** (basion–dens interval) = ``|BA - DT|``; **facet gap** = ``|F1 - F2|`` (C1–C2 facet joint);
* **Redlund-Johnell** = distance from the midpoint of C2's inferior endplate ``C2E`` to McGregor's line
  (posterior end of the hard palate ``PNS`` to the lowest point of the occipital curve ``OCC``), the same
  point-to-line formula as Ranawat's.

Cut-offs (textbook values, CLINICAL_FACTS.md; stated as such): anterior ADI > 3 mm abnormal in adults
(anterior atlantoaxial subluxation, AAS), SAC < 14 mm associated with cord compression, Ranawat < 13 mm
vertical translocation; Redlund-Johnell < 34 mm in men, < 29 mm in women vertical translocation
(Redlund-Johnell & Pettersson 1984; :func:`classify` needs the sex for it). Okita et al. 2023 report AAS sensitivity 0.86 / 0.97, specificity 0.57 / 0.50 by
ADI / SAC.

Uncertainty: with independent isotropic landmark error of SD ``s`` px per coordinate, a distance between
two landmarks has SD ``sqrt(2) s`` (its error along the line joining them), in mm ``sqrt(2) s spacing``
(:func:`distance_sd_mm`); the ``s`` comes from a detector's validation residuals.

References
----------
Okita Y, et al. Arthritis Res Ther 2023;25:181. Ranawat CS, et al. J Bone Joint Surg Am 1979;61:1003-10.
Boden SD, et al. Rheumatoid arthritis of the cervical spine: a long-term analysis with predictors of
paralysis and recovery. J Bone Joint Surg Am 1993;75:1282-97 (SAC < 14 mm).
Redlund-Johnell I, Pettersson H. Radiographic measurements of the cranio-vertebral region. Designed for
evaluation of abnormalities in rheumatoid arthritis. Acta Radiol Diagn (Stockh) 1984;25:23-8 (lower limits
34 mm men, 29 mm women).
McGregor M. The significance of certain measurements of the skull in the diagnosis of basilar impression.
Br J Radiol 1948;21:171-81.
"""
from __future__ import annotations

__all__ = ["ADI_CUTOFF_MM", "SAC_CUTOFF_MM", "RANAWAT_CUTOFF_MM", "REDLUND_JOHNELL_CUTOFF_MM", "MEASURES", "measure_points",
           "measure_table", "classify", "distance_sd_mm", "with_uncertainty"]

import math
from typing import Mapping

import numpy as np
import pandas as pd

from raoutcome.errors import InputError

ADI_CUTOFF_MM = 3.0      # ADI > 3 mm: anterior atlantoaxial subluxation (adults)
SAC_CUTOFF_MM = 14.0     # SAC < 14 mm: associated with cord compression
RANAWAT_CUTOFF_MM = 13.0  # Ranawat < 13 mm: vertical translocation
#: Redlund-Johnell below this (mm) is vertical translocation, by sex (Redlund-Johnell & Pettersson 1984)
REDLUND_JOHNELL_CUTOFF_MM: dict[str, float] = {"M": 34.0, "F": 29.0}
#: measure -> the landmarks it needs (the line measures: the first two points span the line)
MEASURES: dict[str, tuple[str, ...]] = {"adi_mm": ("C1A", "DA"), "sac_mm": ("DP", "C1P"),
                                        "ranawat_mm": ("C1AT", "C1PT", "C2P"), "bdi_mm": ("BA", "DT"),
                                        "facet_gap_mm": ("F1", "F2"),
                                        "redlund_johnell_mm": ("PNS", "OCC", "C2E")}
_LINE_MEASURES = ("ranawat_mm", "redlund_johnell_mm")


def _dist(a, b) -> float:
    return float(math.hypot(a[0] - b[0], a[1] - b[1]))


def measure_points(points: Mapping[str, tuple[float, float]], spacing_mm: float | tuple[float, float]
                   ) -> dict[str, float]:
    """Every measure whose landmarks are all present (NaN otherwise), in mm.

    ``spacing_mm``: one value, or ``(row, column)`` spacing as DICOM PixelSpacing gives it; points are
    ``(x = column, y = row)`` pixels.
    """
    if np.isscalar(spacing_mm):
        sr = sc = float(spacing_mm)  # type: ignore[arg-type]
    else:
        sr, sc = (float(s) for s in spacing_mm)  # type: ignore[union-attr]
    if not (sr > 0 and sc > 0 and math.isfinite(sr) and math.isfinite(sc)):
        raise InputError(f"pixel spacing {spacing_mm!r}: must be positive mm")
    mm = {k: (float(x) * sc, float(y) * sr) for k, (x, y) in points.items()
          if math.isfinite(float(x)) and math.isfinite(float(y))}
    out = {}
    for name, need in MEASURES.items():
        if not all(n in mm for n in need):
            out[name] = float("nan")
        elif name in _LINE_MEASURES:
            a, b, p = (np.array(mm[n]) for n in need)
            ab = b - a
            norm = float(np.hypot(*ab))
            out[name] = float(abs(ab[0] * (p - a)[1] - ab[1] * (p - a)[0]) / norm) if norm > 0 else float("nan")
        else:
            out[name] = _dist(mm[need[0]], mm[need[1]])
    return out


def classify(adi_mm, sac_mm, ranawat_mm=None, redlund_johnell_mm=None, sex=None) -> pd.DataFrame:
    """AAS by ADI (> 3 mm), by SAC (< 14 mm), vertical translocation by Ranawat (< 13 mm) and, given
    ``redlund_johnell_mm`` and ``sex`` (``"M"`` / ``"F"`` per row), by Redlund-Johnell (< 34 mm men, < 29 mm
    women: ``vt_redlund_johnell``). NaN stays NaN, and so does an unknown sex."""
    adi, sac = np.asarray(adi_mm, float), np.asarray(sac_mm, float)
    out = pd.DataFrame({"aas_adi": np.where(np.isfinite(adi), adi > ADI_CUTOFF_MM, np.nan),
                        "aas_sac": np.where(np.isfinite(sac), sac < SAC_CUTOFF_MM, np.nan)})
    if ranawat_mm is not None:
        r = np.asarray(ranawat_mm, float)
        out["vt_ranawat"] = np.where(np.isfinite(r), r < RANAWAT_CUTOFF_MM, np.nan)
    if redlund_johnell_mm is not None:
        rj = np.asarray(redlund_johnell_mm, float)
        if sex is None:
            raise InputError("classify: Redlund-Johnell's cut-off depends on the sex (M < 34 mm, F < 29 mm); give sex")
        cut = pd.Series(np.asarray(sex, dtype=object)).str.upper().map(REDLUND_JOHNELL_CUTOFF_MM).to_numpy(float)
        if len(cut) != len(rj):
            raise InputError(f"classify: {len(rj)} Redlund-Johnell values but {len(cut)} sexes")
        ok = np.isfinite(rj) & np.isfinite(cut)
        out["vt_redlund_johnell"] = np.where(ok, rj < np.where(ok, cut, 0.0), np.nan)
    return out


def measure_table(landmarks: pd.DataFrame, spacing: Mapping[str, float | tuple[float, float]]) -> pd.DataFrame:
    """One row per image ``path``: the measures of :data:`MEASURES` and their AAS / VT classes.

    ``landmarks``: ``path, landmark, x, y`` (the cohort table, or detected); ``spacing``: path -> mm.
    An image without a spacing is refused (mm cannot be had from pixels alone).
    """
    missing = [c for c in ("path", "landmark", "x", "y") if c not in landmarks]
    if missing:
        raise InputError(f"landmarks table lacks column(s) {missing}")
    rows = []
    for path, g in landmarks.groupby("path", sort=False):
        if path not in spacing or spacing[path] is None:
            raise InputError(f"landmarks: image {path!r} has no pixel spacing; ADI/SAC need millimetres")
        pts = dict(zip(g["landmark"], zip(g["x"].astype(float), g["y"].astype(float))))
        rows.append({"path": path, **measure_points(pts, spacing[path])})
    table = pd.DataFrame(rows, columns=["path", *MEASURES])
    cls = classify(table["adi_mm"], table["sac_mm"], table["ranawat_mm"])
    return pd.concat([table.reset_index(drop=True), cls], axis=1)


def distance_sd_mm(landmark_sd_px: float, spacing_mm: float) -> float:
    """SD (mm) of a distance between two landmarks each off by independent N(0, s^2) per coordinate."""
    return float(math.sqrt(2.0) * landmark_sd_px * spacing_mm)


def with_uncertainty(table: pd.DataFrame, sd_mm: Mapping[str, float], level: float = 0.95) -> pd.DataFrame:
    """Add ``<measure>_lo`` / ``_hi`` normal intervals from per-measure SDs (mm) and the probability that
    ADI exceeds 3 mm / SAC is below 14 mm given the measurement (``p_aas_adi``, ``p_aas_sac``)."""
    from scipy.stats import norm

    z = float(norm.ppf(0.5 + level / 2))
    out = table.copy()
    for m, sd in sd_mm.items():
        out[f"{m}_lo"] = out[m] - z * sd
        out[f"{m}_hi"] = out[m] + z * sd
    if "adi_mm" in sd_mm:
        out["p_aas_adi"] = norm.sf(ADI_CUTOFF_MM, loc=out["adi_mm"], scale=sd_mm["adi_mm"])
    if "sac_mm" in sd_mm:
        out["p_aas_sac"] = norm.cdf(SAC_CUTOFF_MM, loc=out["sac_mm"], scale=sd_mm["sac_mm"])
    return out
