"""Benchmark: ``validate`` on 1 000 000 visits, and whether its memory grows with the images.

Manifests of ``--visits`` visits (5 per patient, every outcome filled, one event row per patient)
with ``k`` images per visit, each a distinct tiny file on disk (written once, reused). Each
configuration is loaded in a fresh interpreter (``load(check_files=True)``: the reader, every table
rule, one ``stat`` per image file), which reports its wall time and peak RSS.

* Target (a): 1 000 000 visits (1 image each) validated in under 60 s on 2 cores.
* Target (b): memory does not grow with the image count beyond the tables: between 1 and 2 images
  per visit (same visits), the extra peak RSS per extra image row is compared with the in-memory
  size of one images-table row (read + validated copies); ratio <= 3 passes (the reader holds the
  file's text, the raw table and the validated table at the peak, so about 3 copies is the floor).

    python benchmarks/bench_validate_scale.py [--visits 1000000] [--dir /tmp/raoutcome_bench_scale]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

TARGET_S = 60.0
TARGET_RATIO = 3.0
VISITS_PER_PATIENT = 5
VIEWS = ("hand_left", "hand_right", "foot_left", "foot_right")
FILES_PER_DIR = 1000


def build(root: Path, n_visits: int, per_visit: int) -> Path:
    """Write the manifest and (once, shared between sizes) the image files."""
    root.mkdir(parents=True, exist_ok=True)
    n_patients = n_visits // VISITS_PER_PATIENT
    rng = np.random.default_rng(0)
    pids = np.char.add("P", np.arange(n_patients).astype(str)).astype(object)
    pid = np.repeat(pids, VISITS_PER_PATIENT)
    vnum = np.tile(np.arange(VISITS_PER_PATIENT), n_patients)
    visits = pd.DataFrame({
        "patient_id": pid, "visit_id": np.char.add("v", vnum.astype(str)).astype(object),
        "time_years": (vnum + rng.uniform(0, 0.2, len(pid)) * (vnum > 0)).round(3),
        "svdh_total": rng.uniform(0, 100, len(pid)).round(1), "haq": rng.integers(0, 25, len(pid)) * 0.125,
        "pain": rng.uniform(0, 100, len(pid)).round(0), "das28": rng.uniform(1, 8, len(pid)).round(2),
    })
    n_img = len(visits) * per_visit
    idx = np.arange(n_img)
    paths = np.char.add(np.char.add(np.char.add("images/", (idx // FILES_PER_DIR).astype(str)), "/"),
                        np.char.add(idx.astype(str), ".png")).astype(object)
    images = pd.DataFrame({"patient_id": np.repeat(visits["patient_id"].to_numpy(), per_visit),
                           "visit_id": np.repeat(visits["visit_id"].to_numpy(), per_visit),
                           "view": np.tile(VIEWS[:per_visit], len(visits)), "path": paths})
    files = root.parent / "files"
    made = files / ".count"
    have = int(made.read_text()) if made.exists() else 0
    if have < n_img:
        payload = b"\x89PNG\r\n\x1a\nbench"
        for d in range(have // FILES_PER_DIR, (n_img + FILES_PER_DIR - 1) // FILES_PER_DIR):
            (files / "images" / str(d)).mkdir(parents=True, exist_ok=True)
        for rel in paths[have:]:
            fd = os.open(files / rel, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.write(fd, payload)
            os.close(fd)
        made.write_text(str(n_img))
    (root / "cohort.toml").write_text(f'root = "{files}"\n')  # images resolve inside their own root
    observed = rng.random(n_patients) < 0.2
    events = pd.DataFrame({"patient_id": pids, "event": "deformity",
                           "time_years": np.where(observed, rng.uniform(0.5, 4, n_patients), 4.0).round(3),
                           "observed": observed.astype(int)})
    patients = pd.DataFrame({"patient_id": pids, "sex": rng.choice(["F", "M"], n_patients),
                             "age": rng.integers(20, 80, n_patients)})
    for name, frame in {"patients": patients, "visits": visits, "images": images, "events": events}.items():
        frame.to_csv(root / f"{name}.csv", index=False)
    return root


def child(root: str) -> None:
    from raoutcome.cohort import load

    t0 = time.perf_counter()
    cohort = load(root, check_files=True)
    seconds = time.perf_counter() - t0
    row_bytes = cohort.images.memory_usage(deep=True).sum() / max(1, len(cohort.images))
    use = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"visits": len(cohort.visits), "images": len(cohort.images), "seconds": seconds,
                      "cpu_seconds": use.ru_utime + use.ru_stime, "load_1min": os.getloadavg()[0],
                      "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "image_row_bytes": float(row_bytes)}))


def measure(root: Path) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", str(root)], capture_output=True, text=True,
                         check=True, env=dict(os.environ, OMP_NUM_THREADS="2"))
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--visits", type=int, default=1_000_000)
    ap.add_argument("--memory-visits", type=int, default=200_000, help="visits for the memory comparison")
    ap.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "raoutcome_bench_scale")
    ap.add_argument("--child", type=str, default=None)
    args = ap.parse_args(argv)
    if args.child:
        child(args.child)
        return 0
    t = time.perf_counter()
    big = build(args.dir / f"v{args.visits}_k1", args.visits, 1)
    print(f"manifest of {args.visits:,} visits ready in {time.perf_counter() - t:.0f} s")
    a = measure(big)
    print(f"(a) validate {a['visits']:,} visits, {a['images']:,} image files: {a['seconds']:.1f} s wall "
          f"({a['cpu_seconds']:.1f} s CPU incl. start-up; load average {a['load_1min']:.1f} on "
          f"{os.cpu_count()} cores), peak RSS {a['peak_rss_mib']:.0f} MiB  -> target < {TARGET_S:.0f} s: "
          f"{'OK' if a['seconds'] < TARGET_S else 'TOO SLOW'}")
    one = measure(build(args.dir / f"v{args.memory_visits}_k1", args.memory_visits, 1))
    two = measure(build(args.dir / f"v{args.memory_visits}_k2", args.memory_visits, 2))
    extra_rows = two["images"] - one["images"]
    per_row = (two["peak_rss_mib"] - one["peak_rss_mib"]) * 2**20 / extra_rows
    ratio = per_row / two["image_row_bytes"]
    print(f"(b) {args.memory_visits:,} visits: 1 image/visit peak {one['peak_rss_mib']:.0f} MiB, 2 images/visit "
          f"{two['peak_rss_mib']:.0f} MiB: {per_row:.0f} bytes per extra image row vs {two['image_row_bytes']:.0f} "
          f"bytes per validated row in memory = {ratio:.2f}x -> target <= {TARGET_RATIO:.0f}x: "
          f"{'OK' if ratio <= TARGET_RATIO else 'GROWS'}")
    return 0 if a["seconds"] < TARGET_S and ratio <= TARGET_RATIO else 1


if __name__ == "__main__":
    sys.exit(main())
