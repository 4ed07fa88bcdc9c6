"""Benchmark: load + validate a 100 000-visit manifest, image-file checks included.

20 000 patients x 5 visits, 2 images per visit (200 000 tiny files written once
and reused), every outcome filled, one ``deformity`` event row per patient.
Target: ``load()`` under 5 s.

    python benchmarks/bench_validate.py [--patients 20000] [--dir /tmp/raoutcome_bench_validate]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

TARGET_S = 5.0
VISITS_PER_PATIENT = 5
VIEWS = ("hand_left", "hand_right")
FILES_PER_DIR = 1000


def build(root: Path, n_patients: int) -> Path:
    """Write the manifest (and the image files, once) into ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    pids = np.array([f"P{i:06d}" for i in range(n_patients)], dtype=object)
    pid = np.repeat(pids, VISITS_PER_PATIENT)
    vnum = np.tile(np.arange(VISITS_PER_PATIENT), n_patients)
    visits = pd.DataFrame({
        "patient_id": pid,
        "visit_id": np.char.add("v", vnum.astype(str)).astype(object),
        "time_years": vnum + rng.uniform(0, 0.2, len(pid)) * (vnum > 0),
        "svdh_total": rng.uniform(0, 100, len(pid)).round(1),
        "svdh_jsn": rng.uniform(0, 50, len(pid)).round(1),
        "svdh_erosion": rng.uniform(0, 50, len(pid)).round(1),
        "haq": (rng.integers(0, 25, len(pid)) * 0.125),
        "pain": rng.uniform(0, 100, len(pid)).round(0),
        "das28": rng.uniform(1, 8, len(pid)).round(2),
    })
    n_img = len(visits) * len(VIEWS)
    img_idx = np.arange(n_img)
    paths = [f"images/{i // FILES_PER_DIR:04d}/{i}.png" for i in img_idx]
    images = pd.DataFrame({
        "patient_id": np.repeat(visits["patient_id"].to_numpy(), len(VIEWS)),
        "visit_id": np.repeat(visits["visit_id"].to_numpy(), len(VIEWS)),
        "view": np.tile(VIEWS, len(visits)),
        "path": paths,
    })
    marker = root / f".files_{n_img}"
    if not marker.exists():
        payload = b"\x89PNG\r\n\x1a\nbench"
        for d in range(0, (n_img + FILES_PER_DIR - 1) // FILES_PER_DIR):
            (root / "images" / f"{d:04d}").mkdir(parents=True, exist_ok=True)
        for rel in paths:
            fd = os.open(root / rel, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.write(fd, payload)
            os.close(fd)
        marker.touch()
    observed = rng.random(n_patients) < 0.2
    events = pd.DataFrame({"patient_id": pids, "event": "deformity",
                           "time_years": np.where(observed, rng.uniform(0.5, 4, n_patients), 4.0).round(3),
                           "observed": observed.astype(int)})
    patients = pd.DataFrame({"patient_id": pids, "sex": rng.choice(["F", "M"], n_patients),
                             "age": rng.integers(20, 80, n_patients)})
    for name, frame in {"patients": patients, "visits": visits, "images": images, "events": events}.items():
        frame.to_csv(root / f"{name}.csv", index=False)
    return root


def main(argv: list[str] | None = None) -> float:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patients", type=int, default=20_000)
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "raoutcome_bench_validate")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)

    from raoutcome.cohort import load

    t0 = time.perf_counter()
    root = build(args.dir / f"n{args.patients}", args.patients)
    print(f"manifest ready in {time.perf_counter() - t0:.1f} s: {root}")
    times = []
    for _ in range(args.repeat):
        t = time.perf_counter()
        cohort = load(root, check_files=True)
        times.append(time.perf_counter() - t)
    t = time.perf_counter()
    load(root, check_files=False)
    no_files = time.perf_counter() - t
    best = min(times)
    print(f"visits={len(cohort.visits)} images={len(cohort.images)} patients={len(cohort.patients)}")
    print(f"load(check_files=True): best {best:.2f} s of {args.repeat} (all: {', '.join(f'{x:.2f}' for x in times)})")
    print(f"load(check_files=False): {no_files:.2f} s")
    print(f"target < {TARGET_S:.0f} s: {'OK' if best < TARGET_S else 'TOO SLOW'}")
    return best


if __name__ == "__main__":
    sys.exit(0 if main() < TARGET_S else 1)
