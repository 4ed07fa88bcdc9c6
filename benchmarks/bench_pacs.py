"""Benchmark: `pacs score` end to end (server → score → SR stored) vs bare `predict`, same images.

Side by side in one process, against a throwaway Orthanc on 127.0.0.1 (``apt-get install orthanc
orthanc-dicomweb``), with a small trained run (1 epoch on a PNG cohort; the encoder is what costs):

* ``--studies`` hospital-like studies (two hand radiographs each, ``--size`` px, 12-bit DX) are uploaded;
* **pull**: ``raoutcome pacs pull`` over DICOMweb into a cohort (for bare predict's input; timed for the record);
* **bare predict**: ``predict_run`` on the pulled cohort (models loaded, images decoded and preprocessed
  into a fresh cache, Predictions written), the same images the scorer sees;
* **score**: ``raoutcome pacs score`` over DICOMweb from scratch (fresh ledger, fresh server SRs: a new
  run name): search, retrieve, de-identify, decode, predict, build and STOW one SR per study, ledger.

Images/s of each and the ratio score/predict. With ``--memory`` the scorer's peak RSS is measured in a
child process for half and all of the studies (flat memory: the ratio stays near 1).

``--route sites``: the site route (the default recipe's), which needs hands the landmark detector can read: a site
run (1 epoch, ``cohorts/train_sites.toml``'s encoder) trained on a small simulated cohort, and studies made of the
simulator's phantom hands (another seed) as 12-bit DX. Bare predict is then the landmark detection with its QC gate
(:func:`raoutcome.interop.landmark_gate.detect_and_gate`) plus ``predict_run`` with those landmarks: what the scorer
does per chunk, without the server. ``--overlay KIND`` also stores the per-joint overlays (site route) or the
attribution overlays of a head (image route).

    python benchmarks/bench_pacs.py [--studies 60] [--size 128] [--encoder resnet10t] [--chunk 16] [--memory]
    python benchmarks/bench_pacs.py --route sites [--studies 60] [--overlay erosion]
"""
from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

TRAIN = """
[model]
encoder = "{encoder}"
image_size = {size}
[train]
epochs = 1
batch_patients = 4
num_workers = 0
[cv]
folds = 1
[predict]
batch_patients = 8
num_workers = 0
"""


def _dx_bytes(pixels: np.ndarray, study_uid: str, i: int, side: str) -> bytes:
    """One 12-bit hand DX instance (``pixels`` uint16) of study number ``i`` (patient ``i // 2``), as file bytes."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, generate_uid()
    ds.PatientID, ds.PatientName = f"MRN{i // 2:05d}", f"PATIENT^{i // 2}"
    ds.StudyDate, ds.StudyTime = f"20{10 + i % 2}0{1 + i % 9}15", "090000"
    ds.Modality, ds.BodyPartExamined, ds.ImageLaterality, ds.ViewPosition = "DX", "HAND", side, "PA"
    ds.Rows, ds.Columns = pixels.shape
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PixelSpacing = 1, "MONOCHROME2", [0.2, 0.2]
    ds.PixelData = np.ascontiguousarray(pixels, dtype=np.uint16).tobytes()
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def _study_bytes(i: int, size: int, rng) -> list[bytes]:
    """Study ``i``: two hands of random 12-bit noise (the image route's encoder cost does not depend on content)."""
    from pydicom.uid import generate_uid

    uid = generate_uid()
    return [_dx_bytes(rng.integers(0, 4096, (size, size), dtype=np.uint16), uid, i, side) for side in "LR"]


SITE_TRAIN = """
[model]
route = "sites"
[sites]
epochs = 1
batch_visits = 4
outcome_epochs = 3
[cv]
folds = 1
[train]
val_fraction = 0.25
num_workers = 0
"""


def _phantom_studies(n: int, size: int, seed: int) -> list[list[bytes]]:
    """``n`` studies of two phantom hands each (the simulator's radiographs, demo settings at ``size`` px) as
    12-bit DX, one patient per two studies."""
    from dataclasses import replace

    from pydicom.uid import generate_uid

    from raoutcome.cohort import load
    from raoutcome.imaging.io import read_image
    from raoutcome.synth import simulate
    from raoutcome.synth.config import load_config

    with tempfile.TemporaryDirectory(prefix="bench-pacs-phantom-") as tmp:
        cfg = replace(load_config(Path(__file__).resolve().parents[1] / "cohorts" / "demo.toml"),
                      n_patients=max(1, (n + 1) // 2), image_size=size, workers=1)
        cohort = load(simulate(config=cfg, out_dir=Path(tmp) / "c", seed=seed))
        images = cohort.images[cohort.images["view"].isin(["hand_left", "hand_right"])]
        studies: list[list[bytes]] = []
        for _key, group in images.groupby(["patient_id", "visit_id"], sort=True):
            if len(studies) == n:
                break
            if set(group["view"]) != {"hand_left", "hand_right"}:
                continue
            uid = generate_uid()
            studies.append([_dx_bytes(np.round(np.clip(read_image(cohort.image_path(row.path)).pixels, 0, 1) * 4095),
                                      uid, len(studies), "L" if row.view == "hand_left" else "R")
                            for row in group.sort_values("view").itertuples(index=False)])
    return studies


def _train_sites(work: Path, size: int, seed: int) -> Path:
    from dataclasses import replace

    from raoutcome.cohort import load
    from raoutcome.synth import simulate
    from raoutcome.synth.config import load_config
    from raoutcome.training import train_run

    cfg = replace(load_config(Path(__file__).resolve().parents[1] / "cohorts" / "demo.toml"), n_patients=8,
                  image_size=size, workers=1)
    cohort = simulate(config=cfg, out_dir=work / "train_cohort", seed=seed)
    (work / "train.toml").write_text(SITE_TRAIN)
    return train_run(load(cohort), work / "train.toml", work / "run")


def _bare_sites(run: Path, cohort, out: Path) -> None:
    """What the scorer does per chunk without the server: detect and gate the landmarks, predict with them."""
    from dataclasses import replace

    from raoutcome.interop.landmark_gate import default_detector_for, detect_and_gate
    from raoutcome.models.landmarks import load_detector
    from raoutcome.training import predict_run

    landmarks, _detected, _qc = detect_and_gate(cohort, load_detector(default_detector_for(run, None)))
    predict_run(run, replace(cohort, landmarks=landmarks), out)


def _train(work: Path, encoder: str, size: int) -> Path:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from conftest import write_tiny_cohort

    from raoutcome.cohort import load
    from raoutcome.training import train_run

    cohort = write_tiny_cohort(work / "train_cohort", n_patients=6, n_visits=2, size=size)
    (work / "train.toml").write_text(TRAIN.format(encoder=encoder, size=size))
    return train_run(load(cohort), work / "train.toml", work / "run")


def _child_rss(run: Path, url: str, state: Path, limit: int, env: dict) -> float:
    import shutil

    # a copy of the run under another name: another algorithm key, so the child scores afresh
    run = Path(shutil.copytree(run, state.parent / f"{state.name}_run"))
    code = ("import resource, sys; from raoutcome.interop.credentials import server_spec; "
            "from raoutcome.interop.score import score; "
            f"s = score({str(run)!r}, server_spec({url!r}), state={str(state)!r}, limit={limit}); "
            "print(s.stored, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=1800)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    stored, rss_kb = out.stdout.split()[-2:]
    return int(rss_kb) / 1024


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--studies", type=int, default=60)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--encoder", default="resnet10t")
    ap.add_argument("--chunk", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--memory", action="store_true", help="also peak RSS of the scorer at half / all studies")
    ap.add_argument("--route", choices=("image", "sites"), default="image")
    ap.add_argument("--overlay", default=None, help="also store overlays: a head (image) or a joint kind (sites)")
    args = ap.parse_args(argv)

    from raoutcome.interop import testserver

    reason = testserver.available()
    if reason:
        print(f"skipped: {reason}")
        return 0
    import torch

    from raoutcome.cohort import load
    from raoutcome.interop.credentials import server_spec
    from raoutcome.interop.pull import pull
    from raoutcome.interop.score import score
    from raoutcome.training import predict_run

    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    with tempfile.TemporaryDirectory(prefix="bench-pacs-") as tmp, testserver.Orthanc() as pacs:
        work = Path(tmp)
        os.environ["RAOUTCOME_PACS_USER"], os.environ["RAOUTCOME_PACS_PASSWORD"] = pacs.user, pacs.password
        if args.route == "sites":
            run = _train_sites(work, args.size, args.seed + 1)
            studies = _phantom_studies(args.studies, args.size, args.seed + 2)
            if len(studies) < args.studies:
                raise SystemExit(f"only {len(studies)} phantom studies with both hands")
        else:
            run = _train(work, args.encoder, args.size)
            studies = [_study_bytes(i, args.size, rng) for i in range(args.studies)]
        for blobs in studies:
            for blob in blobs:
                pacs.upload_bytes(blob)
        spec = server_spec(pacs.dicomweb_url)
        n_images = 2 * args.studies

        t0 = time.perf_counter()
        pulled = pull(spec, work / "pulled")
        t_pull = time.perf_counter() - t0
        assert pulled.images == n_images, pulled

        t0 = time.perf_counter()
        if args.route == "sites":
            _bare_sites(run, load(work / "pulled"), work / "bare.nc")
        else:
            predict_run(run, load(work / "pulled"), work / "bare.nc")
        t_predict = time.perf_counter() - t0

        t0 = time.perf_counter()
        summary = score(run, spec, state=work / "state", chunk=args.chunk, overlay=args.overlay)
        t_score = time.perf_counter() - t0
        assert summary.stored + summary.unusable == args.studies and summary.failed == 0, summary

        rows = [("pull (DICOMweb → cohort)", t_pull), ("bare predict (cohort → Predictions)", t_predict),
                ("pacs score (server → score → SR stored)", t_score)]
        what = "site route (landmarks detected)" if args.route == "sites" else f"encoder {args.encoder}"
        print(f"{args.studies} studies, {n_images} images of {args.size} px, {what}, chunk {args.chunk}, torch "
              f"threads {torch.get_num_threads()}, seed {args.seed}; {summary.stored} SRs stored, "
              f"{summary.unusable} studies unusable, {summary.images} images scored"
              + (f", {summary.overlays} overlays ({args.overlay})" if args.overlay else ""))
        print(f"{'path':45s} {'seconds':>8s} {'images/s':>9s}")
        for name, sec in rows:
            print(f"{name:45s} {sec:8.2f} {n_images / sec:9.2f}")
        print(f"ratio score / bare predict (images/s): {t_predict / t_score:.3f}")
        print("pacs score, seconds per step (build/store SR run in a worker thread beside the next chunk's "
              "retrieve and predict, so steps overlap): " + ", ".join(f"{k} {v:.2f}" for k, v in summary.phases.items()))
        if args.memory:
            env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
            half = _child_rss(run, pacs.dicomweb_url, work / "mem_half", args.studies // 2, env)
            full = _child_rss(run, pacs.dicomweb_url, work / "mem_full", args.studies, env)
            print(f"peak RSS of pacs score: {half:.0f} MiB ({args.studies // 2} studies), {full:.0f} MiB "
                  f"({args.studies} studies), ratio {full / half:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
