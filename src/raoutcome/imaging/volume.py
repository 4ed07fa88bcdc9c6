"""MR volumes: a DICOM series, an enhanced multi-frame file or NIfTI, read with geometry and put in one frame.

What and why
------------
Sagittal MR arrives as a folder of single-frame DICOM files, as one enhanced multi-frame
file, or as NIfTI. :func:`read_volume` reads any of them through SimpleITK (GDCM for DICOM,
ITK's NIfTI reader, which turns the NIfTI RAS affine into ITK's LPS physical space) and
:func:`to_canonical` puts the result in the one canonical sagittal frame below, so that a
model or a measurement never depends on how the scanner stored the slices.

Before the pixels are read, the DICOM headers are checked with pydicom and a series is
refused (:class:`SeriesError`, an :class:`~raoutcome.errors.InputError`, naming the series
and the file) when it holds a localiser, mixed series, mixed orientations, mixed pixel
spacings or matrix sizes, a duplicate slice position or a gap (a missing slice). Slice
positions are the projections of *Image Position (Patient)* on the slice normal
``n = row_cosine x column_cosine`` (PS3.3 C.7.6.2.1.1).

Canonical frame (physical space is DICOM/ITK LPS: +x patient left, +y posterior,
+z superior). The canonical image's index axes point

- axis 0 (array last index, columns): **anterior -> posterior** (+y),
- axis 1 (array middle index, rows): **superior -> inferior** (-z),
- axis 2 (array first index, sagittal slices): **right -> left** (+x),

i.e. ITK orientation code ``"PIL"``. ``array[k]`` is therefore a sagittal slice that, drawn
with row 0 at the top (``imshow`` default), shows superior up and anterior to the left
(the patient faces left). An axis-aligned input is permuted and flipped exactly (no
interpolation); an oblique one is resampled (linear, or nearest for label images) onto a
grid of the same spacing covering its bounding box.

Only non-identifying facts reach :attr:`MRVolume.meta` (whitelist :data:`VOLUME_META_KEYS`);
the returned image is rebuilt from the voxel array, so no DICOM header dictionary rides along.

References
----------
DICOM PS3.3 C.7.6.2 (Image Plane Module), C.7.6.16 (Multi-frame Functional Groups).
Lowekamp et al., "The design of SimpleITK", Front. Neuroinform. 2013.
"""
from __future__ import annotations

__all__ = [
    "CANONICAL_DIRECTION",
    "CANONICAL_ORIENTATION",
    "MRVolume",
    "SeriesError",
    "VOLUME_META_KEYS",
    "check_dicom_series",
    "read_volume",
    "to_canonical",
]

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from raoutcome.errors import ImageReadError, InputError

# Columns are the physical (LPS) directions of index axes 0, 1, 2.
CANONICAL_DIRECTION: np.ndarray = np.array([[0.0, 0.0, 1.0],
                                            [1.0, 0.0, 0.0],
                                            [0.0, -1.0, 0.0]])
CANONICAL_ORIENTATION = "PIL"

VOLUME_META_KEYS: frozenset[str] = frozenset({
    "format",            # "dicom-series", "dicom-enhanced", "nifti"
    "n_files", "n_slices",
    "source_orientation",  # ITK code of the stored axes, e.g. "PSR" (letters: where each axis points)
    "oblique",           # stored axes not aligned with the patient axes
    "modality", "series_description_present",
    "echo_time", "repetition_time", "magnetic_field_strength", "slice_thickness",
})

_NIFTI_SUFFIXES = (".nii", ".nii.gz")
_ORIENT_TOL = 1e-4      # direction cosines compared to this absolute tolerance
_SPACING_RTOL = 1e-3    # pixel spacings compared to this relative tolerance
_GAP_RTOL = 0.1         # a slice step more than 10 % off the median step is a gap


class SeriesError(InputError):
    """A DICOM series is inconsistent (localiser, mixed geometry, missing or duplicate slice)."""


@dataclass
class MRVolume:
    """An MR volume in physical space.

    ``image`` is a :class:`SimpleITK.Image` (spacing, origin, direction in LPS mm);
    ``meta`` holds whitelisted non-identifying facts only (:data:`VOLUME_META_KEYS`).
    """

    image: Any
    meta: dict = field(default_factory=dict)

    @property
    def array(self) -> np.ndarray:
        """Voxels as ``[axis2, axis1, axis0]`` (SimpleITK's array order), a copy."""
        import SimpleITK as sitk

        return sitk.GetArrayFromImage(self.image)

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel size in mm along index axes 0, 1, 2."""
        return tuple(float(s) for s in self.image.GetSpacing())

    @property
    def direction(self) -> np.ndarray:
        """3x3 matrix whose columns are the LPS directions of index axes 0, 1, 2."""
        return np.array(self.image.GetDirection(), dtype=float).reshape(3, 3)

    def index_to_world(self, index_xyz) -> np.ndarray:
        """LPS position (mm) of a continuous index given in ITK order ``(i0, i1, i2)``."""
        return np.asarray(self.image.TransformContinuousIndexToPhysicalPoint(
            tuple(float(v) for v in index_xyz)))

    def world_to_index(self, point_lps) -> np.ndarray:
        """Continuous ITK index ``(i0, i1, i2)`` of an LPS point (mm)."""
        return np.asarray(self.image.TransformPhysicalPointToContinuousIndex(
            tuple(float(v) for v in point_lps)))


# ----------------------------------------------------------------------------- DICOM checks

def _fail(series: str, file: Path | str, what: str) -> SeriesError:
    return SeriesError(f"MR series {series}: {file}: {what}")


def _floats(value, n: int) -> np.ndarray | None:
    try:
        arr = np.array([float(v) for v in value], dtype=float)
    except (TypeError, ValueError):
        return None
    return arr if arr.size == n and np.all(np.isfinite(arr)) else None


def _is_localiser(ds) -> bool:
    image_type = [str(v).upper() for v in (ds.get("ImageType") or [])]
    return "LOCALIZER" in image_type or "SCOUT" in image_type


@dataclass(frozen=True)
class _Slice:
    file: Path
    frame: int | None
    orientation: np.ndarray
    position: np.ndarray
    spacing: np.ndarray
    shape: tuple[int, int]


def _frames(path: Path, ds) -> list[_Slice]:
    """Geometry of every frame of one file (a single-frame file gives one)."""
    n_frames = int(ds.get("NumberOfFrames", 1) or 1)
    shape = (int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0))
    if "PerFrameFunctionalGroupsSequence" in ds:
        shared = (ds.get("SharedFunctionalGroupsSequence") or [None])[0]

        def group(item, seq: str, attr: str):
            for source in (item, shared):
                items = source.get(seq) if source is not None else None
                if items and attr in items[0]:
                    return items[0][attr].value
            return None

        out = []
        for f, item in enumerate(ds.PerFrameFunctionalGroupsSequence):
            out.append(_Slice(path, f + 1,
                              _floats(group(item, "PlaneOrientationSequence", "ImageOrientationPatient"), 6),
                              _floats(group(item, "PlanePositionSequence", "ImagePositionPatient"), 3),
                              _floats(group(item, "PixelMeasuresSequence", "PixelSpacing"), 2), shape))
        if len(out) != n_frames:
            raise ImageReadError(f"{path}: {n_frames} frames but {len(out)} per-frame geometry items")
        return out
    return [_Slice(path, None, _floats(ds.get("ImageOrientationPatient"), 6),
                   _floats(ds.get("ImagePositionPatient"), 3), _floats(ds.get("PixelSpacing"), 2), shape)]


def _where(s: _Slice) -> str:
    return str(s.file) if s.frame is None else f"{s.file} frame {s.frame}"


def check_dicom_series(files: list[Path], series: str) -> list[_Slice]:
    """Refuse an inconsistent series; return its slices sorted along the slice normal.

    Parameters
    ----------
    files : DICOM files of one series (single-frame files, or one multi-frame file).
    series : how to name the series in messages (its folder or file).

    Returns
    -------
    The slices (one per frame) sorted by their position on the normal, ascending.

    Raises
    ------
    SeriesError
        Localiser mixed in, several series, mixed orientation / spacing / matrix, duplicate
        slice or a gap; the message names the series and the offending file.
    """
    import pydicom

    slices: list[_Slice] = []
    uids: dict[str, Path] = {}
    for path in files:
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
        except Exception as exc:  # pydicom raises several types for a corrupt file
            raise _fail(series, path, f"not a readable DICOM file ({exc})") from None
        if _is_localiser(ds):
            raise _fail(series, path, "a localiser (ImageType LOCALIZER) is mixed into the series")
        uid = str(ds.get("SeriesInstanceUID", ""))
        if uids and uid not in uids:
            other = next(iter(uids.values()))
            raise _fail(series, path, f"belongs to another series than {other.name} (several series in one folder)")
        uids.setdefault(uid, path)
        slices.extend(_frames(path, ds))
    if not slices:
        raise SeriesError(f"MR series {series}: no DICOM files")
    for s in slices:
        if s.orientation is None or s.position is None or s.spacing is None:
            raise _fail(series, _where(s), "missing or bad ImageOrientationPatient / ImagePositionPatient / PixelSpacing")
    ref = slices[0]
    for s in slices[1:]:
        if not np.allclose(s.orientation, ref.orientation, atol=_ORIENT_TOL):
            raise _fail(series, _where(s), f"mixed orientations: {np.round(s.orientation, 4).tolist()} "
                                           f"vs {np.round(ref.orientation, 4).tolist()} in {_where(ref)}")
        if not np.allclose(s.spacing, ref.spacing, rtol=_SPACING_RTOL) or s.shape != ref.shape:
            raise _fail(series, _where(s), f"mixed spacings or matrix: {s.spacing.tolist()} mm {s.shape} "
                                           f"vs {ref.spacing.tolist()} mm {ref.shape} in {_where(ref)}")
    normal = np.cross(ref.orientation[:3], ref.orientation[3:])
    order = sorted(slices, key=lambda s: float(s.position @ normal))
    if len(order) < 2:
        raise SeriesError(f"MR series {series}: a volume needs at least 2 slices, found 1 ({_where(ref)})")
    pos = np.array([s.position @ normal for s in order])
    steps = np.diff(pos)
    tol = 0.01 * float(np.min(ref.spacing))
    for a, b, d in zip(order, order[1:], steps):
        if d < tol:
            raise _fail(series, _where(b), f"duplicate slice: same position as {_where(a)}")
    median = float(np.median(steps))
    for a, b, d in zip(order, order[1:], steps):
        if abs(d - median) > _GAP_RTOL * median:
            raise _fail(series, _where(b), f"gap in slice positions (missing slice?): {d:.3f} mm after "
                                           f"{_where(a)}, the series steps {median:.3f} mm")
    return order


# ----------------------------------------------------------------------------- reading

def _orientation_code(direction: np.ndarray) -> str:
    letters = (("L", "R"), ("P", "A"), ("S", "I"))  # +x, +y, +z in LPS
    code = ""
    for col in direction.T:
        ax = int(np.argmax(np.abs(col)))
        code += letters[ax][0 if col[ax] > 0 else 1]
    return code


def _clean(image) -> Any:
    """A copy of ``image`` with geometry only (no header dictionary)."""
    import SimpleITK as sitk

    out = sitk.GetImageFromArray(sitk.GetArrayViewFromImage(image).copy())
    out.CopyInformation(image)
    return out


def _header_meta(ds) -> dict:
    meta: dict = {"modality": str(ds.get("Modality", "")) or None,
                  "series_description_present": bool(ds.get("SeriesDescription"))}
    for key, name in (("EchoTime", "echo_time"), ("RepetitionTime", "repetition_time"),
                      ("MagneticFieldStrength", "magnetic_field_strength"),
                      ("SliceThickness", "slice_thickness")):
        value = ds.get(key)
        try:
            meta[name] = None if value is None else float(value)
        except (TypeError, ValueError):
            meta[name] = None
    return meta


def _read_series_folder(folder: Path):
    import pydicom
    import SimpleITK as sitk

    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    slices = check_dicom_series(files, str(folder))
    if len(files) == 1:
        return _read_enhanced(files[0], slices)
    ids = sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder))
    if len(ids) != 1:
        raise SeriesError(f"MR series {folder}: GDCM finds {len(ids)} series in the folder")
    names = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), ids[0])
    if len(names) != len(files):
        raise SeriesError(f"MR series {folder}: GDCM takes {len(names)} of {len(files)} files as the series")
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(names)
    try:
        image = reader.Execute()
    except RuntimeError as exc:
        raise ImageReadError(f"MR series {folder}: cannot decode ({str(exc).strip().splitlines()[-1]})") from None
    _check_geometry(image, slices, str(folder))
    ds = pydicom.dcmread(files[0], stop_before_pixels=True)
    return _clean(image), {"format": "dicom-series", "n_files": len(files), **_header_meta(ds)}


def _check_geometry(image, slices: list[_Slice], series: str) -> None:
    """ITK's geometry must agree with the checked headers (origin at one end, step, in-plane spacing)."""
    ref = slices[0]
    step = float(np.linalg.norm(slices[1].position - slices[0].position))
    want = (float(ref.spacing[1]), float(ref.spacing[0]), step)  # columns, rows, slices
    got = image.GetSpacing()
    origin = np.asarray(image.GetOrigin())
    ends = (slices[0].position, slices[-1].position)
    if not np.allclose(got, want, rtol=1e-3) or not any(np.allclose(origin, e, atol=1e-3) for e in ends):
        raise SeriesError(f"MR series {series}: the reader's geometry (spacing {tuple(round(g, 4) for g in got)}, "
                          f"origin {np.round(origin, 3).tolist()}) disagrees with the headers (spacing "
                          f"{tuple(round(w, 4) for w in want)})")


def _read_enhanced(path: Path, slices: list[_Slice] | None = None):
    """One enhanced multi-frame file: GDCM decodes; geometry is set from the checked functional groups."""
    import pydicom
    import SimpleITK as sitk

    if slices is None:
        slices = check_dicom_series([path], str(path))
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        raise ImageReadError(f"MR series {path}: cannot decode ({str(exc).strip().splitlines()[-1]})") from None
    arr = sitk.GetArrayFromImage(image)
    if arr.ndim != 3 or arr.shape[0] != len(slices):
        raise ImageReadError(f"MR series {path}: decoded {arr.shape}, expected {len(slices)} frames")
    # frames in spatial order (the file may store them in any order)
    arr = arr[[s.frame - 1 for s in slices]]
    ref = slices[0]
    row, col = ref.orientation[:3], ref.orientation[3:]
    step = float(np.linalg.norm(slices[1].position - slices[0].position))
    out = sitk.GetImageFromArray(arr)
    out.SetSpacing((float(ref.spacing[1]), float(ref.spacing[0]), step))
    out.SetOrigin(tuple(float(v) for v in ref.position))
    out.SetDirection(tuple(np.column_stack([row, col, np.cross(row, col)]).ravel().tolist()))
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    return out, {"format": "dicom-enhanced", "n_files": 1, **_header_meta(ds)}


def read_volume(path: str | Path, canonical: bool = True, label: bool = False) -> MRVolume:
    """Read an MR volume: a DICOM series folder, one (enhanced multi-frame) DICOM file, or NIfTI.

    Parameters
    ----------
    path : folder of one DICOM series (one file per slice), a multi-frame DICOM file, or ``.nii``/``.nii.gz``.
    canonical : resample to the canonical sagittal frame (:func:`to_canonical`); else keep the stored axes.
    label : the volume is a label map (nearest-neighbour when an oblique volume is resampled).

    Raises
    ------
    SeriesError : the series is inconsistent (see :func:`check_dicom_series`).
    ImageReadError : the path is missing or cannot be decoded.
    """
    import SimpleITK as sitk

    path = Path(path)
    if not path.exists():
        raise ImageReadError(f"{path}: no such file or folder")
    if path.is_dir():
        image, meta = _read_series_folder(path)
    elif path.name.lower().endswith(_NIFTI_SUFFIXES):
        try:
            image = _clean(sitk.ReadImage(str(path)))
        except RuntimeError as exc:
            raise ImageReadError(f"{path}: cannot read NIfTI ({str(exc).strip().splitlines()[-1]})") from None
        if image.GetDimension() != 3:
            raise ImageReadError(f"{path}: a {image.GetDimension()}-D image, expected a 3-D volume")
        meta = {"format": "nifti", "n_files": 1}
    else:
        image, meta = _read_enhanced(path)
    direction = np.array(image.GetDirection()).reshape(3, 3)
    meta["source_orientation"] = _orientation_code(direction)
    meta["oblique"] = not _is_signed_permutation(direction)
    volume = MRVolume(image, meta)
    if canonical:
        volume = to_canonical(volume, label=label)
    volume.meta["n_slices"] = int(volume.image.GetSize()[2])
    volume.meta = {k: v for k, v in volume.meta.items() if k in VOLUME_META_KEYS}
    return volume


def _is_signed_permutation(direction: np.ndarray, tol: float = _ORIENT_TOL) -> bool:
    rounded = np.round(direction)
    return bool(np.allclose(direction, rounded, atol=tol)
                and np.all(np.abs(rounded).sum(axis=0) == 1) and np.all(np.abs(rounded).sum(axis=1) == 1))


def to_canonical(volume: MRVolume, label: bool = False) -> MRVolume:
    """The volume in the canonical sagittal frame (module docstring: axes P, I, L; code ``"PIL"``).

    An axis-aligned volume is permuted and flipped (exact, no interpolation). An oblique one is
    resampled onto the canonical grid covering its bounding box, with spacing taken from the stored
    axis closest to each canonical axis; linear interpolation, nearest for labels, 0 outside.
    """
    import SimpleITK as sitk

    image = volume.image
    direction = np.array(image.GetDirection()).reshape(3, 3)
    # mapping[c] = stored axis closest to canonical axis c, and whether it points the other way
    cosines = CANONICAL_DIRECTION.T @ direction   # [canonical axis, stored axis]
    mapping = [int(np.argmax(np.abs(cosines[c]))) for c in range(3)]
    if _is_signed_permutation(direction) and sorted(mapping) == [0, 1, 2]:
        out = sitk.PermuteAxes(image, mapping)
        flips = [bool(cosines[c, mapping[c]] < 0) for c in range(3)]
        out = sitk.Flip(out, flips, flipAboutOrigin=False)
        # Flip/Permute give the exact canonical direction up to rounding: set it exactly
        out.SetDirection(tuple(CANONICAL_DIRECTION.ravel().tolist()))
    else:
        spacing = np.array(image.GetSpacing())[mapping]
        size = np.array(image.GetSize())
        corners = np.array([[i, j, k] for i in (0, size[0] - 1) for j in (0, size[1] - 1) for k in (0, size[2] - 1)],
                           dtype=float)
        world = np.array([image.TransformContinuousIndexToPhysicalPoint(tuple(c)) for c in corners])
        canon = world @ CANONICAL_DIRECTION  # coordinates along the canonical axes
        lo, hi = canon.min(axis=0), canon.max(axis=0)
        new_size = [int(np.floor((hi[c] - lo[c]) / spacing[c] + 1e-6)) + 1 for c in range(3)]
        origin = CANONICAL_DIRECTION @ lo
        out = sitk.Resample(image, new_size, sitk.Transform(), sitk.sitkNearestNeighbor if label else sitk.sitkLinear,
                            tuple(origin.tolist()), tuple(float(s) for s in spacing),
                            tuple(CANONICAL_DIRECTION.ravel().tolist()), 0.0, image.GetPixelID())
    return MRVolume(_clean(out), dict(volume.meta))
