"""A checkpoint written before the outcome/view registry (tests/fixtures/ckpt_v0, made by
tests/fixtures/make_ckpt_v0.py at commit 0631eee) loads with ``weights_only=True`` and predicts what it
predicted then."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from fixtures.make_ckpt_v0 import fixture_cohort
from raoutcome.predictions import load_predictions, to_frame
from raoutcome.training import predict_run

FIXTURES = Path(__file__).resolve().parent / "fixtures"




def test_pre_registry_checkpoint_loads_weights_only_and_predicts_identically(tmp_path):
    torch.set_num_threads(1)
    saved = torch.load(FIXTURES / "ckpt_v0" / "fold_0" / "best.pt", map_location="cpu", weights_only=True)
    assert {"model", "spec"} <= set(saved)
    run = tmp_path / "run"
    shutil.copytree(FIXTURES / "ckpt_v0", run)
    cohort = fixture_cohort(tmp_path / "cohort")
    got = to_frame(load_predictions(predict_run(run, cohort, tmp_path / "pred.nc")))
    want = pd.read_csv(FIXTURES / "ckpt_v0" / "predictions.csv", dtype={"patient_id": str, "visit_id": str})
    key = ["patient_id", "visit_id"]
    got, want = got.sort_values(key).reset_index(drop=True), want.sort_values(key).reset_index(drop=True)
    assert got[key].equals(want[key])
    for name in ("time_years", "svdh", "jsn", "erosion", "haq", "pain", "risk"):
        assert want[name].notna().all(), name
        np.testing.assert_allclose(got[name].to_numpy(), want[name].to_numpy(), rtol=1e-5, atol=1e-4, err_msg=name)
