"""Benchmark: ``predict`` on 100 000 small images, memory flat, with throughput; the deep image check first.

As ``raoutcome predict`` does: the cohort is loaded with the deep image check (every image decoded,
in parallel, cached per file), then every visit is predicted by the streaming predictor (image
cache, DataLoader in the same process) and written as a Predictions netCDF. Each size runs in a
fresh interpreter that reports the check's time, the prediction's time and its peak RSS.

* memory: peak RSS(100 000 images) / peak RSS(10 000 images), target <= 1.2 (flat);
* throughput: images per second of the prediction, and of the (first, uncached) image check and
  the second (cached) one.

    python benchmarks/bench_predict_100k.py [--small 10000] [--large 100000] [--size 32]
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_predict import write_bench_cohort  # noqa: E402

TARGET = 1.2


def child(cohort_dir: Path, out: Path, size: int, encoder: str) -> None:
    import torch

    from raoutcome.cohort import load
    from raoutcome.imaging.cache import ImageCache
    from raoutcome.models import LongitudinalOutcomeModel, ModelSpec
    from raoutcome.training.predict import PredictionGroup, write_predictions

    t = time.perf_counter()
    cohort = load(cohort_dir, images=True)
    check_s = time.perf_counter() - t
    t = time.perf_counter()
    load(cohort_dir, images=True)
    cached_s = time.perf_counter() - t
    torch.manual_seed(0)
    model = LongitudinalOutcomeModel(ModelSpec(encoder=encoder, d_model=64, layers=1)).eval()
    start = time.perf_counter()
    write_predictions([PredictionGroup([model], cohort.patient_ids)], cohort,
                      lambda: ImageCache(out.parent / f"cache_{out.stem}", size), out, 16, 0,
                      torch.device("cpu"), amp=False, attrs={"run": "bench"})
    seconds = time.perf_counter() - start
    print(json.dumps({"images": len(cohort.images), "check_s": check_s, "cached_check_s": cached_s,
                      "predict_s": seconds,
                      "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small", type=int, default=10_000)
    ap.add_argument("--large", type=int, default=100_000)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--encoder", default="test_efficientnet")
    ap.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "raoutcome_bench_100k")
    ap.add_argument("--child", nargs=2, metavar=("COHORT", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        child(Path(args.child[0]), Path(args.child[1]), args.size, args.encoder)
        return 0
    rows = []
    for n in (args.small, args.large):
        t = time.perf_counter()
        cohort = write_bench_cohort(args.dir / f"cohort_{n}", n, args.size)
        print(f"cohort of {n:,} images ready in {time.perf_counter() - t:.0f} s", flush=True)
        env = dict(os.environ, RAOUTCOME_CACHE_DIR=str(args.dir / f"check_cache_{n}"))
        cmd = [sys.executable, __file__, "--size", str(args.size), "--encoder", args.encoder,
               "--child", str(cohort), str(args.dir / f"pred_{n}.nc")]
        done = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env)
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    ratio = rows[1]["peak_rss_mib"] / rows[0]["peak_rss_mib"]
    print(f"predict, {args.size}px PNGs, encoder {args.encoder}, CPU, one process; {os.cpu_count()} cores")
    print(f"{'images':>8}{'check s':>10}{'cached s':>10}{'predict s':>11}{'img/s':>8}{'peak RSS MiB':>14}")
    for r in rows:
        print(f"{r['images']:>8}{r['check_s']:>10.1f}{r['cached_check_s']:>10.1f}{r['predict_s']:>11.1f}"
              f"{r['images'] / r['predict_s']:>8.0f}{r['peak_rss_mib']:>14.1f}")
    print(f"peak RSS ratio {ratio:.3f}, target <= {TARGET}: {'OK' if ratio <= TARGET else 'ABOVE TARGET'}")
    return 0 if ratio <= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
