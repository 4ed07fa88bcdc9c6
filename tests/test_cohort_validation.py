"""One bad cohort per validation rule: each problem names file, row, column and value."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import pandas as pd
import pytest

from raoutcome.cohort import load, validate
from raoutcome.errors import CohortValidationError, Problem


def edit(root: Path, table: str, fn: Callable[[pd.DataFrame], pd.DataFrame | None]) -> None:
    path = root / f"{table}.csv"
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    out = fn(frame)
    (frame if out is None else out).to_csv(path, index=False)


def setcell(table: str, row: int, column: str, value: str):
    """Set a cell by 1-based data row."""
    def apply(root: Path) -> None:
        def fn(df: pd.DataFrame) -> None:
            df.loc[row - 1, column] = value
        edit(root, table, fn)
    return apply


def append(table: str, **values: str):
    def apply(root: Path) -> None:
        edit(root, table, lambda df: pd.concat([df, pd.DataFrame([values])], ignore_index=True).fillna(""))
    return apply


def drop_column(table: str, column: str):
    def apply(root: Path) -> None:
        edit(root, table, lambda df: df.drop(columns=[column]))
    return apply


def image_file(row: int, action: str):
    def apply(root: Path) -> None:
        rel = pd.read_csv(root / "images.csv", dtype=str).loc[row - 1, "path"]
        target = root / rel
        target.unlink()
        if action == "empty":
            target.write_bytes(b"")
        elif action == "directory":
            target.mkdir()
    return apply


def dates_for_visits(root: Path) -> None:
    def fn(df: pd.DataFrame) -> pd.DataFrame:
        df["date"] = [f"{2015 + int(v[1:])}-03-01" for v in df["visit_id"]]
        df.loc[4, "date"] = "2020-13-45"
        return df.drop(columns=["time_years"])
    edit(root, "visits", fn)


def event_dates_without_visit_dates(root: Path) -> None:
    def fn(df: pd.DataFrame) -> pd.DataFrame:
        df["date"] = "2021-06-01"
        return df.drop(columns=["time_years"])
    edit(root, "events", fn)


# (id, mutation, file, row, column, value, message fragment)
CASES = [
    ("missing-table", lambda r: (r / "events.csv").unlink(), "events.csv", None, None, None,
     "required table 'events' is missing"),
    ("missing-column", drop_column("images", "view"), "images.csv", None, "view", None,
     "missing required column 'view'"),
    ("missing-time-column", drop_column("visits", "time_years"), "visits.csv", None, "time_years", None,
     "missing a time column"),
    ("missing-value", setcell("images", 4, "patient_id", ""), "images.csv", 4, "patient_id", None,
     "missing value"),
    ("non-numeric-outcome", setcell("visits", 2, "haq", "high"), "visits.csv", 2, "haq", "high", "not a number"),
    ("non-numeric-time", setcell("visits", 3, "time_years", "soon"), "visits.csv", 3, "time_years", "soon",
     "not a number"),
    ("non-numeric-score", setcell("joints", 2, "score", "x"), "joints.csv", 2, "score", "x", "not a number"),
    ("non-numeric-event-time", setcell("events", 2, "time_years", "later"), "events.csv", 2, "time_years",
     "later", "not a number"),
    ("unparseable-date", dates_for_visits, "visits.csv", 5, "date", "2020-13-45", "not an ISO date"),
    ("duplicate-visit", setcell("visits", 2, "visit_id", "v0"), "visits.csv", 2, "visit_id", "v0",
     "duplicate (patient_id, visit_id) (first on row 1)"),
    ("duplicate-patient", append("patients", patient_id="p3", sex="F", age="50"), "patients.csv", 7,
     "patient_id", "p3", "duplicate patient_id (first on row 3)"),
    ("visit-unknown-patient", append("visits", patient_id="p99", visit_id="v0", time_years="0"), "visits.csv",
     19, "patient_id", "p99", "patient_id not found in patients"),
    ("image-unknown-visit", setcell("images", 1, "visit_id", "v9"), "images.csv", 1, "visit_id", "v9",
     "visit_id not found in visits"),
    ("image-unknown-patient", setcell("images", 2, "patient_id", "px"), "images.csv", 2, "patient_id", "px",
     "patient_id not found in patients"),
    ("event-unknown-patient", setcell("events", 3, "patient_id", "nobody"), "events.csv", 3, "patient_id",
     "nobody", "patient_id not found in patients"),
    ("joint-unknown-visit", setcell("joints", 1, "visit_id", "v7"), "joints.csv", 1, "visit_id", "v7",
     "visit_id not found in visits"),
    ("joint-unknown-patient", setcell("joints", 3, "patient_id", "p0"), "joints.csv", 3, "patient_id", "p0",
     "patient_id not found in patients"),
    ("landmark-path-not-in-images", setcell("landmarks", 2, "path", "images/other.png"), "landmarks.csv", 2,
     "path", "images/other.png", "landmark path is not listed in images"),
    ("unknown-view", setcell("images", 5, "view", "LH"), "images.csv", 5, "view", "LH", "unknown view"),
    ("missing-image-file", image_file(3, "delete"), "images.csv", 3, "path", "images/p1_v1_hand_left.png",
     "image file not found"),
    ("empty-image-file", image_file(6, "empty"), "images.csv", 6, "path", "images/p1_v2_hand_right.png",
     "image file is empty"),
    ("image-not-a-file", image_file(2, "directory"), "images.csv", 2, "path", "images/p1_v0_hand_right.png",
     "not a regular file"),
    ("outcome-above-range", setcell("visits", 4, "haq", "3.5"), "visits.csv", 4, "haq", "3.5",
     "haq out of range [0, 3]"),
    ("outcome-below-range", setcell("visits", 5, "svdh_total", "-2"), "visits.csv", 5, "svdh_total", "-2",
     "svdh_total out of range [0, 448]"),
    ("pain-above-range", setcell("visits", 6, "pain", "101"), "visits.csv", 6, "pain", "101",
     "pain out of range [0, 100]"),
    ("non-finite-outcome", setcell("visits", 7, "das28", "inf"), "visits.csv", 7, "das28", "inf", "not a number"),
    ("joint-score-above-max", setcell("joints", 2, "score", "6"), "joints.csv", 2, "score", "6",
     "score out of range [0, 5]"),
    ("jsn-score-above-max", setcell("joints", 1, "score", "5"), "joints.csv", 1, "score", "5",
     "score out of range [0, 4]"),
    ("unknown-joint", setcell("joints", 3, "joint", "hand_right:MCP9"), "joints.csv", 3, "joint",
     "hand_right:MCP9", "unknown joint"),
    ("unknown-score-kind", setcell("joints", 1, "kind", "narrowing"), "joints.csv", 1, "kind", "narrowing",
     "unknown score kind"),
    ("negative-visit-time", setcell("visits", 1, "time_years", "-0.5"), "visits.csv", 1, "time_years", "-0.5",
     "visit time is negative"),
    ("repeated-visit-time", setcell("visits", 3, "time_years", "1.0"), "visits.csv", 3, "time_years", "1.0",
     "duplicate visit time within a patient (first on row 2)"),
    ("negative-event-time", setcell("events", 4, "time_years", "-1"), "events.csv", 4, "time_years", "-1",
     "event time is negative"),
    ("observed-not-binary", setcell("events", 2, "observed", "2"), "events.csv", 2, "observed", "2",
     "observed must be 1"),
    ("observed-text", setcell("events", 5, "observed", "yes"), "events.csv", 5, "observed", "yes", "not 0 or 1"),
    ("duplicate-event", append("events", patient_id="p2", event="deformity", time_years="1", observed="1"),
     "events.csv", 7, "event", "deformity", "duplicate (patient_id, event)"),
    ("path-escapes-dotdot", setcell("images", 7, "path", "images/../../outside.png"), "images.csv", 7, "path",
     "images/../../outside.png", "leaves the cohort folder"),
    ("path-absolute", setcell("images", 8, "path", "/etc/hostname"), "images.csv", 8, "path", "/etc/hostname",
     "leaves the cohort folder"),
    ("path-windows-absolute", setcell("images", 9, "path", "C:\\xrays\\a.png"), "images.csv", 9, "path",
     "C:\\xrays\\a.png", "leaves the cohort folder"),
    ("landmark-negative", setcell("landmarks", 1, "x", "-3"), "landmarks.csv", 1, "x", "-3",
     "landmark x is negative"),
    ("landmark-non-numeric", setcell("landmarks", 3, "y", "top"), "landmarks.csv", 3, "y", "top", "not a number"),
    ("event-dates-without-visit-dates", event_dates_without_visit_dates, "events.csv", None, "date", None,
     "visits have no 'date' column"),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_each_rule_names_file_row_column_value(tiny_cohort, case):
    _, mutate, file, row, column, value, fragment = case
    mutate(tiny_cohort)
    with pytest.raises(CohortValidationError) as info:
        load(tiny_cohort)
    problems = info.value.problems
    matches = [p for p in problems if fragment in p.message and p.file == file]
    assert matches, f"no problem containing {fragment!r} in {file}:\n" + "\n".join(map(str, problems))
    p = matches[0]
    assert p.row == row and p.column == column and p.value == value, str(p)
    text = str(info.value)
    assert file in text and fragment in text
    if row is not None:
        assert f"row {row}" in str(p)
    if column is not None:
        assert f"column '{column}'" in str(p)
    if value is not None:
        assert repr(value) in str(p)


def test_valid_cohort_has_no_problems(tiny_cohort):
    assert validate(tiny_cohort) == []


def test_a_landmark_within_the_first_pixel_is_valid(tiny_cohort):
    setcell("landmarks", 1, "x", "-0.4")(tiny_cohort)  # left half of the first pixel, whose centre is 0
    assert validate(tiny_cohort) == []


def test_foot_erosion_allows_ten(tiny_cohort):
    append("joints", patient_id="p2", visit_id="v1", joint="foot_left:MTP1", kind="erosion", score="10")(tiny_cohort)
    append("joints", patient_id="p2", visit_id="v1", joint="foot_right:MTP2", kind="JSN", score="4")(tiny_cohort)
    cohort = load(tiny_cohort)
    assert cohort.joints["score"].max() == 10
    assert set(cohort.joints["kind"]) == {"jsn", "erosion"}


def test_every_problem_reported_at_once(tiny_cohort):
    setcell("visits", 2, "haq", "9")(tiny_cohort)
    setcell("images", 1, "view", "sideways")(tiny_cohort)
    setcell("events", 1, "observed", "3")(tiny_cohort)
    (tiny_cohort / "landmarks.csv").write_text("path,landmark,x\n")
    problems = validate(tiny_cohort)
    files = {p.file for p in problems}
    assert files == {"visits.csv", "images.csv", "events.csv", "landmarks.csv"}, problems


def test_problems_are_capped_per_rule(tiny_cohort):
    def many_bad(df: pd.DataFrame) -> pd.DataFrame:
        extra = pd.DataFrame({"patient_id": "p1", "visit_id": [f"x{i}" for i in range(120)],
                              "time_years": [str(10 + i) for i in range(120)], "haq": "7"})
        return pd.concat([df, extra], ignore_index=True).fillna("")
    edit(tiny_cohort, "visits", many_bad)
    problems = [p for p in validate(tiny_cohort) if "haq" in p.message]
    assert len(problems) == 51
    assert problems[-1].message.startswith("... and 70 more")
    assert problems[0].row == 19


def test_dotdot_inside_folder_is_allowed_and_normalised(tiny_cohort):
    setcell("images", 1, "path", "images/../images/./p1_v0_hand_left.png")(tiny_cohort)
    setcell("landmarks", 1, "path", "images\\p1_v0_hand_left.png")(tiny_cohort)
    cohort = load(tiny_cohort)
    assert cohort.images.loc[0, "path"] == "images/p1_v0_hand_left.png"
    assert set(cohort.landmarks["path"]) == {"images/p1_v0_hand_left.png"}


def test_check_files_false_skips_file_checks(tiny_cohort):
    os.unlink(tiny_cohort / "images" / "p2_v1_hand_left.png")
    assert any("not found" in p.message for p in validate(tiny_cohort))
    load(tiny_cohort, check_files=False)


def test_whitespace_and_blank_cells(tiny_cohort):
    setcell("visits", 2, "visit_id", " v1 ")(tiny_cohort)
    setcell("visits", 2, "haq", "")(tiny_cohort)
    cohort = load(tiny_cohort)
    assert "v1" in set(cohort.visits["visit_id"])
    assert pd.isna(cohort.visits.loc[1, "haq"])


def test_missing_folder_and_wrong_file():
    assert "no such cohort" in validate("/nonexistent/cohort")[0].message
    with pytest.raises(CohortValidationError):
        load("/nonexistent/cohort")


def test_both_csv_and_parquet_is_ambiguous(tiny_cohort):
    pd.read_csv(tiny_cohort / "events.csv").to_parquet(tiny_cohort / "events.parquet")
    problems = validate(tiny_cohort)
    assert any("both events.csv and events.parquet" in p.message for p in problems)


def test_parquet_tables_load_like_csv(tiny_cohort):
    reference = load(tiny_cohort)
    for name in ("patients", "visits", "images", "events"):
        frame = pd.read_csv(tiny_cohort / f"{name}.csv")
        (tiny_cohort / f"{name}.csv").unlink()
        frame.to_parquet(tiny_cohort / f"{name}.parquet")
    cohort = load(tiny_cohort)
    pd.testing.assert_frame_equal(cohort.visits, reference.visits)
    pd.testing.assert_frame_equal(cohort.events, reference.events)
    pd.testing.assert_frame_equal(cohort.images, reference.images)
    assert cohort.patients["patient_id"].tolist() == reference.patients["patient_id"].tolist()


def test_parquet_problems_are_located(tiny_cohort):
    frame = pd.read_csv(tiny_cohort / "visits.csv")
    frame.loc[3, "pain"] = 250.0
    (tiny_cohort / "visits.csv").unlink()
    frame.to_parquet(tiny_cohort / "visits.parquet")
    problems = validate(tiny_cohort)
    assert [(p.file, p.row, p.column, p.value) for p in problems] == [("visits.parquet", 4, "pain", 250.0)]


def test_numeric_ids_are_strings(tmp_path, tiny_cohort):
    def renumber(df: pd.DataFrame) -> None:
        df["patient_id"] = df["patient_id"].str[1:]
    for name in ("patients", "visits", "images", "events", "joints"):
        edit(tiny_cohort, name, renumber)
    cohort = load(tiny_cohort)
    assert cohort.patients["patient_id"].tolist() == ["1", "2", "3", "4", "5", "6"]
    assert all(isinstance(x, str) for x in cohort.visits["patient_id"])


def test_unreadable_csv_is_reported(tiny_cohort):
    (tiny_cohort / "events.csv").write_bytes(b"patient_id,event\n\"p1,deformity\n")
    problems = validate(tiny_cohort)
    assert any(p.file == "events.csv" and "cannot read" in p.message for p in problems)


def test_problem_str_format():
    p = Problem("visits.csv", "haq out of range [0, 3]", row=4, column="haq", value="3.5")
    assert str(p) == "visits.csv, row 4, column 'haq': haq out of range [0, 3] (value: '3.5')"
