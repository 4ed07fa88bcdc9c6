"""PNG and JPEG (Pillow) and TIFF (tifffile) radiographs.

**Normalisation choice**, as for DICOM: by the range the file's sample type
allows, never by the image's own min/max:

- unsigned samples of ``b`` bits: ``x / (2**b - 1)`` (8-bit: /255, 16-bit: /65535;
  a TIFF's *BitsPerSample*, e.g. 12, is honoured);
- signed integer TIFF samples: ``(x + 2**(b-1)) / (2**b - 1)``;
- floating-point TIFF samples must already lie in ``[0, 1]`` (otherwise an
  :class:`ImageReadError`: there is no header range to scale by).

Colour files are reduced to luminance (ITU-R BT.601 weights) and an alpha
channel is dropped. TIFF *MinIsWhite* is inverted so bone is bright.
Multi-page files: the first page is returned (``meta['n_frames']`` says how
many there were). Rasters carry no trustworthy physical pixel size (a PNG's
dpi is usually a screen default), so ``pixel_spacing_mm`` is None.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from raoutcome.errors import ImageReadError

_LUMA = np.array([0.299, 0.587, 0.114])


def read_raster(path: Path, fmt: str) -> tuple[np.ndarray, dict]:
    """Decode a PNG/JPEG/TIFF file to ``([0, 1]`` float pixels, meta)."""
    if fmt == "tiff":
        return _read_tiff(path)
    return _read_pillow(path, fmt)


def _luminance(arr: np.ndarray) -> np.ndarray:
    return arr[..., :3].astype(np.float64) @ _LUMA


def _read_pillow(path: Path, fmt: str) -> tuple[np.ndarray, dict]:
    from PIL import Image

    try:
        with Image.open(path) as im:
            n_frames = int(getattr(im, "n_frames", 1))
            im.seek(0)
            im.load()  # decode now, so truncation is caught here
            mode = im.mode
            if mode in ("P", "PA", "CMYK", "YCbCr", "LAB", "HSV"):
                im = im.convert("RGB")
            arr = np.asarray(im)
    except Image.DecompressionBombError as err:
        raise ImageReadError(f"{path}: image too large to decode safely: {err}") from err
    except (OSError, SyntaxError, ValueError, EOFError) as err:
        raise ImageReadError(f"{path}: corrupt or truncated {fmt.upper()} file: {err}") from err

    if mode == "1":
        bits, x = 1, arr.astype(np.float64)
    elif mode in ("L", "LA"):
        bits = 8
        x = (arr[..., 0] if arr.ndim == 3 else arr).astype(np.float64) / 255.0
    elif mode.startswith("I;16") or mode == "I":
        # 16-bit grey PNG: Pillow opens it as I;16 (or I, 32-bit, in older versions)
        bits = 16
        if arr.min() < 0 or arr.max() > 65535:
            raise ImageReadError(f"{path}: {mode} samples outside 0..65535 (min {arr.min()}, max {arr.max()})")
        x = arr.astype(np.float64) / 65535.0
    elif arr.ndim == 3 and arr.shape[-1] >= 3 and arr.dtype == np.uint8:
        bits = 8
        x = _luminance(arr) / 255.0
    else:
        raise ImageReadError(f"{path}: unsupported {fmt.upper()} pixel mode {mode!r}")
    rows, cols = x.shape
    meta = {
        "format": fmt, "rows": rows, "columns": cols, "bits_stored": bits, "signed": False,
        "photometric": "RGB" if bits == 8 and arr.ndim == 3 and mode not in ("LA",) else "MONOCHROME2",
        "samples_per_pixel": 1 if arr.ndim == 2 else int(arr.shape[-1]),
        "n_frames": n_frames, "frame": 0,
        "pixel_spacing_mm": None, "pixel_spacing_source": None,
        "normalisation": f"{bits}-bit range", "value_range": (0.0, float(2**bits - 1)),
        "inverted": False, "voi": None,
    }
    return x, meta


def _read_tiff(path: Path) -> tuple[np.ndarray, dict]:
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            if not tif.pages:
                raise ImageReadError(f"{path}: TIFF file has no pages")
            page = tif.pages.first
            n_frames = len(tif.pages)
            arr = page.asarray()
            bits = int(page.bitspersample)
            sample_format = int(page.sampleformat)
            photometric = int(page.photometric)
    except ImageReadError:
        raise
    except Exception as err:  # tifffile raises TiffFileError, ValueError, struct.error, ...
        raise ImageReadError(f"{path}: corrupt or truncated TIFF file: {err}") from err

    photometric_name = {0: "MINISWHITE", 1: "MINISBLACK", 2: "RGB"}.get(photometric)
    if photometric_name is None:
        raise ImageReadError(f"{path}: unsupported TIFF photometric interpretation {photometric}")
    if arr.ndim == 3 and arr.shape[0] in (3, 4) and arr.shape[-1] not in (3, 4):
        arr = np.moveaxis(arr, 0, -1)  # planar configuration: channels first
    samples = 1 if arr.ndim == 2 else int(arr.shape[-1])
    if sample_format == 3:  # IEEE float
        lo, hi = 0.0, 1.0
        finite = arr[np.isfinite(arr)]
        if finite.size != arr.size or finite.min() < 0 or finite.max() > 1:
            raise ImageReadError(
                f"{path}: floating-point TIFF must hold values in [0, 1] "
                f"(found {np.nanmin(arr):.4g}..{np.nanmax(arr):.4g})"
            )
        x = arr.astype(np.float64)
    elif sample_format == 2:  # signed integer
        lo, hi = float(-(2 ** (bits - 1))), float(2 ** (bits - 1) - 1)
        x = (arr.astype(np.float64) - lo) / (hi - lo)
    elif sample_format == 1:
        lo, hi = 0.0, float(2**bits - 1)
        x = arr.astype(np.float64) / hi
    else:
        raise ImageReadError(f"{path}: unsupported TIFF sample format {sample_format}")
    if photometric_name == "RGB":
        x = _luminance(x)
    elif x.ndim == 3:  # grey + extra samples (alpha)
        x = x[..., 0]
    inverted = photometric_name == "MINISWHITE"
    if inverted:
        x = 1.0 - x
    rows, cols = x.shape[:2]
    meta = {
        "format": "tiff", "rows": rows, "columns": cols, "bits_stored": bits,
        "signed": sample_format == 2, "photometric": photometric_name, "samples_per_pixel": samples,
        "n_frames": n_frames, "frame": 0,
        "pixel_spacing_mm": None, "pixel_spacing_source": None,
        "normalisation": "[0, 1] float" if sample_format == 3 else f"{bits}-bit range",
        "value_range": (lo, hi), "inverted": inverted, "voi": None,
    }
    return x, meta
