"""Real hands from a source the landmark detector never saw: does the shipped detector still find the
joints, and how often does its QC object?

``../shared/data/bone-age-sample`` holds 40 hand radiographs of the RSNA Pediatric Bone Age Challenge as
prepared by another project (neuro-inc/ml-recipe-bone-age, Apache-2.0: background removed, resized to
512 px height). The detector was trained on simulated hands and on the 12 SHS_NET radiographs of
``../shared/data/real-hands``, never on these files or on this preparation. There are no landmark
annotations, so this is a plausibility check, not an accuracy figure: the share of images without an
image-level QC flag (the detected configuration fits the hand template, confident, right way up), the
median landmark confidence, and a picture of the detections (``docs/img/landmarks_unseen_source.png``)
to judge by eye. Given as left hands (the challenge's convention); with and without the refinement pass.

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python analyses/landmarks_unseen_source.py --out landmark_work
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "bone-age-sample"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--out", type=Path, default=Path("landmark_work"))
    ap.add_argument("--detector", type=Path, default=None, help="default: the shipped detector")
    ap.add_argument("--figure", type=Path, default=REPO / "docs" / "img" / "landmarks_unseen_source.png")
    args = ap.parse_args(argv)
    if not args.data.is_dir():
        print(f"no images at {args.data}; nothing to check")
        return 0
    import torch

    from raoutcome.imaging.io import read_image
    from raoutcome.models.landmarks import load_detector
    from raoutcome.workflows.landmarks import detect_images

    torch.set_num_threads(1)
    model = load_detector(args.detector)
    files = sorted((args.data / "images").glob("*.png"))
    result: dict = {"images": len(files), "detector": str(args.detector or "default")}
    tables = {}
    for mode, refine in (("refined", None), ("coarse", False)):
        rows, flags, conf = [], [], []
        for f in files:
            px = read_image(f).pixels
            det = detect_images(model, [(px, "hand_left")], refine=refine)[0]
            rows.extend(det.rows(f.name))
            flags.append(det.qc.flags)
            conf.append(float(np.median(list(det.confidence.values()))))
        counts = pd.Series([x for fl in flags for x in fl], dtype=object).value_counts()
        result[mode] = {"share_unflagged": float(np.mean([not fl for fl in flags])),
                        "image_flags": {k: int(v) for k, v in counts.items()},
                        "median_confidence": float(np.median(conf)),
                        "refined_images": int(sum(max(read_image(f).pixels.shape) >= 256 for f in files))
                        if refine is None else 0}
        tables[mode] = pd.DataFrame(rows)
        print(mode, result[mode], flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "unseen_source.json").write_text(json.dumps(result, indent=1))
    figure(args.data, files[:12], tables["refined"], args.figure)
    print(f"figure {args.figure}")
    return 0


FINGER_AND_WRIST = ("IP", "MP", "MCP2", "MCP3", "MCP4", "MCP5", "PIP2", "PIP3", "PIP4", "PIP5",
                    "W1", "W2", "W3", "W4", "W5")


def figure(root: Path, files: list[Path], det: pd.DataFrame, target: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from raoutcome.imaging.io import read_image
    from raoutcome.io_utils import atomic_path

    cols = 6
    rows = (len(files) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(2.2 * cols, 2.9 * rows))
    for ax, f in zip(np.ravel(axes), files):
        ax.imshow(read_image(f).pixels, cmap="gray")
        d = det[(det.path == f.name) & det.landmark.isin(FINGER_AND_WRIST)]
        bad = d.qc != "ok"
        ax.scatter(d.x[~bad], d.y[~bad], s=6, c="red")
        ax.scatter(d.x[bad], d.y[bad], s=10, c="yellow", marker="x")
        ax.set_title(f.name, fontsize=7)
        ax.axis("off")
    for ax in np.ravel(axes)[len(files):]:
        ax.axis("off")
    fig.suptitle("Unseen source (bone-age sample): shipped detector, 15 joints of the SHS_NET set "
                 "(red; yellow x = QC-flagged)", fontsize=8)
    fig.tight_layout()
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(target) as tmp:
        fig.savefig(tmp, dpi=70, format="png")
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
