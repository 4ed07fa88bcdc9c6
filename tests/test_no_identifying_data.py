"""No identifying data out: sentinels planted in every attribute of the DICOM Basic Application Level
Confidentiality Profile (PS3.15 Annex E, Table E.1-1; the list is in ``deid_profile.py``), in a private
tag and in the file preamble, must never appear in any output.

The default suite checks what the readers hand on (image meta, the image-check cache, ``validate``'s
summary); the full study (simulate -> plant -> ``raoutcome study`` with training, predictions,
analysis, attribution and report) runs under ``make stress`` and scans every file it writes (CSV,
JSON run records, netCDF/zarr attributes, PNG text chunks, HTML with its embedded images, checkpoint
metadata, config echoes, caches) and its captured logs.
"""
from __future__ import annotations

import base64
import io
import os
import re
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from deid_profile import BASIC_PROFILE
from raoutcome.cli import app

ROOT = Path(__file__).resolve().parents[1]


def sentinel_values() -> dict[str, tuple[str, str | None]]:
    """keyword -> (value planted, token searched for; None when too short to search safely)."""
    from pydicom.datadict import dictionary_VR, tag_for_keyword

    out: dict[str, tuple[str, str | None]] = {}
    for k, kw in enumerate(dict.fromkeys(BASIC_PROFILE)):
        vr = dictionary_VR(tag_for_keyword(kw))
        code = f"ZQ{k:03d}SNTL"
        if vr in ("LO", "SH", "ST", "LT", "UT", "UC", "CS"):
            out[kw] = (code, code)
        elif vr == "AE":
            out[kw] = (code, code)
        elif vr == "PN":
            out[kw] = (f"{code}^ZQNAME", code)
        elif vr == "DA":
            out[kw] = (f"{1500 + k:04d}0707", f"{1500 + k:04d}0707")
        elif vr == "TM":
            out[kw] = (f"11{k % 60:02d}{k // 60:02d}.{k:06d}", f"11{k % 60:02d}{k // 60:02d}.{k:06d}")
        elif vr == "DT":
            out[kw] = (f"{1500 + k:04d}0707111111", f"{1500 + k:04d}0707111111")
        elif vr == "UI":
            out[kw] = (f"1.2.826.0.1.3680043.10.9999.{k}", f"1.2.826.0.1.3680043.10.9999.{k}")
        elif vr == "DS":
            out[kw] = (f"{k}.0987654321", f"{k}.0987654321")
        elif vr == "AS":
            out[kw] = ("077W", None)
        elif vr == "SQ":
            out[kw] = (f"{code}SQ", f"{code}SQ")
    return out


PRIVATE = "ZQ999SNTLPRIVATE"
PREAMBLE = b"ZQPREAMBLESNTL"


def plant(path: Path) -> int:
    """Add every sentinel to the DICOM file at ``path`` (pixels untouched); return how many were planted."""
    import pydicom
    from pydicom import config
    from pydicom.datadict import tag_for_keyword
    from pydicom.dataset import Dataset

    old = config.settings.writing_validation_mode
    config.settings.writing_validation_mode = config.IGNORE
    try:
        ds = pydicom.dcmread(path)
        n = 0
        for kw, (value, _) in sentinel_values().items():
            tag = tag_for_keyword(kw)
            from pydicom.datadict import dictionary_VR

            vr = dictionary_VR(tag)
            if kw in ("SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID", "PatientID"):
                pass  # planted too: the reader must not pass them on either
            if vr == "SQ":
                item = Dataset()
                item.TextValue = value
                ds.add_new(tag, "SQ", [item])
            else:
                ds.add_new(tag, vr, value)
            n += 1
        ds.add_new(0x00090010, "LO", "ZQPRIVCREATOR")
        ds.add_new(0x00091001, "LO", PRIVATE)
        ds.preamble = PREAMBLE.ljust(128, b"\0")
        if "SOPInstanceUID" in ds:
            ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.save_as(path, enforce_file_format=False)
        return n + 2
    finally:
        config.settings.writing_validation_mode = old


def tokens() -> list[str]:
    found = [t for _, t in sentinel_values().values() if t is not None]
    return found + [PRIVATE, PREAMBLE.decode(), "ZQPRIVCREATOR", "ZQNAME"]


# -------------------------------------------------------------------------------------------- scanning
def _png_texts(data: bytes) -> list[bytes]:
    """tEXt / zTXt / iTXt chunk contents of a PNG (decompressed)."""
    out, pos = [], 8
    while pos + 8 <= len(data):
        length = int.from_bytes(data[pos:pos + 4], "big")
        kind = data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + length]
        if kind == b"tEXt":
            out.append(body)
        elif kind == b"zTXt":
            key, _, rest = body.partition(b"\0")
            out.append(key + b" " + zlib.decompress(rest[1:]))
        elif kind == b"iTXt":
            key, _, rest = body.partition(b"\0")
            flag, rest = rest[0], rest[2:]
            _, _, rest = rest.partition(b"\0")
            _, _, text = rest.partition(b"\0")
            out.append(key + b" " + (zlib.decompress(text) if flag else text))
        pos += 12 + length
    return out


def _views(path: Path, data: bytes) -> list[bytes]:
    """The byte views of a file in which a sentinel could hide."""
    views = [data]
    if data.startswith(b"\x89PNG"):
        views += _png_texts(data)
    if path.suffix in (".html", ".htm", ".svg", ".json", ".md", ".txt"):
        for m in re.finditer(rb"base64,([A-Za-z0-9+/=]+)", data):
            try:
                inner = base64.b64decode(m.group(1))
            except ValueError:
                continue
            views.append(inner)
            if inner.startswith(b"\x89PNG"):
                views += _png_texts(inner)
    if data[:2] == b"\x1f\x8b":
        import gzip

        try:
            views.append(gzip.decompress(data))
        except OSError:
            pass
    if data[:4] == b"PK\x03\x04":  # zip (torch checkpoints, zarr stores zipped): members, inflated
        import zipfile

        try:
            with zipfile.ZipFile(io.BytesIO(data)) as z:
                views += [z.read(n) for n in z.namelist()]
        except (zipfile.BadZipFile, OSError, RuntimeError):
            pass
    return views


def scan(paths: list[Path], texts: dict[str, str] | None = None) -> tuple[int, list[str]]:
    """(number of files/texts scanned, 'where: token' for every sentinel found)."""
    wanted = [t.encode() for t in tokens()]
    wanted_16 = [t.encode("utf-16-le") for t in tokens()]
    leaks, n = [], 0
    for path in paths:
        if not path.is_file():
            continue
        n += 1
        data = path.read_bytes()
        for view in _views(path, data):
            for t, t16 in zip(wanted, wanted_16):
                if t in view or t16 in view:
                    leaks.append(f"{path}: {t.decode()}")
    for name, text in (texts or {}).items():
        n += 1
        for t in tokens():
            if t in text:
                leaks.append(f"{name}: {t}")
    return n, sorted(set(leaks))


# -------------------------------------------------------------------------------------------- tests
def test_profile_list_resolves_and_is_planted(tmp_path):
    from pydicom.datadict import tag_for_keyword

    from hostile_files import dicom, gradient

    assert all(tag_for_keyword(k) is not None for k in BASIC_PROFILE)
    assert len(set(BASIC_PROFILE)) >= 300
    path = dicom(tmp_path / "x.dcm", gradient())
    n = plant(path)
    assert n == len(sentinel_values()) + 2 and len(sentinel_values()) >= 300  # all but 1 US and 1 OB attribute
    n_files, leaks = scan([path])
    assert len(leaks) >= len([t for t in tokens()]) - 5  # the scanner finds what was planted


def test_reader_outputs_carry_no_sentinel(tmp_path, monkeypatch):
    """read_image meta, the image check's verdicts and cache, and validate's output."""
    import pandas as pd

    from conftest import write_tiny_cohort
    from hostile_files import dicom, gradient
    from raoutcome.imaging import check as chk
    from raoutcome.imaging.io import read_image

    cache = tmp_path / "cache"
    monkeypatch.setenv("RAOUTCOME_CACHE_DIR", str(cache))
    root = write_tiny_cohort(tmp_path / "cohort", n_patients=2, n_visits=2)
    images = pd.read_csv(root / "images.csv", dtype=str)
    images["path"] = images["path"].str.replace(".png", ".dcm")
    for rel in images["path"]:
        plant(dicom(root / rel, gradient()))
    images.to_csv(root / "images.csv", index=False)
    lm = pd.read_csv(root / "landmarks.csv", dtype=str)
    lm["path"] = lm["path"].str.replace(".png", ".dcm")
    lm.to_csv(root / "landmarks.csv", index=False)
    meta = read_image(root / images["path"][0]).meta
    result = CliRunner().invoke(app, ["validate", str(root), "--images"])
    assert result.exit_code == 0, result.output
    verdict = chk.check_image(root / images["path"][0])
    n, leaks = scan(sorted(cache.rglob("*")), {"meta": repr(meta), "validate output": result.output,
                                               "verdict": repr(verdict)})
    assert n >= 4 and leaks == []


@pytest.mark.stress
def test_full_study_leaks_no_identifying_attribute(tmp_path):
    from raoutcome.workflows.study import SMALL_TRAIN, small_configs

    sim, train = small_configs(tmp_path / "cfg",
                               sim={"n_patients": 16, "image_size": 64, "image_format": "dicom", "workers": 1,
                                    "visits": {"times_years": [0.0, 1.0, 2.0]}},
                               train={**SMALL_TRAIN, "train": {**SMALL_TRAIN["train"], "epochs": 2}})
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), OMP_NUM_THREADS="1",
               RAOUTCOME_CACHE_DIR=str(tmp_path / "check_cache"))
    cohort = tmp_path / "cohort"
    cli = [sys.executable, "-m", "raoutcome.cli"]
    subprocess.run(cli + ["simulate", "--config", str(sim), "--out", str(cohort)], env=env, check=True,
                   capture_output=True, timeout=600)
    planted = 0
    for path in sorted(cohort.rglob("*.dcm")):
        planted += plant(path)
    study = tmp_path / "study.toml"
    study.write_text(f'[train]\nconfig = "{train}"\n[attribution]\nenabled = true\nmax_images = 4\n')
    out = tmp_path / "out"
    proc = subprocess.run(cli + ["study", "--cohort", str(cohort), "--config", str(study), "--out", str(out)],
                          env=env, capture_output=True, text=True, timeout=3000)
    assert proc.returncode == 0, proc.stderr[-3000:]
    files = sorted(p for p in out.rglob("*") if p.is_file()) + sorted((tmp_path / "check_cache").rglob("*"))
    n, leaks = scan(files, {"stdout": proc.stdout, "stderr": proc.stderr})
    kinds = sorted({p.suffix for p in files if p.is_file()})
    print(f"\nSTRESS sentinels: {planted} planted in {len(list(cohort.rglob('*.dcm')))} DICOM files; "
          f"{n} outputs scanned ({', '.join(kinds)}); leaks: {len(leaks)}")
    assert leaks == [], "\n".join(leaks[:50])


def test_scanner_finds_a_sentinel_in_every_kind_of_output(tmp_path):
    """The scan is only as good as its views: plant one token in each output kind and find it."""
    import torch
    import xarray as xr
    from PIL import Image, PngImagePlugin

    token = tokens()[0]
    files = []
    ds = xr.Dataset({"x": ("i", np.arange(3.0))}, attrs={"note": token})
    ds.to_netcdf(tmp_path / "p.nc", engine="h5netcdf")
    ds.to_zarr(tmp_path / "p.zarr")
    files += [tmp_path / "p.nc", *sorted((tmp_path / "p.zarr").rglob("*"))]
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", token, zip=True)
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "f.png", pnginfo=info)
    files.append(tmp_path / "f.png")
    b64 = base64.b64encode((tmp_path / "f.png").read_bytes()).decode()
    (tmp_path / "r.html").write_text(f'<img src="data:image/png;base64,{b64}">')
    files.append(tmp_path / "r.html")
    torch.save({"meta": {"who": token}, "w": torch.zeros(2)}, tmp_path / "c.pt")
    files.append(tmp_path / "c.pt")
    (tmp_path / "t.csv").write_text(f"a\n{token}\n", encoding="utf-16")
    files.append(tmp_path / "t.csv")
    for f in [tmp_path / "p.nc", tmp_path / "f.png", tmp_path / "r.html", tmp_path / "c.pt", tmp_path / "t.csv"]:
        assert scan([f])[1], f
    assert scan(sorted((tmp_path / "p.zarr").rglob("*")))[1]
