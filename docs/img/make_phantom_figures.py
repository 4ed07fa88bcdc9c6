"""Regenerate the phantom figures in this folder: baseline and 2-year follow-up of one rapid
progressor of the demo cohort (left hand, 256 px, PNG) and the region label map of the follow-up.

    python docs/img/make_phantom_figures.py
"""
from __future__ import annotations

import shutil
import sys
import tempfile
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from raoutcome.anatomy import REGIONS
from raoutcome.synth import simulate
from raoutcome.synth.config import from_dict

HERE = Path(__file__).resolve().parent
DEMO = HERE.parents[1] / "cohorts" / "demo.toml"
PATIENT = "P0042"  # a rapid progressor of demo.toml (baseline SvdH 2, about 25 two years later)
PALETTE = {0: (0, 0, 0), 1: (90, 60, 40), 2: (60, 110, 200), 3: (230, 60, 60), 4: (250, 200, 40), 5: (80, 190, 90)}


def main() -> None:
    cfg = tomllib.loads(DEMO.read_text())
    cfg.update(n_patients=int(PATIENT[1:]), image_size=256, image_format="png")
    tmp = Path(tempfile.mkdtemp())
    try:
        out = simulate(None, tmp / "c", config=from_dict(cfg))
        tv = pd.read_csv(out / "truth" / "visits.csv").query("patient_id == @PATIENT").set_index("visit_id")
        images = pd.read_csv(out / "images.csv").query("patient_id == @PATIENT and view == 'hand_left'")
        follow = tv.index[np.argmin(abs(tv["time_years"] - 2.0))]
        for vid, name in (("v0", "phantom_baseline.png"), (follow, "phantom_followup_2y.png")):
            rel = images.set_index("visit_id").loc[vid, "path"]
            px = np.array(Image.open(out / rel)).astype(np.float64) / 65535
            Image.fromarray(np.round(px * 255).astype(np.uint8)).save(HERE / name)
            print(f"{name}: {PATIENT} {vid} t={tv.loc[vid, 'time_years']:.2f} y, true SvdH {tv.loc[vid, 'svdh_total']}")
        lab = np.array(Image.open(out / "truth" / "regions" / (Path(rel).stem + ".png")))
        rgb = np.zeros(lab.shape + (3,), np.uint8)
        for code, colour in PALETTE.items():
            rgb[lab == code] = colour
        Image.fromarray(rgb).save(HERE / "phantom_regions.png")
        print("phantom_regions.png:", {k: PALETTE[v] for k, v in REGIONS.items()})
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
