"""Draw docs/img/cspine_mri_midsagittal.png: the real cervical-spine MRI (t2, t1w) in the canonical sagittal frame.

Reads /work/shared/data/cspine-mri (or $RAOUTCOME_CSPINE_MRI) through raoutcome.imaging.volume.read_volume,
shows the sagittal slice through the cord (superior up, anterior left), the cord mask outline and the
vertebral-level point labels (t2_labeled_center_manual) with their values.
Run:  PYTHONPATH=src python docs/img/make_cspine_mri_figure.py
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from raoutcome.imaging.volume import read_volume  # noqa: E402
from raoutcome.io_utils import atomic_path  # noqa: E402

DATA = Path(os.environ.get("RAOUTCOME_CSPINE_MRI", "/work/shared/data/cspine-mri"))
OUT = Path(__file__).with_name("cspine_mri_midsagittal.png")


def main() -> int:
    if not (DATA / "images" / "t2.nii.gz").exists():
        print(f"no data at {DATA}", file=sys.stderr)
        return 1
    fig, axes = plt.subplots(1, 2, figsize=(9, 5.2))
    for ax, name, seg, labels in (
        (axes[0], "t2", "t2_seg-manual", "t2_labeled_center_manual"),
        (axes[1], "t1w", "t1w_seg-manual", None),
    ):
        img = read_volume(DATA / "images" / f"{name}.nii.gz").array.astype(float)
        cord = read_volume(DATA / "annotations" / f"{seg}.nii.gz", label=True).array > 0
        k = int(round(np.argwhere(cord)[:, 0].mean()))  # sagittal slice through the cord's centre
        lo, hi = np.percentile(img[k], [1, 99])
        ax.imshow(img[k], cmap="gray", vmin=lo, vmax=hi, interpolation="nearest")
        ax.contour(cord[k], levels=[0.5], colors="tab:orange", linewidths=0.8)
        if labels:
            lab = read_volume(DATA / "annotations" / f"{labels}.nii.gz", label=True).array
            for kk, r, c in np.argwhere(lab > 0):
                ax.plot(c, r, "o", color="tab:cyan", ms=5)
                ax.annotate(f"{lab[kk, r, c]:g}", (c, r), xytext=(6, -2), textcoords="offset points",
                            color="tab:cyan", fontsize=9)
        ax.set_title(f"{name}: sagittal slice {k} (canonical frame)", fontsize=9)
        ax.set_xlabel("anterior  \u2190  column (mm)  \u2192  posterior", fontsize=8)
        ax.set_ylabel("superior  \u2190  row (mm)  \u2192  inferior", fontsize=8)
        ax.tick_params(labelsize=7)
    fig.suptitle("Real cervical-spine MRI (SCT errsm_30): cord mask (orange), level labels (cyan)", fontsize=10)
    fig.tight_layout()
    with atomic_path(OUT) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    print(OUT)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
