"""Shared test fixtures. Keep this file small and generic; add module-specific fixtures in your own test files."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest


def pytest_configure(config):
    """Under pytest-xdist (``make test``) each worker gets its share of the cores as torch threads, so the
    workers do not oversubscribe the machine (``PYTEST_XDIST_WORKER_COUNT`` is set by xdist in each worker;
    the CLI subprocesses some tests start inherit ``OMP_NUM_THREADS``)."""
    import os

    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:
        import torch

        threads = max(1, (os.cpu_count() or 1) // workers)
        os.environ.setdefault("OMP_NUM_THREADS", str(threads))  # the CLI subprocesses some tests start
        torch.set_num_threads(threads)


def pytest_collection_modifyitems(config, items):
    """``stress`` tests (long property, fault and load runs) run only under ``make stress`` (RAOUTCOME_STRESS=1)."""
    import os

    if os.environ.get("RAOUTCOME_STRESS") == "1":
        return
    skip = pytest.mark.skip(reason="stress run: make stress (RAOUTCOME_STRESS=1)")
    for item in items:
        if "stress" in item.keywords:
            item.add_marker(skip)


def load_analysis(name: str):
    """The script ``analyses/<name>.py`` imported as a module (the analyses are scripts, not a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, Path(__file__).resolve().parents[1] / "analyses" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


#: The smallest model a run trains on CPU in seconds (timm's test_efficientnet at 32 px); a config goes on with
#: more ``[model]`` keys or the next section.
TINY_MODEL_TOML = """
[model]
encoder = "test_efficientnet"
image_size = 32
d_model = 16
attention_heads = 2
layers = 1
"""


def write_tiny_cohort(root: Path, n_patients: int = 6, n_visits: int = 3, size: int = 64) -> Path:
    """Write a small valid manifest folder (CSV tables + grayscale PNGs) into ``root`` and return it.

    Patients ``p1..pN`` with visits ``v0..`` at 0, 1, 2, ... years (plus a little jitter),
    ``hand_left`` and ``hand_right`` PNGs per visit, every outcome filled except a few
    gaps, a ``deformity`` event (observed for p1 and p3), a few per-joint scores and
    landmarks for the first image.
    """
    from PIL import Image

    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    pids = [f"p{i + 1}" for i in range(n_patients)]
    patients = pd.DataFrame({"patient_id": pids, "sex": ["F", "M"] * (n_patients // 2) + ["F"] * (n_patients % 2),
                             "age": rng.integers(30, 70, n_patients)})
    visits, images = [], []
    yy, xx = np.mgrid[0:size, 0:size]
    for i, pid in enumerate(pids):
        for j in range(n_visits):
            vid = f"v{j}"
            visits.append({
                "patient_id": pid, "visit_id": vid, "time_years": round(j + 0.01 * i * (j > 0), 3),
                "svdh_total": 2.0 * i + 3.0 * j, "svdh_jsn": float(i + j), "svdh_erosion": float(i + 2 * j),
                "haq": round(0.125 * ((i + j) % 8), 3), "pain": float((10 * i + j) % 100),
                "das28": round(2.0 + 0.3 * (i % 20), 2), "msasss": np.nan if j == 1 else float(j),
            })
            for view in ("hand_left", "hand_right"):
                rel = f"images/{pid}_{vid}_{view}.png"
                pixels = ((xx + yy + 7 * i + 13 * j) % 256).astype(np.uint8)
                Image.fromarray(pixels).save(root / rel)
                images.append({"patient_id": pid, "visit_id": vid, "view": view, "path": rel})
    last = (n_visits - 1) + 0.01 * np.arange(n_patients) * (n_visits > 1)
    events = pd.DataFrame({"patient_id": pids, "event": "deformity",
                           "time_years": np.where(np.isin(pids, ["p1", "p3"]), 1.5, last).round(3),
                           "observed": np.isin(pids, ["p1", "p3"]).astype(int)})
    joints = pd.DataFrame({"patient_id": "p1", "visit_id": "v0",
                           "joint": ["hand_left:MCP2", "hand_left:MCP2", "hand_right:PIP3"],
                           "kind": ["jsn", "erosion", "erosion"], "score": [1, 2, 0]})
    first = images[0]["path"]
    scale = size / 64  # landmarks lie on the image whatever its size
    landmarks = pd.DataFrame({"path": first, "landmark": ["MCP2", "PIP3", "W1"],
                              "x": [20.0 * scale, 30.5 * scale, 32.0 * scale], "y": [40.0 * scale, 20.0 * scale, 60.0 * scale]})
    for name, frame in {"patients": patients, "visits": pd.DataFrame(visits), "images": pd.DataFrame(images),
                        "events": events, "joints": joints, "landmarks": landmarks}.items():
        frame.to_csv(root / f"{name}.csv", index=False)
    return root


@pytest.fixture
def tiny_cohort(tmp_path: Path) -> Path:
    """Path of a small valid cohort folder (see :func:`write_tiny_cohort`)."""
    return write_tiny_cohort(tmp_path / "cohort")


@pytest.fixture(scope="session")
def small_study(tmp_path_factory) -> dict:
    """A small simulated study built once per session: cohort, 2-fold cross-fitted run, out-of-fold predictions
    (:func:`raoutcome.workflows.study.example_study`; returns its paths: out_dir, cohort, run, predictions)."""
    from raoutcome.workflows.study import example_study

    return example_study(tmp_path_factory.mktemp("small_study") / "study")
