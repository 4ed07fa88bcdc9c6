"""Hostile input, property-tested (hypothesis, fixed seed).

Properties:

1. Whatever is done to a valid cohort's tables (wrong types, encodings, Unicode and very long
   ids, huge/tiny numbers, NaN/inf strings, duplicate/empty column names, escaping paths,
   truncation, random bytes, nested Parquet columns), nothing but the library's own input
   errors comes out: :func:`validate` returns problems each naming a file, and the CLI exits
   0 or 2 with no traceback.
2. Harmless changes (row order, column order, extra columns, CRLF, BOM) keep a valid cohort
   valid and load to the same tables.
3. Whatever is done to a DICOM header (missing or wrong-VR tags, zero/negative rows, absurd
   frame counts, truncated or bloated pixels, flipped bytes), the image check returns a
   verdict and ``read_image`` raises only :class:`ImageReadError`.

The default suite runs a few dozen examples per property; ``make stress`` (``RAOUTCOME_STRESS=1``)
runs thousands, and prints how many bad inputs were generated and refused.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, seed, settings, strategies as st
from typer.testing import CliRunner

from conftest import write_tiny_cohort
from hostile_files import dicom, gradient
from raoutcome.cli import app
from raoutcome.cohort import load, validate
from raoutcome.errors import ImageReadError, Problem
from raoutcome.imaging import check as chk
from raoutcome.imaging.io import read_image

STRESS = os.environ.get("RAOUTCOME_STRESS") == "1"
SEED = int(os.environ.get("RAOUTCOME_STRESS_SEED", "27"))
N = int(os.environ.get("RAOUTCOME_STRESS_EXAMPLES", "1000")) if STRESS else 30
COMMON = dict(deadline=None, database=None,  # seeded by @seed(SEED): reproducible
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                     HealthCheck.data_too_large])
TABLES = ("patients", "visits", "images", "events", "joints", "landmarks")
COUNTS: Counter = Counter()


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    return write_tiny_cohort(tmp_path_factory.mktemp("tpl") / "cohort", n_patients=4, n_visits=2)


@pytest.fixture(scope="module", autouse=True)
def _report():
    yield
    if STRESS and COUNTS:
        print("\nSTRESS hostile-input counts:", dict(sorted(COUNTS.items())))


def _copy(template: Path) -> tuple[tempfile.TemporaryDirectory, Path]:
    tmp = tempfile.TemporaryDirectory()
    root = Path(tmp.name) / "cohort"
    shutil.copytree(template, root)
    return tmp, root


HOSTILE_VALUES = st.one_of(
    st.sampled_from(["", " ", "NA", "None", "nan", "NaN", "inf", "-inf", "Infinity", "1e308", "-1e308", "1e-320",
                     "1e999", "0x10", "1,5", "TRUE", "[1, 2]", "{'a': 1}", "..", "../x.png", "/etc/passwd",
                     "C:\\x.png", "images/../../x.png", "\x00", "a\x00b", "\x1f", "\u2028", "\ufeff", "\u202e",
                     "é", "e\u0301", "😀", "\"", "'", ",", ";", "\t", "\r", "\n", "-0", "+3", "1_000"]),
    st.text(max_size=40),
    st.text(min_size=150, max_size=2000),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
)


@st.composite
def mutation(draw):
    table = draw(st.sampled_from(TABLES))
    kind = draw(st.sampled_from(["cell", "cell", "cell", "rename", "encoding", "drop_column", "drop_row",
                                 "duplicate_row", "truncate", "random_bytes", "parquet", "parquet_nested",
                                 "empty_file", "header_only"]))
    return table, kind, draw(HOSTILE_VALUES), draw(st.integers(0, 10_000)), draw(
        st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "cp1252", "latin-1", "utf-16-le", "utf-32"]))


def _apply(root: Path, table: str, kind: str, value: str, n: int, encoding: str) -> None:
    path = root / f"{table}.csv"
    try:  # an earlier mutation may have broken or removed the file already
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except Exception:  # noqa: BLE001
        return
    if not len(frame.columns):
        return
    row, col = n % max(1, len(frame)), frame.columns[n % len(frame.columns)]
    if kind == "cell" and len(frame):
        frame.loc[row, col] = value
    elif kind == "rename":
        names = list(frame.columns)
        names[n % len(names)] = value if n % 3 else names[(n + 1) % len(names)]  # a value, or a duplicate
        frame.columns = names
    elif kind == "drop_column":
        frame = frame.drop(columns=[col])
    elif kind == "drop_row" and len(frame):
        frame = frame.drop(index=row)
    elif kind == "duplicate_row" and len(frame):
        frame = pd.concat([frame, frame.iloc[[row]]])
    if kind == "encoding":
        path.write_bytes(frame.to_csv(index=False).encode(encoding, errors="replace"))
        return
    if kind in ("parquet", "parquet_nested"):
        path.unlink()
        import pyarrow as pa
        import pyarrow.parquet as pq

        t = pa.Table.from_pandas(frame.astype(object), preserve_index=False)
        if kind == "parquet_nested":
            t = t.append_column(value[:20] or "nested", pa.array([[n]] * len(frame), type=pa.list_(pa.int64())))
        try:
            pq.write_table(t, root / f"{table}.parquet")
        except (pa.ArrowInvalid, ValueError):  # e.g. a duplicate column name pyarrow itself refuses
            pass
        return
    text = frame.to_csv(index=False)
    data = text.encode("utf-8", errors="surrogatepass")
    if kind == "truncate":
        data = data[: n % max(1, len(data))]
    elif kind == "random_bytes":
        data = np.random.default_rng(n).bytes(n % 3000)
    elif kind == "empty_file":
        data = b""
    elif kind == "header_only":
        data = data.split(b"\n", 1)[0] + b"\n"
    path.write_bytes(data)


def _check_problems(problems: list) -> None:
    for p in problems:
        assert isinstance(p, Problem)
        assert p.file and p.message
        str(p)  # formats


@seed(SEED)
@settings(max_examples=N, **COMMON)
@given(muts=st.lists(mutation(), min_size=1, max_size=3))
def test_hostile_tables_give_only_input_errors(template, muts):
    tmp, root = _copy(template)
    with tmp:
        for m in muts:
            _apply(root, *m)
        problems = validate(root)  # must not raise
        _check_problems(problems)
        COUNTS["tables generated"] += 1
        COUNTS["tables refused"] += bool(problems)
        if STRESS or muts[0][3] % 5 == 0:  # the CLI too, on a share of examples
            result = CliRunner().invoke(app, ["validate", str(root)])
            assert result.exit_code in (0, 2), result.output
            assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
            assert "Traceback" not in result.output
            assert (result.exit_code == 2) == bool(problems)
            COUNTS["CLI runs"] += 1


def _sorted(frame: pd.DataFrame | None, columns: list[str]) -> pd.DataFrame | None:
    if frame is None:
        return None
    keys = [c for c in ("patient_id", "visit_id", "view", "path", "event", "joint", "kind", "landmark")
            if c in frame]
    return frame[columns].sort_values(keys).reset_index(drop=True)


@seed(SEED)
@settings(max_examples=max(10, N // 4), **COMMON)
@given(data=st.data())
def test_harmless_changes_keep_a_cohort_valid_and_equal(template, data):
    before = load(template)
    tmp, root = _copy(template)
    with tmp:
        for table in TABLES:
            path = root / f"{table}.csv"
            frame = pd.read_csv(path, dtype=str, keep_default_na=False)
            perm = data.draw(st.permutations(range(len(frame))))
            frame = frame.iloc[list(perm)]
            frame = frame[list(data.draw(st.permutations(list(frame.columns))))]
            n_extra = data.draw(st.integers(0, 3))
            for i in range(n_extra):
                frame[f"extra_{i}_{data.draw(st.text('abcxyz', min_size=1, max_size=5))}"] = data.draw(
                    st.text(max_size=10).filter(lambda s: not any(ord(c) < 32 or 127 <= ord(c) < 160 for c in s)))
            newline = data.draw(st.sampled_from(["\n", "\r\n"]))
            bom = data.draw(st.booleans())
            text = frame.to_csv(index=False, lineterminator=newline)
            path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8"))
        after = load(root)
        COUNTS["harmless variants valid"] += 1
        for name in TABLES:
            a, b = getattr(before, name), getattr(after, name)
            if a is None:
                assert b is None
                continue
            pd.testing.assert_frame_equal(_sorted(a, list(a.columns)), _sorted(b, list(a.columns)))


# ------------------------------------------------------------------------------------------- DICOM headers
REQUIRED = ["Rows", "Columns", "BitsAllocated", "BitsStored", "HighBit", "PhotometricInterpretation",
            "SamplesPerPixel", "PixelRepresentation", "PixelData", "SOPClassUID", "Modality"]


@st.composite
def dicom_mutation(draw):
    kind = draw(st.sampled_from(["delete", "wrong_vr", "rows", "frames", "bits", "pixels", "flip", "syntax",
                                 "photometric", "window"]))
    return kind, draw(st.sampled_from(REQUIRED)), draw(st.integers(-(2**31), 2**31)), draw(st.text(max_size=12))


def _mutate_dicom(path: Path, kind: str, tag: str, n: int, text: str) -> None:
    from pydicom import config

    old = config.settings.reading_validation_mode, config.settings.writing_validation_mode
    config.settings.reading_validation_mode = config.settings.writing_validation_mode = config.IGNORE
    try:  # write what a careless toolkit would, whatever the VR allows
        _mutate_dicom_unchecked(path, kind, tag, n, text)
    except Exception:  # noqa: BLE001 - pydicom itself cannot build it: leave the file as it was
        pass
    finally:
        config.settings.reading_validation_mode, config.settings.writing_validation_mode = old


def _mutate_dicom_unchecked(path: Path, kind: str, tag: str, n: int, text: str) -> None:
    import pydicom
    from pydicom import uid

    ds = pydicom.dcmread(path, force=True)
    if kind == "delete" and tag in ds:
        delattr(ds, tag)
    elif kind == "wrong_vr" and tag in ds:
        elem = ds[tag]
        ds.add_new(elem.tag, "LO", text or "x")
    elif kind == "rows":
        ds.add_new(0x00280010, "SS" if n < 0 else "US", max(-32768, min(n % 70000 if n >= 0 else n, 65535)))
    elif kind == "frames":
        ds.add_new(0x00280008, "IS", str(n) if n % 2 else (text or "x"))
    elif kind == "bits":
        ds.BitsAllocated = n % 70
        ds.BitsStored = (n // 7) % 70
    elif kind == "pixels":
        data = bytes(ds.PixelData)
        ds.PixelData = data[: n % len(data)] if n % 2 else data + b"\x00" * (n % 5000)
    elif kind == "syntax":
        ds.file_meta.TransferSyntaxUID = [uid.JPEGBaseline8Bit, uid.RLELossless, uid.JPEG2000, uid.DeflatedExplicitVRLittleEndian,
                                          uid.ExplicitVRBigEndian, "1.2.3.4"][n % 6]
    elif kind == "photometric":
        ds.PhotometricInterpretation = ["RGB", "PALETTE COLOR", "YBR_FULL", "", text, "MONOCHROME1"][n % 6]
    elif kind == "window":
        ds.add_new(0x00281050, "DS", ["0", "-1e308", "nan", "1e308"][n % 4])
        ds.add_new(0x00281051, "DS", ["0", "-5", "inf", "1"][(n // 4) % 4])
    ds.save_as(path, enforce_file_format=False)
    if kind == "flip":
        data = bytearray(path.read_bytes())
        for k in range(1 + n % 8):
            i = (n * (k + 7)) % len(data)
            data[i] ^= 0xFF
        path.write_bytes(bytes(data))


@seed(SEED)
@settings(max_examples=N, **COMMON)
@given(muts=st.lists(dicom_mutation(), min_size=1, max_size=3))
def test_hostile_dicom_headers_give_only_image_errors(muts):
    with tempfile.TemporaryDirectory() as tmp:
        path = dicom(Path(tmp) / "x.dcm", gradient())
        for m in muts:
            _mutate_dicom(path, *m)
        verdict = chk.check_image(path)  # must not raise
        assert verdict.ok or verdict.reason
        try:
            read_image(path)
        except ImageReadError as err:
            assert str(path) in str(err)
        COUNTS["DICOM files generated"] += 1
        COUNTS["DICOM files refused"] += not verdict.ok


def test_a_cohort_of_hostile_dicoms_exits_2_through_the_cli(tmp_path, monkeypatch):
    """End to end: the images of a cohort replaced by mutated DICOMs; `validate --images` exits 2."""
    monkeypatch.setenv("RAOUTCOME_CACHE_DIR", str(tmp_path / "cache"))
    root = write_tiny_cohort(tmp_path / "cohort", n_patients=2, n_visits=2)
    images = pd.read_csv(root / "images.csv", dtype=str)
    kinds = ["delete", "wrong_vr", "rows", "frames", "pixels", "syntax", "photometric", "flip"]
    new_paths = []
    for i, rel in enumerate(images["path"]):
        target = root / rel.replace(".png", ".dcm")
        dicom(target, gradient())
        _mutate_dicom(target, kinds[i % len(kinds)], REQUIRED[i % len(REQUIRED)], 12345 + i, "x")
        new_paths.append(rel.replace(".png", ".dcm"))
    images["path"] = new_paths
    images.to_csv(root / "images.csv", index=False)
    lm = pd.read_csv(root / "landmarks.csv", dtype=str)
    lm["path"] = lm["path"].str.replace(".png", ".dcm")
    lm.to_csv(root / "landmarks.csv", index=False)
    result = CliRunner().invoke(app, ["validate", str(root), "--images"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.output.count("images.csv, row") >= 4
