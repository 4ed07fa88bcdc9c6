"""Run the benchmarks (``make bench``): the three ratio targets of the trainer/predictor, then optionally
the simulator and manifest-validation timings.

Each benchmark runs in its own interpreter (``python benchmarks/bench_*.py``) with its defaults, so one
cannot warm another's caches or allocator; their tables are printed as they come. Exit 1 when a
benchmark fails to run (a ratio below its target is reported by the benchmark itself, not an error).

* (a) ``bench_predict.py``: ``predict`` throughput / bare encoder forward, target >= 0.9;
* (b) ``bench_train_step.py``: training-step throughput / a bare timm loop, target >= 0.85;
* (c) ``bench_predict_memory.py``: peak RSS of ``predict`` on 10 000 / 1 000 images, target <= 1.2;
* with ``--all``: ``bench_simulate.py`` (1 000 patient-visits < 60 s) and ``bench_validate.py``
  (100 000-visit manifest loaded < 5 s; writes 200 000 small files once).

    python benchmarks/run_all.py [--all]
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RATIOS = ("bench_predict.py", "bench_train_step.py", "bench_predict_memory.py")
TIMINGS = ("bench_simulate.py", "bench_validate.py")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--all", action="store_true", help="also the simulator and validation timings")
    args = ap.parse_args(argv)
    failed = []
    for script in RATIOS + (TIMINGS if args.all else ()):
        print(f"\n== {script}", flush=True)
        start = time.perf_counter()
        code = subprocess.call([sys.executable, str(HERE / script)])
        print(f"(exit {code}, {time.perf_counter() - start:.0f} s)", flush=True)
        if code != 0:
            failed.append(script)
    if failed:
        print(f"\nfailed to run: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
