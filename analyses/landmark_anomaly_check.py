"""Detected instead of exact landmarks: does the joint anomaly score keep its correlation with log SvdH?

The demo cohort (``cohorts/demo.toml``, seed 20240601, 128 px; never used for any detector choice) is
simulated (or ``--cohort`` reused), copied *without* its ``landmarks`` table (tables copied, a ``cohort.toml``
whose ``root`` points at the original images, ``truth/`` linked), and given the landmarks of the default detector (``raoutcome landmarks detect``).
``analyses/joint_anomaly_check.py`` then runs on both cohorts with the same folds and seed. Reported:
r of the visit-level anomaly with log(1 + SvdH) with exact and with detected landmarks and their
difference (target: within 0.05), plus the detector's accuracy on this cohort against the exact landmarks
(share within 2 % of the image width).

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python analyses/landmark_anomaly_check.py --out landmark_anomaly [--cohort DIR]
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))


def without_landmarks(src: Path, dst: Path) -> Path:
    """A copy of cohort ``src`` without ``landmarks.csv``: its tables copied into ``dst`` with a
    ``cohort.toml`` whose ``root`` is ``src`` (the images stay where they are; ``truth/`` is linked)."""
    if dst.exists():
        shutil.rmtree(dst)
    dst.mkdir(parents=True)
    for f in src.iterdir():
        if f.name == "truth":
            (dst / f.name).symlink_to(f.resolve(), target_is_directory=True)
        elif f.is_file() and f.suffix == ".csv" and not f.name.startswith("landmarks."):
            shutil.copy2(f, dst / f.name)
    (dst / "cohort.toml").write_text(f'root = "{src.resolve()}"\n')
    return dst


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("landmark_anomaly"))
    ap.add_argument("--cohort", type=Path, default=None)
    ap.add_argument("--detector", type=Path, default=None)
    ap.add_argument("--folds", type=int, default=3)
    args = ap.parse_args(argv)

    import joint_anomaly_check
    import torch

    from raoutcome.cohort import load
    from raoutcome.workflows.landmarks import detect_cohort, write_landmarks

    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    exact_dir = args.out / "exact"
    if args.cohort is None:
        from learning_check import simulate

        cohort_dir = simulate(REPO / "cohorts" / "demo.toml", args.out / "cohort")
    else:
        cohort_dir = args.cohort
    joint_anomaly_check.main(["--cohort", str(cohort_dir), "--out", str(exact_dir), "--folds", str(args.folds)])
    bare = without_landmarks(Path(cohort_dir), args.out / "cohort_detected")
    cohort = load(bare)
    table = detect_cohort(cohort, args.detector)
    write_landmarks(table, bare / "landmarks.csv")
    det_dir = args.out / "detected"
    joint_anomaly_check.main(["--cohort", str(bare), "--out", str(det_dir), "--folds", str(args.folds)])

    exact = json.loads((exact_dir / "joint_anomaly_check.json").read_text())
    detected = json.loads((det_dir / "joint_anomaly_check.json").read_text())
    truth = pd.read_csv(Path(cohort_dir) / "landmarks.csv")
    m = truth.merge(table, on=["path", "landmark"], suffixes=("", "_det"))
    from raoutcome.imaging.io import read_image

    width = read_image(cohort.image_path(cohort.images.path.iloc[0])).pixels.shape[1]
    err = np.hypot(m.x_det - m.x, m.y_det - m.y)
    image_flags = table.groupby("path").qc.apply(lambda q: set.intersection(*[set(v.split(";")) for v in q]) - {"ok"})
    result = {
        "cohort": str(cohort_dir), "images": int(len(cohort.images)),
        "r_log_svdh_exact": exact["pearson_r"]["log_svdh"]["r"],
        "r_log_svdh_detected": detected["pearson_r"]["log_svdh"]["r"],
        "c_first_visit_exact": (exact.get("survival") or {}).get("c_index_first_visit"),
        "c_first_visit_detected": (detected.get("survival") or {}).get("c_index_first_visit"),
        "detection_within_2pct_width": float((err <= 0.02 * width).mean()),
        "detection_mre_px": float(err.mean()), "image_width_px": int(width),
        "images_with_image_level_flag": int(sum(bool(f) for f in image_flags)),
    }
    result["r_difference"] = result["r_log_svdh_detected"] - result["r_log_svdh_exact"]
    (args.out / "landmark_anomaly_check.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
