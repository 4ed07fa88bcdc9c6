"""Builders of bad image files (DICOM and PNG) shared by the image-check, property and stress tests."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from pydicom import uid
from pydicom.dataset import Dataset, FileMetaDataset


def dicom(path: Path, pixels: np.ndarray | None = None, *, sop: str = uid.DigitalXRayImageStorageForPresentation,
          modality: str = "DX", photometric: str = "MONOCHROME2", frames: int | None = None,
          **elements) -> Path:
    """A native little-endian 16-bit DICOM file (no pixels when ``pixels`` is None)."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = uid.ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = sop
    ds.file_meta.MediaStorageSOPInstanceUID = uid.generate_uid()
    ds.SOPClassUID, ds.SOPInstanceUID = sop, ds.file_meta.MediaStorageSOPInstanceUID
    ds.Modality = modality
    if pixels is not None:
        arr = np.asarray(pixels)
        ds.Rows, ds.Columns = arr.shape[-2:] if arr.ndim >= 2 else (1, arr.size)
        ds.SamplesPerPixel = 3 if photometric == "RGB" else 1
        if photometric == "RGB":
            ds.PlanarConfiguration = 0
            ds.Rows, ds.Columns = arr.shape[:2]
        ds.PhotometricInterpretation = photometric
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        if frames is not None:
            ds.NumberOfFrames = frames
        ds.PixelData = arr.astype("<u2").tobytes()
    for key, value in elements.items():
        setattr(ds, key, value)
    ds.save_as(path, enforce_file_format=True)
    return Path(path)


def gradient(size: int = 64) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size]
    return ((xx + yy) * 4000 // (2 * size)).astype(np.uint16)


def png(path: Path, arr: np.ndarray, mode: str | None = None) -> Path:
    Image.fromarray(arr, mode=mode).save(path) if mode else Image.fromarray(arr).save(path)
    return Path(path)


def bad_files(folder: Path) -> dict[str, tuple[Path, str]]:
    """One file per problem the deep check must find: name -> (path, expected kind)."""
    folder.mkdir(parents=True, exist_ok=True)
    good = gradient()
    out: dict[str, tuple[Path, str]] = {}
    out["empty"] = (folder / "empty.png", "empty")
    out["empty"][0].write_bytes(b"")
    out["dicom_magic_only"] = (folder / "corrupt.dcm", "unreadable")
    out["dicom_magic_only"][0].write_bytes(b"\x00" * 128 + b"DICM" + b"\x02\x00\x10")
    full = dicom(folder / "full.dcm", good)
    data = full.read_bytes()
    out["dicom_truncated"] = (folder / "truncated.dcm", "unreadable")
    out["dicom_truncated"][0].write_bytes(data[: len(data) - 3000])
    full.unlink()
    ok_png = png(folder / "full.png", (good // 16).astype(np.uint8))
    data = ok_png.read_bytes()
    out["png_truncated"] = (folder / "truncated.png", "unreadable")
    out["png_truncated"][0].write_bytes(data[: len(data) // 2])
    ok_png.unlink()
    out["text"] = (folder / "notes.png", "not_an_image")
    out["text"][0].write_text("this is not an image\n")
    out["sr"] = (dicom(folder / "report.dcm", None, sop="1.2.840.10008.5.1.4.1.1.88.11", modality="SR"),
                 "not_an_image")
    out["rtplan"] = (dicom(folder / "plan.dcm", None, sop=uid.RTPlanStorage, modality="RTPLAN"), "not_an_image")
    rgb = np.stack([good // 16, good // 32, good // 64], -1).astype(np.uint8)
    out["colour_png"] = (png(folder / "colour.png", rgb), "colour")
    pal = Image.fromarray((good // 16).astype(np.uint8)).convert("P")
    pal.save(folder / "palette.png")
    out["palette_png"] = (folder / "palette.png", "colour")
    out["small"] = (png(folder / "small.png", (gradient(8) // 16).astype(np.uint8)), "small")
    out["constant"] = (png(folder / "constant.png", np.full((64, 64), 7, np.uint8)), "constant")
    out["constant_dicom"] = (dicom(folder / "constant.dcm", np.full((64, 64), 100, np.uint16)), "constant")
    out["frames"] = (dicom(folder / "frames.dcm", good, frames=1_000_000), "too_large")
    out["huge"] = (dicom(folder / "huge.dcm", good), "too_large")
    _set_rows_cols(out["huge"][0], 60000, 60000)
    out["png_bomb"] = (png_bomb(folder / "bomb.png"), "too_large")
    out["zero_rows"] = (dicom(folder / "zero.dcm", good), "unreadable")
    _set_rows_cols(out["zero_rows"][0], 0, 64)
    return out


def png_bomb(path: Path, width: int = 40_000, height: int = 40_000) -> Path:
    """A tiny PNG whose header declares ``width x height`` 8-bit grey pixels (a decompression bomb)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    row = b"\x00" + b"\x00" * width
    body = zlib.compress(row * 4, 9)  # a few rows only: the rest would inflate to gigabytes
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    Path(path).write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", body) + chunk(b"IEND", b""))
    return Path(path)


def _set_rows_cols(path: Path, rows: int, cols: int) -> None:
    import pydicom

    ds = pydicom.dcmread(path)
    ds.Rows, ds.Columns = rows, cols
    ds.save_as(path)
