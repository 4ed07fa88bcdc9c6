"""Regression tests for the findings of issue #27, one (or a few) per finding, plus the reader rules
(encodings, delimiters, headers) that every manifest table shares."""
from __future__ import annotations

import warnings
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from raoutcome.cohort import load, validate
from raoutcome.cohort.validation import _keys
from raoutcome.errors import CohortValidationError, ConfigError
from raoutcome.readers import read_table_file, read_toml


def _csv(root: Path, table: str) -> pd.DataFrame:
    return pd.read_csv(root / f"{table}.csv", dtype=str, keep_default_na=False)


def _problems(root: Path) -> list:
    return validate(root)


def _one(problems, file: str, fragment: str):
    hits = [p for p in problems if p.file == file and fragment in p.message]
    assert hits, f"no {fragment!r} in {file}:\n" + "\n".join(map(str, problems))
    return hits[0]


# ----------------------------------------------------------------- crash: nested parquet columns
@pytest.mark.parametrize("kind", ["list", "map", "struct"])
def test_parquet_list_map_struct_columns_are_input_errors(tiny_cohort, kind):
    visits = _csv(tiny_cohort, "visits")
    n = len(visits)
    if kind == "list":
        extra = pa.array([[1, 2]] * n, type=pa.list_(pa.int64()))
    elif kind == "map":
        extra = pa.array([[("a", 1)]] * n, type=pa.map_(pa.string(), pa.int64()))
    else:
        extra = pa.array([{"a": 1}] * n, type=pa.struct([("a", pa.int64())]))
    table = pa.Table.from_pandas(visits, preserve_index=False).append_column("scores", extra)
    (tiny_cohort / "visits.csv").unlink()
    pq.write_table(table, tiny_cohort / "visits.parquet")
    p = _one(_problems(tiny_cohort), "visits.parquet", f"column holds {kind}")
    assert p.column == "scores"
    # the id column itself holding lists is refused the same way
    table2 = pa.Table.from_pandas(visits.drop(columns=["visit_id"]), preserve_index=False).append_column(
        "visit_id", pa.array([["v0"]] * n, type=pa.list_(pa.string())))
    pq.write_table(table2, tiny_cohort / "visits.parquet")
    assert _one(_problems(tiny_cohort), "visits.parquet", "column holds lists").column == "visit_id"


# ----------------------------------------------------------------- accepted but wrong
def test_duplicate_csv_header_is_refused_not_renamed(tiny_cohort):
    text = (tiny_cohort / "visits.csv").read_text().splitlines()
    text[0] = text[0].replace("pain", "haq")
    (tiny_cohort / "visits.csv").write_text("\n".join(text) + "\n")
    p = _one(_problems(tiny_cohort), "visits.csv", "duplicate column name")
    assert p.column == "haq" and "both named 'haq'" in p.message


@pytest.mark.parametrize("char", ["\x00", "\x01", "\x1f", "\x7f", "\x85"])
def test_nul_and_control_characters_are_refused_with_their_position(tiny_cohort, char):
    images = _csv(tiny_cohort, "images")
    images.loc[2, "path"] = images.loc[2, "path"][:7] + char + images.loc[2, "path"][7:]
    images.to_csv(tiny_cohort / "images.csv", index=False)
    p = _one(_problems(tiny_cohort), "images.csv", "control character")
    assert (p.row, p.column) == (3, "path")
    assert f"U+{ord(char):04X} at position 8" in p.message


def test_control_characters_in_parquet_are_refused(tiny_cohort):
    patients = _csv(tiny_cohort, "patients")
    patients.loc[1, "patient_id"] = "p2\x00x"
    (tiny_cohort / "patients.csv").unlink()
    patients.to_parquet(tiny_cohort / "patients.parquet")
    p = _one(_problems(tiny_cohort), "patients.parquet", "control character U+0000")
    assert (p.row, p.column) == (2, "patient_id")


@pytest.mark.parametrize("table,column", [("visits", "time_years"), ("visits", "haq"), ("visits", "svdh_total"),
                                          ("events", "time_years"), ("visits", "das28")])
def test_huge_values_are_checked_against_ranges(tiny_cohort, table, column):
    frame = _csv(tiny_cohort, table)
    frame.loc[1, column] = "1e308"
    frame.to_csv(tiny_cohort / f"{table}.csv", index=False)
    problems = _problems(tiny_cohort)
    hits = [p for p in problems if p.file == f"{table}.csv" and p.row == 2 and p.column == column]
    assert hits and ("range" in hits[0].message or "plausible maximum" in hits[0].message), problems


def test_key_join_cannot_collide():
    a = pd.DataFrame({"patient_id": ["a\x1fb", "a"], "visit_id": ["c", "b\x1fc"]})
    keys = _keys(a, ["patient_id", "visit_id"])
    assert keys.iloc[0] != keys.iloc[1]
    b = pd.DataFrame({"patient_id": ["ab", "a"], "visit_id": ["c", "bc"]})
    assert _keys(b, ["patient_id", "visit_id"]).nunique() == 2


def test_landmarks_beyond_their_image_are_refused(tiny_cohort):
    lm = _csv(tiny_cohort, "landmarks")
    lm.loc[0, "x"] = "63.4"   # inside a 64-pixel image
    lm.loc[1, "y"] = "64.0"   # beyond its last pixel (63.5)
    lm.loc[2, "x"] = "5000"
    lm.to_csv(tiny_cohort / "landmarks.csv", index=False)
    with pytest.raises(CohortValidationError) as info:
        load(tiny_cohort, images=True)
    off = [p for p in info.value.problems if "beyond the image's last pixel" in p.message]
    assert sorted((p.row, p.column) for p in off) == [(2, "y"), (3, "x")]
    assert "64 pixels" in off[0].message


# ----------------------------------------------------------------- refused but valid
NA_IDS = ["NA", "None", "nan", "null", "N/A"]


def test_na_like_strings_are_real_ids(tiny_cohort):
    mapping = {f"p{i + 1}": na for i, na in enumerate(NA_IDS)}
    for table in ("patients", "visits", "images", "events", "joints"):
        frame = _csv(tiny_cohort, table)
        frame["patient_id"] = frame["patient_id"].map(lambda v: mapping.get(v, v))
        if "visit_id" in frame:
            frame.loc[frame["visit_id"] == "v0", "visit_id"] = "NA"
        frame.to_csv(tiny_cohort / f"{table}.csv", index=False)
    cohort = load(tiny_cohort)
    assert set(NA_IDS) <= set(cohort.patients["patient_id"])
    assert "NA" in set(cohort.visits["visit_id"])
    # and an NA-like string in a numeric column is not silently missing
    visits = _csv(tiny_cohort, "visits")
    visits.loc[0, "haq"] = "NA"
    visits.to_csv(tiny_cohort / "visits.csv", index=False)
    p = _one(_problems(tiny_cohort), "visits.csv", "not a number")
    assert (p.row, p.column, p.value) == (1, "haq", "NA")


def test_empty_cell_is_missing(tiny_cohort):
    visits = _csv(tiny_cohort, "visits")
    visits.loc[0, "haq"] = ""
    visits.to_csv(tiny_cohort / "visits.csv", index=False)
    cohort = load(tiny_cohort)
    assert cohort.visits["haq"].isna().sum() == 1


def test_file_name_ending_in_a_space_is_accepted(tiny_cohort):
    images = _csv(tiny_cohort, "images")
    old = images.loc[0, "path"]
    (tiny_cohort / old).rename(tiny_cohort / (old + " "))
    images.loc[0, "path"] = old + " "
    images.to_csv(tiny_cohort / "images.csv", index=False)
    lm = _csv(tiny_cohort, "landmarks")
    lm["path"] = old + " "
    lm.to_csv(tiny_cohort / "landmarks.csv", index=False)
    cohort = load(tiny_cohort)
    assert set(cohort.landmarks["path"]) == {old + " "}
    assert (old + " ") in set(cohort.images["path"])
    # a stray space around an existing name is still forgiven
    images.loc[0, "path"] = old + " "
    images.loc[1, "path"] = " " + images.loc[1, "path"]
    images.to_csv(tiny_cohort / "images.csv", index=False)
    assert load(tiny_cohort).images.loc[lambda d: d["path"].str.startswith(" ")].empty


# ----------------------------------------------------------------- noise
def test_500_extra_columns_give_no_performance_warning(tiny_cohort):
    images = _csv(tiny_cohort, "images")
    extra = pd.DataFrame({f"extra_{i}": [str(i)] * len(images) for i in range(500)})
    pd.concat([images, extra], axis=1).to_csv(tiny_cohort / "images.csv", index=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cohort = load(tiny_cohort)
    assert cohort.images.shape[1] == 504


# ----------------------------------------------------------------- reader rules shared by every table
def _rewrite(root: Path, table: str, encoding: str, sep: str = ",", newline: str = "\n",
             prefix: str = "") -> None:
    frame = _csv(root, table)
    text = frame.to_csv(index=False, sep=sep, lineterminator=newline)
    (root / f"{table}.csv").write_bytes(prefix.encode("ascii") + text.encode(encoding))


@pytest.mark.parametrize("encoding,sep,newline,prefix", [
    ("utf-8-sig", ",", "\r\n", ""),      # Excel "CSV UTF-8"
    ("utf-16", "\t", "\r\n", ""),        # Excel "Unicode text"
    ("cp1252", ";", "\r\n", ""),         # European Excel "CSV"
    ("utf-8", ";", "\n", "sep=;\n"),     # Excel's sep= directive
    ("utf-8", ",", "\r", ""),            # old Mac line ends
])
def test_excel_exports_read_like_the_original(tiny_cohort, encoding, sep, newline, prefix):
    patients = _csv(tiny_cohort, "patients")
    patients.loc[0, "sex"] = "Fé"  # a non-ASCII value survives the encoding
    patients.to_csv(tiny_cohort / "patients.csv", index=False)
    before = load(tiny_cohort)
    for table in ("patients", "visits", "images", "events"):
        _rewrite(tiny_cohort, table, encoding, sep, newline, prefix)
    after = load(tiny_cohort)
    for name in ("patients", "visits", "images", "events"):
        pd.testing.assert_frame_equal(getattr(before, name), getattr(after, name))
    assert after.patients.loc[0, "sex"] == "Fé"


def test_utf16_without_bom_is_refused_clearly(tiny_cohort):
    text = (tiny_cohort / "events.csv").read_text()
    (tiny_cohort / "events.csv").write_bytes(text.encode("utf-16-le"))
    _one(_problems(tiny_cohort), "events.csv", "UTF-16")


def test_empty_column_name_over_values_is_refused(tiny_cohort):
    lines = (tiny_cohort / "events.csv").read_text().splitlines()
    lines = [lines[0] + ","] + [line + ",x" for line in lines[1:]]
    (tiny_cohort / "events.csv").write_text("\n".join(lines) + "\n")
    _one(_problems(tiny_cohort), "events.csv", "has no name")
    # a trailing delimiter over empty cells (some exports) is harmless
    lines = [line.removesuffix("x") for line in lines]
    (tiny_cohort / "events.csv").write_text("\n".join(lines) + "\n")
    assert load(tiny_cohort)


def test_row_longer_than_header_is_refused(tiny_cohort):
    lines = (tiny_cohort / "events.csv").read_text().splitlines()
    lines[3] += ",surplus"
    (tiny_cohort / "events.csv").write_text("\n".join(lines) + "\n")
    p = _one(_problems(tiny_cohort), "events.csv", "cells but the header names")
    assert p.row == 3


def test_very_long_id_is_refused(tiny_cohort):
    patients = _csv(tiny_cohort, "patients")
    patients.loc[0, "patient_id"] = "x" * 1000
    patients.to_csv(tiny_cohort / "patients.csv", index=False)
    p = _one(_problems(tiny_cohort), "patients.csv", "longer than")
    assert (p.row, p.column) == (1, "patient_id")


def test_read_table_file_returns_text_only(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("id,x\nNA,1e308\nnull,\n")
    frame, problems = read_table_file(path)
    assert problems == [] and frame.to_dict("list") == {"id": ["NA", "null"], "x": ["1e308", ""]}


def test_read_toml_tolerates_bom_and_names_the_file(tmp_path):
    good = tmp_path / "a.toml"
    good.write_bytes(b"\xef\xbb\xbfseed = 3\n")
    assert read_toml(good) == {"seed": 3}
    bad = tmp_path / "b.toml"
    bad.write_bytes(b"seed = \x00\n")
    with pytest.raises(ConfigError, match="b.toml"):
        read_toml(bad)


def test_symlink_escaping_the_cohort_is_refused(tiny_cohort, tmp_path):
    outside = tmp_path / "outside.png"
    images = _csv(tiny_cohort, "images")
    (tiny_cohort / images.loc[0, "path"]).rename(outside)
    (tiny_cohort / images.loc[0, "path"]).symlink_to(outside)
    p = _one(_problems(tiny_cohort), "images.csv", "symbolic link")
    assert p.row == 1
    # a link that stays inside the cohort is fine
    (tiny_cohort / images.loc[0, "path"]).unlink()
    outside.rename(tiny_cohort / "inside.png")
    (tiny_cohort / images.loc[0, "path"]).symlink_to(tiny_cohort / "inside.png")
    assert load(tiny_cohort)


def test_dotdot_path_escaping_is_refused(tiny_cohort):
    images = _csv(tiny_cohort, "images")
    images.loc[0, "path"] = "images/../../etc/passwd"
    images.to_csv(tiny_cohort / "images.csv", index=False)
    assert _one(_problems(tiny_cohort), "images.csv", "leaves the cohort folder").row == 1


def test_cli_paths_with_control_characters_exit_2(tmp_path):
    from typer.testing import CliRunner

    from raoutcome.cli import app

    for bad in (str(tmp_path / "a\x00b"), str(tmp_path / "a\nb"), "\x1b[31m"):
        result = CliRunner().invoke(app, ["validate", bad])
        assert result.exit_code == 2, (bad, result.output)
        assert result.exception is None or isinstance(result.exception, SystemExit)


def test_a_table_added_later_inherits_the_reader_rules(tiny_cohort):
    """The retest table (#25) came after the reader: NUL, duplicate headers, 1e308 and NA-like ids are
    handled there exactly as in the first tables."""
    from raoutcome.cohort import schema

    assert "retest" in schema.TABLES
    visits = _csv(tiny_cohort, "visits")
    retest = visits[["patient_id", "visit_id", "svdh_total"]].copy()
    retest.to_csv(tiny_cohort / "retest.csv", index=False)
    assert load(tiny_cohort).retest is not None
    retest.loc[1, "svdh_total"] = "1e308"
    retest.loc[2, "visit_id"] = "v\x001"
    retest.to_csv(tiny_cohort / "retest.csv", index=False)
    p = _one(_problems(tiny_cohort), "retest.csv", "control character U+0000")
    assert (p.row, p.column) == (3, "visit_id")
    retest.loc[2, "visit_id"] = visits.loc[2, "visit_id"]
    retest.to_csv(tiny_cohort / "retest.csv", index=False)
    p = _one(_problems(tiny_cohort), "retest.csv", "out of range")
    assert (p.row, p.column) == (2, "svdh_total")
    text = (tiny_cohort / "retest.csv").read_text().replace("svdh_total", "visit_id", 1)
    (tiny_cohort / "retest.csv").write_text(text)
    assert _one(_problems(tiny_cohort), "retest.csv", "duplicate column name").column == "visit_id"
