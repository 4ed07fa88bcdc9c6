"""Attribution regions of a lateral spine radiograph from its landmarks: the corners mSASSS scores, and the rest.

Region codes are those of :data:`raoutcome.anatomy.REGIONS`, as the spine phantom writes its truth label maps:

* ``msasss_corner``: a disc around each scored anterior corner (:data:`raoutcome.msasss.CORNERS`) of radius
  ``CORNER_RADIUS × d``, ``d`` = the median distance from a corner to its own vertebra's centre landmark
  (``C4_sup`` → ``C4_c``) on this image (the phantom's label disc is 0.35–0.41 of that distance); clipped to
  the foreground, but the pixels next to the landmark are always in;
* ``shaft`` (bone away from the scored sites: vertebral bodies, posterior elements, the shoulders' bones) and
  ``soft_tissue``: the brightest and the middle class of a three-class Otsu split of the foreground
  (:func:`raoutcome.attribution.regions.tissue_masks`); ``background``: the rest.

So attribution statistics compare the scored corners with every other part of the film. Only geometric:
meant for films without a truth label map (the phantom writes its own).
"""
from __future__ import annotations

__all__ = ["CORNER_RADIUS", "is_spine", "regions_from_spine_landmarks"]

from typing import Mapping

import numpy as np

from raoutcome.anatomy import REGIONS
from raoutcome.msasss import CORNERS, SPINE_VIEWS, level_of

CORNER_RADIUS = 0.38
_ALL_CORNERS = frozenset(c for v in SPINE_VIEWS for c in CORNERS[v])


def _pairs(points: Mapping[str, np.ndarray]) -> list[tuple[str, str]]:
    return [(k, f"{level_of(k)}_c") for k in points if k in _ALL_CORNERS and f"{level_of(k)}_c" in points]


def is_spine(points: Mapping[str, np.ndarray]) -> bool:
    """Whether the landmarks are a lateral spine film's: at least two scored corners with their vertebral centre."""
    return len(_pairs(points)) >= 2


def regions_from_spine_landmarks(image: np.ndarray, points: Mapping[str, np.ndarray]) -> np.ndarray:
    """The uint8 label map (image's shape) of the module docstring from ``points`` (landmark -> (x, y) pixels)."""
    from raoutcome.attribution.regions import tissue_masks

    image = np.asarray(image, dtype=np.float32)
    pairs = _pairs(points)
    d = float(np.median([np.hypot(*(np.asarray(points[k], float) - np.asarray(points[c], float)))
                         for k, c in pairs]))
    fg, bone = tissue_masks(image)
    labels = np.full(image.shape, REGIONS["background"], np.uint8)
    labels[fg] = REGIONS["soft_tissue"]
    labels[bone] = REGIONS["shaft"]
    yy, xx = np.mgrid[0:image.shape[0], 0:image.shape[1]]
    r = CORNER_RADIUS * d
    core = max(1.5, 0.1 * d)
    for k, _ in pairs:
        x, y = (float(v) for v in points[k][:2])
        dist2 = (xx - x) ** 2 + (yy - y) ** 2
        labels[((dist2 <= r * r) & fg) | (dist2 <= core * core)] = REGIONS["msasss_corner"]
    return labels
