"""DICOM radiographs via pydicom.

Pipeline (PS3.3 C.11 order, all transforms are pydicom's own):

1. decode the first frame with pydicom's pixel handlers
   (:func:`pydicom.pixels.pixel_array`; compressed transfer syntaxes through the
   installed plugins: pylibjpeg, pylibjpeg-libjpeg, pylibjpeg-openjpeg, or
   pydicom's native RLE). pydicom masks bits above *Bits Stored* and
   sign-extends signed samples, so only the stored bits count;
2. Modality LUT: *Modality LUT Sequence* or *Rescale Slope/Intercept*
   (:func:`pydicom.pixels.apply_rescale`);
3. VOI: *VOI LUT Sequence* (preferred) or *Window Center/Width*, first of
   several (:func:`pydicom.pixels.apply_voi_lut`);
4. normalisation to ``[0, 1]`` (see below);
5. MONOCHROME1 is inverted (``1 - x``) so bone is bright. *Presentation LUT
   Shape* is not applied on top: for DX images it only restates the
   photometric interpretation (INVERSE goes with MONOCHROME1).

**Normalisation choice.** Values are mapped linearly from the *range the
header allows*, never from the image's own min/max, so the same tissue gets
the same value in every visit of a patient (what longitudinal comparisons
need):

- with a window: the window's output range (pydicom maps the window onto the
  stored range, rescaled when a rescale is present), so the window edges map to
  0 and 1;
- with a VOI LUT: ``0 .. 2**bits_per_entry - 1``;
- otherwise: the stored bit range (``0 .. 2**BitsStored - 1``, or
  ``-2**(BitsStored-1) .. 2**(BitsStored-1) - 1`` when signed) passed through
  the rescale, or ``0 .. 2**bits - 1`` of a Modality LUT.

An image that uses only part of its bit range therefore looks dim; use
:func:`raoutcome.imaging.transforms.percentile_normalize` for contrast.
Colour DICOM (RGB/YBR) is reduced to luminance (ITU-R BT.601 weights).
Multi-frame files: the first frame is returned (``meta['n_frames']`` says how
many there were).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from raoutcome.errors import ImageReadError

_LUMA = np.array([0.299, 0.587, 0.114])


def _transfer_syntax(ds) -> tuple[str, str]:
    ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if ts is None:
        return "unknown", ""
    return str(getattr(ts, "name", ts)), str(ts)


def _stored_range(ds) -> tuple[float, float]:
    bits = int(ds.BitsStored)
    if int(ds.get("PixelRepresentation", 0)) == 1:
        return float(-(2 ** (bits - 1))), float(2 ** (bits - 1) - 1)
    return 0.0, float(2**bits - 1)


def _pixel_spacing(ds) -> tuple[tuple[float, float] | None, str | None]:
    for keyword in ("PixelSpacing", "ImagerPixelSpacing"):
        value = ds.get(keyword)
        if value is None:
            continue
        try:
            row, col = (float(v) for v in value)
        except (TypeError, ValueError):
            continue
        if row > 0 and col > 0:
            return (row, col), keyword
    return None, None


def _decode(path: Path, ds, ts_name: str, ts_uid: str) -> np.ndarray:
    from pydicom.pixels import pixel_array

    try:
        return pixel_array(ds, index=0)
    except NotImplementedError as err:
        raise ImageReadError(
            f"{path}: no pixel data decoder for transfer syntax '{ts_name}' ({ts_uid}); "
            f"pydicom said: {err}"
        ) from err
    except RuntimeError as err:
        # pydicom raises RuntimeError both when no plugin is installed for the
        # syntax and when every installed plugin failed on the data.
        raise ImageReadError(
            f"{path}: cannot decode pixel data with transfer syntax '{ts_name}' ({ts_uid}): {err}"
        ) from err
    except Exception as err:  # truncated/corrupt pixel data: ValueError, struct errors, ...
        raise ImageReadError(
            f"{path}: corrupt or truncated pixel data (transfer syntax '{ts_name}'): {err}"
        ) from err


def read_dicom(path: Path) -> tuple[np.ndarray, dict]:
    """Decode a DICOM file to ``([0, 1]`` float pixels, whitelisted meta)."""
    import pydicom
    from pydicom.errors import InvalidDicomError
    from pydicom.pixels import apply_rescale, apply_voi_lut

    try:
        ds = pydicom.dcmread(path, force=True)
    except InvalidDicomError as err:
        raise ImageReadError(f"{path}: not a valid DICOM file: {err}") from err
    except Exception as err:  # EOFError, struct.error, OSError on truncated headers
        raise ImageReadError(f"{path}: corrupt or truncated DICOM header: {err}") from err
    if "PixelData" not in ds:
        raise ImageReadError(f"{path}: DICOM file has no (7FE0,0010) Pixel Data")
    if not hasattr(ds, "file_meta") or "TransferSyntaxUID" not in ds.file_meta:
        # no file meta (e.g. a raw dataset): pydicom inferred the encoding while reading
        from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

        implicit, little = ds.original_encoding
        if not little:
            raise ImageReadError(f"{path}: big-endian DICOM without a Transfer Syntax UID")
        ds.file_meta = getattr(ds, "file_meta", pydicom.dataset.FileMetaDataset())
        ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian
    ts_name, ts_uid = _transfer_syntax(ds)
    for keyword in ("Rows", "Columns", "BitsAllocated", "BitsStored", "PhotometricInterpretation"):
        if keyword not in ds:
            raise ImageReadError(f"{path}: DICOM image is missing the required element {keyword}")
    photometric = str(ds.PhotometricInterpretation).strip().upper()
    if photometric == "PALETTE COLOR":
        raise ImageReadError(f"{path}: PALETTE COLOR DICOM images are not supported for radiographs")
    try:
        n_frames = int(ds.get("NumberOfFrames", 1) or 1)
    except (TypeError, ValueError):
        n_frames = 1

    arr = _decode(path, ds, ts_name, ts_uid)
    if arr.ndim == 3 and int(ds.get("SamplesPerPixel", 1)) == 1:  # defensive: frame axis
        arr = arr[0]

    meta: dict = {
        "format": "dicom",
        "rows": int(ds.Rows),
        "columns": int(ds.Columns),
        "bits_stored": int(ds.BitsStored),
        "bits_allocated": int(ds.BitsAllocated),
        "signed": int(ds.get("PixelRepresentation", 0)) == 1,
        "photometric": photometric,
        "samples_per_pixel": int(ds.get("SamplesPerPixel", 1)),
        "n_frames": n_frames,
        "frame": 0,
        "transfer_syntax": ts_name,
        "transfer_syntax_uid": ts_uid,
        "modality": str(ds.get("Modality", "")) or None,
        "view_position": str(ds.get("ViewPosition", "")) or None,
        "laterality": str(ds.get("ImageLaterality", "") or ds.get("Laterality", "")) or None,
        "body_part": str(ds.get("BodyPartExamined", "")) or None,
    }
    meta["pixel_spacing_mm"], meta["pixel_spacing_source"] = _pixel_spacing(ds)

    try:
        if arr.ndim == 3:  # colour: pydicom already converted YBR to RGB
            lo, hi = _stored_range(ds)
            value = (arr.astype(np.float64) - lo) / (hi - lo) @ _LUMA
            meta.update(normalisation="stored bit range, luminance", value_range=(lo, hi),
                        voi=None, inverted=False)
            return value, meta
        value, lo, hi = _modality(ds, arr, apply_rescale, meta)
        value, lo, hi, voi = _voi(ds, value, lo, hi, apply_voi_lut, meta)
    except ImageReadError:
        raise
    except Exception as err:  # a malformed LUT or window element
        raise ImageReadError(f"{path}: cannot apply the DICOM grey-scale transforms: {err}") from err
    if voi is None:  # the display follows the rescaled value, whatever the slope's sign
        lo, hi = min(lo, hi), max(lo, hi)
    if hi == lo:
        raise ImageReadError(f"{path}: degenerate value range {lo}..{hi} from the DICOM header")
    x = (np.asarray(value, dtype=np.float64) - lo) / (hi - lo)
    inverted = photometric == "MONOCHROME1"
    if inverted:
        x = 1.0 - x
    meta.update(voi=voi, value_range=(float(lo), float(hi)), inverted=inverted,
                normalisation={"window": "window output range", "lut": "VOI LUT output range"}.get(
                    voi, "modality LUT output range" if meta["modality_lut"] else "stored bit range"))
    return x, meta


def _modality(ds, arr, apply_rescale, meta) -> tuple[np.ndarray, float, float]:
    """Modality LUT or rescale; returns values and the range they can take."""
    lo, hi = _stored_range(ds)
    meta["modality_lut"] = bool(ds.get("ModalityLUTSequence"))
    meta["rescale_slope"] = meta["rescale_intercept"] = None
    if meta["modality_lut"]:
        depth = int(ds.ModalityLUTSequence[0].LUTDescriptor[2])
        return apply_rescale(arr, ds), 0.0, float(2**depth - 1)
    if "RescaleSlope" in ds and "RescaleIntercept" in ds:
        slope, intercept = float(ds.RescaleSlope), float(ds.RescaleIntercept)
        meta["rescale_slope"], meta["rescale_intercept"] = slope, intercept
        value = apply_rescale(arr, ds)
        return value, lo * slope + intercept, hi * slope + intercept
    return arr, lo, hi


def _voi(ds, value, lo, hi, apply_voi_lut, meta):
    """VOI LUT (preferred, as pydicom does) or window; returns values, range and kind."""
    meta["window_center"] = meta["window_width"] = None
    seq = ds.get("VOILUTSequence")
    has_lut = bool(seq) and seq[0].get("LUTDescriptor") is not None and seq[0].get("LUTData") is not None
    has_window = ds.get("WindowCenter") is not None and ds.get("WindowWidth") is not None
    if not (has_lut or has_window):
        return value, lo, hi, None
    if has_lut:
        if not np.issubdtype(value.dtype, np.integer):
            value = np.rint(value).astype(np.int64)  # LUT input is an integer index
        item = seq[0]
        n_entries, first, depth = (int(v) for v in item.LUTDescriptor)
        if depth == 8:
            # pydicom indexes an 8-bit LUT through a uint8 array, which wraps for
            # LUTs of more than 256 entries; entries are the same read as 16-bit.
            item.LUTDescriptor = [n_entries, first, 16]
        out = apply_voi_lut(value, ds, index=0)
        # Output range: 2**bits - 1 where bits is the declared depth, or fewer when
        # the table never exceeds a smaller power of two (some CR writers declare
        # 16 bits for 12-bit entries; Horos and Cornerstone scale the same way).
        bits = min(depth, max(8, int(_lut_entries(ds, item).max()).bit_length()))
        return out, 0.0, float(2**bits - 1), "lut"
    center, width = ds["WindowCenter"], ds["WindowWidth"]
    meta["window_center"] = float(center.value[0] if center.VM > 1 else center.value)
    meta["window_width"] = float(width.value[0] if width.VM > 1 else width.value)
    # pydicom maps the window onto [lo, hi] computed exactly as above (stored range,
    # rescaled, or the Modality LUT's range), so the range is unchanged.
    return apply_voi_lut(value, ds, index=0), lo, hi, "window"


def _lut_entries(ds, item) -> np.ndarray:
    """The LUT Data values of a VOI LUT item (US list, or OW bytes)."""
    elem = item["LUTData"]
    if elem.VR == "OW" or isinstance(elem.value, (bytes, bytearray)):
        little = ds.original_encoding[1] is not False
        return np.frombuffer(elem.value, dtype="<u2" if little else ">u2")
    return np.asarray(elem.value if elem.VM > 1 else [elem.value], dtype=np.int64)
