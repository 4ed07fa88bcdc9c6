"""The deep image check: every bad image found at once, with its images-table row; cached per file."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from hostile_files import bad_files, dicom, gradient
from raoutcome.cli import app
from raoutcome.cohort import load, validate
from raoutcome.errors import CohortValidationError
from raoutcome.imaging import check as chk


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("RAOUTCOME_CACHE_DIR", str(tmp_path / "cache"))


def test_every_kind_of_bad_file_is_named(tmp_path):
    files = bad_files(tmp_path / "bad")
    verdicts = chk.check_images([p for p, _ in files.values()], workers=1, progress=False)
    for name, (path, kind) in files.items():
        v = verdicts[str(path)]
        assert v.kind == kind, f"{name}: {v}"
        assert v.reason
    good = dicom(tmp_path / "good.dcm", gradient())
    assert chk.check_image(good).ok and chk.check_image(good).rows == 64


def test_sr_and_rtplan_reasons_say_what_they_are(tmp_path):
    files = bad_files(tmp_path / "bad")
    assert "structured report" in chk.check_image(files["sr"][0]).reason
    assert "RT plan" in chk.check_image(files["rtplan"][0]).reason
    assert "1000000 frames" in chk.check_image(files["frames"][0]).reason


def _plant(cohort: Path, tmp_path: Path) -> dict[int, str]:
    """Replace some images of the cohort by bad files; return {images row: expected kind}."""
    files = bad_files(tmp_path / "bad")
    images = pd.read_csv(cohort / "images.csv", dtype=str, keep_default_na=False)
    planted = {}
    for row, name in zip((2, 5, 9, 12, 20, 33), ("empty", "png_truncated", "sr", "colour_png", "constant", "small")):
        src, kind = files[name]
        target = cohort / images.loc[row - 1, "path"]
        target.write_bytes(src.read_bytes())
        planted[row] = kind
    return planted


def test_validate_images_reports_every_bad_image_with_its_row(tiny_cohort, tmp_path):
    planted = _plant(tiny_cohort, tmp_path)
    assert not [p for p in validate(tiny_cohort) if "image check" in p.message]  # tables only: not decoded
    problems = validate(tiny_cohort, images=True)
    found = {p.row: p for p in problems if p.file == "images.csv" and p.column == "path"}
    assert set(found) == set(planted) | ({2} if planted.get(2) == "empty" else set())
    for row, _kind in planted.items():
        assert found[row].value.startswith("images/")


def test_cli_validate_images_exit_2_listing_all(tiny_cohort, tmp_path):
    planted = _plant(tiny_cohort, tmp_path)
    result = CliRunner().invoke(app, ["validate", str(tiny_cohort), "--images"])
    assert result.exit_code == 2
    text = result.output
    for row in planted:
        assert f"images.csv, row {row}, column 'path'" in text
    assert "Traceback" not in text
    ok = CliRunner().invoke(app, ["validate", str(tiny_cohort)])
    assert ok.exit_code == 2 and "empty" in ok.output  # the stat check still sees the empty file


def test_second_check_is_served_from_the_cache(tiny_cohort, monkeypatch):
    calls = []
    monkeypatch.setattr(chk, "DEFAULT_WORKERS", 1)  # decodes counted in this process
    real = chk.check_image
    monkeypatch.setattr(chk, "check_image", lambda p: calls.append(p) or real(p))
    load(tiny_cohort, images=True)
    n_first = len(calls)
    assert n_first == 36
    load(tiny_cohort, images=True)
    assert len(calls) == n_first  # nothing decoded again
    # an edited file is decoded again; a touched (same bytes) one is recognised by its hash
    images = sorted((tiny_cohort / "images").iterdir())
    images[0].write_bytes(images[0].read_bytes()[:40])
    import os
    os.utime(images[1], ns=(1, 1))
    with pytest.raises(CohortValidationError) as info:
        load(tiny_cohort, images=True)
    assert len(calls) == n_first + 1
    assert any("image check: unreadable" in p.message or "truncated" in str(p) for p in info.value.problems)


def test_cache_in_an_unwritable_place_runs_uncached(tiny_cohort, tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    monkeypatch.setenv("RAOUTCOME_CACHE_DIR", str(blocker / "sub"))
    assert load(tiny_cohort, images=True)


def test_parallel_check_equals_serial(tmp_path):
    files = bad_files(tmp_path / "bad")
    paths = [p for p, _ in files.values()] * 1
    serial = chk.check_images(paths, workers=1, cache=False, progress=False)
    parallel = chk.check_images(paths, workers=2, cache=False, progress=False, chunk=2)
    assert serial == parallel


@pytest.mark.parametrize("command", ["train", "predict", "attribute", "joint-anomaly", "study"])
def test_commands_refuse_a_cohort_with_a_bad_image_before_any_work(tiny_cohort, tmp_path, command):
    _plant(tiny_cohort, tmp_path)
    out = tmp_path / "out"
    config = tmp_path / "train.toml"
    config.write_text("")
    study = tmp_path / "study.toml"
    study.write_text(f"[train]\nconfig = {str(config)!r}\n")
    args = {"train": ["--config", str(config)], "predict": ["--run", str(tmp_path)],
            "attribute": ["--run", str(tmp_path)], "joint-anomaly": [], "study": ["--config", str(study)]}[command]
    result = CliRunner().invoke(app, [command, "--cohort", str(tiny_cohort), "--out", str(out), *args])
    assert result.exit_code == 2 and "structured report" in result.output, result.output
    assert not out.exists()
