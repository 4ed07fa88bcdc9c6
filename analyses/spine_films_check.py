"""Issue 24 item 4 plumbing check: `detect_film_corners` on a plain folder of phantom lateral lumbar films.

A tiny detector (mobilenetv3_small_050, 128 px, 250 steps, no pretrained weights) is trained on 24 phantom AS
patients (seed 5) and run, with an untrained one of the same shape, on the lumbar films of 4 other phantom
patients (seed 6) copied into a folder without a manifest; prints the median / mean distance to the true
landmarks, the share of landmarks whose QC is ``ok`` and the per-film QC flags. The same settings as the slow
test ``tests/test_spine_films.py::test_trained_detector_finds_phantom_corners_in_a_folder``. Not a real-film
check (no lateral spine films in ../shared/data). ~80 s on one loaded core.

    PYTHONPATH=src python analyses/spine_films_check.py [--keep DIR]   # --keep: copy the overlays there
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from raoutcome.models.landmarks import DetectorSpec, LandmarkNet, channel_names, save_detector
from raoutcome.msasss import SPINE_VIEWS
from raoutcome.synth.config import VisitsConfig
from raoutcome.synth.spine_cohort import simulate_spine
from raoutcome.synth.spine_course import SpineCohortConfig
from raoutcome.workflows.landmarks import fit_from_cohorts
from raoutcome.workflows.spine_films import detect_film_corners

BACKBONE = dict(backbone="mobilenetv3_small_050", out_indices=(1, 2, 3), decoder=8)


def _cohort(path: Path, seed: int, n: int) -> Path:
    cfg = SpineCohortConfig(image_size=128, n_patients=n, seed=seed,
                            visits=VisitsConfig(times_years=(0.0,), jitter_years=0.0, dropout=0.0))
    return Path(simulate_spine(out_dir=path, config=cfg))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--keep", type=Path, default=None)
    keep = ap.parse_args().keep
    tmp = Path(tempfile.mkdtemp())
    det = tmp / "spine.safetensors"
    fit_from_cohorts([_cohort(tmp / "train", 5, 24)], det, steps=250, batch=8, size=128, pretrained=None,
                     parts=SPINE_VIEWS, backbone=BACKBONE["backbone"], log=lambda *_: None)
    torch.manual_seed(0)
    untrained = save_detector(LandmarkNet(DetectorSpec(size=128, channels=channel_names(SPINE_VIEWS),
                                                       **BACKBONE)).eval(), tmp / "r.safetensors")
    test = _cohort(tmp / "test", 6, 4)
    folder = tmp / "films"
    folder.mkdir()
    for p in sorted((test / "images").rglob("*_spine_lumbar.png")):
        shutil.copy(p, folder / p.name)
    truth = pd.read_csv(test / "landmarks.csv")
    truth["path"] = truth["path"].str.rsplit("/", n=1).str[-1]
    for name, d in (("trained", det), ("untrained", untrained)):
        run = detect_film_corners(folder, d, "spine_lumbar", tmp / name)
        b = run.landmarks.merge(truth, on=["path", "landmark"], suffixes=("", "_t"))
        e = np.hypot(b["x"] - b["x_t"], b["y"] - b["y_t"])
        print(f"{name}: median {e.median():.2f} px, mean {e.mean():.2f} px, QC ok "
              f"{(run.landmarks['qc'] == 'ok').mean():.3f}, film flags {list(run.qc['flags'])}")
        if keep is not None:
            shutil.copytree(tmp / name / "overlays", keep / name, dirs_exist_ok=True)
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
