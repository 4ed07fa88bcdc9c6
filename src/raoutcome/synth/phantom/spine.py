"""Lateral spine phantom: cervical (C2-T1) and lumbar (T12-S1) radiographs with mSASSS corner lesions.

Canonical frame as the hand phantom's (:mod:`.render`): unit square, x right, y down; the patient faces
LEFT (anterior = -x). The vertebral bodies are rounded boxes (superellipses, p = 5) placed along a curve
whose direction turns at a constant rate (``lordosis``: the angle turned from the first to the last level;
positive = lordotic, convex anteriorly), tilted as a whole (``tilt``); discs are the gaps between them.
Posterior elements (pedicle, lamina, spinous process), the dens and the atlas' anterior arch (cervical), the
sacrum (lumbar), neck or abdominal soft tissue with the airway or bowel gas, and the shoulders over the
cervicothoracic junction complete the picture. A normal anterior wall is slightly concave (two shallow bites,
one toward each corner).

Corner lesions, as mSASSS defines them (:mod:`raoutcome.msasss`):

* grade 1: ``erosion`` (a bite at the corner), ``sclerosis`` (denser bone in the corner), ``squaring`` (the
  concavity toward that corner filled and the corner made square; never at C3);
* grade 2: ``syndesmophyte``: a thin bony spur growing from the corner along the spine into the disc,
  at most about a third of the way, so that two facing syndesmophytes leave a gap;
* grade 3: ``bridging``: a bony bar over the front of the disc joining the two facing corners (both 3);
* not scorable: ``osteophyte`` (a spur growing forward and then turning, not along the spine),
  ``blurred`` (the corner's neighbourhood smeared), ``hidden`` (the shoulders over it: decided here from the
  shoulder's soft-tissue path at the corner, :data:`HIDDEN_SOFT`).

Sizes are drawn about 20 % larger than life relative to the field, so that lesions stay visible at 256 px.
"""
from __future__ import annotations

__all__ = ["SpineState", "SpineGeometry", "spine_geometry", "render_spine", "render_spine_view", "blur_corners", "HIDDEN_SOFT",
           "SPINE_LAYOUT"]

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from raoutcome.anatomy import REGIONS
from raoutcome.msasss import CORNERS, FACING, LEVELS
from .render import Canvas

#: per view: (first centre x, first centre y, body heights per level, body AP widths, disc heights,
#: default lordosis in degrees)
SPINE_LAYOUT: dict[str, dict] = {
    "spine_cervical": dict(x0=0.53, y0=0.125, height=(0.082, 0.062, 0.062, 0.063, 0.064, 0.066, 0.070),
                           width=(0.100, 0.092, 0.094, 0.097, 0.100, 0.104, 0.110),
                           disc=(0.026, 0.026, 0.027, 0.028, 0.028, 0.028), lordosis=25.0),
    "spine_lumbar": dict(x0=0.53, y0=0.115, height=(0.066, 0.068, 0.070, 0.072, 0.073, 0.072, 0.070),
                         width=(0.108, 0.114, 0.118, 0.122, 0.125, 0.126, 0.120),
                         disc=(0.026, 0.028, 0.030, 0.032, 0.033, 0.031), lordosis=40.0),
}
HIDDEN_SOFT = 0.45  # shoulder soft-tissue attenuation at a corner above which it is hidden (not scorable)


@dataclass
class SpineState:
    """What one lateral radiograph shows: per-corner true grade and lesion kind, non-scorable marks, pose."""

    grades: dict[str, int] = field(default_factory=dict)
    lesions: dict[str, str] = field(default_factory=dict)     # corner -> erosion|sclerosis|squaring|...
    osteophytes: frozenset[str] = frozenset()
    blurred: frozenset[str] = frozenset()
    lordosis: float = 1.0       # multiplier of the view's default lordosis (AS flattens it)
    tilt: float = 0.0           # radians, the whole column
    size: float = 1.0           # body size multiplier (men larger)
    shoulder: float = 0.75      # cervical: shoulder top along the column (0 = C2 centre, 1 = T1 centre)
    jitter: tuple[float, ...] = ()  # per-level height multipliers (anatomical variation)


@dataclass
class SpineGeometry:
    """Vertebra centres, unit axes (caudal ``t``, anterior ``a``), half-sizes, and the corner points."""

    levels: tuple[str, ...]
    centres: np.ndarray   # (n, 2)
    t: np.ndarray         # (n, 2)
    a: np.ndarray         # (n, 2)
    half_h: np.ndarray    # (n,)
    half_w: np.ndarray    # (n,)

    def corner(self, name: str) -> np.ndarray:
        lv, side = name.rsplit("_", 1)
        i = self.levels.index(lv)
        sign = -1.0 if side == "sup" else 1.0
        return self.centres[i] + self.a[i] * self.half_w[i] * 0.96 + sign * self.t[i] * self.half_h[i] * 0.96

    def landmarks(self, view: str) -> dict[str, np.ndarray]:
        corners = set(CORNERS[view])
        out = {}
        for i, lv in enumerate(self.levels):
            for c in (f"{lv}_sup", f"{lv}_inf"):
                if c in corners:
                    out[c] = self.corner(c)
            out[f"{lv}_c"] = self.centres[i].copy()
        return out


def spine_geometry(view: str, st: SpineState) -> SpineGeometry:
    """Place the vertebrae of ``view`` along the curve of ``st`` (canonical coordinates)."""
    lay = SPINE_LAYOUT[view]
    levels = LEVELS[view]
    n = len(levels)
    jit = np.asarray(st.jitter if len(st.jitter) == n else np.ones(n))
    h = np.asarray(lay["height"]) * st.size * jit
    w = np.asarray(lay["width"]) * st.size
    d = np.asarray(lay["disc"]) * st.size
    # arc length of each centre along the column
    s = np.concatenate([[0.0], np.cumsum(h[:-1] / 2 + d + h[1:] / 2)])
    total = s[-1]
    kappa = -math.radians(lay["lordosis"] * st.lordosis) / total
    phi0 = st.tilt - kappa * total / 2
    # integrate the direction t(s) = (-sin phi, cos phi), phi = phi0 + kappa s
    grid = np.linspace(0.0, total, 400)
    phi = phi0 + kappa * grid
    tx, ty = -np.sin(phi), np.cos(phi)
    px = np.concatenate([[0.0], np.cumsum((tx[1:] + tx[:-1]) / 2 * np.diff(grid))])
    py = np.concatenate([[0.0], np.cumsum((ty[1:] + ty[:-1]) / 2 * np.diff(grid))])
    cx, cy = np.interp(s, grid, px), np.interp(s, grid, py)
    # centre the column on the layout's vertical span
    cx = cx - cx.mean() + lay["x0"]
    cy = cy - cy[0] + lay["y0"] * st.size + (1 - st.size) * 0.44
    ph = phi0 + kappa * s
    t = np.stack([-np.sin(ph), np.cos(ph)], 1)
    a = np.stack([-np.cos(ph), -np.sin(ph)], 1)
    return SpineGeometry(tuple(levels), np.stack([cx, cy], 1), t, a, h / 2, w / 2)


def _angle(v: np.ndarray) -> float:
    return float(math.atan2(v[1], v[0]))


def _soft_cut(cv: Canvas, centre, a_, b_, angle, factor):
    """Lower the soft-tissue path inside an ellipse by ``factor`` (airway, bowel gas)."""
    r = max(a_, b_)
    sl = cv.window(centre[0] - r, centre[0] + r, centre[1] - r, centre[1] + r)
    if sl is None:
        return
    dx, dy = cv.X[sl] - centre[0], cv.Y[sl] - centre[1]
    c, s = math.cos(angle), math.sin(angle)
    u, w = c * dx + s * dy, -s * dx + c * dy
    q = np.clip(1.0 - (u / a_) ** 2 - (w / b_) ** 2, 0.0, 1.0)
    cv.soft[sl] *= (1.0 - factor * np.sqrt(q)).astype(np.float32)


def render_spine(cv: Canvas, view: str, st: SpineState, rng: np.random.Generator):
    """Draw one lateral spine; returns (geometry, landmarks {name: canonical xy}, hidden corners)."""
    g = spine_geometry(view, st)
    n = len(g.levels)
    cervical = view == "spine_cervical"
    top, bottom = g.centres[0], g.centres[-1]

    # ---- soft tissue: neck or trunk, airway / bowel gas
    if cervical:
        cv.rod(top - g.t[0] * 0.25 + g.a[0] * 0.02, bottom + g.t[-1] * 0.3 + g.a[-1] * 0.02, (0, 1), (0.19, 0.22),
               soft=True, depth=0.9)
        air = (top + bottom) / 2 + ((g.a[0] + g.a[-1]) / 2) * (g.half_w.mean() + 0.05)
        _soft_cut(cv, air + np.array([0.0, 0.05]), 0.33, 0.022, _angle((g.t[0] + g.t[-1]) / 2), 0.55)
    else:
        cv.rod(top - np.array([0, 0.3]) + g.a[0] * 0.06, bottom + np.array([0, 0.3]) + g.a[-1] * 0.06, (0, 1),
               (0.33, 0.35), soft=True, depth=0.75)
        for _ in range(int(rng.integers(2, 6))):  # bowel gas in front of the spine
            k = rng.uniform(0.2, 0.9)
            p = g.centres[0] * (1 - k) + g.centres[-1] * k + g.a[n // 2] * rng.uniform(0.13, 0.3)
            _soft_cut(cv, p, rng.uniform(0.02, 0.05), rng.uniform(0.015, 0.035), rng.uniform(0, np.pi),
                      rng.uniform(0.2, 0.45))

    # ---- posterior elements (pedicle + lamina, spinous process), drawn first: the bodies sit over them
    for i in range(n):
        c, t, a = g.centres[i], g.t[i], g.a[i]
        back = c - a * g.half_w[i]
        lam = back - a * 0.055 * st.size + t * 0.01
        cv.rod(back - t * g.half_h[i] * 0.45, lam, (0, 1), (0.012, 0.010), cortex=(0.3, 0.3), trab=(0.8, 0.8),
               depth=0.9)
        spin_len = (0.05 if cervical else 0.06) * st.size
        cv.rod(lam, lam - a * spin_len + t * 0.03, (0, 1), (0.011, 0.008), cortex=(0.3, 0.3), trab=(0.8, 0.8),
               depth=0.8)
        cv.blob(back - a * 0.02 + t * g.half_h[i] * 0.8, 0.014, 0.012, _angle(a), p=2.2, depth=0.02, cortex=0.2)

    # ---- vertebral bodies with a slightly concave anterior wall
    for i, lv in enumerate(g.levels):
        c, t, a = g.centres[i], g.t[i], g.a[i]
        depth = 1.1 * g.half_w[i]
        cv.blob(c, g.half_w[i], g.half_h[i], _angle(a), p=5.0, depth=depth, cortex=0.10, trab=0.85)
        for side, sign in (("sup", -1.0), ("inf", 1.0)):
            corner = f"{lv}_{side}"
            if st.lesions.get(corner) == "squaring":
                continue
            r = 0.9 * g.half_h[i]
            centre = c + a * (g.half_w[i] + r - 0.0045 * st.size) + sign * t * 0.35 * g.half_h[i]
            cv.bite(centre, r, depth=0.55)
    if cervical:  # dens of C2 and the anterior arch of the atlas
        c0 = g.centres[0]
        dens_top = c0 - g.t[0] * (g.half_h[0] + 0.06) - g.a[0] * 0.01
        cv.rod(c0 - g.t[0] * g.half_h[0] * 0.5, dens_top, (0, 1), (0.024, 0.016), cortex=(0.15, 0.2),
               trab=(0.9, 0.9), depth=1.2)
        cv.blob(dens_top + g.a[0] * 0.045 + g.t[0] * 0.012, 0.012, 0.016, _angle(g.a[0]), p=2.0, depth=0.02,
                cortex=0.25)
    else:  # sacrum below S1
        c1 = g.centres[-1]
        tail = c1 + g.t[-1] * 0.22 - g.a[-1] * 0.09
        cv.rod(c1 + g.t[-1] * g.half_h[-1], tail, (0, 1), (0.95 * g.half_w[-1], 0.03), cortex=(0.12, 0.2),
               trab=(0.8, 0.8), depth=0.8)

    # ---- corner lesions
    u = st.size
    for corner, lesion in st.lesions.items():
        if corner not in FACING and corner not in CORNERS[view]:
            continue
        lv, side = corner.rsplit("_", 1)
        if lv not in g.levels:
            continue
        i = g.levels.index(lv)
        t, a = g.t[i], g.a[i]
        sign = -1.0 if side == "sup" else 1.0
        p = g.corner(corner)
        if lesion == "erosion":
            cv.bite(p - a * 0.003 * u - sign * t * 0.002 * u, 0.0125 * u, depth=0.9)
        elif lesion == "sclerosis":
            cv.blob(p - a * 0.011 * u - sign * t * 0.011 * u, 0.013 * u, 0.013 * u, _angle(a), p=2.0,
                    depth=0.03 * u, cortex=0.0, trab=2.4)
        elif lesion == "squaring":
            cv.blob(p - a * 0.008 * u - sign * t * 0.008 * u, 0.010 * u, 0.010 * u, _angle(a), p=6.0,
                    depth=0.05 * u, cortex=0.0, trab=0.9)
        elif lesion == "syndesmophyte":
            disc = _disc_gap(g, i, side)
            start = p + a * 0.002 * u
            # at most 0.36 of the disc: two facing syndesmophytes (2 + 2) leave a gap and never look like a bridge
            mid = start + sign * t * 0.24 * disc + a * 0.004 * u
            end = start + sign * t * 0.36 * disc + a * 0.002 * u
            cv.rod(start - sign * t * 0.006 * u, mid, (0, 1), (0.0055 * u, 0.0045 * u), cortex=(0.4, 0.4),
                   trab=(1.0, 1.0), depth=1.6)
            cv.rod(mid, end, (0, 1), (0.0045 * u, 0.0025 * u), cortex=(0.4, 0.4), trab=(1.0, 1.0), depth=1.6)
        elif lesion == "bridging" and side == "inf" and i + 1 < n:
            q = g.corner(FACING[corner])
            mid = (p + q) / 2 + (a + g.a[i + 1]) / 2 * 0.008 * u
            for p0, p1 in ((p - t * 0.008 * u, mid), (mid, q + g.t[i + 1] * 0.008 * u)):
                cv.rod(p0, p1, (0, 1), (0.0058 * u, 0.0058 * u), cortex=(0.4, 0.4), trab=(1.0, 1.0), depth=1.7)
    for corner in st.osteophytes:
        lv, side = corner.rsplit("_", 1)
        if lv not in g.levels:
            continue
        i = g.levels.index(lv)
        t, a = g.t[i], g.a[i]
        sign = -1.0 if side == "sup" else 1.0
        p = g.corner(corner)
        tip = p + a * 0.020 * u + sign * t * 0.004 * u
        cv.rod(p - a * 0.004 * u, tip, (0, 1), (0.0065 * u, 0.004 * u), cortex=(0.4, 0.4), trab=(1, 1), depth=1.5)
        cv.rod(tip, tip + sign * t * 0.008 * u + a * 0.002 * u, (0, 1), (0.004 * u, 0.0025 * u), cortex=(0.4, 0.4),
               trab=(1, 1), depth=1.5)

    # ---- shoulders over the cervicothoracic junction (soft tissue and the clavicles / humeral heads)
    hidden: set[str] = set()
    if cervical:
        k = float(np.clip(st.shoulder, 0.0, 1.3))
        level_pos = k * (n - 1)
        j = int(min(max(math.floor(level_pos), 0), n - 2))
        f = level_pos - j
        sh = g.centres[j] * (1 - f) + g.centres[j + 1] * f
        before = cv.soft.copy()
        cv.blob(sh + g.t[-1] * 0.30 - g.a[-1] * 0.05, 0.42, 0.30, 0.0, p=2.0, depth=0.3, soft=True, soft_add=True,
                mu=2.6 * 0.55)
        cv.rod(sh + g.t[-1] * 0.08 + g.a[-1] * 0.25, sh + g.t[-1] * 0.13 - g.a[-1] * 0.28, (0, 1), (0.016, 0.016),
               cortex=(0.35, 0.35), trab=(0.7, 0.7), depth=0.8)
        shoulder = cv.soft - before
        for corner in CORNERS[view]:
            xy = g.corner(corner)
            sl = cv.disc_window(xy, 0.004)
            if sl is None:
                continue
            d2 = (cv.X[sl] - xy[0]) ** 2 + (cv.Y[sl] - xy[1]) ** 2
            m = d2 <= 0.004 ** 2
            if m.any() and float(shoulder[sl][m].mean()) > HIDDEN_SOFT:
                hidden.add(corner)

    # ---- labels: the scored corners
    cv.start_labels()
    code = REGIONS["msasss_corner"]
    for corner in CORNERS[view]:
        cv.label_disc(g.corner(corner), 0.024 * u, code)
    return g, g.landmarks(view), hidden


def _disc_gap(g: SpineGeometry, i: int, side: str) -> float:
    """Distance between the corner of level ``i`` on ``side`` and the corner facing it."""
    lv = g.levels[i]
    corner = f"{lv}_{side}"
    other = FACING.get(corner)
    if other is None or other.rsplit("_", 1)[0] not in g.levels:
        return 0.03
    return float(np.linalg.norm(g.corner(corner) - g.corner(other)))


def blur_corners(img: np.ndarray, pixels: dict[str, tuple[float, float]], corners, radius_px: float,
                 sigma_px: float) -> np.ndarray:
    """Smear the image around each of ``corners`` (pixel coordinates ``pixels[corner]``): a disc of
    ``radius_px`` blended (soft edge) with a Gaussian-blurred copy of SD ``sigma_px``."""
    if not corners:
        return img
    smooth = ndimage.gaussian_filter(img, sigma_px)
    yy, xx = np.mgrid[0:img.shape[0], 0:img.shape[1]]
    w = np.zeros_like(img)
    for c in corners:
        x, y = pixels[c]
        d = np.sqrt((xx - x) ** 2 + (yy - y) ** 2)
        w = np.maximum(w, np.clip((radius_px - d) / (0.3 * radius_px) + 0.5, 0.0, 1.0))
    return (img * (1 - w) + smooth * w).astype(np.float32)


def render_spine_view(view: str, st: SpineState, size: int, acq, rng: np.random.Generator,
                      blur_sigma: float = 2.5):
    """One lateral spine image: (float32 pixels in [0, 1], uint8 label map, {landmark: (x, y) pixels},
    hidden corners). Landmarks in the manifest's pixel convention (as :func:`.render_view`)."""
    cv = Canvas(size, acq, rng)
    _, lm, hidden = render_spine(cv, view, st, rng)
    img = cv.compose(rng)
    names = list(lm)
    px = acq.forward(np.array([lm[k] for k in names]), size)
    pixels = {k: (float(x), float(y)) for k, (x, y) in zip(names, px)}
    if st.blurred:
        img = blur_corners(img, pixels, sorted(st.blurred), 0.035 * size, blur_sigma * size / 256)
    return img, cv.label, pixels, hidden
