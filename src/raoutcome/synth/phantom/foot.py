"""Dorsoplantar forefoot phantom: tarsal row, five metatarsals, toes, sesamoids.

Same canonical frame as the hand (left foot, great toe on the right). SvdH sites: MTP1-5 and the
great-toe IP; foot erosion scores 0-10 are split over the two sides of the joint (head side first,
0-5 each), as in the SvdH method.
"""
from __future__ import annotations

import numpy as np

from raoutcome.anatomy import REGIONS
from .geometry import Bone, Ray, ViewState, draw_ray, erode_joint, label_joint, osteopenia_joint, swell_joint
from .render import Canvas

G_MTP, G_IP, G_TMT = 0.020, 0.016, 0.011


def _rays() -> list[Ray]:
    mt = lambda f: Bone(0.020 * f, 0.0140 * f, 0.0205 * f)   # noqa: E731
    pp = lambda f: Bone(0.0195 * f, 0.0120 * f, 0.0140 * f)  # noqa: E731
    mp = lambda f: Bone(0.0145 * f, 0.0110 * f, 0.0115 * f)  # noqa: E731
    dp = lambda f: Bone(0.0120 * f, 0.0090 * f, 0.0090 * f)  # noqa: E731
    rays = [Ray(("TMT1", "MTP1", "IP", "TIP1"),
                np.array([[0.618, 0.800], [0.640, 0.480], [0.655, 0.330], [0.662, 0.215]]),
                (Bone(0.030, 0.0230, 0.0310), Bone(0.030, 0.0195, 0.0230), Bone(0.023, 0.0165, 0.0170)),
                (G_TMT, G_MTP, G_IP), soft_radius=0.045)]
    spec = [
        ("2", [[0.553, 0.790], [0.545, 0.430], [0.540, 0.330], [0.537, 0.272], [0.535, 0.225]], 1.0, 0.028),
        ("3", [[0.500, 0.800], [0.478, 0.455], [0.468, 0.368], [0.462, 0.315], [0.458, 0.272]], 0.97, 0.027),
        ("4", [[0.450, 0.812], [0.415, 0.490], [0.400, 0.412], [0.392, 0.365], [0.387, 0.326]], 0.93, 0.026),
        ("5", [[0.400, 0.830], [0.355, 0.535], [0.335, 0.468], [0.325, 0.428], [0.318, 0.393]], 0.9, 0.025),
    ]
    for d, p, f, sr in spec:
        rays.append(Ray((f"TMT{d}", f"MTP{d}", f"PIPT{d}", f"DIPT{d}", f"TIP{d}"), np.array(p),
                        (mt(f), pp(f), mp(f), dp(f)), (G_TMT, G_MTP, G_IP, G_IP * 0.8), soft_radius=sr))
    return rays


RAYS = _rays()


def render_foot(cv: Canvas, st: ViewState):
    # soft tissue: forefoot + toes
    cv.blob((0.490, 0.760), 0.205, 0.300, -0.12, p=2.2, depth=0.06, soft=True)
    # tarsals: cuneiforms, cuboid, navicular (proximal edge of the field)
    for centre, a, b in (((0.612, 0.850), 0.030, 0.040), ((0.553, 0.840), 0.022, 0.033),
                         ((0.500, 0.848), 0.024, 0.036), ((0.420, 0.880), 0.042, 0.050),
                         ((0.575, 0.935), 0.060, 0.035)):
        cv.blob(centre, a, b, 0.0, p=2.6, depth=0.8 * min(a, b) + 0.01, cortex=0.14)
    geo = [draw_ray(cv, r, st) for r in RAYS]
    # sesamoids under the first metatarsal head
    j1, n1 = geo[0].centres[1], geo[0].n[1]
    p1 = np.array([-n1[1], n1[0]])
    for side in (1, -1):
        cv.blob(j1 - n1 * 0.045 + side * p1 * 0.014, 0.009, 0.011, p=2.0, cortex=0.2)
    joints = [(ri, k, name) for ri, r in enumerate(RAYS) for k, name in enumerate(r.names)
              if name.startswith("MTP") or name == "IP"]
    for ri, k, _ in joints:
        swell_joint(cv, geo[ri], k, RAYS[ri].soft_radius, st)
    for ri, k, name in joints:
        erode_joint(cv, geo[ri], k, name, st, foot=True)
    for ri, k, _ in joints:
        osteopenia_joint(cv, geo[ri], k, st)
    cv.start_labels()
    discs = {name: label_joint(cv, geo[ri], k, periarticular=True) for ri, k, name in joints}
    for centre, radius in discs.values():
        cv.label_disc(centre, radius, REGIONS["svdh_site"])
    lm = {name: geo[ri].centres[k] for ri, k, name in joints}
    return discs, lm
