"""Vectorised projection renderer: shapes are analytic path-length fields on a pixel grid.

Each pixel is mapped back into the canonical phantom frame (unit square, x right, y down, left
side; the right side is the mirror image) through the acquisition transform, so geometry,
landmarks and label maps share one exact transform and no image resampling is needed.
Intensity follows Beer-Lambert: I = 1 - exp(-gain (mu_bone L_bone + mu_soft L_soft)), shown in the
MONOCHROME2 sense (bone bright). Every primitive only touches the pixels of its bounding box.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from raoutcome.anatomy import REGIONS

MU_CORTEX = 30.0
MU_TRABECULAR = 13.0
MU_SOFT = 2.6
FRAME_CENTRE = np.array([0.53, 0.445])  # canonical point shown at the image centre
FRAME_ZOOM = 1.28
FRAME_CENTRE_X, FRAME_CENTRE_Y = (float(v) for v in FRAME_CENTRE)


@dataclass(frozen=True)
class Acquisition:
    """One exposure: geometry (rotation, scale, translation, mirror) and film response."""
    rotation: float = 0.0     # radians
    scale: float = 1.0
    tx: float = 0.0           # fraction of the image side
    ty: float = 0.0
    mirror: bool = False      # right side: mirror of the canonical left
    gain: float = 1.0
    gamma: float = 1.0
    background: float = 0.04
    noise_sd: float = 0.01
    blur_px: float = 0.5      # at 256 px; scaled with the image size

    @classmethod
    def draw(cls, rng: np.random.Generator, acq_cfg, mirror: bool) -> "Acquisition":
        u = lambda m: rng.uniform(-m, m)  # noqa: E731
        return cls(
            rotation=np.deg2rad(u(acq_cfg.rotation_deg)), scale=1.0 + u(acq_cfg.scale),
            tx=u(acq_cfg.translation), ty=u(acq_cfg.translation), mirror=mirror,
            gain=1.0 + u(acq_cfg.exposure), gamma=float(rng.uniform(0.9, 1.1)),
            background=float(rng.uniform(0.02, 0.07)), noise_sd=float(rng.uniform(0.25, 1.0) * acq_cfg.noise),
            blur_px=float(rng.uniform(0.3, 1.0) * acq_cfg.blur_px),
        )

    def forward(self, pts: np.ndarray, size: int) -> np.ndarray:
        """Canonical (x, y) points (N, 2) -> pixel (col, row) coordinates (pixel centres at i + 0.5)."""
        p = (np.asarray(pts, dtype=float).reshape(-1, 2) - FRAME_CENTRE) * FRAME_ZOOM + 0.5
        if self.mirror:
            p[:, 0] = 1.0 - p[:, 0]
        c, s = np.cos(self.rotation), np.sin(self.rotation)
        q = p - 0.5
        u = self.scale * np.stack([c * q[:, 0] - s * q[:, 1], s * q[:, 0] + c * q[:, 1]], axis=1)
        u = u + 0.5 + np.array([self.tx, self.ty])
        return u * size - 0.5


class Canvas:
    """Accumulators for one image: bone and soft-tissue attenuation, masks for the label map."""

    def __init__(self, size: int, acq: Acquisition, rng: np.random.Generator):
        self.size, self.acq = size, acq
        idx = (np.arange(size, dtype=np.float32) + 0.5) / size - 0.5
        uu, vv = np.meshgrid(idx - acq.tx, idx - acq.ty)
        c, s = np.cos(acq.rotation), np.sin(acq.rotation)
        x = (c * uu + s * vv) / acq.scale + 0.5
        y = (-s * uu + c * vv) / acq.scale + 0.5
        if acq.mirror:
            x = 1.0 - x
        x = (x - 0.5) / FRAME_ZOOM + FRAME_CENTRE[0]
        y = (y - 0.5) / FRAME_ZOOM + FRAME_CENTRE[1]
        self.X, self.Y = x.astype(np.float32), y.astype(np.float32)
        self.bone = np.zeros((size, size), np.float32)
        self.soft = np.zeros((size, size), np.float32)
        self.bone_mask = np.zeros((size, size), bool)
        self.carpal_mask = np.zeros((size, size), bool)
        self.label = None
        # trabecular texture: band-limited noise, fine grain (a fraction of a bone width)
        sigma = 0.7 * size / 256
        tex = ndimage.gaussian_filter(rng.standard_normal((size, size), dtype=np.float32), sigma)
        self.tex = tex / (tex.std() + 1e-6)
        self.unit_px = size * acq.scale * FRAME_ZOOM  # pixels per canonical unit

    # ---------------------------------------------------------------------------- helpers
    def window(self, xmin: float, xmax: float, ymin: float, ymax: float):
        """Pixel slices covering a canonical bounding box (plain-float maths: called per primitive)."""
        a = self.acq
        z, s_ = FRAME_ZOOM * a.scale * self.size, self.size
        c, s = math.cos(a.rotation) * z, math.sin(a.rotation) * z
        fx0, fx1 = (xmin - FRAME_CENTRE_X), (xmax - FRAME_CENTRE_X)
        fy0, fy1 = (ymin - FRAME_CENTRE_Y), (ymax - FRAME_CENTRE_Y)
        if a.mirror:
            fx0, fx1 = -fx1, -fx0
        ox, oy = (0.5 + a.tx) * s_ - 0.5, (0.5 + a.ty) * s_ - 0.5
        cols = (c * fx0 - s * fy0, c * fx0 - s * fy1, c * fx1 - s * fy0, c * fx1 - s * fy1)
        rows = (s * fx0 + c * fy0, s * fx0 + c * fy1, s * fx1 + c * fy0, s * fx1 + c * fy1)
        c0 = max(int(math.floor(min(cols) + ox)) - 1, 0)
        c1 = min(int(math.ceil(max(cols) + ox)) + 2, self.size)
        r0 = max(int(math.floor(min(rows) + oy)) - 1, 0)
        r1 = min(int(math.ceil(max(rows) + oy)) + 2, self.size)
        if c1 <= c0 or r1 <= r0:
            return None
        return (slice(r0, r1), slice(c0, c1))

    def disc_window(self, centre, radius):
        return self.window(centre[0] - radius, centre[0] + radius, centre[1] - radius, centre[1] + radius)

    # ---------------------------------------------------------------------------- primitives
    def rod(self, p0, p1, ts, rs, *, cortex=None, trab=None, flat0=False, flat1=False,
            cut_circle=None, soft=False, soft_add=False, mu=None, depth=1.0):
        """A solid of revolution along p0->p1 with radius profile r(t) (ts, rs); round ends unless flat.

        cortex: cortical thickness as a fraction of r, profile over ts (bone only);
        trab: trabecular density multiplier profile over ts; cut_circle: (centre, radius) removed
        (a concave joint base); soft: draw as soft tissue (max-combined) instead of bone;
        depth: thickness along the beam relative to the width (< 1: a flattened cross-section).
        """
        p0, p1 = np.asarray(p0, float), np.asarray(p1, float)
        rmax = float(max(rs))
        sl = self.window(min(p0[0], p1[0]) - rmax, max(p0[0], p1[0]) + rmax,
                         min(p0[1], p1[1]) - rmax, max(p0[1], p1[1]) + rmax)
        if sl is None:
            return
        X, Y = self.X[sl], self.Y[sl]
        ax, ay = p1 - p0
        len2 = ax * ax + ay * ay
        dx, dy = X - p0[0], Y - p0[1]
        t = (dx * ax + dy * ay) / len2
        tc = np.clip(t, 0.0, 1.0)
        ex, ey = dx - tc * ax, dy - tc * ay
        d2 = ex * ex + ey * ey
        r = np.interp(tc, ts, rs).astype(np.float32)
        L = 2.0 * depth * np.sqrt(np.maximum(r * r - d2, 0.0))
        keep = L > 0
        if flat0:
            keep &= t >= 0
        if flat1:
            keep &= t <= 1
        if cut_circle is not None:
            (cx, cy), cr = cut_circle
            keep &= (X - cx) ** 2 + (Y - cy) ** 2 > cr * cr
        if soft:
            val = np.where(keep, (mu or MU_SOFT) * L, 0.0).astype(np.float32)
            if soft_add:
                self.soft[sl] += val
            else:
                np.maximum(self.soft[sl], val, out=self.soft[sl])
            return
        rin = r * (1.0 - np.interp(tc, ts, cortex).astype(np.float32))
        Lin = 2.0 * depth * np.sqrt(np.maximum(rin * rin - d2, 0.0))
        dens = np.interp(tc, ts, trab).astype(np.float32)
        att = MU_CORTEX * (L - Lin) + MU_TRABECULAR * dens * Lin * np.maximum(1.0 + 0.25 * self.tex[sl], 0.1)
        self.bone[sl] += np.where(keep, att, 0.0)
        self.bone_mask[sl] |= keep

    def blob(self, centre, a, b, angle=0.0, *, p=2.6, depth=None, cortex=0.12, trab=1.0,
             soft=False, soft_add=False, carpal=False, mu=None):
        """A superellipsoid (semi-axes a, b in the plane, depth c), e.g. a carpal bone or the palm."""
        cx, cy = centre
        rmax = max(a, b)
        sl = self.window(cx - rmax, cx + rmax, cy - rmax, cy + rmax)
        if sl is None:
            return
        depth = depth if depth is not None else 0.8 * min(a, b)
        dx, dy = self.X[sl] - cx, self.Y[sl] - cy
        c, s = np.cos(angle), np.sin(angle)
        u, w = c * dx + s * dy, -s * dx + c * dy

        def path(aa, bb):
            q = (np.abs(u) / aa) ** p + (np.abs(w) / bb) ** p
            return 2.0 * depth * (aa / a) * np.sqrt(np.maximum(1.0 - q ** (2.0 / p), 0.0))

        L = path(a, b)
        keep = L > 0
        if soft:
            val = ((mu or MU_SOFT) * L).astype(np.float32)
            if soft_add:
                self.soft[sl] += val
            else:
                np.maximum(self.soft[sl], val, out=self.soft[sl])
            return
        th = cortex * min(a, b)
        Lin = path(a - th, b - th)
        att = MU_CORTEX * (L - Lin) + MU_TRABECULAR * trab * Lin * np.maximum(1.0 + 0.25 * self.tex[sl], 0.1)
        self.bone[sl] += att.astype(np.float32)
        self.bone_mask[sl] |= keep
        if carpal:
            self.carpal_mask[sl] |= keep

    def bite(self, centre, radius, depth=1.0):
        """An erosion: a punched-out cortical defect removing bone inside a disc (soft edge)."""
        sl = self.disc_window(centre, radius)
        if sl is None or radius <= 0:
            return
        d = np.sqrt((self.X[sl] - centre[0]) ** 2 + (self.Y[sl] - centre[1]) ** 2)
        edge = 0.6 / self.unit_px
        m = np.clip((radius - d) / edge + 0.5, 0.0, 1.0)
        self.bone[sl] *= (1.0 - depth * m).astype(np.float32)

    def demineralise(self, centre, sigma, strength):
        """Periarticular osteopenia: bone density lowered by a Gaussian-weighted fraction."""
        if strength <= 0:
            return
        sl = self.disc_window(centre, 3 * sigma)
        if sl is None:
            return
        d2 = (self.X[sl] - centre[0]) ** 2 + (self.Y[sl] - centre[1]) ** 2
        self.bone[sl] *= (1.0 - strength * np.exp(-d2 / (2 * sigma * sigma))).astype(np.float32)

    # ---------------------------------------------------------------------------- labels
    def start_labels(self):
        lab = np.zeros((self.size, self.size), np.uint8)
        lab[self.soft > 0] = REGIONS["soft_tissue"]
        lab[self.bone_mask] = REGIONS["shaft"]
        lab[self.carpal_mask] = REGIONS["carpus"]
        self.label = lab

    def label_disc(self, centre, radius, code, only_bone=False):
        sl = self.disc_window(centre, radius)
        if sl is None:
            return
        inside = (self.X[sl] - centre[0]) ** 2 + (self.Y[sl] - centre[1]) ** 2 <= radius * radius
        inside &= self.bone_mask[sl] if only_bone else (self.label[sl] > 0)
        self.label[sl][inside] = code

    # ---------------------------------------------------------------------------- image
    def compose(self, rng: np.random.Generator) -> np.ndarray:
        """Film response, blur and noise -> float32 image in [0, 1] (bone bright)."""
        a = self.acq
        att = a.gain * (self.bone + self.soft)
        img = -np.expm1(-att)
        img = a.background + (1.0 - a.background) * img ** a.gamma
        sigma = a.blur_px * self.size / 256
        if sigma > 0.05:
            img = ndimage.gaussian_filter(img, sigma)
        if a.noise_sd > 0:
            img = img + rng.standard_normal(img.shape, dtype=np.float32) * a.noise_sd * (0.6 + 0.4 * img)
        return np.clip(img, 0.0, 1.0).astype(np.float32)
