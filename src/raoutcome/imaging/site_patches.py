"""Posed site patches of a cohort: one small square patch per scored joint site of every image.

The site-level reader (:mod:`raoutcome.models.site_model`) scores each SvdH site from a patch centred on
its landmark, turned and scaled to the view's standard frame by the pose of the image's landmarks
(:func:`raoutcome.imaging.landmark_pose.landmark_pose`, sampled by
:func:`raoutcome.imaging.joint_anomaly.joint_patches`, the same posing as the joint anomaly), right-side
views mirrored to the canonical left orientation. So the same joint gives the same patch whatever the
hand's angle and size on the film, and one shared encoder can read every site.

Each patch is scaled by its image's grey-level statistics (the image mean and SD), not by its own: the
exposure of the film goes, while the bone's density relative to the rest of the hand (periarticular
osteopenia) and the soft tissue around the joint (swelling) stay in the patch.

The sites of a view are the union of its SvdH JSN and erosion sites (:func:`raoutcome.anatomy.sites_for`);
a site's landmark is found under its own name or an alias (the thumb MCP ``MCP1`` as ``MP``,
:data:`raoutcome.imaging.joint_targets.SITE_ALIASES`). Joint names are ``view:site``
(:func:`raoutcome.anatomy.joint_name`), as in a cohort's ``joints`` table.
"""
from __future__ import annotations

__all__ = ["SITE_GRID", "SITE_HALF_WIDTH", "SitePatches", "cohort_site_patches", "patches_file", "site_names",
           "site_targets", "view_sites", "locate_sites"]

import hashlib
import io
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from raoutcome import anatomy
from raoutcome.errors import InputError

#: Samples per side of a site patch.
SITE_GRID = 32
#: Half-width of a site patch in units of the standard frame (a standard-framed image's side): 0.08 spans
#: the joint, its periarticular bone and the soft tissue beside it (the joint anomaly's 0.0625 spans the joint).
SITE_HALF_WIDTH = 0.08
_KINDS = ("jsn", "erosion")
_TABLE_COLUMNS = ("patient_id", "visit_id", "view", "site", "joint", "path")
_CACHE_FORMAT = 2  # 2: the table as string columns (1: as JSON); part of the cache key, so old caches are not reused


def view_sites(view: str) -> tuple[str, ...]:
    """The scored sites of ``view`` (union of its SvdH JSN and erosion sites), in a fixed order."""
    seen: dict[str, None] = {}
    for kind in ("erosion", "jsn"):
        for site in anatomy.sites_for(view, kind):
            seen.setdefault(site, None)
    return tuple(seen)


def site_names(views: Iterable[str]) -> tuple[str, ...]:
    """Every joint name ``view:site`` of ``views`` (in :data:`raoutcome.anatomy.VIEWS` order): the site vocabulary
    of a site model, whose identity embedding is indexed by position here."""
    chosen = set(views)
    return tuple(anatomy.joint_name(v, s) for v in anatomy.VIEWS if v in chosen for s in view_sites(v))


@dataclass
class SitePatches:
    """A cohort's site patches.

    ``table``: one row per patch, ``patient_id, visit_id, view, site, joint, path``; ``patches``:
    ``float32[len(table), grid, grid]`` (canonical left orientation, scaled by the image's grey-level mean
    and SD).
    """

    table: pd.DataFrame
    patches: np.ndarray
    grid: int
    half_width: float

    def __len__(self) -> int:
        return len(self.table)

    def subset(self, patient_ids: Iterable[str]) -> "SitePatches":
        keep = self.table["patient_id"].isin({str(p) for p in patient_ids}).to_numpy()
        return SitePatches(self.table[keep].reset_index(drop=True), self.patches[keep], self.grid, self.half_width)

    def save(self, path: str | Path) -> Path:
        """Write atomically: the patches as a plain ``.npy`` beside ``path`` (:func:`patches_file`; :meth:`load`
        maps it, where the same array inside the ``.npz`` cost ~40 ms per 10 000 patches: zip CRC, copies), then
        ``path`` itself, one ``.npz`` of each table column as a string array (``col_<name>``: a warm ``predict``
        reads them in milliseconds, where the JSON table of earlier caches took ~0.2 s per 10 000 patches) and
        the settings. The ``.npz`` is written last, so its presence means both are complete."""
        from raoutcome.io_utils import atomic_path

        path = Path(path)
        columns = {f"col_{c}": self.table[c].to_numpy(str) for c in _TABLE_COLUMNS}
        with atomic_path(patches_file(path)) as tmp:
            with open(tmp, "wb") as fh:
                np.save(fh, np.ascontiguousarray(self.patches))
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, **columns, meta=json.dumps({"grid": self.grid, "half_width": self.half_width}))
        return path

    @classmethod
    def load(cls, path: str | Path) -> "SitePatches":
        """Read a file of :meth:`save` (or an earlier cache: the patches inside the ``.npz``, the table as string
        columns or as JSON)."""
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            if "col_patient_id" in z.files:
                table = pd.DataFrame({c: z[f"col_{c}"].astype(object) for c in _TABLE_COLUMNS})
            else:
                table = pd.read_json(io.StringIO(str(z["table"])), orient="split", dtype=False)
                table = table.astype({c: str for c in _TABLE_COLUMNS})
            # the .npy mapped copy-on-write: pages are read as the patches are used, never copied whole
            patches = (z["patches"] if "patches" in z.files
                       else np.load(patches_file(path), mmap_mode="c", allow_pickle=False))
        if len(patches) != len(table):
            raise ValueError(f"{path}: {len(table)} table rows but {len(patches)} patches")
        return cls(table, patches, int(meta["grid"]), float(meta["half_width"]))


def patches_file(path: str | Path) -> Path:
    """The ``.npy`` of the patches of the cache file ``path`` (``site_patches_<key>.npz`` ->
    ``site_patches_<key>.patches.npy``)."""
    path = Path(path)
    return path.with_name(path.stem + ".patches.npy")


def locate_sites(view: str, marks: dict) -> dict[str, tuple[float, float]]:
    """``{site: (x, y)}`` of the scored sites of ``view`` found among the landmarks ``marks`` (name -> (x, y)), a
    site read at its own landmark or at an alias (:data:`raoutcome.imaging.joint_targets.SITE_ALIASES`)."""
    located = {s: _locate(s, marks) for s in view_sites(view)}
    return {s: xy for s, xy in located.items() if xy is not None}


def _locate(site: str, marks: dict) -> tuple[float, float] | None:
    from raoutcome.imaging.joint_targets import SITE_ALIASES

    for name in (site, *SITE_ALIASES.get(site, ())):
        if name in marks:
            return marks[name]
    return None


def _cache_key(cohort, grid: int, half_width: float, views: Sequence[str] | None) -> str:
    h = hashlib.sha256()
    h.update(json.dumps([str(cohort.root), grid, half_width, sorted(views or []), _CACHE_FORMAT]).encode())
    h.update(pd.util.hash_pandas_object(cohort.images, index=False).values.tobytes())
    h.update(pd.util.hash_pandas_object(cohort.landmarks, index=False).values.tobytes())
    return h.hexdigest()[:16]


def cohort_site_patches(cohort, grid: int = SITE_GRID, half_width: float = SITE_HALF_WIDTH,
                        views: Sequence[str] | None = None, cache_dir: str | Path | None = None,
                        progress: bool = False) -> SitePatches:
    """Every scored site patch of every image of ``cohort`` that has its landmark (hand and foot views).

    ``cache_dir``: keep the result as ``site_patches_<key>.npz`` there (the key hashes the cohort's images
    and landmarks tables and the patch settings) and reuse it. Raises
    :class:`~raoutcome.errors.InputError` when the cohort has no landmarks table or no site can be located.
    """
    from raoutcome.imaging.io import read_image
    from raoutcome.imaging.joint_anomaly import joint_patches
    from raoutcome.imaging.joint_targets import points_by_path
    from raoutcome.imaging.landmark_pose import landmark_pose
    from raoutcome.imaging.transforms import needs_mirror

    if cohort.landmarks is None or not len(cohort.landmarks):
        raise InputError(f"{cohort.root}: site-level reading needs joint landmarks (landmarks.csv), given or "
                         "detected: run `raoutcome landmarks detect`, set study.landmarks = \"detect\", or train "
                         "the whole-image route (cohorts/train_image.toml)")
    cached = None
    if cache_dir is not None:
        cached = Path(cache_dir) / f"site_patches_{_cache_key(cohort, grid, half_width, views)}.npz"
        if cached.exists():
            try:
                return SitePatches.load(cached)
            except (OSError, ValueError, KeyError, zipfile.BadZipFile):  # a part gone or cut short: build it again
                pass
    marks = points_by_path(cohort.landmarks)
    images = cohort.images[cohort.images["path"].isin(marks)]
    images = images[images["view"].map(lambda v: bool(view_sites(v)))]
    if views is not None:
        images = images[images["view"].isin(list(views))]
    rows: list[dict] = []
    chunks: list[np.ndarray] = []
    it = images.itertuples(index=False)
    if progress:
        from raoutcome.progress import tqdm

        it = tqdm(it, total=len(images), desc="site patches", unit="image")
    for img in it:
        points = marks[img.path]
        located = locate_sites(img.view, points)
        if not located:
            continue
        pixels = read_image(cohort.image_path(img.path)).pixels
        mean, sd = float(pixels.mean()), float(pixels.std()) or 1.0
        mirror = needs_mirror(img.view)
        pose = landmark_pose(points, img.view, mirror)
        sampled = joint_patches(pixels, located, mirror, half_width, grid, pose, margin=0)
        for site, patch in sampled.items():
            rows.append({"patient_id": str(img.patient_id), "visit_id": str(img.visit_id), "view": str(img.view),
                         "site": site, "joint": anatomy.joint_name(img.view, site), "path": str(img.path)})
            chunks.append(((patch.reshape(grid, grid) - mean) / sd).astype(np.float32))
    if not rows:
        raise InputError(f"{cohort.root}: no image has a landmark at any scored site")
    out = SitePatches(pd.DataFrame(rows), np.stack(chunks), int(grid), float(half_width))
    if cached is not None:
        cached.parent.mkdir(parents=True, exist_ok=True)
        out.save(cached)
    return out


def site_targets(table: pd.DataFrame, joints: pd.DataFrame | None) -> dict[str, np.ndarray]:
    """Per patch row of ``table`` the reading of each kind: ``{"jsn": float[n], "erosion": float[n]}``, NaN where
    the site is not scored for that kind or the cohort has no finite reading (masked, never taken as 0)."""
    out = {k: np.full(len(table), np.nan) for k in _KINDS}
    if joints is None or not len(joints):
        return out
    key = table[["patient_id", "visit_id", "joint"]].astype(str)
    for kind in _KINDS:
        j = joints[joints["kind"] == kind]
        if not len(j):
            continue
        j = j.assign(patient_id=j["patient_id"].astype(str), visit_id=j["visit_id"].astype(str),
                     joint=j["joint"].astype(str), score=pd.to_numeric(j["score"], errors="coerce"))
        j = j.drop_duplicates(["patient_id", "visit_id", "joint"], keep="last")
        merged = key.merge(j[["patient_id", "visit_id", "joint", "score"]], how="left",
                           on=["patient_id", "visit_id", "joint"])
        out[kind] = merged["score"].to_numpy(float)
    return out
