"""Lateral spine films from a folder: detect the mSASSS corners and vertebral centres, QC them, draw them.

For films that come as a modality writes them (DICOM, PNG, TIFF, JPEG; no cohort manifest): every image file
under a folder is read with :func:`raoutcome.imaging.io.read_image`, the corners and centres of the given view
(``spine_cervical`` or ``spine_lumbar``; the template of :data:`raoutcome.anatomy.LANDMARK_TEMPLATES`) are
detected by a spine landmark detector (``raoutcome landmarks fit --parts spine_cervical,spine_lumbar``; a local
file, nothing is downloaded) with :func:`raoutcome.workflows.landmarks.detect_images`, which also runs the
landmark QC (:func:`raoutcome.imaging.landmark_qc.assess`: low confidence, implausible shape by Procrustes fit
to the template, rotated / upside down / mirrored, looks like the other spine view, blank). Written (each file
atomically):

- ``landmarks.csv``: the manifest's landmarks table ``path, landmark, x, y`` (+ ``confidence``, ``qc``), ``path``
  relative to the images folder, pixels of the stored image (x right, y down); points detected off the film
  are not written (as the phantom does not write corners off its film);
- ``qc.csv``: one row per film: ``path, view, rows, columns, landmarks, flagged, median_confidence, fit_rms,
  angle_deg, flags`` (image-level QC flags joined by ``;``, ``ok`` when none);
- ``overlays/<path>.png``: the film in grey with the anterior corners drawn (circles; green when the
  landmark's QC is ``ok``, orange when it is flagged), the vertebral centres (crosses) and each vertebra's
  anterior wall (corner to corner), so a reader sees at a glance where the corners were put.

:func:`lateral_spine_sets` finds lateral spine radiograph sets in a data folder (``../shared/data``) by folder
name and by its README's description, for checks on real films.
"""
from __future__ import annotations

__all__ = ["FILM_SUFFIXES", "CornerRun", "list_films", "detect_film_corners", "draw_corners", "lateral_spine_sets"]

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from raoutcome.errors import InputError

FILM_SUFFIXES = frozenset({".dcm", ".dicom", ".dic", ".png", ".jpg", ".jpeg", ".tif", ".tiff"})
QC_COLUMNS = ["path", "view", "rows", "columns", "landmarks", "flagged", "median_confidence", "fit_rms",
              "angle_deg", "flags"]
_OK, _FLAGGED, _CENTRE, _WALL = (40, 220, 60), (255, 150, 0), (80, 170, 255), (255, 255, 0)


@dataclass
class CornerRun:
    """What :func:`detect_film_corners` wrote: the tables (also on disk) and the overlay files."""

    landmarks: pd.DataFrame
    qc: pd.DataFrame
    overlays: list[Path]


def list_films(folder: str | Path) -> list[Path]:
    """Image files under ``folder`` (recursive, sorted): a known image suffix, or no suffix and a DICOM or
    raster signature (PACS exports often have bare names). Hidden files and ``DICOMDIR`` are left out."""
    from raoutcome.imaging.io import sniff_format

    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"--images {folder}: no such folder")
    films = []
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(folder)
        if not p.is_file() or any(part.startswith(".") for part in rel.parts) or p.name.upper() == "DICOMDIR":
            continue
        if p.suffix.lower() in FILM_SUFFIXES:
            films.append(p)
        elif p.suffix == "":
            with open(p, "rb") as fh:
                if sniff_format(p, fh.read(132)) is not None:
                    films.append(p)
    if not films:
        raise InputError(f"--images {folder}: no image file (DICOM, PNG, TIFF, JPEG) in the folder")
    return films


def _overlay_name(rel: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", rel.replace("/", "__")) + ".png"


def draw_corners(pixels: np.ndarray, points: dict[str, tuple[float, float]], qc: dict[str, str]) -> np.ndarray:
    """``uint8 (H, W, 3)``: the film (``[0, 1]`` grey) with the corners (``*_sup`` / ``*_inf``, circles coloured
    by their QC label), the centres (``*_c``, crosses) and each vertebra's anterior wall drawn."""
    from PIL import Image, ImageDraw

    grey = np.round(np.clip(pixels, 0.0, 1.0) * 255).astype(np.uint8)
    img = Image.fromarray(np.stack([grey] * 3, -1))
    draw = ImageDraw.Draw(img)
    r = max(2.0, max(pixels.shape) / 120)
    width = max(1, int(round(r / 3)))
    levels = dict.fromkeys(n.rsplit("_", 1)[0] for n in points)
    for level in levels:
        sup, inf = points.get(f"{level}_sup"), points.get(f"{level}_inf")
        if sup is not None and inf is not None:
            draw.line([sup, inf], fill=_WALL, width=width)
    for name, (x, y) in points.items():
        if name.endswith("_c"):
            draw.line([(x - r, y), (x + r, y)], fill=_CENTRE, width=width)
            draw.line([(x, y - r), (x, y + r)], fill=_CENTRE, width=width)
        else:
            colour = _OK if qc.get(name, "ok") == "ok" else _FLAGGED
            draw.ellipse([x - r, y - r, x + r, y + r], outline=colour, width=width)
    return np.asarray(img)


def detect_film_corners(images: str | Path, detector: str | Path, view: str, out: str | Path,
                        refine: bool | None = None, log=None) -> CornerRun:
    """Detect, QC and draw the corners of every film under ``images`` as ``view``; write into ``out``.

    Parameters
    ----------
    images : folder of lateral films (see :func:`list_films`).
    detector : spine landmark detector file (safetensors from ``raoutcome landmarks fit``) whose parts
        include the body part of ``view``.
    view : ``spine_cervical`` or ``spine_lumbar``.
    out : folder for ``landmarks.csv``, ``qc.csv`` and ``overlays/``.
    refine : the detector's refinement pass (see :func:`raoutcome.workflows.landmarks.detect_images`).

    Returns
    -------
    CornerRun
        The two tables and the overlay paths.

    Raises
    ------
    InputError
        A film that cannot be read (names its file), an unknown view, a missing detector or one without the
        view's channels (names them); nothing is written then (the overlays go to a temporary folder that
        replaces ``out/overlays`` at the end, the tables after it).
    """
    import os
    import shutil

    from raoutcome.io_utils import atomic_write, replace_folder
    from raoutcome.models.landmarks import load_detector
    from raoutcome.msasss import SPINE_VIEWS
    from raoutcome.workflows.landmarks import LANDMARK_COLUMNS, write_landmarks

    if view not in SPINE_VIEWS:
        raise InputError(f"--view {view!r}: a lateral spine view is one of {', '.join(SPINE_VIEWS)}")
    if not Path(detector).is_file():
        raise InputError(f"--detector {detector}: no such file")
    model = load_detector(detector)
    if view not in model.spec.parts:
        raise InputError(f"--detector {detector}: it detects {', '.join(model.spec.parts)} landmarks, not "
                         f"{view!r} (train one with `raoutcome landmarks fit --parts spine_cervical,spine_lumbar`)")
    images = Path(images)
    films = list_films(images)
    out = Path(out)
    if out.resolve().is_relative_to(images.resolve()):
        raise InputError(f"--out {out}: inside the images folder {images} (a rerun would read the overlays as films)")
    out.mkdir(parents=True, exist_ok=True)
    tmp_dir = out / f".overlays.tmp{os.getpid()}"
    shutil.rmtree(tmp_dir, ignore_errors=True)
    tmp_dir.mkdir()
    try:
        rows, qc_rows, names = _detect_all(model, images, films, view, refine, tmp_dir, log)
        overlays_dir = replace_folder(tmp_dir, out / "overlays")
    except BaseException:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        raise
    landmarks = pd.DataFrame(rows, columns=LANDMARK_COLUMNS)
    qc = pd.DataFrame(qc_rows, columns=QC_COLUMNS)
    write_landmarks(landmarks, out / "landmarks.csv")
    with atomic_write(out / "qc.csv") as fh:
        qc.to_csv(fh, index=False)
    return CornerRun(landmarks, qc, [overlays_dir / n for n in names])


def _detect_all(model, images: Path, films: list[Path], view: str, refine, tmp_dir: Path, log):
    """Per film: read, detect + QC, draw into ``tmp_dir``. Returns (landmark rows, QC rows, overlay names)."""
    from PIL import Image

    from raoutcome.imaging.io import read_image
    from raoutcome.workflows.landmarks import detect_images

    rows, qc_rows, names = [], [], []
    for path in films:
        rel = path.relative_to(images).as_posix()
        pixels = read_image(path).pixels
        det = detect_images(model, [(pixels, view)], refine=refine)[0]
        h, w = pixels.shape
        inside = {n: (x, y) for n, (x, y) in det.points.items() if -0.5 <= x <= w - 0.5 and -0.5 <= y <= h - 0.5}
        det_rows = [r for r in det.rows(rel) if r["landmark"] in inside]
        rows.extend(det_rows)
        labels = {r["landmark"]: r["qc"] for r in det_rows}
        fit = det.qc.fit
        qc_rows.append(dict(path=rel, view=view, rows=h, columns=w, landmarks=len(det_rows),
                            flagged=sum(q != "ok" for q in labels.values()),
                            median_confidence=round(float(np.median(list(det.confidence.values()))), 4),
                            fit_rms=None if fit is None else round(fit.rms, 4),
                            angle_deg=None if fit is None else round(fit.angle_deg, 2),
                            flags=";".join(det.qc.flags) or "ok"))
        names.append(_overlay_name(rel))
        Image.fromarray(draw_corners(pixels, inside, labels)).save(tmp_dir / names[-1], format="PNG")
        if log is not None:
            log(f"{rel}: {len(det_rows)} landmarks, QC {qc_rows[-1]['flags']}")
    return rows, qc_rows, names


_VIEW_WORDS = (("spine_cervical", ("cervical", "cspine", "c-spine", "c_spine", "neck")),
               ("spine_lumbar", ("lumbar", "lspine", "l-spine", "l_spine")))
_NOT_RADIOGRAPH = ("mri", "mr ", "nifti", ".nii", " ct ", "-ct", "_ct")


def _spine_view(text: str) -> str | None:
    text = text.lower()
    for view, words in _VIEW_WORDS:
        if any(w in text for w in words):
            return view
    return "spine" if "spine" in text or "vertebra" in text else None


def lateral_spine_sets(root: str | Path) -> list[tuple[Path, str]]:
    """``(folder, view)`` of each lateral spine radiograph set in the data folder ``root``.

    A child folder counts when its name says lateral spine radiographs (``lateral`` or ``xray`` / ``x-ray`` /
    ``radiograph`` together with ``spine``, ``cervical`` or ``lumbar``), or when ``root/README.md`` has a
    ``## folder/`` section that says *lateral* and *radiograph* (or X-ray) of the spine; a name or section that
    says MRI, CT or NIfTI does not count (``cspine-mri``). ``view`` is ``spine_cervical``, ``spine_lumbar`` or
    ``spine`` (not said). An absent ``root`` gives ``[]``.
    """
    root = Path(root)
    if not root.is_dir():
        return []
    found: dict[Path, str] = {}
    readme = root / "README.md"
    if readme.is_file():
        for match in re.finditer(r"^##\s+`?([^\s`/]+)/?`?\s*$(.*?)(?=^##\s|\Z)", readme.read_text(errors="replace"),
                                 flags=re.M | re.S):
            name, text = match.group(1), match.group(2).lower()
            folder = root / name
            if (folder.is_dir() and "lateral" in text and ("radiograph" in text or "x-ray" in text)
                    and not any(w in text for w in ("mri", "nifti", "magnetic resonance"))):
                view = _spine_view(name + " " + text)
                if view is not None:
                    found[folder] = view
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        name = folder.name.lower()
        if folder in found or any(w in f" {name} " for w in _NOT_RADIOGRAPH):
            continue
        view = _spine_view(name)
        if view is not None and any(w in name for w in ("lateral", "xray", "x-ray", "radiograph", "film")):
            found[folder] = view
    return sorted(found.items())
