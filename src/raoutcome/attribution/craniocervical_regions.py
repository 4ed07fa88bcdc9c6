"""Attribution regions of a lateral craniocervical radiograph from its landmarks.

Region codes are those of :data:`raoutcome.anatomy.REGIONS` (``cc_*``). From the landmarks of the
``craniocervical`` body part (pixels), with ``d`` = the dens's AP width ``|DA - DP|`` as the scale and the
C1 axis direction ``C1AT -> C1PT``:

* ``cc_atlantodental``: the quadrilateral between ``C1A`` and ``DA``, ``0.3 d`` above and below the line;
* ``cc_dens``: the box from ``DA`` to ``DP`` (across) and from the dens tip ``DT`` to ``0.6 d`` below the C1
  level (along the dens);
* ``cc_c1_anterior_arch`` / ``cc_c1_posterior_arch``: discs around ``C1AT`` / ``C1PT`` of radius
  ``|C1AT - C1A|`` / ``|C1PT - C1P|``;
* ``cc_canal``: the band from ``DP`` to ``C1P``, ``1.5 d`` above and below the C1 level (the space the
  pannus fills and the cord needs);
* ``cc_facet_c1c2``: the box around the facet joint line ``F1``–``F2``, ``0.6 d`` to either side;
* ``cc_c2_body``: a disc of radius ``0.8 d`` around the C2 pedicle ``C2P``; ``cc_clivus``: a disc of
  ``0.5 d`` around the basion ``BA``;
* ``soft_tissue``: the rest. Priority where shapes overlap: atlantodental > canal > dens > facets >
  arches > C2 > clivus.

Only geometric: meant for real radiographs without a truth label map (the phantom writes its own).
"""
from __future__ import annotations

__all__ = ["is_craniocervical", "regions_from_cervical_landmarks"]

from typing import Mapping

import numpy as np

from raoutcome.anatomy import REGIONS

_NEEDED = ("C1A", "DA", "DP", "C1P", "C1AT", "C1PT")


def is_craniocervical(landmarks: Mapping[str, tuple[float, float]]) -> bool:
    """Whether the landmarks are the craniocervical set (at least the atlantoaxial ones and the C1 axis)."""
    return all(k in landmarks for k in _NEEDED)


def _box(xx, yy, origin, axis, along: tuple[float, float], across: tuple[float, float]) -> np.ndarray:
    """Pixels whose coordinates along ``axis`` (unit) / across it, from ``origin``, lie in the ranges."""
    u = (xx - origin[0]) * axis[0] + (yy - origin[1]) * axis[1]
    v = -(xx - origin[0]) * axis[1] + (yy - origin[1]) * axis[0]
    return (u >= along[0]) & (u <= along[1]) & (v >= across[0]) & (v <= across[1])


def regions_from_cervical_landmarks(shape: tuple[int, int], landmarks: Mapping[str, tuple[float, float]]
                                    ) -> np.ndarray:
    """``uint8`` label map of ``shape`` with the ``cc_*`` region codes (see the module docstring)."""
    if not is_craniocervical(landmarks):
        missing = [k for k in _NEEDED if k not in landmarks]
        raise ValueError(f"craniocervical regions need landmarks {missing}")
    p = {k: np.asarray(v, float) for k, v in landmarks.items()}
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]].astype(float)
    axis = p["C1PT"] - p["C1AT"]
    axis = axis / max(float(np.hypot(*axis)), 1e-9)
    d = max(float(np.hypot(*(p["DP"] - p["DA"]))), 1.0)
    along = lambda a, b: float((p[b] - p[a]) @ axis)  # noqa: E731
    labels = np.full(shape, REGIONS["soft_tissue"], np.uint8)

    def disc(c, r):
        return (xx - c[0]) ** 2 + (yy - c[1]) ** 2 <= r ** 2

    layers = []
    if "BA" in p:
        layers.append(("cc_clivus", disc(p["BA"], 0.5 * d)))
    if "C2P" in p:
        layers.append(("cc_c2_body", disc(p["C2P"], 0.8 * d)))
    layers.append(("cc_c1_anterior_arch", disc(p["C1AT"], float(np.hypot(*(p["C1A"] - p["C1AT"]))))))
    layers.append(("cc_c1_posterior_arch", disc(p["C1PT"], float(np.hypot(*(p["C1P"] - p["C1PT"]))))))
    if "F1" in p and "F2" in p:
        mid = (p["F1"] + p["F2"]) / 2
        half = max(float(np.hypot(*(p["F2"] - p["F1"]))) / 2, 1.0)
        layers.append(("cc_facet_c1c2", _box(xx, yy, mid, axis, (-0.6 * d, 0.6 * d), (-half - 1, half + 1))))
    # the dens: across = along the C1 axis from DA to DP; along the dens = perpendicular (down is +)
    tip = -float(np.hypot(*(p["DT"] - p["DA"]))) if "DT" in p else -1.2 * d
    layers.append(("cc_dens", _box(xx, yy, p["DA"], axis, (0.0, along("DA", "DP")), (tip, 0.6 * d))))
    layers.append(("cc_canal", _box(xx, yy, p["DP"], axis, (0.0, along("DP", "C1P")), (-1.5 * d, 1.5 * d))))
    layers.append(("cc_atlantodental", _box(xx, yy, p["C1A"], axis, (0.0, max(along("C1A", "DA"), 1.0)),
                                            (-0.3 * d, 0.3 * d))))
    for name, mask in layers:  # later layers win
        labels[mask] = REGIONS[name]
    return labels
