"""One entry point for reading a radiograph from disk: :func:`read_image`.

The format is recognised from the file's first bytes (DICOM, PNG, TIFF, JPEG),
not trusted from its suffix; a DICOM file without the 128-byte preamble is
accepted when its suffix is ``.dcm``/``.dicom``. Every failure, from a missing
file to a truncated pixel stream, becomes :class:`~raoutcome.errors.ImageReadError`
whose message starts with the file's path.

Pixels come back as ``float32`` in ``[0, 1]`` in the MONOCHROME2 sense (bone
bright). How each format is scaled to ``[0, 1]`` is documented in
:mod:`raoutcome.imaging.dicom` and :mod:`raoutcome.imaging.raster`.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from raoutcome.errors import ImageReadError


@dataclass(frozen=True)
class Radiograph:
    """A decoded radiograph.

    ``pixels``: float32, 2-D (rows x columns), values in ``[0, 1]``, bone bright.
    ``meta``: non-identifying facts about the image (see :data:`META_KEYS`).
    """

    pixels: np.ndarray
    meta: dict = field(default_factory=dict)


# The only keys ``Radiograph.meta`` may carry (a whitelist: nothing from a
# header reaches the caller unless it is named here).
META_KEYS: frozenset[str] = frozenset({
    "format",               # "dicom", "png", "tiff", "jpeg"
    "rows", "columns",
    "bits_stored",          # significant bits per sample in the file
    "bits_allocated",       # DICOM only
    "signed",               # stored samples are signed integers
    "photometric",          # as stored: MONOCHROME1/2, RGB, ... ("MONOCHROME2" for grey rasters)
    "samples_per_pixel",
    "n_frames", "frame",    # frames in the file and the one returned (always 0)
    "transfer_syntax", "transfer_syntax_uid",  # DICOM only
    "modality",             # DICOM (0008,0060), e.g. "DX", "CR"
    "view_position",        # DICOM (0018,5101), e.g. "PA"
    "laterality",           # DICOM ImageLaterality or Laterality, e.g. "L"
    "body_part",            # DICOM (0018,0015), e.g. "HAND"
    "pixel_spacing_mm",     # (row spacing, column spacing) in mm, or None
    "pixel_spacing_source",  # "PixelSpacing", "ImagerPixelSpacing" or None
    "rescale_slope", "rescale_intercept",
    "modality_lut",         # a Modality LUT Sequence was applied
    "voi",                  # "window", "lut" or None: the VOI transform applied
    "window_center", "window_width",
    "normalisation",        # how the values were brought to [0, 1]
    "value_range",          # (value mapped to 0, value mapped to 1) before inversion
    "inverted",             # MONOCHROME1 was inverted to MONOCHROME2
})

_DICOM_SUFFIXES = {".dcm", ".dicom", ".dic"}


def sniff_format(path: Path, head: bytes) -> str | None:
    """Name the image format from the first 132 bytes of a file, or None."""
    if len(head) >= 132 and head[128:132] == b"DICM":
        return "dicom"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "tiff"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if path.suffix.lower() in _DICOM_SUFFIXES:
        return "dicom"  # DICOM without preamble: let pydicom try (force=True)
    return None


def read_image(path: str | os.PathLike) -> Radiograph:
    """Read a DICOM, PNG, TIFF or JPEG radiograph.

    Returns a :class:`Radiograph` (float32 pixels in ``[0, 1]``, bone bright,
    plus whitelisted metadata). Raises :class:`ImageReadError` naming the file
    when it is missing, of an unknown format, corrupt, truncated, or compressed
    with a transfer syntax no installed decoder handles.
    """
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            head = fh.read(132)
    except OSError as err:
        raise ImageReadError(f"{path}: cannot open image file ({err.strerror or err})") from err
    fmt = sniff_format(path, head)
    if fmt is None:
        raise ImageReadError(
            f"{path}: unrecognised image format (expected DICOM, PNG, TIFF or JPEG; "
            f"first bytes {head[:8]!r})"
        )
    if fmt == "dicom":
        from raoutcome.imaging.dicom import read_dicom

        pixels, meta = read_dicom(path)
    else:
        from raoutcome.imaging.raster import read_raster

        pixels, meta = read_raster(path, fmt)
    return finish(path, pixels, meta)


def finish(path: Path, pixels: np.ndarray, meta: dict) -> Radiograph:
    """Check the decoded result and keep only whitelisted metadata."""
    if pixels.ndim != 2 or min(pixels.shape) < 1:
        raise ImageReadError(f"{path}: decoded pixels have shape {pixels.shape}, expected a 2-D image")
    pixels = np.ascontiguousarray(pixels, dtype=np.float32)
    if not np.isfinite(pixels).all():
        raise ImageReadError(f"{path}: decoded pixels contain NaN or infinite values")
    np.clip(pixels, 0.0, 1.0, out=pixels)
    # whitelist: whatever a reader put in meta, only the named keys reach the caller
    return Radiograph(pixels=pixels, meta={k: v for k, v in meta.items() if k in META_KEYS})
