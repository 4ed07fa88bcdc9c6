"""The fixed-blur refit of collapsed ADI fits (issue 30): its blur chosen on the training seed's
detector-validation patients, reported on the held-out seed.

Reads a finished cervical study measured with the collapse guard and no refit (``measured_*.csv`` rows with
``refine_reason == "collapsed"`` hold the detector's points), refits each such image with
:func:`raoutcome.imaging.atlantoaxial.refine_edges` (``collapse_sigma`` = each candidate) and prints, per
view, the ADI error of the detector's points (what the guard keeps) and of each refit (no offset subtracted),
plus how many refits were accepted. With ``report`` the held-out seed too (look once, after choosing).

Run:  PYTHONPATH=src python analyses/cervical_adi_refit.py STUDY [report]
"""
from __future__ import annotations

import json
import sys

import numpy as np
import pandas as pd

from raoutcome.analysis.craniocervical import measure_points
from raoutcome.imaging.atlantoaxial import refine_edges
from raoutcome.imaging.io import read_image

CANDIDATES = (0.3, 0.4, 0.5, 0.6, 0.8, 1.1)


def _rows(study: str, name: str, patients: set[str] | None) -> pd.DataFrame:
    m = pd.read_csv(f"{study}/measured_{name}.csv")
    if patients is not None:
        m = m[m["patient_id"].isin(patients)]
    m = m[m["refine_reason"].fillna("") == "collapsed"]
    t = pd.read_csv(f"{study}/{name}/truth/measurements.csv")[["path", "adi_mm"]]
    return m.merge(t, on="path", suffixes=("", "_true"))


def main(study: str, report: bool = False) -> None:
    val = set(json.loads(open(f"{study}/detector.validation.json").read())["validation_patients"])
    parts = {"train validation": ("train", val)}
    if report:
        parts["held-out"] = ("test", None)
    for label, (name, patients) in parts.items():
        rows = _rows(study, name, patients)
        out = {sig: [] for sig in CANDIDATES}
        acc = {sig: 0 for sig in CANDIDATES}
        for r in rows.itertuples(index=False):
            img = read_image(f"{study}/{name}/{r.path}")
            spacing = img.meta["pixel_spacing_mm"]
            a, b = (r.C1A_x, r.C1A_y), (r.DA_x, r.DA_y)
            for sig in CANDIDATES:
                fit = refine_edges(img.pixels, a, b, min_gap_fraction=0.4, collapse_sigma=sig)
                acc[sig] += fit.accepted
                out[sig].append(measure_points({"C1A": fit.a, "DA": fit.b}, spacing)["adi_mm"] - r.adi_mm_true)
        for view in ("cervical_neutral", "cervical_flexion"):
            s = (rows["view"] == view).to_numpy()
            det = (rows["adi_detected_mm"] - rows["adi_mm_true"]).to_numpy()[s]
            line = [f"{label:16s} {view:17s} n={s.sum():3d} detector: mae={np.mean(np.abs(det)):.3f} "
                    f"max={np.max(np.abs(det)):.2f}"]
            for sig in CANDIDATES:
                e = np.asarray(out[sig])[s]
                line.append(f"sigma {sig}: mae={np.mean(np.abs(e)):.3f} bias={e.mean():+.2f} max={np.max(np.abs(e)):.2f}")
            print(" | ".join(line), "| accepted:", {k: v for k, v in acc.items()})


if __name__ == "__main__":
    main(sys.argv[1], len(sys.argv) > 2 and sys.argv[2] == "report")
