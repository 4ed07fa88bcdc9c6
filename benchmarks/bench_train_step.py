"""Benchmark (b): training-step throughput of the trainer vs a bare timm training loop.

Side by side in one process, same encoder, same images per step, same optimizer (AdamW):

* **bare timm**: ``timm.create_model(encoder, in_chans=1, num_classes=1)`` on cached
  images already in memory, MSE on a random target, ``zero_grad / backward / step``;
* **trainer**: :func:`raoutcome.training.trainer.fit` for one epoch on the same cohort
  (DataLoader over patients from the image cache with augmentation, encoder + view fusion
  + longitudinal aggregator + four heads + masked multitask loss with Cox, gradient
  clipping, LR schedule, the per-epoch checkpoint), no validation set.

Ratio = trainer img/s / bare img/s; target >= 0.85. Each is timed ``--repeats`` times,
alternating, and the best of each is kept.

    python benchmarks/bench_train_step.py [--images 480] [--size 128] [--encoder resnet10t]
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import best_of, cached_bench_images, encoder_arguments  # noqa: E402
from bench_predict import VIEWS, VISITS  # noqa: E402

TARGET = 0.85


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    encoder_arguments(ap, images=480)
    args = ap.parse_args(argv)

    import timm
    import torch

    from raoutcome.imaging.cache import ImageCache
    from raoutcome.imaging.dataset import Augment, PatientSequences
    from raoutcome.training.config import TrainConfig
    from raoutcome.training.distributed import DistInfo
    from raoutcome.training.trainer import fit

    work = args.dir or Path(tempfile.mkdtemp(prefix="raoutcome_bench_train_"))
    cohort, cache_root, tensors = cached_bench_images(work, args.images, args.size)
    cache = ImageCache(cache_root, args.size)
    n = len(tensors)
    per_step = args.batch_patients * VISITS * len(VIEWS)
    cfg = TrainConfig({"model": {"encoder": args.encoder, "image_size": args.size, "d_model": 64, "layers": 1},
                       "train": {"epochs": 1, "batch_patients": args.batch_patients, "num_workers": args.workers,
                                 "val_fraction": 0.0}})
    device = torch.device("cpu")

    torch.manual_seed(0)
    bare_model = timm.create_model(args.encoder, pretrained=False, in_chans=1, num_classes=1)
    bare_opt = torch.optim.AdamW(bare_model.parameters(), lr=1e-3, weight_decay=0.01)
    target = torch.randn(n, 1)

    def bare() -> float:
        bare_model.train()
        start = time.perf_counter()
        for i in range(0, n, per_step):
            loss = torch.nn.functional.mse_loss(bare_model(tensors[i:i + per_step]), target[i:i + per_step])
            bare_opt.zero_grad(set_to_none=True)
            loss.backward()
            bare_opt.step()
        return n / (time.perf_counter() - start)

    def trainer() -> float:
        member = work / "member"
        shutil.rmtree(member, ignore_errors=True)
        ds = PatientSequences(cohort, cache, augment=Augment(), seed=0)
        start = time.perf_counter()
        fit(cfg.model_spec(), cfg, ds, None, member, seed=0, device=device, dist=DistInfo(), desc="bench")
        return ds.n_images / (time.perf_counter() - start)

    best_of({"bare timm": bare, "trainer": trainer}, args.repeats, TARGET,
            f"trainer vs bare timm loop: {n} images {args.size}px, encoder {args.encoder}, {per_step} images/step, "
            f"torch threads {torch.get_num_threads()}, workers {args.workers}")
    return 0

if __name__ == "__main__":
    sys.exit(main())
