"""A disk cache of preprocessed radiographs, so epochs after the first never decode again.

``ImageCache(root, size).get(path, view)`` returns the image as
``float32[1, size, size]`` (read -> :func:`~raoutcome.imaging.transforms.preprocess`).

**Keys.** An entry is named by a hash of (the file's *content* hash, the
transform parameters: size, whether the view is mirrored, contrast
percentiles, pad value, storage dtype, :data:`CACHE_VERSION`). Editing a file
therefore never serves a stale array, and changing any transform parameter
makes a new entry. Hashing a file's bytes on every ``get`` would cost a full
read, so with ``validate="stat"`` (the default) the content hash is looked up
by the file's ``(resolved path, size, mtime_ns, inode)``, remembered in memory
and in a small per-file index under ``root/index/``; any write to the file
changes its stat and forces a re-hash. ``validate="content"`` re-hashes the
bytes on every call (for file systems whose mtimes cannot be trusted).

**Storage.** Each entry is one ``.npy`` file under ``root/arrays/`` (float16 by
default: half the disk, ample precision for [0, 1] pixels), read back
memory-mapped. Every file is written to a temporary name in the same folder and
renamed into place (:func:`raoutcome.io_utils.atomic_write`), so concurrent DataLoader workers or
processes never see a partial file; two writers of one entry write identical
bytes and the last rename wins.

Bump :data:`CACHE_VERSION` whenever reading or preprocessing changes output.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from raoutcome.imaging.io import read_image
from raoutcome.io_utils import atomic_write
from raoutcome.imaging.transforms import needs_mirror, preprocess

CACHE_VERSION = 1
_CHUNK = 1 << 20


def file_digest(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes (hex)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


class ImageCache:
    """Preprocessed ``float32[1, size, size]`` images, keyed by file content and transform.

    Parameters: ``root`` (cache folder, created), ``size`` (square side),
    ``contrast`` (``(lo, hi)`` percentiles for
    :func:`~raoutcome.imaging.transforms.percentile_normalize`, or None),
    ``pad_value``, ``dtype`` (storage: ``"float16"`` or ``"float32"``),
    ``validate`` (``"stat"`` or ``"content"``, see the module docs).
    Safe to share between threads and processes.
    """

    def __init__(self, root: str | os.PathLike, size: int, *, contrast: tuple[float, float] | None = None,
                 pad_value: float = 0.0, dtype: str = "float16", validate: str = "stat"):
        if int(size) < 1:
            raise ValueError(f"size must be a positive integer, got {size!r}")
        if np.dtype(dtype) not in (np.float16, np.float32):
            raise ValueError(f"dtype must be float16 or float32, got {dtype!r}")
        if validate not in ("stat", "content"):
            raise ValueError(f"validate must be 'stat' or 'content', got {validate!r}")
        self.root = Path(root)
        self.size = int(size)
        self.contrast = None if contrast is None else (float(contrast[0]), float(contrast[1]))
        self.pad_value = float(pad_value)
        self.dtype = np.dtype(dtype)
        self.validate = validate
        self._arrays = self.root / "arrays"
        self._index = self.root / "index"
        self._shapes = self.root / "shapes"
        self._arrays.mkdir(parents=True, exist_ok=True)
        self._index.mkdir(parents=True, exist_ok=True)
        self._shapes.mkdir(parents=True, exist_ok=True)
        self._digests: dict[tuple, str] = {}  # stat signature -> content hash (this process)

    # -- keys -------------------------------------------------------------------------
    def content_hash(self, path: str | os.PathLike) -> str:
        """The file's content hash, re-computed only when its stat changed (``validate="stat"``)."""
        path = Path(path).resolve()
        if self.validate == "content":
            return file_digest(path)
        st = path.stat()
        sig = (str(path), st.st_size, st.st_mtime_ns, st.st_ino)
        digest = self._digests.get(sig)
        if digest is not None:
            return digest
        index_file = self._index / (hashlib.sha256(str(path).encode()).hexdigest()[:32] + ".json")
        try:
            entry = json.loads(index_file.read_text())
            if tuple(entry["sig"]) == sig:
                digest = entry["sha256"]
        except (OSError, ValueError, KeyError, TypeError):
            pass
        if digest is None:
            digest = file_digest(path)
            with atomic_write(index_file) as fh:
                json.dump({"sig": list(sig), "sha256": digest}, fh)
        self._digests[sig] = digest
        return digest

    def key(self, path: str | os.PathLike, view: str | None) -> str:
        """The entry name for ``path`` seen as ``view`` under this cache's transform."""
        params = {
            "v": CACHE_VERSION, "content": self.content_hash(path), "size": self.size,
            "mirror": needs_mirror(view), "contrast": self.contrast, "pad": self.pad_value,
            "dtype": self.dtype.name,
        }
        return hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()

    def entry_path(self, path: str | os.PathLike, view: str | None) -> Path:
        k = self.key(path, view)
        return self._arrays / k[:2] / f"{k}.npy"

    # -- access -----------------------------------------------------------------------
    def get(self, path: str | os.PathLike, view: str | None = None) -> np.ndarray:
        """``float32[1, size, size]``: from the cache, or read + preprocess + store once.

        Raises :class:`~raoutcome.errors.ImageReadError` for an unreadable image
        (nothing is cached then).
        """
        entry = self.entry_path(path, view)
        try:
            stored = np.load(entry, mmap_mode="r")
            if stored.shape == (1, self.size, self.size):
                return np.array(stored, dtype=np.float32)
        except (OSError, ValueError):
            pass  # absent, or unreadable (e.g. a foreign partial file): rebuild it
        image = read_image(path)
        self._store_shape(path, image.pixels.shape)
        arr = preprocess(image.pixels, view, self.size, contrast=self.contrast,
                         pad_value=self.pad_value)[None].astype(self.dtype)
        with atomic_write(entry, "wb") as fh:
            np.save(fh, arr, allow_pickle=False)
        return arr.astype(np.float32)

    def source_shape(self, path: str | os.PathLike) -> tuple[int, int]:
        """``(rows, columns)`` of the stored image before preprocessing (to carry landmarks
        into the model frame); recorded when the image is first decoded."""
        shape_file = self._shapes / f"{self.content_hash(path)}.json"
        try:
            rows, cols = json.loads(shape_file.read_text())
            return int(rows), int(cols)
        except (OSError, ValueError, TypeError):
            pass
        shape = read_image(path).pixels.shape
        self._store_shape(path, shape)
        return int(shape[0]), int(shape[1])

    def _store_shape(self, path: str | os.PathLike, shape: tuple[int, ...]) -> None:
        shape_file = self._shapes / f"{self.content_hash(path)}.json"
        if not shape_file.exists():
            with atomic_write(shape_file) as fh:
                json.dump([int(shape[0]), int(shape[1])], fh)
