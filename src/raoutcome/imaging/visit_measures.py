"""Label-free image measures of a visit that the site route's readouts may read (``[readout] measures``).

The site reader learns JSN and erosion. Three classic radiographic signs of RA lie outside the Sharp score, and
so outside what its ordinal heads are trained to see: periarticular osteopenia and soft-tissue swelling (the
density of the bone and soft tissue next to a joint) and carpal collapse (lost carpal height), which the posed
patches remove by design (each is scaled to the template frame). They are measured here without any fitting, on
the site patches (scaled by their image's grey-level mean and SD, :mod:`raoutcome.imaging.site_patches`) and
the landmarks:

    joint_density(visit)       = mean over the visit's joint patches of the mean grey level of the patch's
                                 central half (rises with soft-tissue swelling over the joint)
    joint_contrast(visit)      = mean over the visit's joint patches of the patch's grey-level SD (falls as
                                 periarticular bone loses density against the soft tissue)
    carpal_height_ratio(visit) = mean over the visit's hand images of |RADCAR - CMC3| / |CMC3 - MCP3|

The last is Youm's carpal height ratio: carpal height (distal radius to the base of the third metacarpal) over
the length of the third metacarpal, normal 0.54 +- 0.03; it falls as the carpus collapses. A visit without the
images or landmarks a measure needs gets NaN (the readouts fill it with their training mean). The grey-level
measures are relative to the image (its mean and SD), not calibrated densities: a readout weighs them together
with the reader's features; they are not bone mineral density.

References: Youm Y, McMurtry RY, Flatt AE, Gillespie TE. Kinematics of the wrist. I. An experimental study of
radial-ulnar deviation and flexion-extension. J Bone Joint Surg Am 1978;60:423-31.
"""
from __future__ import annotations

__all__ = ["MEASURES", "visit_measures"]

from typing import Callable, Sequence

import numpy as np
import pandas as pd

from raoutcome.errors import InputError

_KEYS = ["patient_id", "visit_id"]
#: the landmarks of the carpal height ratio: (proximal carpal end, third metacarpal base, third metacarpal head)
CARPAL_HEIGHT_LANDMARKS = ("RADCAR", "CMC3", "MCP3")


def _no_visits() -> pd.Series:
    """A measure of no visit (indexed by ``patient_id, visit_id``)."""
    return pd.Series(dtype=float, index=pd.MultiIndex.from_arrays([[], []], names=_KEYS))


def _patch_stats(sp) -> pd.DataFrame:
    """Per visit of ``sp`` (:class:`~raoutcome.imaging.site_patches.SitePatches`): the mean over its patches of the
    central half's mean grey level (``joint_density``) and of the whole patch's SD (``joint_contrast``); one pass
    over the patches in float32 (``sum x^2`` by einsum: no temporary the size of the patches)."""
    p = np.asarray(sp.patches, np.float32)
    n, q = len(p), sp.grid // 4
    if not n:
        return pd.DataFrame({"joint_density": _no_visits(), "joint_contrast": _no_visits()})
    flat = p.reshape(n, -1)
    width = max(flat.shape[1], 1)
    mean = flat.sum(1) / width
    square = np.einsum("ij,ij->i", flat, flat) / width
    centre = p[:, q:sp.grid - q, q:sp.grid - q].sum((1, 2)) / max((sp.grid - 2 * q) ** 2, 1)
    keys = sp.table[_KEYS]
    frame = pd.DataFrame({"patient_id": keys["patient_id"].to_numpy(), "visit_id": keys["visit_id"].to_numpy(),
                          "joint_density": centre.astype(float),
                          "joint_contrast": np.sqrt(np.maximum(square - mean ** 2, 0.0)).astype(float)})
    return frame.groupby(_KEYS, sort=False)[["joint_density", "joint_contrast"]].mean()


def _density(sp, cohort, stats) -> pd.Series:
    """``joint_density`` per visit (from the shared patch statistics)."""
    return stats()["joint_density"]


def _contrast(sp, cohort, stats) -> pd.Series:
    """``joint_contrast`` per visit (from the shared patch statistics)."""
    return stats()["joint_contrast"]


def _carpal_height(sp, cohort, stats) -> pd.Series:
    """``carpal_height_ratio`` per visit: the mean over its hand images with the three landmarks."""
    from raoutcome.anatomy import body_part

    lm = cohort.landmarks
    if lm is None or not len(lm):
        return _no_visits()
    wide = lm[lm["landmark"].isin(CARPAL_HEIGHT_LANDMARKS)].pivot_table(index="path", columns="landmark",
                                                                         values=["x", "y"], aggfunc="mean")
    if not all(n in wide["x"].columns for n in CARPAL_HEIGHT_LANDMARKS):
        return _no_visits()
    rad, cmc, mcp = CARPAL_HEIGHT_LANDMARKS
    height = np.hypot(wide["x"][rad] - wide["x"][cmc], wide["y"][rad] - wide["y"][cmc])
    length = np.hypot(wide["x"][cmc] - wide["x"][mcp], wide["y"][cmc] - wide["y"][mcp])
    ratio = (height / length.where(length > 0)).rename("carpal_height_ratio").reset_index()
    images = cohort.images[cohort.images["view"].map(lambda v: body_part(v) == "hand")]
    ratio = ratio.merge(images[["path", *_KEYS]].astype(str), on="path")
    return ratio.groupby(_KEYS)["carpal_height_ratio"].mean()


#: name -> measure(site patches, cohort, patch statistics on demand) -> per (patient_id, visit_id) value
MEASURES: dict[str, Callable] = {"joint_density": _density, "joint_contrast": _contrast,
                                 "carpal_height_ratio": _carpal_height}


def visit_measures(sp, cohort, names: Sequence[str]) -> pd.DataFrame:
    """``patient_id, visit_id`` and one column per measure in ``names`` for every visit with a site patch in ``sp``
    (NaN where a measure's images or landmarks are missing).

    >>> sorted(MEASURES)
    ['carpal_height_ratio', 'joint_contrast', 'joint_density']
    """
    unknown = [n for n in names if n not in MEASURES]
    if unknown:
        raise InputError(f"[readout] measures: {unknown} unknown; known: {', '.join(MEASURES)}")
    visits = sp.table[_KEYS].astype(str).drop_duplicates().reset_index(drop=True)
    cache: dict[str, pd.DataFrame] = {}

    def stats() -> pd.DataFrame:  # the patch statistics, computed once for every grey-level measure
        if "stats" not in cache:
            cache["stats"] = _patch_stats(sp)
        return cache["stats"]

    for name in names:
        got = MEASURES[name](sp, cohort, stats).rename(name).reset_index()
        visits = visits.merge(got.astype({k: str for k in _KEYS}), on=_KEYS, how="left")
    return visits
