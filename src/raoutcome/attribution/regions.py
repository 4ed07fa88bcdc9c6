"""Anatomical regions of a radiograph: where the Sharp score looks, and where it does not.

Every image gets one label map (``uint8``, same size as the image) with the codes of
:data:`raoutcome.anatomy.REGIONS`: ``svdh_site`` (joint spaces and erosion areas scored by SvdH),
``periarticular`` (bone next to those joints), ``carpus`` (carpal bones outside the scored wrist
sites), ``shaft`` (bone away from joints), ``soft_tissue`` and ``background``. One label per pixel, so
the region masks are disjoint and cover the image by construction. Three sources, best first:

(a) **truth** — the simulator's ``truth/regions/<image stem>.png`` (synthetic cohorts): used as is
    (:func:`regions_from_label_map`).
(b) **landmarks** — the manifest's ``landmarks`` table (real cohorts), built by
    :func:`regions_from_landmarks`. The scale ``d`` is the median distance between neighbouring MCP
    landmarks (else the median nearest-neighbour distance between landmarks). Around each joint landmark,
    an ellipse aligned with the bone (MCP→PIP for fingers, MP→IP for the thumb; across the bone is the
    long axis):

    * ``svdh_site``: the joint-space core — semi-axes 0.18·d along the bone × 0.32·d across (fingers
      at PIP level and the thumb: × 0.8), a disc of 0.24·d at the wrist points ``W1``–``W5``; clipped
      to the foreground, but the few pixels around the landmark itself are always in.
    * ``periarticular``: bone in a ring around the core, out to 0.55·d along × 0.40·d across (same
      shrink at PIP level). "Bone" here is the thresholded bone (below) or the bone's axis core, the
      pixels within 0.16·d of the bone axis — osteopenic bone, the very thing this region is for, can
      fall below a bone threshold.
    * ``carpus``: the convex polygon spanned by ``W1``–``W5`` (and any wrist sites), grown by 40 % about its centroid, within
      the foreground.
    * ``shaft``: all remaining bone (phalanges, metacarpals, radius, ulna), plus the axis cores
      (half-width 0.16·d) of the proximal phalanges (MCP→PIP, MP→IP) and of the metacarpals (each MCP
      towards the carpus, MP→W1) and of the phalanges beyond the PIP (0.95 × the proximal phalanx
      length, in its direction) and the thumb IP (0.55 ×).
    * ``soft_tissue``: the rest of the foreground; ``background``: the rest.

    Foreground and *bone* come from a three-class Otsu split of the (lightly smoothed) image into
    background / soft tissue / bone; the foreground is kept to its largest connected component with
    holes filled (drops side markers and letters). Landmarks other than the 15 hand names (e.g. ``MTP1`` on a foot) get a
    generic disc site (0.24·d) and periarticular ring (0.5·d); the scored wrist sites under their anatomy
    names (``MC1``, ``MUL``, ``NAV``, ``LUN``, ``RAD``, ``ULN``, ``CMC3``–``CMC5``, ``MNA``, ``CNL``,
    ``RADCAR``, as the simulator writes them) are treated like ``W1``–``W5`` and ``MCP1`` like ``MP``. Priority where shapes overlap:
    svdh_site > periarticular > carpus > shaft > soft tissue > background.
    Lateral craniocervical films (:mod:`.craniocervical_regions`) and lateral spine films (the mSASSS corners
    vs the rest, :mod:`.spine_regions`) are recognised by their landmark names and get their own maps.
(c) **fallback** — neither truth nor landmarks: foreground / background only (as in (b)), with a warning.
    The foreground gets the extra code :data:`FOREGROUND` (255, name ``"foreground"``), because it
    cannot be split into anatomical regions; region statistics then only say how much attribution
    falls on the hand versus outside it.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import numpy as np
from scipy import ndimage

from raoutcome.anatomy import HAND_EROSION_SITES, HAND_JSN_SITES, LANDMARK_SITE, REGION_NAMES, REGIONS
from raoutcome.errors import InputError, RegionFallbackWarning

FOREGROUND = 255
FOREGROUND_NAME = "foreground"

# Real-hand landmark names (and the anatomy site they stand for where it differs).
FINGERS = {k: (f"MCP{k}", f"PIP{k}") for k in (2, 3, 4, 5)}
THUMB = ("MP", "IP")
WRIST = ("W1", "W2", "W3", "W4", "W5")
#: Scored wrist sites under their anatomy names (synthetic manifests): treated like W1–W5.
WRIST_SITES = frozenset(HAND_EROSION_SITES + HAND_JSN_SITES) - {n for pair in FINGERS.values() for n in pair} \
    - set(THUMB) - {"MCP1"}

# Geometry, in units of the inter-MCP distance d (see the module docstring).
SITE_ALONG, SITE_ACROSS = 0.18, 0.32
PERI_ALONG, PERI_ACROSS = 0.55, 0.40
DISTAL_SHRINK = 0.8  # PIP joints and the thumb are smaller than MCP joints
WRIST_SITE_RADIUS = 0.24
GENERIC_SITE_RADIUS, GENERIC_PERI_RADIUS = 0.24, 0.5
BONE_CORE = 0.16  # half-width of the bone's axis core, always counted as bone
CARPUS_GROWTH = 1.4
DISTAL_REACH, DISTAL_REACH_THUMB = 0.95, 0.55  # phalanges beyond PIP / IP, x proximal phalanx length
CORE_RADIUS = 0.05


@dataclass
class RegionMap:
    """One image's regions: a label map plus, where known, the mask of each scored site."""

    labels: np.ndarray  # uint8 (H, W), codes of anatomy.REGIONS (+ FOREGROUND in the fallback)
    source: str  # "truth" | "landmarks" | "fallback"
    sites: dict[str, np.ndarray] = field(default_factory=dict)  # site -> bool (H, W), inside svdh_site

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.labels.shape)

    def masks(self) -> dict[str, np.ndarray]:
        """Boolean mask of every region present in this map's scheme (disjoint, covering the image)."""
        names = dict(REGION_NAMES)
        if self.source == "fallback":
            names = {REGIONS["background"]: "background", FOREGROUND: FOREGROUND_NAME}
        return {name: self.labels == code for code, name in names.items()}

    def resized(self, shape: tuple[int, int]) -> "RegionMap":
        """The same regions on a (H, W) grid, nearest neighbour (codes never blend)."""
        return RegionMap(resize_nearest(self.labels, shape), self.source,
                         {k: resize_nearest(v.astype(np.uint8), shape).astype(bool) for k, v in self.sites.items()})


def resize_nearest(labels: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of a 2-D label array to ``shape`` (rows, cols)."""
    labels = np.asarray(labels)
    if labels.shape == tuple(shape):
        return labels.copy()
    rows = np.minimum((np.arange(shape[0]) + 0.5) * labels.shape[0] / shape[0], labels.shape[0] - 1).astype(int)
    cols = np.minimum((np.arange(shape[1]) + 0.5) * labels.shape[1] / shape[1], labels.shape[1] - 1).astype(int)
    return labels[np.ix_(rows, cols)]


# --------------------------------------------------------------------------------------------- (a) truth
def regions_from_label_map(label_map: np.ndarray | str | Path) -> RegionMap:
    """Regions from a simulator truth label map (array, or path to the PNG)."""
    name = "label map"
    if not isinstance(label_map, np.ndarray):
        from PIL import Image

        name = str(label_map)
        try:
            with Image.open(label_map) as im:
                label_map = np.asarray(im)
        except (OSError, ValueError) as err:
            raise InputError(f"{name}: cannot read region label map ({err})") from err
    labels = np.asarray(label_map)
    if labels.ndim != 2:
        raise InputError(f"{name}: region label map must be 2-D, got shape {labels.shape}")
    bad = sorted(set(np.unique(labels).tolist()) - set(REGION_NAMES))
    if bad:
        raise InputError(f"{name}: unknown region codes {bad[:5]} (known: {sorted(REGION_NAMES)})")
    return RegionMap(labels.astype(np.uint8), "truth")


# ---------------------------------------------------------------------------------- thresholds, foreground
def otsu_thresholds(values: np.ndarray, classes: int = 2, bins: int = 128) -> tuple[float, ...]:
    """Otsu's thresholds (maximal between-class variance) splitting intensities into 2 or 3 classes."""
    v = np.asarray(values, dtype=np.float64).ravel()
    v = v[np.isfinite(v)]
    if classes not in (2, 3):
        raise ValueError("classes must be 2 or 3")
    if v.size == 0 or v.min() == v.max():
        t = float(v.min()) if v.size else 0.0
        return (t,) * (classes - 1)
    hist, edges = np.histogram(v, bins=bins)
    centers = (edges[:-1] + edges[1:]) / 2
    w = np.concatenate([[0], np.cumsum(hist)]).astype(np.float64)  # w[i] = count of bins < i
    m = np.concatenate([[0], np.cumsum(hist * centers)])

    def part(i, j):  # sum over bins i..j-1 of n * mean^2 (between-class variance up to constants)
        n = w[j] - w[i]
        return np.where(n > 0, (m[j] - m[i]) ** 2 / np.maximum(n, 1), 0.0)

    if classes == 2:
        i = np.arange(1, bins)
        score = part(0, i) + part(i, bins)
        return (float(edges[1 + int(np.argmax(score))]),)
    i, j = np.meshgrid(np.arange(1, bins), np.arange(1, bins), indexing="ij")
    score = np.where(j > i, part(0, i) + part(i, j) + part(j, bins), -np.inf)
    a, b = np.unravel_index(int(np.argmax(score)), score.shape)
    return float(edges[1 + a]), float(edges[1 + b])


def _smooth(image: np.ndarray) -> np.ndarray:
    return ndimage.gaussian_filter(np.asarray(image, dtype=np.float32), sigma=max(1.0, min(image.shape) / 256))


def tissue_masks(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(foreground, bone) of a radiograph, from a 3-class Otsu split: background / soft tissue / bone.

    The foreground is kept to its largest connected component with holes filled (drops side markers
    and letters); bone is the brightest class within it.
    """
    sm = _smooth(image)
    low, high = otsu_thresholds(sm, classes=3)
    fg = sm > low
    lab, n = ndimage.label(fg)
    if n > 1:
        sizes = ndimage.sum(fg, lab, index=np.arange(1, n + 1))
        fg = lab == (1 + int(np.argmax(sizes)))
    fg = ndimage.binary_fill_holes(fg)
    return fg, fg & (sm > high)


# ------------------------------------------------------------------------------------------- (c) fallback
def fallback_regions(image: np.ndarray, name: str = "image", warn: bool = True) -> RegionMap:
    """Foreground / background only, with a warning (no truth label map, no landmarks)."""
    if warn:
        warnings.warn(f"{name}: no region label map and no landmarks; attribution regions fall back to "
                      "foreground/background only", RegionFallbackWarning, stacklevel=2)
    labels = np.where(tissue_masks(image)[0], FOREGROUND, REGIONS["background"]).astype(np.uint8)
    return RegionMap(labels, "fallback")


# ------------------------------------------------------------------------------------------ (b) landmarks
def _as_points(landmarks) -> dict[str, np.ndarray]:
    if hasattr(landmarks, "iterrows"):  # a DataFrame with landmark, x, y
        return {str(r.landmark): np.array([float(r.x), float(r.y)]) for r in landmarks.itertuples()}
    return {str(k): np.asarray(v, dtype=float)[:2] for k, v in dict(landmarks).items()}


def _unit(v: np.ndarray, default=(0.0, -1.0)) -> np.ndarray:
    n = float(np.hypot(*v))
    return v / n if n > 1e-9 else np.asarray(default, dtype=float)


def landmark_scale(points: Mapping[str, np.ndarray]) -> float:
    """d: the median distance between neighbouring MCPs, else between nearest landmarks."""
    pairs = [(f"MCP{k}", f"MCP{k + 1}") for k in (2, 3, 4)]
    dists = [np.hypot(*(points[a] - points[b])) for a, b in pairs if a in points and b in points]
    if not dists and len(points) > 1:
        xy = np.array(list(points.values()))
        dd = np.hypot(*(xy[:, None, :] - xy[None, :, :]).transpose(2, 0, 1))
        np.fill_diagonal(dd, np.inf)
        dists = list(dd.min(axis=1))
    dists = [d for d in dists if d > 0]
    if not dists:
        raise ValueError("cannot size regions: need at least two distinct landmarks")
    return float(np.median(dists))


def _bone_coords(gx, gy, center, axis) -> tuple[np.ndarray, np.ndarray]:
    """Every pixel's offset from ``center`` along the bone axis and across it."""
    dx, dy = gx - center[0], gy - center[1]
    return dx * axis[0] + dy * axis[1], -dx * axis[1] + dy * axis[0]


def _ellipse_radius(gx, gy, center, axis, along, across) -> np.ndarray:
    """Normalised elliptical radius (<= 1 inside) of every pixel about ``center``."""
    a, c = _bone_coords(gx, gy, center, axis)
    return np.sqrt((a / along) ** 2 + (c / across) ** 2)


def _segment_distance(gx, gy, p, q) -> np.ndarray:
    v = q - p
    t = np.clip(((gx - p[0]) * v[0] + (gy - p[1]) * v[1]) / max(float(v @ v), 1e-9), 0.0, 1.0)
    return np.hypot(gx - (p[0] + t * v[0]), gy - (p[1] + t * v[1]))


def _polygon_mask(shape, vertices: np.ndarray) -> np.ndarray:
    from matplotlib.path import Path as MplPath
    from scipy.spatial import ConvexHull

    if len(vertices) >= 3:
        try:
            vertices = vertices[ConvexHull(vertices).vertices]
        except Exception:  # collinear points: no area
            return np.zeros(shape, dtype=bool)
    else:
        return np.zeros(shape, dtype=bool)
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]]
    inside = MplPath(vertices).contains_points(np.column_stack([xx.ravel() + 0.5, yy.ravel() + 0.5]))
    return inside.reshape(shape)


def _joint_axes(points: Mapping[str, np.ndarray], carpus_center: np.ndarray | None) -> dict[str, np.ndarray]:
    """Bone direction at each finger/thumb joint landmark (distal-pointing unit vector)."""
    axes: dict[str, np.ndarray] = {}
    chains = list(FINGERS.values()) + [THUMB]
    for prox, dist in chains:
        if prox in points and dist in points:
            u = _unit(points[dist] - points[prox])
        elif carpus_center is not None and (prox in points or dist in points):
            p = points.get(prox, points.get(dist))
            u = _unit(p - carpus_center)
        else:
            continue
        for name in (prox, dist):
            if name in points:
                axes[name] = u
    return axes


def regions_from_landmarks(image: np.ndarray, landmarks) -> RegionMap:
    """Regions of one image from its joint landmarks (``{name: (x, y)}`` or a landmark/x/y table).

    Coordinates are pixels of ``image`` (x to the right, y down). See the module docstring for the
    geometry; every constant is a module-level name.
    """
    image = np.asarray(image, dtype=np.float32)
    if image.ndim != 2:
        raise ValueError(f"image must be 2-D, got shape {image.shape}")
    points = _as_points(landmarks)
    if not points:
        raise ValueError("no landmarks")
    if "MCP1" in points and "MP" not in points:  # the anatomy name of the thumb MCP
        points["MP"] = points.pop("MCP1")
    h, w = image.shape
    d = landmark_scale(points)
    gy, gx = np.mgrid[0:h, 0:w].astype(np.float32) + 0.5
    fg, bone = tissue_masks(image)

    wrist = np.array([p for n, p in points.items() if n in WRIST or n in WRIST_SITES])
    carpus_center = wrist.mean(axis=0) if len(wrist) else None
    axes = _joint_axes(points, carpus_center)

    # Scored sites and periarticular rings: normalised radii per landmark.
    site_r: dict[str, np.ndarray] = {}
    peri = np.zeros((h, w), dtype=bool)
    distal = {p for _, p in FINGERS.values()} | set(THUMB)
    for name, p in points.items():
        if name in WRIST or name in WRIST_SITES:
            site_r[name] = np.hypot(gx - p[0], gy - p[1]) / (WRIST_SITE_RADIUS * d)
            continue
        if name in axes:
            k = DISTAL_SHRINK if name in distal else 1.0
            site_r[name] = _ellipse_radius(gx, gy, p, axes[name], SITE_ALONG * d * k, SITE_ACROSS * d * k)
            ring = _ellipse_radius(gx, gy, p, axes[name], PERI_ALONG * d * k, PERI_ACROSS * d * k) <= 1
            # bone = thresholded bone, or the axis core of the bone (osteopenic bone may fall below it)
            peri |= ring & (bone | (np.abs(_bone_coords(gx, gy, p, axes[name])[1]) <= BONE_CORE * d * k))
        else:
            site_r[name] = np.hypot(gx - p[0], gy - p[1]) / (GENERIC_SITE_RADIUS * d)
            peri |= (np.hypot(gx - p[0], gy - p[1]) <= GENERIC_PERI_RADIUS * d) & bone
    names = list(site_r)
    stack = np.stack([site_r[n] for n in names])
    nearest = np.argmin(stack, axis=0)
    in_site = (np.min(stack, axis=0) <= 1) & fg
    for name, p in points.items():  # the landmark itself is always in its site
        core = np.hypot(gx - p[0], gy - p[1]) <= max(2.0, CORE_RADIUS * d)
        in_site |= core
        nearest[core] = names.index(name)

    # Carpus polygon and shaft bands.
    carpus = np.zeros((h, w), dtype=bool)
    if len(wrist) >= 3:
        grown = carpus_center + CARPUS_GROWTH * (wrist - carpus_center)
        carpus = _polygon_mask((h, w), grown) & fg
    bands = np.zeros((h, w), dtype=bool)
    for prox, dist in list(FINGERS.values()) + [THUMB]:
        if prox in points and dist in points:
            bands |= _segment_distance(gx, gy, points[prox], points[dist]) <= BONE_CORE * d
            # the phalanges beyond the last landmark (middle + distal; thumb distal)
            reach = (DISTAL_REACH_THUMB if dist == THUMB[1] else DISTAL_REACH) * (points[dist] - points[prox])
            bands |= _segment_distance(gx, gy, points[dist], points[dist] + reach) <= BONE_CORE * d * DISTAL_SHRINK
    if carpus_center is not None:
        for prox, _ in FINGERS.values():
            if prox in points:
                end = points[prox] + 0.85 * (carpus_center - points[prox])
                bands |= _segment_distance(gx, gy, points[prox], end) <= BONE_CORE * d
        if "MP" in points:
            end = points["W1"] if "W1" in points else points["MP"] + 0.85 * (carpus_center - points["MP"])
            bands |= _segment_distance(gx, gy, points["MP"], end) <= BONE_CORE * d

    labels = np.full((h, w), REGIONS["background"], dtype=np.uint8)
    labels[fg] = REGIONS["soft_tissue"]
    labels[bone | (bands & fg)] = REGIONS["shaft"]
    labels[carpus] = REGIONS["carpus"]
    labels[peri & fg] = REGIONS["periarticular"]
    labels[in_site] = REGIONS["svdh_site"]
    sites = {LANDMARK_SITE.get(n, n): in_site & (nearest == i) for i, n in enumerate(names)}
    return RegionMap(labels, "landmarks", sites)


# --------------------------------------------------------------------------------------------- dispatcher
def image_regions(image: np.ndarray, label_map_path: str | Path | None = None, landmarks=None,
                  name: str = "image", warn: bool = True) -> RegionMap:
    """Best available regions for one image: truth label map, else landmarks, else the fallback.

    ``image`` is the radiograph in the frame the label map / landmarks refer to (the stored image).
    """
    if label_map_path is not None and Path(label_map_path).exists():
        rm = regions_from_label_map(label_map_path)
        if rm.shape != np.asarray(image).shape:
            rm = rm.resized(np.asarray(image).shape)
        return rm
    if landmarks is not None and len(landmarks) >= 2:
        from raoutcome.attribution.craniocervical_regions import is_craniocervical, regions_from_cervical_landmarks

        pts = _as_points(landmarks)
        if is_craniocervical(pts):  # a lateral craniocervical radiograph (issue 30)
            return RegionMap(regions_from_cervical_landmarks(np.asarray(image).shape, pts), "landmarks")
        from raoutcome.attribution.spine_regions import is_spine, regions_from_spine_landmarks

        if is_spine(pts):  # a lateral spine film (mSASSS corners vs the rest, issue 24)
            return RegionMap(regions_from_spine_landmarks(image, pts), "landmarks")
        return regions_from_landmarks(image, landmarks)
    return fallback_regions(image, name=name, warn=warn)


# ------------------------------------------------------------------------------------- model input frame
#: Region maps are computed at most this many pixels on the long side (landmarks scaled alike): the
#: masks end up at the model's input size anyway, and full-size DICOMs would cost seconds per image.
WORK_SIDE = 1024


def model_frame_regions(pixels: np.ndarray, view: str | None, size: int, label_map_path: str | Path | None = None,
                        landmarks=None, name: str = "image", work_side: int = WORK_SIDE,
                        warn: bool = True) -> RegionMap:
    """Regions of a stored image, carried into the model's input frame.

    ``pixels`` is the decoded stored image (``read_image(path).pixels``); label maps and landmarks refer
    to its pixels. The result matches :func:`raoutcome.imaging.transforms.preprocess` exactly:
    right-side views mirrored, long side scaled to ``size``, the short side padded (as background).
    """
    from raoutcome.imaging.transforms import ResizeGeometry, canonical_orientation, resize_pad

    pixels = np.asarray(pixels, dtype=np.float32)
    rows, cols = pixels.shape
    scale = min(1.0, work_side / max(rows, cols))
    if landmarks is not None and len(landmarks) >= 2 and scale < 1.0:
        side = max(1, round(max(rows, cols) * scale))
        geom = ResizeGeometry.fit(rows, cols, side)
        work = resize_pad(pixels, side)[geom.pad_top:geom.pad_top + geom.new_rows,
                                geom.pad_left:geom.pad_left + geom.new_columns]
        pts = _as_points(landmarks)
        xs, ys = geom.to_square(*np.array(list(pts.values())).T)
        landmarks = {k: (x - geom.pad_left, y - geom.pad_top) for k, x, y in zip(pts, xs, ys)}
        rm = image_regions(work, label_map_path, landmarks, name=name, warn=warn)
    else:
        rm = image_regions(pixels, label_map_path, landmarks, name=name, warn=warn)
    rm = RegionMap(np.ascontiguousarray(canonical_orientation(rm.labels, view)), rm.source,
                   {k: np.ascontiguousarray(canonical_orientation(v, view)) for k, v in rm.sites.items()})
    geom = ResizeGeometry.fit(rows, cols, size)
    inner = rm.resized((geom.new_rows, geom.new_columns))

    def place(a: np.ndarray, fill) -> np.ndarray:
        out = np.full((size, size), fill, dtype=a.dtype)
        out[geom.pad_top:geom.pad_top + geom.new_rows, geom.pad_left:geom.pad_left + geom.new_columns] = a
        return out

    return RegionMap(place(inner.labels, REGIONS["background"]), rm.source,
                     {k: place(v, False) for k, v in inner.sites.items()})

