"""MR series in the images table: a row of an MR view points at a series folder (or one file).

Uses a view of modality "mr" registered for the test (no built-in MR view yet, see docs/dev/issue-30.md).
"""
from __future__ import annotations

import pandas as pd
import pytest

pytest.importorskip("SimpleITK")
from raoutcome import anatomy  # noqa: E402
from raoutcome.cohort import validate  # noqa: E402

from test_imaging_volume import volume_values, write_enhanced, write_series  # noqa: E402

MR_VIEW = anatomy.View("spine_cervical_mr_sag", "spine_cervical", modality="mr")


def add_rows(root, *paths):
    table = pd.read_csv(root / "images.csv", dtype=str, keep_default_na=False)
    first = table.iloc[0]
    extra = [{"patient_id": first["patient_id"], "visit_id": first["visit_id"], "view": MR_VIEW.name, "path": p}
             for p in paths]
    pd.concat([table, pd.DataFrame(extra)], ignore_index=True).to_csv(root / "images.csv", index=False)
    return len(table)  # rows before the new ones (the first new row is len + 1, 1-based)


def test_series_folder_and_enhanced_file_rows_are_valid(tiny_cohort):
    write_series(tiny_cohort / "mr" / "s1", volume_values())
    write_enhanced(tiny_cohort / "mr" / "enh.dcm", volume_values())
    add_rows(tiny_cohort, "mr/s1", "mr/enh.dcm")
    with anatomy.views_registered(MR_VIEW):
        assert validate(tiny_cohort) == []
        assert validate(tiny_cohort, images=True) == []


def test_bad_series_reported_on_its_row_with_the_file(tiny_cohort):
    paths = write_series(tiny_cohort / "mr" / "s1", volume_values(), shuffle=False)
    paths[2].unlink()  # a missing slice
    (tiny_cohort / "mr" / "empty").mkdir()
    n = add_rows(tiny_cohort, "mr/s1", "mr/empty")
    with anatomy.views_registered(MR_VIEW):
        shallow = validate(tiny_cohort)  # without decoding only the empty folder is caught
        assert [p.value for p in shallow] == ["mr/empty"], shallow
        problems = validate(tiny_cohort, images=True)
    by_value = {p.value: p for p in problems}
    assert set(by_value) == {"mr/s1", "mr/empty"}, problems
    gap = by_value["mr/s1"]
    assert gap.file == "images.csv" and gap.row == n + 1 and gap.column == "path"
    assert "gap" in gap.message and paths[3].name in gap.message
    assert by_value["mr/empty"].row == n + 2 and "holds no files" in by_value["mr/empty"].message


def test_folder_on_a_radiograph_row_is_still_refused(tiny_cohort):
    write_series(tiny_cohort / "mr" / "s1", volume_values())
    table = pd.read_csv(tiny_cohort / "images.csv", dtype=str, keep_default_na=False)
    table.loc[0, "path"] = "mr/s1"
    table.to_csv(tiny_cohort / "images.csv", index=False)
    problems = validate(tiny_cohort)
    assert any(p.row == 1 and "not a regular file" in p.message for p in problems), problems
