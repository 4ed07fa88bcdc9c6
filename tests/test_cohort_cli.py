"""`raoutcome validate PATH`: summary and exit 0, or every problem and exit 2; nothing written."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from raoutcome.cli import app


def _snapshot(root: Path) -> dict[str, float]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*")}


def test_validate_good_cohort_prints_summary(tiny_cohort):
    before = _snapshot(tiny_cohort)
    result = CliRunner().invoke(app, ["validate", str(tiny_cohort)])
    assert result.exit_code == 0, result.output
    assert "Patients: 6" in result.stdout and "Images per view" in result.stdout
    assert _snapshot(tiny_cohort) == before  # validate writes nothing


def test_validate_cohort_toml_path(tiny_cohort):
    (tiny_cohort / "cohort.toml").write_text("[views]\nLH = \"hand_left\"\n")
    result = CliRunner().invoke(app, ["validate", str(tiny_cohort / "cohort.toml")])
    assert result.exit_code == 0, result.output


def test_validate_bad_cohort_lists_every_problem(tiny_cohort):
    visits = pd.read_csv(tiny_cohort / "visits.csv", dtype=str)
    visits.loc[1, "haq"] = "3.5"
    visits.loc[4, "pain"] = "lots"
    visits.to_csv(tiny_cohort / "visits.csv", index=False)
    images = pd.read_csv(tiny_cohort / "images.csv", dtype=str)
    images.loc[2, "view"] = "LH"
    images.to_csv(tiny_cohort / "images.csv", index=False)
    (tiny_cohort / images.loc[7, "path"]).unlink()
    before = _snapshot(tiny_cohort)
    result = CliRunner().invoke(app, ["validate", str(tiny_cohort)])
    assert result.exit_code == 2
    err = result.stderr
    assert "4 problem(s)" in err
    lines = [line for line in err.splitlines() if line.strip().startswith("- ")]
    assert len(lines) == 4
    expected = [
        "visits.csv, row 2, column 'haq'", "'3.5'",
        "visits.csv, row 5, column 'pain'", "'lots'",
        "images.csv, row 3, column 'view'", "'LH'",
        "images.csv, row 8, column 'path'", "image file not found",
    ]
    for fragment in expected:
        assert fragment in err, fragment
    assert "Patients:" not in result.stdout
    assert _snapshot(tiny_cohort) == before


def test_validate_missing_path(tmp_path):
    result = CliRunner().invoke(app, ["validate", str(tmp_path / "nowhere")])
    assert result.exit_code == 2
    assert "no such cohort folder" in result.stderr
