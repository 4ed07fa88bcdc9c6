"""Benchmark: landmark detection throughput vs the bare backbone forward at the same resolution.

Side by side, one process, the same detector (the shipped default unless ``--detector``), the same batch
size and input side:

* ``backbone``: ``model.backbone`` on random ``(batch, 1, size, size)`` tensors, inference mode;
* ``network``: the whole heatmap network (backbone + decoder) on the same tensors;
* ``detect``: :func:`raoutcome.workflows.landmarks.detect_cohort` on a simulated cohort of PNG hands and
  feet: reading, orientation, contrast, resizing, forward, sub-pixel decoding, Procrustes QC, the table
  (what ``raoutcome landmarks detect`` does: the local refinement pass runs on images of at least the
  refiner's reference side, 256 px, so not on the demo's 128-px images);
* ``detect+refine``: the same with the refinement pass forced on every image (one 64-px crop per
  landmark; what larger radiographs get), when the detector has a refiner.

It prints images/s of each, the ratio detect/backbone, and the time ``detect`` would take for a
1 000-image cohort, against the target: under :data:`TARGET_1000_S` s (a fifth of the 15-minute demo
budget on 2 cores).

    OMP_NUM_THREADS=1 python benchmarks/bench_landmarks.py [--images 64] [--batch 16] [--image-size 128]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

TARGET_1000_S = 180.0


def _timed(fn, repeat: int) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) per call, after one warm-up call."""
    fn()  # warm-up
    start, cpu = time.perf_counter(), time.process_time()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - start) / repeat, (time.process_time() - cpu) / repeat


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=64)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--detector", type=Path, default=None)
    ap.add_argument("--image-size", type=int, default=128, help="simulated radiograph side (the demo's: 128)")
    args = ap.parse_args(argv)

    import torch

    from raoutcome.cohort import load
    from raoutcome.models.landmarks import load_detector
    from raoutcome.synth import simulate
    from raoutcome.synth.config import SimulationConfig, VisitsConfig
    from raoutcome.workflows.landmarks import detect_cohort

    model = load_detector(args.detector)
    size, batch = model.spec.size, args.batch
    with tempfile.TemporaryDirectory() as tmp:
        n_pat = max(1, args.images // 4)
        cfg = SimulationConfig(seed=5, n_patients=n_pat, views=("hand_left", "hand_right", "foot_left", "foot_right"),
                               image_size=args.image_size, image_format="png", workers=1,
                               visits=VisitsConfig(times_years=(0.0,)))
        cohort = load(simulate(out_dir=Path(tmp) / "sim", config=cfg))
        n = len(cohort.images)
        x = torch.rand(batch, 1, size, size)
        with torch.inference_mode():
            t_bb, c_bb = (v / batch for v in _timed(lambda: model.backbone(x), 3))
            t_net, c_net = (v / batch for v in _timed(lambda: model(x), 3))
        start, cpu = time.perf_counter(), time.process_time()
        table = detect_cohort(cohort, model=model, batch=batch)
        t_det, c_det = (time.perf_counter() - start) / n, (time.process_time() - cpu) / n
        rows = [("backbone", t_bb, c_bb), ("network", t_net, c_net), ("detect", t_det, c_det)]
        if getattr(model, "refiner", None) is not None:
            start, cpu = time.perf_counter(), time.process_time()
            detect_cohort(cohort, model=model, batch=batch, refine=True)
            rows.append(("detect+refine", (time.perf_counter() - start) / n, (time.process_time() - cpu) / n))
    per_1000 = 1000 * t_det
    threads = torch.get_num_threads()
    print(f"landmark detection, {args.image_size}-px radiographs, input {size} px, batch {batch}, "
          f"{torch.get_num_threads()} threads, {n} images "
          f"({len(table)} landmarks)")
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (other processes slow the wall times)")
    print(f"{'':<14}{'images/s':>10}{'ms/image':>10}{'CPU ms/image':>14}")
    for name, t, c in rows:
        print(f"{name:<14}{1 / t:>10.1f}{1000 * t:>10.1f}{1000 * c:>14.1f}")
    print(f"detect / backbone throughput: {t_bb / t_det:.2f}")
    print(f"1 000 images: {per_1000:.0f} s wall (target < {TARGET_1000_S:.0f} s): "
          f"{'met' if per_1000 < TARGET_1000_S else 'NOT met'}; on {threads} free cores: about "
          f"{1000 * c_det / threads:.0f} s (CPU time / {threads})")
    if len(rows) > 3:
        print(f"1 000 images with refinement forced: {1000 * rows[3][1]:.0f} s wall, "
              f"{1000 * rows[3][2] / threads:.0f} s on {threads} free cores")
    return 0


if __name__ == "__main__":
    sys.exit(main())
