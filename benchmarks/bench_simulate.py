"""Time the simulator: 1 000 patient-visits with two 256x256 hand views (2 000 DICOM images).

Target: < 60 s on the project machine (2 cores). Run: ``python benchmarks/bench_simulate.py``
(``--patients N --size S --workers W --format png`` to vary it).
"""
from __future__ import annotations

import argparse
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path

import pandas as pd

from raoutcome.synth import simulate
from raoutcome.synth.config import from_dict


def _cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--patients", type=int, default=250)  # x 4 scheduled visits = 1 000 patient-visits
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--format", default="dicom")
    a = ap.parse_args()
    cfg = from_dict({
        "seed": 1, "n_patients": a.patients, "image_size": a.size, "workers": a.workers, "image_format": a.format,
        "visits": {"times_years": [0.0, 1.0, 2.0, 3.0], "dropout": 0.0},
        "missing": {"view": 0.0}, "outcomes": {"hazard": {"dropout_rate": 0.0}},
    })
    tmp = Path(tempfile.mkdtemp(prefix="bench_sim_"))
    try:
        t0, c0 = time.perf_counter(), _cpu()
        out = simulate(None, tmp / "cohort", config=cfg)
        dt, cpu = time.perf_counter() - t0, _cpu() - c0
        n_visits = len(pd.read_csv(out / "visits.csv"))
        n_images = len(pd.read_csv(out / "images.csv"))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"simulate: {n_visits} patient-visits, {n_images} images of {a.size}x{a.size} ({a.format}), "
          f"{a.workers} workers: {dt:.1f} s wall ({n_images / dt:.1f} images/s), {cpu:.1f} s CPU in all "
          f"processes ({1000 * cpu / max(n_images, 1):.0f} ms/image); load average {os.getloadavg()[0]:.1f}; "
          f"target < 60 s wall for 1000 visits on 2 idle cores")


if __name__ == "__main__":
    main()
