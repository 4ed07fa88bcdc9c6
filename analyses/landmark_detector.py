"""Train the library's default landmark detector, reproducibly (``make landmark-detector``).

Stages (each skipped when its output exists, unless ``--force``):

1. ``simulate``: two tuning cohorts of simulated hands and feet (``analyses/landmarks/sim_hands_feet.toml``),
   seed 101 at 256 px and seed 102 at 128 px (the demo's size). Every choice (input size, steps,
   augmentation, QC thresholds) was made on these seeds; the held-out check uses seeds 909/910
   (``analyses/landmark_sim_check.py``).
2. ``base``: a detector trained on the simulated images only (400 steps of 8 images at 160 px from the
   ImageNet EfficientNet-Lite0 weights; patient-grouped validation: 15 % of the patients)
   -> ``<work>/base.safetensors``. This is the "zero-shot" detector of the real-hand evaluation: it never
   saw a real radiograph.
3. ``tuned``: the base, now at 256 px input (the network is fully convolutional), fine-tuned on the
   simulated images plus the 12 real hand radiographs of ``../shared/data/real-hands`` (RSNA Pediatric
   Bone Age Challenge 2017 images, landmarks from SHS_NET, MIT; non-commercial research use with
   attribution: see docs/landmarks.md): 80 steps of 6 images, lr 3e-4, real images drawn for half of
   each batch -> ``<work>/tuned.safetensors``.
4. ``polish``: 100 more steps (lr 2e-4) with simulated images for 3/4 of each batch, because stage 3's
   simulated validation (96.9 % within 2 % of the width) was below the 98 % target (the tuning seeds'
   validation patients decided, never the held-out seeds) -> ``src/raoutcome/data/landmark_detector.safetensors``.

Without the real-hands folder the default is the base (``--real /nonexistent``: a detector that never saw
the RSNA images).

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python analyses/landmark_detector.py --work landmark_work

Time on 2 cores shared with other work (load 10-20): a minute to simulate, 3-4 s per base step, 9-13 s per
fine-tuning step; about 1.5 hours in all. On free cores several times faster.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
CONFIG = REPO / "analyses" / "landmarks" / "sim_hands_feet.toml"
REAL = REPO.parent / "shared" / "data" / "real-hands"
DEFAULT_OUT = REPO / "src" / "raoutcome" / "data" / "landmark_detector.safetensors"
TUNING = ((101, 256), (102, 128))
SIZE = 160        # the base's input side
TUNE_SIZE = 256   # the fine-tuned default's (the network is fully convolutional)
TUNE_BATCH = 6


def simulate_tuning(work: Path, seeds=TUNING, n_patients: int | None = None) -> list[Path]:
    """The simulated tuning cohorts (cached in ``work``)."""
    from raoutcome.synth import simulate
    from raoutcome.synth.config import load_config

    out = []
    for seed, size in seeds:
        target = work / f"sim_{seed}_{size}"
        if not (target / "landmarks.csv").exists():
            cfg = load_config(CONFIG).replace(seed=seed, image_size=size)
            if n_patients:
                cfg = cfg.replace(n_patients=n_patients)
            if target.exists():
                shutil.rmtree(target)
            simulate(out_dir=target, config=cfg)
        out.append(target)
    return out


def sim_samples(cohorts: list[Path], spec):
    from raoutcome.cohort import load
    from raoutcome.training.landmarks import samples_from_cohort

    samples = []
    for i, c in enumerate(cohorts):
        samples += samples_from_cohort(load(c), spec, tag=f"sim{i}:")
    return samples


def tuning_start(base_path: Path):
    """The base detector, set to take :data:`TUNE_SIZE` inputs, ready to be fine-tuned."""
    from dataclasses import replace

    from raoutcome.models.landmarks import load_detector

    model = load_detector(base_path)
    model.spec = replace(model.spec, size=TUNE_SIZE)
    return model


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=Path("landmark_work"))
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--real", type=Path, default=REAL)
    ap.add_argument("--base-steps", type=int, default=400)
    ap.add_argument("--tune-steps", type=int, default=80)
    ap.add_argument("--polish-steps", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--force", action="store_true")
    args = ap.parse_args(argv)

    import torch

    from raoutcome.models.landmarks import DetectorSpec, load_detector, save_detector
    from raoutcome.training.landmarks import fit_detector, group_split

    torch.set_num_threads(1)
    args.work.mkdir(parents=True, exist_ok=True)
    cohorts = simulate_tuning(args.work)
    spec = DetectorSpec(size=SIZE, trained_on="simulated hands and feet, seeds 101 (256 px), 102 (128 px)")
    samples = sim_samples(cohorts, spec)
    base_path = args.work / "base.safetensors"
    log = {}
    if args.force or not base_path.exists():
        print(f"base: {len(samples)} simulated images", flush=True)
        res = fit_detector(samples, spec, steps=args.base_steps, batch=8, seed=args.seed,
                           pretrained="wheel:efficientnet_lite0", eval_every=50)
        save_detector(res.model, base_path)
        log["base"] = {"history": res.history, "best": res.best, "n_images": len(samples)}
        (args.work / "base_history.json").write_text(json.dumps(log["base"], indent=1))
    if not args.real.is_dir():
        print(f"no real hands at {args.real}: the default detector is the base")
        shutil.copyfile(base_path, args.out)
        return 0
    from dataclasses import replace

    from landmarks_real_hands import real_samples

    tuned_path = args.work / "tuned.safetensors"
    model = tuning_start(base_path)
    samples = sim_samples(cohorts, model.spec)
    real = real_samples(args.real, model.spec)
    both = samples + real
    sim_val = group_split([s.group for s in samples], 0.15, args.seed)  # the base's validation patients
    if args.force or not tuned_path.exists():
        w = [1.0 / len(samples)] * len(samples) + [1.0 / len(real)] * len(real)  # real: half of the draws
        res = fit_detector(both, steps=args.tune_steps, batch=TUNE_BATCH, seed=args.seed, init=model, lr=3e-4,
                           weights=w, eval_every=50, val_groups=sim_val)
        save_detector(res.model, tuned_path)
        (args.work / "tuned_history.json").write_text(json.dumps({"history": res.history, "best": res.best}, indent=1))
    # stage 4, polish: at 256 px the simulated validation was below its 98 % (96.9 % within 2 %): more steps
    # with simulated images for 3/4 of the draws and a lower learning rate
    w = [3.0 / len(samples)] * len(samples) + [1.0 / len(real)] * len(real)
    res = fit_detector(both, steps=args.polish_steps, batch=TUNE_BATCH, seed=args.seed + 1,
                       init=load_detector(tuned_path), lr=2e-4, weights=w, eval_every=50, val_groups=sim_val)
    res.model.spec = replace(res.model.spec, trained_on=(
        "simulated hands and feet (raoutcome simulator, seeds 101/102) + 12 real hand radiographs "
        "(RSNA Pediatric Bone Age Challenge 2017, landmarks from SHS_NET; research use)"))
    save_detector(res.model, args.out)
    (args.work / "default_history.json").write_text(json.dumps({"history": res.history, "best": res.best}, indent=1))
    print(f"default detector written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
