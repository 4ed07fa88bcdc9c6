"""The retest reading: the simulator writes it with the same reader-error model, validation checks it,
the loader carries it, and its agreement with the first reading is what the error model implies."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from raoutcome.analysis.reader_error import error_variance
from raoutcome.cohort import load
from raoutcome.cohort.validation import validate
from raoutcome.errors import CohortValidationError
from raoutcome.evaluation.agreement import bland_altman, icc
from raoutcome.synth import simulate
from raoutcome.synth.config import from_dict

TINY = dict(seed=11, n_patients=4, image_size=64, workers=1)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> Path:
    return Path(simulate(None, tmp_path_factory.mktemp("rt") / "c", config=from_dict(TINY)))


@pytest.fixture(scope="module")
def tables_only(tmp_path_factory) -> Path:
    cfg = from_dict({**TINY, "n_patients": 400, "render": False})
    return Path(simulate(None, tmp_path_factory.mktemp("rt") / "t", config=cfg))


def test_retest_tables_are_written_per_visit_and_per_joint(cohort):
    visits = pd.read_csv(cohort / "visits.csv", dtype={"patient_id": str})
    retest = pd.read_csv(cohort / "retest.csv", dtype={"patient_id": str})
    joints = pd.read_csv(cohort / "retest_joints.csv", dtype={"patient_id": str})
    read = visits.dropna(subset=["svdh_total"])
    assert list(retest.columns) == ["patient_id", "visit_id", "svdh_total", "svdh_jsn", "svdh_erosion"]
    assert set(zip(retest["patient_id"], retest["visit_id"])) == set(zip(read["patient_id"], read["visit_id"]))
    assert (retest["svdh_total"] == retest["svdh_jsn"] + retest["svdh_erosion"]).all()
    sums = joints.pivot_table(index=["patient_id", "visit_id"], columns="kind", values="score", aggfunc="sum")
    merged = retest.set_index(["patient_id", "visit_id"]).join(sums)
    assert (merged["svdh_jsn"] == merged["jsn"]).all() and (merged["svdh_erosion"] == merged["erosion"]).all()


def test_loader_carries_the_retest_tables(cohort):
    c = load(cohort)
    assert c.retest is not None and c.retest_joints is not None
    assert c.retest["svdh_total"].dtype == float
    sub = c.subset([c.patient_ids[0]])
    assert set(sub.retest["patient_id"]) == {c.patient_ids[0]}


def test_the_retest_does_not_change_any_other_table(tmp_path, cohort):
    """Its own random stream: the first reading, outcomes and images keep their bytes."""
    import hashlib

    again = Path(simulate(None, tmp_path / "again", config=from_dict(TINY)))
    for name in ("visits.csv", "joints.csv", "events.csv", "retest.csv"):
        assert hashlib.sha256((again / name).read_bytes()).digest() == hashlib.sha256((cohort / name).read_bytes()).digest()


def test_bad_retest_rows_are_named(tmp_path, cohort):
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(cohort, bad)
    retest = pd.read_csv(bad / "retest.csv", dtype=str)
    retest.loc[0, "svdh_total"] = "-3"
    retest.loc[1, "visit_id"] = "v9"
    retest.to_csv(bad / "retest.csv", index=False)
    problems = [str(p) for p in validate(bad, check_files=False)]
    assert any("retest.csv" in p and "row 1," in p and "svdh_total" in p and "-3" in p for p in problems), problems
    assert any("retest.csv" in p and "row 2," in p and "visit_id" in p for p in problems), problems
    with pytest.raises(CohortValidationError):
        load(bad, check_files=False)


def test_reader_agreement_follows_the_error_model(tables_only):
    """Each joint score is misread by ±1 with probability 0.004 + 0.02 × score, so the reading error of a
    visit's total has variance ≈ Σ_j (0.004 + 0.02 s_j) = 0.004 J + 0.02 × true total (J = 62 hand sites;
    less at score 0, where only +1 is possible, and at the joint maximum)."""
    visits = pd.read_csv(tables_only / "visits.csv", dtype={"patient_id": str})
    truth = pd.read_csv(tables_only / "truth/visits.csv", dtype={"patient_id": str})
    retest = pd.read_csv(tables_only / "retest.csv", dtype={"patient_id": str})
    pair = visits.merge(retest, on=["patient_id", "visit_id"], suffixes=("", "_2")).merge(
        truth[["patient_id", "visit_id", "svdh_total"]].rename(columns={"svdh_total": "true"}), on=["patient_id", "visit_id"])
    var, n = error_variance(pair["svdh_total"], pair["svdh_total_2"])
    expected = float((0.004 * 62 + 0.02 * pair["true"]).mean())
    assert n == len(pair) > 1000
    assert 0.6 * expected < var < 1.1 * expected
    high = pair["true"] > pair["true"].median()
    assert error_variance(pair.loc[high, "svdh_total"], pair.loc[high, "svdh_total_2"])[0] > \
        error_variance(pair.loc[~high, "svdh_total"], pair.loc[~high, "svdh_total_2"])[0]  # grows with damage
    ba = bland_altman(pair["svdh_total"], pair["svdh_total_2"])
    assert abs(ba.bias) < 3 * ba.sd / np.sqrt(ba.n)  # two readings of one reader model: no bias
    assert icc(pair[["svdh_total", "svdh_total_2"]].to_numpy()).icc > 0.97
