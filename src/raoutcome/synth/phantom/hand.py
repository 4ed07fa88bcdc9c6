"""Posteroanterior hand phantom: radius and ulna ends, eight carpal bones, five rays.

Joint positions follow the proportions of a real adult PA hand radiograph (the landmark layout of
``shared/data/real-hands``), in the canonical frame of :mod:`.geometry` (left hand, thumb right).
Bone widths and joint spaces are drawn about 10 % wider than life so that damage stays visible at
128 px. Carpal collapse compresses the carpus along the hand axis (carpal height ratio, Youm: normal
0.51-0.57) and moves the metacarpals and fingers proximally by the height lost.
"""
from __future__ import annotations

import numpy as np

from raoutcome.anatomy import REGIONS
from .geometry import (Bone, Ray, ViewState, blob_slots, draw_ray, erode, erode_joint, jsn_gap,
                       label_joint, osteopenia_joint, swell_joint)
from .render import Canvas

L_RC = 0.752        # radiocarpal joint line
L_MID = 0.690       # midcarpal line (lunate-capitate, scaphoid-trapezium/trapezoid)
L_CMC = 0.622       # carpometacarpal reference line
COLLAPSE_MAX = 0.38  # carpal height lost at collapse = 1 (ratio ~0.57 -> ~0.35)

G_MCP, G_PIP, G_DIP, G_CMC, G_CARP, G_RC = 0.020, 0.017, 0.011, 0.012, 0.011, 0.015


def _rays() -> list[Ray]:
    mc = lambda f: Bone(0.021 * f, 0.0165 * f, 0.0235 * f)   # noqa: E731
    pp = lambda f: Bone(0.0225 * f, 0.0135 * f, 0.0165 * f)  # noqa: E731
    mp = lambda f: Bone(0.0175 * f, 0.0115 * f, 0.0135 * f)  # noqa: E731
    dp = lambda f: Bone(0.0145 * f, 0.0085 * f, 0.0095 * f)  # noqa: E731
    rays = [
        Ray(("CMC1", "MCP1", "IP", "TIP1"),
            np.array([[0.628, 0.632], [0.684, 0.520], [0.740, 0.422], [0.790, 0.345]]),
            (Bone(0.022, 0.0165, 0.022), Bone(0.022, 0.0150, 0.0170), Bone(0.0175, 0.0110, 0.0110)),
            (G_CMC, G_MCP, G_PIP), soft_from=0, soft_radius=0.036),
    ]
    spec = [  # name, points CMC, MCP, PIP, DIP, TIP, width factor, soft radius
        ("2", [[0.578, 0.620], [0.607, 0.398], [0.624, 0.259], [0.630, 0.176], [0.634, 0.116]], 1.0, 0.030),
        ("3", [[0.522, 0.617], [0.525, 0.388], [0.508, 0.232], [0.499, 0.142], [0.494, 0.078]], 1.02, 0.031),
        ("4", [[0.472, 0.622], [0.455, 0.420], [0.410, 0.263], [0.388, 0.180], [0.374, 0.118]], 0.93, 0.028),
        ("5", [[0.428, 0.633], [0.396, 0.455], [0.324, 0.357], [0.294, 0.300], [0.273, 0.257]], 0.84, 0.025),
    ]
    for d, p, f, sr in spec:
        rays.append(Ray((f"CMC{d}", f"MCP{d}", f"PIP{d}", f"DIP{d}", f"TIP{d}"), np.array(p),
                        (mc(f), pp(f), mp(f), dp(f)), (G_CMC, G_MCP, G_PIP, G_DIP), soft_radius=sr))
    return rays


RAYS = _rays()


def collapse_y(y, c: float):
    """Carpal collapse: compress [L_CMC, L_RC] by c * COLLAPSE_MAX, shift everything distal."""
    y = np.asarray(y, dtype=float)
    k = COLLAPSE_MAX * c
    return np.where(y >= L_RC, y, np.where(y >= L_CMC, L_RC - (L_RC - y) * (1 - k), y + (L_RC - L_CMC) * k))


def render_hand(cv: Canvas, st: ViewState):
    """Draw one hand; returns (svdh site discs, landmarks) in canonical coordinates."""
    c = st.collapse * st.vis_collapse
    rays = []
    for r in RAYS:
        pts = r.points.copy()
        pts[:, 1] = collapse_y(pts[:, 1], c)
        rays.append(Ray(r.names, pts, r.bones, r.gaps, r.first_flat, r.soft_from, r.soft_radius))
    cy = lambda y: float(collapse_y(y, c))  # noqa: E731
    l_mid = cy(L_MID)
    g_rc = jsn_gap(G_RC, st.jsn.get("RADCAR", 0))
    g_cnl = jsn_gap(G_CARP, st.jsn.get("CNL", 0))
    g_mna = jsn_gap(G_CARP, st.jsn.get("MNA", 0))

    # ---- soft tissue: forearm/wrist, palm, thenar eminence (fingers come with the rays)
    cv.rod((0.497, 1.25), (0.505, cy(0.70)), (0, 1), (0.118, 0.100), soft=True)
    cv.blob((0.508, cy(0.52)), 0.145, 0.150, 0.08, p=2.8, depth=0.055, soft=True)
    cv.rod((0.600, cy(0.665)), (0.690, cy(0.535)), (0, 1), (0.060, 0.042), soft=True)

    # ---- forearm bones
    rad_surf = L_RC + g_rc / 2
    cv.rod((0.552, 1.15), (0.540, rad_surf), (0, 0.62, 0.86, 1), (0.041, 0.043, 0.060, 0.066),
           cortex=(0.22, 0.22, 0.10, 0.07), trab=(0.35, 0.35, 0.7, 0.9), flat1=True, depth=0.55)
    cv.rod((0.592, rad_surf - 0.004), (0.603, rad_surf - 0.016), (0, 1), (0.010, 0.006),
           cortex=(0.2, 0.2), trab=(1, 1))  # radial styloid
    uln_end = np.array([0.449, 0.772])
    cv.rod((0.438, 1.15), uln_end, (0, 0.7, 1), (0.028, 0.025, 0.026),
           cortex=(0.25, 0.2, 0.1), trab=(0.4, 0.6, 1.0), depth=0.8)
    cv.rod(uln_end + (0.0, -0.012), (0.430, 0.750), (0, 1), (0.009, 0.0055), cortex=(0.2, 0.2), trab=(1, 1))

    # ---- carpus (superellipses between joint lines; JSN narrows the lines they face)
    def carpal(x, hw, top, bottom, p=2.6):
        centre = (x, (top + bottom) / 2)
        hh = (bottom - top) / 2
        cv.blob(centre, hw, hh, 0.0, p=p, depth=0.85 * min(hw, hh) + 0.01, cortex=0.14, carpal=True)
        return centre, hw, hh

    y_cmc = {r.names[0]: r.points[0, 1] for r in rays}
    gcmc = {k: jsn_gap(G_CMC, st.jsn.get(k, 0)) for k in ("CMC1", "CMC2", "CMC3", "CMC4", "CMC5")}
    sca = carpal(0.589, 0.035, l_mid + g_mna / 2, L_RC - g_rc / 2, p=2.3)
    lun = carpal(0.521, 0.030, l_mid + g_cnl / 2, L_RC - g_rc / 2 + 0.004)
    carpal(0.464, 0.024, l_mid + G_CARP / 2 + 0.004, L_RC - 0.006)
    cv.blob((0.452, cy(0.718)), 0.014, 0.014, p=2.0, cortex=0.15, carpal=True)  # pisiform
    trm = carpal(0.619, 0.026, y_cmc["CMC1"] + gcmc["CMC1"] / 2, l_mid - g_mna / 2 + 0.004)
    trd = carpal(0.569, 0.019, y_cmc["CMC2"] + gcmc["CMC2"] / 2, l_mid - g_mna / 2)
    carpal(0.521, 0.025, y_cmc["CMC3"] + gcmc["CMC3"] / 2, l_mid - g_cnl / 2)
    carpal(0.466, 0.024, (y_cmc["CMC4"] + y_cmc["CMC5"]) / 2 + (gcmc["CMC4"] + gcmc["CMC5"]) / 4,
                 l_mid - G_CARP / 2)

    # ---- rays (metacarpals + phalanges) with JSN
    geo = [draw_ray(cv, r, st) for r in rays]

    # ---- swelling (MCP, PIP, IP and the wrist)
    joints = []  # (ray index, joint index, site)
    for ri, r in enumerate(rays):
        for k, name in enumerate(r.names):
            if name.startswith(("MCP", "PIP")) or name == "IP":
                joints.append((ri, k, name))
    for ri, k, _name in joints:
        swell_joint(cv, geo[ri], k, rays[ri].soft_radius, st)
    s = st.swelling * st.vis_swelling
    if s > 0:
        cv.blob((0.505, cy(0.70)), 0.11 * (1 + 0.25 * s), 0.06, p=2.0, depth=0.05, soft=True, soft_add=True,
                mu=0.7 * s * 2.6)

    # ---- erosions
    for ri, k, name in joints:
        erode_joint(cv, geo[ri], k, name, st, foot=False)
    g1 = geo[0]
    n1, p1 = g1.n[0], np.array([-g1.n[0][1], g1.n[0][0]])
    J1, rb1 = g1.centres[0], rays[0].bones[0].r_base
    mc1_slots = [(J1 + n1 * (g1.gaps[0] / 2 + f * rb1) + s_ * p1 * 0.85 * rb1, rb1)
                 for f in (0.45, 1.3) for s_ in (1, -1)]
    rad_x, rad_r = 0.540, 0.064
    rad_slots = [((rad_x + 0.85 * rad_r, rad_surf + 0.010), 0.03), ((rad_x - 0.85 * rad_r, rad_surf + 0.012), 0.03),
                 ((rad_x + 0.35 * rad_r, rad_surf + 0.004), 0.025), ((rad_x - 0.3 * rad_r, rad_surf + 0.004), 0.025)]
    uln_slots = [((0.432, 0.752), 0.012), ((0.449 + 0.024, 0.776), 0.022), ((0.449 - 0.024, 0.780), 0.022),
                 ((0.452, 0.748), 0.02)]
    mul_slots = blob_slots(trm[0], trm[1], trm[2])[:2] + blob_slots(trd[0], trd[1], trd[2])[2:]
    wrist = {
        "MC1": (mc1_slots, (J1 + n1 * (g1.gaps[0] / 2 + 0.5 * rb1), rb1)),
        "MUL": (mul_slots, ((trm[0][0] + trd[0][0]) / 2, trm[0][1])),
        "NAV": (blob_slots(*sca), sca[0]),
        "LUN": (blob_slots(*lun), lun[0]),
        "RAD": (rad_slots, (rad_x, rad_surf + 0.016)),
        "ULN": (uln_slots, (0.447, 0.768)),
    }
    for site, spec in wrist.items():
        e = int(st.erosion.get(site, 0))
        if e > 0:
            erode(cv, spec[0], list(st.order.get(site, (0, 1, 2, 3))), e, 2.0)

    # ---- periarticular osteopenia (MCP, PIP, thumb IP)
    for ri, k, _name in joints:
        osteopenia_joint(cv, geo[ri], k, st)

    # ---- labels and landmarks
    cv.start_labels()
    discs = {}
    for ri, k, name in joints:
        discs[name] = label_joint(cv, geo[ri], k, periarticular=True)
    for name in ("CMC3", "CMC4", "CMC5"):
        ri = int(name[-1]) - 1
        discs[name] = (geo[ri].centres[0], 0.022)
    discs["MC1"] = (wrist["MC1"][1][0], 0.026)
    discs["MUL"] = (np.array(wrist["MUL"][1]), 0.032)
    discs["NAV"] = (np.array(sca[0]), 0.032)
    discs["LUN"] = (np.array(lun[0]), 0.028)
    discs["RAD"] = (np.array(wrist["RAD"][1]), 0.040)
    discs["ULN"] = (np.array(wrist["ULN"][1]), 0.026)
    discs["MNA"] = (np.array([0.594, l_mid]), 0.024)
    discs["CNL"] = (np.array([0.521, l_mid]), 0.024)
    discs["RADCAR"] = (np.array([0.555, L_RC]), 0.034)
    for centre, radius in discs.values():
        cv.label_disc(centre, radius, REGIONS["svdh_site"])

    lm = {("MP" if name == "MCP1" else name): geo[ri].centres[k] for ri, k, name in joints}
    lm.update({
        "W1": geo[0].centres[0], "W2": geo[3].centres[0], "W3": np.array([0.432, 0.752]),
        "W4": np.array([0.521, L_RC]), "W5": np.array([0.589, L_RC]),
    })
    for name in ("CMC3", "CMC4", "CMC5", "MC1", "MUL", "NAV", "LUN", "RAD", "ULN", "MNA", "CNL", "RADCAR"):
        lm[name] = discs[name][0]
    return discs, lm
