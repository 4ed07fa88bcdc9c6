"""A tables-only cohort (simulator ``render = false``: an images table with no rows) loads for the
statistics, while training on it fails with the clear 'no images' error."""
from __future__ import annotations

from pathlib import Path

import pytest

from raoutcome.cohort import load, validate
from raoutcome.errors import InputError

TRAIN_CONFIG = Path(__file__).resolve().parents[1] / "src" / "raoutcome" / "data" / "train_demo.toml"


@pytest.fixture(scope="module")
def tables_only(tmp_path_factory) -> Path:
    from raoutcome.synth import simulate

    tmp = tmp_path_factory.mktemp("tables_only")
    (tmp / "sim.toml").write_text("seed = 3\nn_patients = 12\nrender = false\nworkers = 1\n")
    return simulate(tmp / "sim.toml", tmp / "cohort")


def test_tables_only_cohort_loads_with_no_images(tables_only):
    assert (tables_only / "images.csv").read_text().strip() == "patient_id,visit_id,view,path"
    assert not (tables_only / "images").exists()
    assert validate(tables_only) == []
    cohort = load(tables_only)  # check_files=True: there is simply nothing to check
    assert len(cohort.images) == 0 and list(cohort.images.columns) == ["patient_id", "visit_id", "view", "path"]
    assert cohort.patients["patient_id"].nunique() == 12 and len(cohort.visits) > 12
    assert cohort.visits["svdh_total"].notna().any()
    assert "Images: 0" in cohort.summary()
    assert len(cohort.subset(cohort.patients["patient_id"][:4].tolist()).images) == 0


def test_training_on_a_tables_only_cohort_fails_clearly(tables_only, tmp_path):
    from raoutcome.training import train_run

    cohort = load(tables_only)
    with pytest.raises(InputError, match="has no images to train on"):
        train_run(cohort, TRAIN_CONFIG, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_patients_and_visits_still_need_rows(tables_only, tmp_path):
    import shutil

    root = Path(shutil.copytree(tables_only, tmp_path / "cohort"))
    (root / "visits.csv").write_text((root / "visits.csv").read_text().splitlines()[0] + "\n")
    assert any("table 'visits' has no rows" in p.message for p in validate(root))


def test_site_route_on_a_cohort_without_landmarks_says_how_to_get_them(tmp_path):
    """The demo's recipe reads site by site: a cohort with images but no landmarks table is refused with the fix."""
    from conftest import write_tiny_cohort
    from raoutcome.training import train_run

    root = write_tiny_cohort(tmp_path / "cohort")
    (root / "landmarks.csv").unlink()
    with pytest.raises(InputError, match=r"raoutcome landmarks detect.*train_image\.toml"):
        train_run(load(root), TRAIN_CONFIG, tmp_path / "run")
