"""Shared phantom geometry: digital rays (metacarpal/metatarsal + phalanges) with joint spaces,
erosions, periarticular osteopenia, soft-tissue swelling, label regions and landmarks.

Canonical frame: unit square, x to the right, y down, LEFT hand/foot in posteroanterior
(dorsoplantar) projection, so the thumb / great toe is on the right; the right side is mirrored
by the acquisition transform. A joint is a centre J, a distal unit direction n and a gap g; the
proximal bone ends in a round head of radius r_h centred at J - n (g/2 + r_h), the distal bone
starts with a concave base cupping that head (a circle of radius r_h + g is cut out of it), so the
joint space is a crescent whose width along n is exactly g. SvdH JSN narrows it:
g = g0 (1 - JSN/4) (JSN 4 = ankylosis, no space left).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from raoutcome.anatomy import REGIONS
from .render import MU_SOFT, Canvas

TS = (0.0, 0.15, 0.5, 0.82, 1.0)
CORTEX = (0.12, 0.22, 0.30, 0.22, 0.12)
TRAB = (1.0, 0.6, 0.35, 0.6, 1.0)


@dataclass
class ViewState:
    """What one image shows: true per-site scores of this view and the non-Sharp features."""
    jsn: dict = field(default_factory=dict)        # site -> 0..4
    erosion: dict = field(default_factory=dict)    # site -> 0..5 (hand) / 0..10 (foot)
    order: dict = field(default_factory=dict)      # site -> permutation of 4 bite slots
    osteopenia: float = 0.0
    swelling: float = 0.0
    collapse: float = 0.0
    vis_osteopenia: float = 1.0
    vis_swelling: float = 1.0
    vis_collapse: float = 1.0


@dataclass
class Bone:
    r_base: float
    r_shaft: float
    r_head: float


@dataclass
class Ray:
    names: tuple[str, ...]          # joint names proximal -> distal; the last one is the tip
    points: np.ndarray              # (K, 2)
    bones: tuple[Bone, ...]         # K - 1
    gaps: tuple[float, ...]         # nominal gap per joint (tip ignored)
    first_flat: bool = True         # the first joint is a flat carpo/tarso-metacarpal joint
    soft_from: int = 1              # soft-tissue sleeve starts at this joint
    soft_radius: float = 0.03

    def directions(self) -> np.ndarray:
        seg = np.diff(self.points, axis=0)
        seg /= np.linalg.norm(seg, axis=1, keepdims=True)
        n = np.empty_like(self.points)
        n[0], n[-1] = seg[0], seg[-1]
        n[1:-1] = seg[:-1] + seg[1:]
        return n / np.linalg.norm(n, axis=1, keepdims=True)


def perp(n):
    return np.array([-n[1], n[0]])


def jsn_gap(g0: float, jsn: int) -> float:
    return g0 * (1.0 - min(max(jsn, 0), 4) / 4.0)


@dataclass
class RayGeometry:
    """Resolved positions of one ray for one visit (after JSN)."""
    centres: np.ndarray     # joint centres
    n: np.ndarray           # joint directions
    gaps: np.ndarray        # actual gaps
    head_r: np.ndarray      # radius of the head proximal to each joint (nan for the first)
    base_r: np.ndarray      # radius of the base distal to each joint (nan for the tip)


def draw_ray(cv: Canvas, ray: Ray, st: ViewState) -> RayGeometry:
    pts, n = ray.points, ray.directions()
    K = len(pts)
    gaps = np.array([jsn_gap(g, st.jsn.get(name, 0)) for g, name in zip(ray.gaps, ray.names)] + [0.0])
    head_r = np.full(K, np.nan)
    base_r = np.full(K, np.nan)
    for i, b in enumerate(ray.bones):
        a_pt, b_pt, na, nb = pts[i], pts[i + 1], n[i], n[i + 1]
        tip = i + 1 == K - 1
        if tip:
            p1 = b_pt - nb * b.r_head
        else:
            p1 = b_pt - nb * (gaps[i + 1] / 2 + b.r_head)
        cut = None
        if i == 0 and ray.first_flat:
            p0 = a_pt + na * gaps[i] / 2
        else:
            rh = ray.bones[i - 1].r_head
            c_prev = a_pt - na * (gaps[i] / 2 + rh)
            p0 = a_pt - na * 0.25 * rh
            cut = (c_prev, rh + gaps[i])
        rs = (b.r_base, b.r_shaft * 1.1, b.r_shaft, b.r_shaft * 1.12, b.r_head)
        cv.rod(p0, p1, TS, rs, cortex=CORTEX, trab=TRAB, flat0=True, cut_circle=cut)
        head_r[i + 1] = b.r_head
        base_r[i] = b.r_base
    # soft-tissue sleeve
    for i in range(ray.soft_from, K - 1):
        cv.rod(pts[i], pts[i + 1], (0, 1), (ray.soft_radius, ray.soft_radius * 0.9), soft=True)
    return RayGeometry(pts, n, gaps, head_r, base_r)


def bite_slots_joint(g: RayGeometry, k: int, margin: float = 0.85):
    """Four erosion slots at joint k: head margins (two sides) then base margins (two sides)."""
    J, n, gap = g.centres[k], g.n[k], g.gaps[k]
    p = perp(n)
    rh, rb = g.head_r[k], g.base_r[k]
    out = []
    for side in (1, -1):
        out.append((J - n * (gap / 2 + 0.45 * rh) + side * p * margin * rh, rh))
    for side in (1, -1):
        out.append((J + n * (gap / 2 + 0.45 * rb) + side * p * margin * rb, rb))
    return out


def erode(cv: Canvas, slots, order, units: int, cap: float, collapse_at=None):
    """Fill bite slots in the patient's order, ``cap`` units each; area grows with the units."""
    left = float(units)
    for k in order:
        if left <= 0:
            break
        u = min(cap, left)
        left -= u
        centre, r_ref = slots[k]
        cv.bite(centre, r_ref * 0.85 * np.sqrt(u))
    if collapse_at is not None:
        centre, r = collapse_at
        cv.bite(centre, r)


def erode_joint(cv: Canvas, g: RayGeometry, k: int, site: str, st: ViewState, foot: bool):
    e = int(st.erosion.get(site, 0))
    if e <= 0:
        return
    slots = bite_slots_joint(g, k)
    order = list(st.order.get(site, (0, 1, 2, 3)))
    J, n = g.centres[k], g.n[k]
    if not foot:
        erode(cv, slots, order, e, 2.0,
              (J - n * (g.gaps[k] / 2), 0.6 * g.head_r[k]) if e >= 5 else None)
        return
    e_head = min(5, (e + 1) // 2)
    e_base = e - e_head
    head_order = [o for o in order if o < 2]
    base_order = [o for o in order if o >= 2]
    erode(cv, slots, head_order, e_head, 2.5, (J - n * (g.gaps[k] / 2), 0.6 * g.head_r[k]) if e_head >= 5 else None)
    erode(cv, slots, base_order, e_base, 2.5, (J + n * (g.gaps[k] / 2), 0.6 * g.base_r[k]) if e_base >= 5 else None)


def osteopenia_joint(cv: Canvas, g: RayGeometry, k: int, st: ViewState):
    strength = 0.45 * st.osteopenia * st.vis_osteopenia
    if strength <= 0:
        return
    J, n, gap = g.centres[k], g.n[k], g.gaps[k]
    rh, rb = g.head_r[k], g.base_r[k]
    cv.demineralise(J - n * (gap / 2 + 1.3 * rh), 1.0 * rh, min(strength, 0.9))
    cv.demineralise(J + n * (gap / 2 + 1.3 * rb), 1.0 * rb, min(strength, 0.9))


def swell_joint(cv: Canvas, g: RayGeometry, k: int, soft_r: float, st: ViewState):
    s = st.swelling * st.vis_swelling
    if s <= 0:
        return
    J, n = g.centres[k], g.n[k]
    angle = float(np.arctan2(n[1], n[0]))
    side = perp(n) * soft_r * 0.75
    # fusiform periarticular soft tissue on both sides of the joint (spares the joint space itself)
    for sgn in (1, -1):
        cv.blob(J + sgn * side, 2.6 * g.head_r[k], soft_r * (0.45 + 0.5 * s), angle, p=2.0,
                depth=soft_r * (0.6 + 0.6 * s), soft=True, soft_add=True, mu=MU_SOFT * 0.8 * s)


def label_joint(cv: Canvas, g: RayGeometry, k: int, periarticular: bool):
    rh = float(np.nanmax([g.head_r[k], g.base_r[k]]))
    if periarticular:
        cv.label_disc(g.centres[k], 2.9 * rh, REGIONS["periarticular"], only_bone=True)
    return g.centres[k], 1.15 * rh


def blob_slots(centre, a, b):
    cx, cy = centre
    return [((cx + 0.9 * a, cy), min(a, b)), ((cx + 0.55 * a, cy - 0.75 * b), min(a, b)),
            ((cx - 0.9 * a, cy + 0.2 * b), min(a, b)), ((cx - 0.3 * a, cy + 0.9 * b), min(a, b))]
