"""Benchmark (a): `predict` throughput vs the bare encoder forward on the same tensors.

Side by side in one process, on one synthetic cohort (PNG hands, 4 visits x 2 views per
patient, preprocessed once into the image cache):

* **bare encoder**: the timm encoder alone (``model.encoder``), inference mode, on the
  cached images already in memory, in batches of as many images as one predict batch holds;
* **predict**: the streaming prediction path of ``raoutcome predict`` (DataLoader over
  patients -> image cache -> encoder + view fusion + longitudinal aggregator + heads ->
  per-batch outputs and embeddings -> Predictions written to netCDF).

Ratio = predict img/s / bare img/s; target >= 0.9. Each is timed ``--repeats`` times,
alternating, and the best of each is kept.

    python benchmarks/bench_predict.py [--images 1000] [--size 128] [--encoder resnet10t]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import best_of, cached_bench_images, encoder_arguments  # noqa: E402

TARGET = 0.9
VISITS, VIEWS = 4, ("hand_left", "hand_right")


def write_bench_cohort(root: Path, n_images: int, size: int = 128, seed: int = 0) -> Path:
    """A valid manifest folder with ``n_images`` small grayscale PNGs (4 visits x 2 views per patient)."""
    from PIL import Image

    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    n_patients = max(1, n_images // (VISITS * len(VIEWS)))
    yy, xx = np.mgrid[0:size, 0:size] / size
    base = (np.sin(12 * xx) * np.cos(9 * yy) * 0.5 + 0.5)
    visits, images, events = [], [], []
    for i in range(n_patients):
        pid = f"B{i:06d}"
        for j in range(VISITS):
            vid = f"v{j}"
            visits.append({"patient_id": pid, "visit_id": vid, "time_years": float(j) + 0.1 * rng.random() * (j > 0),
                           "svdh_total": float(rng.integers(0, 60)), "haq": 0.125 * int(rng.integers(0, 24)),
                           "pain": float(rng.integers(0, 100))})
            for view in VIEWS:
                rel = f"images/{pid}_{vid}_{view}.png"
                if not (root / rel).exists():
                    noise = rng.random((size, size)) * 0.3
                    Image.fromarray(((base * 0.7 + noise) * 255).astype(np.uint8)).save(root / rel)
                images.append({"patient_id": pid, "visit_id": vid, "view": view, "path": rel})
        events.append({"patient_id": pid, "event": "deformity", "time_years": 3.0, "observed": int(i % 3 == 0)})
    pd.DataFrame({"patient_id": [f"B{i:06d}" for i in range(n_patients)]}).to_csv(root / "patients.csv", index=False)
    pd.DataFrame(visits).to_csv(root / "visits.csv", index=False)
    pd.DataFrame(images).to_csv(root / "images.csv", index=False)
    pd.DataFrame(events).to_csv(root / "events.csv", index=False)
    return root


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    encoder_arguments(ap, images=1000)
    args = ap.parse_args(argv)

    import torch

    from raoutcome.imaging.cache import ImageCache
    from raoutcome.models import LongitudinalOutcomeModel, ModelSpec
    from raoutcome.training.predict import PredictionGroup, write_predictions

    work = args.dir or Path(tempfile.mkdtemp(prefix="raoutcome_bench_predict_"))
    cohort, cache_root, tensors = cached_bench_images(work, args.images, args.size)
    n = len(tensors)
    per_batch = args.batch_patients * VISITS * len(VIEWS)
    torch.manual_seed(0)
    model = LongitudinalOutcomeModel(ModelSpec(encoder=args.encoder, d_model=64, layers=1)).eval()
    device = torch.device("cpu")

    def bare() -> float:
        start = time.perf_counter()
        with torch.inference_mode():
            for i in range(0, n, per_batch):
                model.encoder(tensors[i:i + per_batch])
        return n / (time.perf_counter() - start)

    def predict() -> float:
        start = time.perf_counter()
        write_predictions([PredictionGroup([model], cohort.patient_ids)], cohort, lambda: ImageCache(cache_root, args.size),
                          work / "pred.nc", args.batch_patients, args.workers, device, amp=False,
                          attrs={"run": "bench"})
        return n / (time.perf_counter() - start)

    best_of({"bare encoder": bare, "predict": predict}, args.repeats, TARGET,
            f"predict vs bare encoder: {n} images {args.size}px, encoder {args.encoder}, "
            f"{per_batch} images/batch, torch threads {torch.get_num_threads()}, workers {args.workers}")
    return 0

if __name__ == "__main__":
    sys.exit(main())
