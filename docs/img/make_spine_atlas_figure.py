"""docs/img/spine_corner_atlas.png: the corner reader's Integrated Gradients atlas per predicted grade, from an AS
study folder (``raoutcome msasss study``: its ``corner_atlas.npz`` and ``corner_attribution.csv``).

    PYTHONPATH=src python docs/img/make_spine_atlas_figure.py STUDY_FOLDER
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

from raoutcome.reporting.corner_attribution_section import atlas_figure

OUT = Path(__file__).resolve().parent / "spine_corner_atlas.png"


def main(folder: str) -> None:
    study = Path(folder)
    with np.load(study / "corner_atlas.npz") as f:
        atlas = {k: f[k] for k in f.files}
    table = pd.read_csv(study / "corner_attribution.csv")
    grades = table[table["kind"] == "grade"]
    OUT.write_bytes(atlas_figure(atlas, list(grades["group"]), [
        f"{g.replace('_', ' ')} (n={n})" for g, n in zip(grades["group"], grades["patches"])],
        ncols=len(grades), with_patch=True))
    print(f"written {OUT}")


if __name__ == "__main__":
    main(sys.argv[1])
