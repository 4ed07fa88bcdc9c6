"""What the side-by-side benchmarks share: their command-line knobs, the cached bench images and the
best-of-N timing table (each path timed ``repeats`` times, alternating, the best kept)."""
from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path


def encoder_arguments(ap: argparse.ArgumentParser, images: int) -> None:
    """The knobs of the encoder benchmarks (image count, size, encoder, batch, loader workers, repeats)."""
    ap.add_argument("--images", type=int, default=images)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--encoder", default="resnet10t")
    ap.add_argument("--batch-patients", type=int, default=8)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--dir", type=Path, default=None, help="work folder (default: a temp folder)")


def cached_bench_images(work: Path, n_images: int, size: int):
    """The bench cohort (:func:`bench_predict.write_bench_cohort`) loaded, its image cache and every cached
    image stacked in memory: ``(cohort, cache_root, tensors)``."""
    import numpy as np
    import torch

    from bench_predict import write_bench_cohort
    from raoutcome.cohort import load
    from raoutcome.imaging.cache import ImageCache

    cohort = load(write_bench_cohort(work / "cohort", n_images, size))
    cache_root = work / "cache"
    cache = ImageCache(cache_root, size)
    rows = cohort.images
    tensors = torch.from_numpy(np.stack([cache.get(cohort.image_path(p), v) for p, v in zip(rows["path"], rows["view"])]))
    return cohort, cache_root, tensors


def best_of(paths: dict[str, Callable[[], float]], repeats: int, target: float, title: str) -> float:
    """Time each path ``repeats`` times, alternating, after one warm-up of the first; print the table of
    img/s (best and every run) and the ratio of the second path's best to the first's; return the ratio."""
    first, second = list(paths)
    paths[first]()  # warm-up (allocator, oneDNN kernels)
    results: dict[str, list[float]] = {k: [] for k in paths}
    for _ in range(repeats):
        for k, fn in paths.items():
            results[k].append(fn())
    best = {k: max(v) for k, v in results.items()}
    ratio = best[second] / best[first]
    print(title)
    print(f"{'path':<16}{'img/s (best)':>14}{'runs':>28}")
    for k, v in results.items():
        print(f"{k:<16}{best[k]:>14.1f}{'  '.join(f'{x:.1f}' for x in v):>28}")
    print(f"{'ratio':<16}{ratio:>14.3f}   target >= {target}  {'OK' if ratio >= target else 'BELOW TARGET'}")
    return ratio
