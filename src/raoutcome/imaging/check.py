"""The deep image check: decode every image of a cohort (header and pixels) before any work starts.

:func:`check_image` decodes one file with :func:`raoutcome.imaging.io.read_image` and says what
is wrong with it, if anything:

========================  ===============================================================
kind                      when
========================  ===============================================================
``empty``                 the file has 0 bytes
``not_an_image``          not an image format, or a DICOM object without pixels (structured
                          report, RT plan, key-object selection, ...); the SOP class is named
``too_large``             a header declares more than :data:`MAX_PIXELS` pixels, or more than
                          :data:`MAX_FRAMES` frames (decompression bombs, absurd headers)
``unreadable``            the header or pixel stream cannot be decoded (truncated, corrupt,
                          missing required elements, zero rows, unsupported compression)
``colour``                palette colour, or true colour (channels differ); radiographs are grey
``small``                 fewer than :data:`MIN_SIDE` pixels on a side
``constant``              every pixel has the same value (a blank or failed export)
========================  ===============================================================

:func:`check_images` runs it over many files in parallel (one process per core) with a
progress bar, and caches each result in a small SQLite file keyed by the file's absolute path,
size and mtime; when the stat changed, the file's SHA-256 is looked up before decoding again,
so a touched or copied file costs a read, not a decode. A second check of an unchanged cohort
costs one ``stat`` per file. The cache lives in ``$RAOUTCOME_CACHE_DIR`` (default
``$XDG_CACHE_HOME/raoutcome`` or ``~/.cache/raoutcome``); it holds no pixels and no header
values, only file paths, sizes, hashes and the verdict. Where it cannot be written the check
runs uncached.
"""
from __future__ import annotations

__all__ = ["ImageCheck", "check_image", "check_images", "CheckCache", "MIN_SIDE", "MAX_PIXELS", "MAX_FRAMES",
           "CHECK_VERSION", "default_cache_dir"]

import contextlib
import functools
import hashlib
import os
import sqlite3
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from raoutcome.errors import ImageReadError

#: Smallest plausible radiograph side in pixels.
MIN_SIDE = 32
#: Largest image accepted, in pixels (a 14 x 17 inch detector at 0.05 mm is about 55 M).
MAX_PIXELS = 100_000_000
#: Most frames a radiograph file may declare.
MAX_FRAMES = 1000
#: Processes used when the caller does not say (None: one per usable core).
DEFAULT_WORKERS: int | None = None
#: Bump when the rules change: cached verdicts of older versions are ignored.
CHECK_VERSION = 1

_NON_IMAGE_SOP = {
    "1.2.840.10008.5.1.4.1.1.88": "structured report (SR)",
    "1.2.840.10008.5.1.4.1.1.481.5": "RT plan",
    "1.2.840.10008.5.1.4.1.1.481.3": "RT structure set",
    "1.2.840.10008.5.1.4.1.1.481.2": "RT dose",
    "1.2.840.10008.5.1.4.1.1.11": "presentation state",
    "1.2.840.10008.5.1.4.1.1.104.1": "encapsulated PDF",
    "1.2.840.10008.5.1.4.1.1.66": "raw data",
}
_NON_IMAGE_MODALITY = {"SR": "structured report (SR)", "RTPLAN": "RT plan", "RTSTRUCT": "RT structure set",
                       "KO": "key object selection", "PR": "presentation state", "DOC": "document"}


@dataclass(frozen=True)
class ImageCheck:
    """The verdict on one file: ``kind``/``reason`` None when it is fine; its size in pixels."""

    kind: str | None = None
    reason: str | None = None
    rows: int | None = None
    columns: int | None = None

    @property
    def ok(self) -> bool:
        return self.kind is None


def _strip_path(message: str, path: Path) -> str:
    """ImageReadError messages start with the path; the caller names the file already."""
    text = str(message)
    prefix = f"{path}: "
    return text[len(prefix):] if text.startswith(prefix) else text


def _dicom_precheck(path: Path) -> ImageCheck | None:
    """Header-only checks of a DICOM file: not an image, absurd sizes (before any pixel is decoded)."""
    import pydicom

    try:
        ds = pydicom.dcmread(path, force=True, stop_before_pixels=True)
    except Exception:  # noqa: BLE001 - read_image reports header problems with detail
        return None
    sop = str(ds.get("SOPClassUID", "") or "")
    modality = str(ds.get("Modality", "") or "").strip().upper()
    what = next((v for k, v in _NON_IMAGE_SOP.items() if sop.startswith(k)), None) or _NON_IMAGE_MODALITY.get(
        modality)
    if what is not None:
        return ImageCheck("not_an_image", f"DICOM {what}, not an image (SOP class {sop or 'not given'}, "
                                          f"modality {modality or 'not given'})")
    try:
        rows, cols = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
        frames = int(str(ds.get("NumberOfFrames", 1) or 1).strip() or 1)
        spp = int(ds.get("SamplesPerPixel", 1) or 1)
    except (TypeError, ValueError) as err:
        return ImageCheck("unreadable", f"DICOM size elements are not numbers: {err}")
    if frames < 1:
        return ImageCheck("unreadable", f"DICOM header declares {frames} frames")
    if frames > MAX_FRAMES:
        return ImageCheck("too_large", f"DICOM header declares {frames} frames (a radiograph has a few; "
                                       f"more than {MAX_FRAMES} is refused)")
    if rows * cols * spp > MAX_PIXELS:
        return ImageCheck("too_large", f"DICOM header declares {rows} x {cols} pixels x {spp} samples, more than "
                                       f"{MAX_PIXELS:,} (refused before decoding)")
    return None


def _raster_precheck(path: Path) -> ImageCheck | None:
    """Size and colour mode of a PNG/JPEG/TIFF from its header (Pillow opens lazily)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            w, h = im.size
            mode = im.mode
            if w * h > MAX_PIXELS:
                return ImageCheck("too_large", f"image declares {w} x {h} pixels, more than {MAX_PIXELS:,} "
                                               f"(refused before decoding)")
            if mode in ("P", "PA"):
                return ImageCheck("colour", "palette-colour image; radiographs must be greyscale", h, w)
            if mode in ("RGB", "RGBA", "CMYK", "YCbCr", "LAB", "HSV"):
                im.load()
                arr = np.asarray(im.convert("RGB"))
                if not (np.array_equal(arr[..., 0], arr[..., 1]) and np.array_equal(arr[..., 1], arr[..., 2])):
                    return ImageCheck("colour", f"colour image ({mode}, channels differ); radiographs must be "
                                                f"greyscale", h, w)
    except Image.DecompressionBombError as err:
        return ImageCheck("too_large", f"image too large to decode safely: {err}")
    except Exception:  # noqa: BLE001 - read_image names decoding problems with detail
        return None
    return None


def check_image(path: str | os.PathLike) -> ImageCheck:
    """Decode one image (header and pixels) and return what is wrong with it, if anything."""
    from raoutcome.imaging.io import read_image, sniff_format

    path = Path(path)
    try:
        size = os.stat(path).st_size
        with open(path, "rb") as fh:
            head = fh.read(132)
    except OSError as err:
        return ImageCheck("unreadable", f"cannot open the file: {err.strerror or err}")
    if size == 0:
        return ImageCheck("empty", "image file is empty (0 bytes)")
    fmt = sniff_format(path, head)
    if fmt is None:
        return ImageCheck("not_an_image", f"not an image (expected DICOM, PNG, TIFF or JPEG; first bytes "
                                          f"{head[:8]!r})")
    pre = _dicom_precheck(path) if fmt == "dicom" else _raster_precheck(path)
    if pre is not None and pre.kind in ("not_an_image", "too_large", "unreadable"):
        return pre
    try:
        image = read_image(path)
    except ImageReadError as err:
        msg = _strip_path(str(err), path)
        kind = "colour" if "PALETTE COLOR" in msg else "unreadable"
        return ImageCheck(kind, msg)
    except MemoryError:
        return ImageCheck("too_large", "image too large to decode")
    except Exception as err:  # noqa: BLE001 - any decoder failure is the file's problem
        return ImageCheck("unreadable", f"cannot decode: {type(err).__name__}: {err}")
    pixels = image.pixels
    rows, cols = (int(n) for n in pixels.shape)
    if pre is not None:  # colour found from the raster header
        return ImageCheck(pre.kind, pre.reason, rows, cols)
    photometric = str(image.meta.get("photometric", "MONOCHROME2"))
    if image.meta.get("format") == "dicom" and not photometric.startswith("MONOCHROME"):
        return ImageCheck("colour", f"colour DICOM image ({photometric}); radiographs must be MONOCHROME1/2",
                          rows, cols)
    if min(rows, cols) < MIN_SIDE:
        return ImageCheck("small", f"implausibly small image ({cols} x {rows} pixels; a radiograph has at least "
                                   f"{MIN_SIDE} on each side)", rows, cols)
    lo, hi = float(pixels.min()), float(pixels.max())
    if hi - lo == 0.0:
        return ImageCheck("constant", f"constant image (every pixel is {lo:g} after scaling to [0, 1])", rows, cols)
    return ImageCheck(None, None, rows, cols)


# ------------------------------------------------------------------------------------------- cache
def default_cache_dir() -> Path:
    env = os.environ.get("RAOUTCOME_CACHE_DIR")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "raoutcome"


def _digest(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class CheckCache:
    """Verdicts by (absolute path, size, mtime_ns), and by content hash (SQLite, safe across processes)."""

    def __init__(self, folder: str | os.PathLike | None = None):
        self.path = Path(folder or default_cache_dir()) / "image_check.sqlite"
        self.db: sqlite3.Connection | None = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(self.path, timeout=30)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("CREATE TABLE IF NOT EXISTS checks (path TEXT PRIMARY KEY, size INTEGER, mtime INTEGER,"
                            " sha256 TEXT, version INTEGER, kind TEXT, reason TEXT, rows INTEGER, cols INTEGER)")
            self.db.execute("CREATE INDEX IF NOT EXISTS by_hash ON checks (sha256, version)")
            self.db.commit()
        except (OSError, sqlite3.Error):
            self.db = None  # read-only home, full disk, ...: run uncached

    def by_stat(self, paths: Sequence[str], stats: Sequence[tuple[int, int]]) -> dict[str, ImageCheck]:
        if self.db is None:
            return {}
        out: dict[str, ImageCheck] = {}
        want = dict(zip(paths, stats))
        items = list(want)
        for i in range(0, len(items), 900):  # SQLite's variable limit
            chunk = items[i:i + 900]
            q = ("SELECT path, size, mtime, kind, reason, rows, cols FROM checks WHERE version = ? AND path IN ("
                 + ",".join("?" * len(chunk)) + ")")
            for p, size, mtime, kind, reason, rows, cols in self.db.execute(q, [CHECK_VERSION, *chunk]):
                if (size, mtime) == want[p]:
                    out[p] = ImageCheck(kind, reason, rows, cols)
        return out

    def by_hash(self, digest: str) -> ImageCheck | None:
        if self.db is None:
            return None
        row = self.db.execute("SELECT kind, reason, rows, cols FROM checks WHERE sha256 = ? AND version = ? LIMIT 1",
                              (digest, CHECK_VERSION)).fetchone()
        return None if row is None else ImageCheck(*row)

    def put(self, entries: Iterable[tuple[str, int, int, str, ImageCheck]]) -> None:
        if self.db is None:
            return
        rows = [(p, size, mtime, digest, CHECK_VERSION, c.kind, c.reason, c.rows, c.columns)
                for p, size, mtime, digest, c in entries]
        with contextlib.suppress(sqlite3.Error):
            self.db.executemany("INSERT OR REPLACE INTO checks VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
            self.db.commit()

    def close(self) -> None:
        if self.db is not None:
            self.db.close()
            self.db = None


# ------------------------------------------------------------------------------------------- many files
def _work(paths: list[str], cache_folder: str | None = None) -> list[tuple[str, str, ImageCheck]]:
    """Worker: hash each file, reuse the verdict on identical bytes from the cache, else decode it."""
    store = CheckCache(cache_folder) if cache_folder is not None else None
    out = []
    try:
        for p in paths:
            try:
                digest = _digest(p)
            except OSError:
                digest = ""
            known = store.by_hash(digest) if (store is not None and digest) else None
            out.append((p, digest, known if known is not None else check_image(p)))
    finally:
        if store is not None:
            store.close()
    return out


class _Bar:
    """``add_task`` / ``advance`` over the library's one progress bar (tqdm, quiet off a terminal)."""

    def __init__(self, total: int, enabled: bool):
        from raoutcome.progress import tqdm

        self.bar = tqdm(total=total, desc="checking images", unit="image", leave=False, disable=not enabled)

    def __enter__(self) -> "_Bar":
        return self

    def __exit__(self, *_exc) -> None:
        self.bar.close()

    def add_task(self, description: str, total: int | None = None) -> int:
        return 0

    def advance(self, task: int, n: int = 1) -> None:
        self.bar.update(n)


def _progress(total: int, enabled: bool) -> _Bar:
    return _Bar(total, enabled)


def check_images(paths: Sequence[str | os.PathLike], *, workers: int | None = None,
                 cache: CheckCache | str | os.PathLike | None | bool = None, progress: bool = True,
                 chunk: int = 32) -> dict[str, ImageCheck]:
    """Check many files; returns ``{path as given: ImageCheck}``.

    Parameters
    ----------
    paths : files to check (absolute, or relative to the working folder).
    workers : processes (default: the usable cores); 1 checks in this process.
    cache : a :class:`CheckCache`, a cache folder, None (the default folder) or False (no cache).
    progress : show a progress bar on a terminal.
    """
    own_cache = not isinstance(cache, CheckCache)
    store = (None if cache is False else cache if isinstance(cache, CheckCache) else CheckCache(cache))
    keyed = {os.path.abspath(os.fspath(p)): os.fspath(p) for p in paths}
    results: dict[str, ImageCheck] = {}
    stats: dict[str, tuple[int, int]] = {}
    for a in keyed:
        try:
            st = os.stat(a)
            stats[a] = (st.st_size, st.st_mtime_ns)
        except OSError as err:
            results[a] = ImageCheck("unreadable", f"cannot open the file: {err.strerror or err}")
    todo = [a for a in keyed if a in stats]
    if store is not None:
        hits = store.by_stat(todo, [stats[a] for a in todo])
        results.update(hits)
        todo = [a for a in todo if a not in hits]
    n_workers = workers or DEFAULT_WORKERS or (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
    n_workers = max(1, min(n_workers, (len(todo) + chunk - 1) // chunk))
    fresh: list[tuple[str, int, int, str, ImageCheck]] = []
    with _progress(len(todo), progress) as bar:
        task = bar.add_task("check", total=len(todo))

        def take(batch: list[tuple[str, str, ImageCheck]]) -> None:
            for a, digest, verdict in batch:
                results[a] = verdict
                fresh.append((a, *stats[a], digest, verdict))
            bar.advance(task, len(batch))

        batches = [todo[i:i + chunk] for i in range(0, len(todo), chunk)]
        folder = str(store.path.parent) if store is not None and store.db is not None else None
        work = functools.partial(_work, cache_folder=folder)
        if n_workers <= 1 or len(batches) <= 1:
            for b in batches:
                take(work(b))
        else:
            import multiprocessing as mp

            # fork is cheap, but not safe once torch (or other threaded libraries) is loaded
            method = "fork" if "torch" not in sys.modules and sys.platform.startswith("linux") else "spawn"
            with ProcessPoolExecutor(n_workers, mp_context=mp.get_context(method)) as pool:
                for batch in pool.map(work, batches):
                    take(batch)
    if store is not None:
        store.put(fresh)
        if own_cache:
            store.close()
    return {keyed[a]: results[a] for a in keyed}
