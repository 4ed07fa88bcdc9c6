"""Benchmark (c): peak memory of `predict` on 10 000 vs 1 000 images.

Each size runs in its own subprocess (fresh interpreter), which loads the cohort, predicts
every visit with the streaming predictor (image cache, DataLoader in the same process so
every byte counts) and writes the Predictions netCDF, then reports its peak resident set
size (``resource.getrusage(RUSAGE_SELF).ru_maxrss``). Tiny images (32 px) and a tiny
encoder keep it quick; what is measured is whether memory grows with the cohort.

Ratio = peak RSS(10 000) / peak RSS(1 000); target <= 1.2.

    python benchmarks/bench_predict_memory.py [--small 1000] [--large 10000] [--size 32]
"""
from __future__ import annotations

import argparse
import json
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

    cohort = load(cohort_dir)
    torch.manual_seed(0)
    model = LongitudinalOutcomeModel(ModelSpec(encoder=encoder, d_model=64, layers=1)).eval()
    start = time.perf_counter()
    write_predictions([PredictionGroup([model], cohort.patient_ids)], cohort,
                      lambda: ImageCache(out.parent / f"cache_{out.stem}", size), out, 16, 0,
                      torch.device("cpu"), amp=False, attrs={"run": "bench"})
    seconds = time.perf_counter() - start
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"images": len(cohort.images), "peak_rss_mib": peak_kib / 1024, "seconds": seconds}))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small", type=int, default=1000)
    ap.add_argument("--large", type=int, default=10000)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--encoder", default="test_efficientnet")
    ap.add_argument("--dir", type=Path, default=None, help="work folder (default: a temp folder)")
    ap.add_argument("--child", nargs=2, metavar=("COHORT", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        child(Path(args.child[0]), Path(args.child[1]), args.size, args.encoder)
        return 0

    work = args.dir or Path(tempfile.mkdtemp(prefix="raoutcome_bench_mem_"))
    rows = []
    for n in (args.small, args.large):
        cohort = write_bench_cohort(work / f"cohort_{n}", n, args.size)
        cmd = [sys.executable, __file__, "--size", str(args.size), "--encoder", args.encoder,
               "--child", str(cohort), str(work / f"pred_{n}.nc")]
        done = subprocess.run(cmd, capture_output=True, text=True, check=True)
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    ratio = rows[1]["peak_rss_mib"] / rows[0]["peak_rss_mib"]
    print(f"predict peak RSS, {args.size}px images, encoder {args.encoder}, one process (no DataLoader workers)")
    print(f"{'images':>8}{'peak RSS MiB':>16}{'seconds':>10}")
    for r in rows:
        print(f"{r['images']:>8}{r['peak_rss_mib']:>16.1f}{r['seconds']:>10.1f}")
    print(f"{'ratio':>8}{ratio:>16.3f}   target <= {TARGET}  {'OK' if ratio <= TARGET else 'ABOVE TARGET'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
