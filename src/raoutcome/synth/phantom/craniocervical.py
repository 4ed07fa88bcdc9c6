"""Craniocervical phantom: C0 (clivus, basion), C1, the dens, C2, the transverse ligament, the
atlantodental interval and the C1–C2 facets, on lateral radiographs and sagittal T1/T2 MR volumes.

One patient-visit's anatomy is a :class:`CervicalGeometry` (mm, independent of any image): dens width,
the anterior atlantodental interval (ADI), the space available for the cord (SAC), the C1–C2 facet gap,
vertical translocation, the basion–dens interval, and the RA latents that change them — retro-odontoid
pannus (mm), dens erosion (0–1), facet degeneration (0–1) and ligament laxity (mm of extra ADI in
flexion). Coordinates are ``(u, v)`` mm in the mid-sagittal plane, ``u`` anterior → posterior and ``v``
superior → inferior (the canonical sagittal frame of :mod:`raoutcome.imaging.volume`: anterior left,
superior up), ``w`` mm to the patient's left; the dens's anterior surface at the C1 level is ``u = 0``.

Shapes are analytic signed-distance fields (ellipses, rounded boxes), so landmarks are exact and
images need no resampling: a pixel's occupancy is ``clip(0.5 - sdf / pixel, 0, 1)`` (in-plane partial
volume), each structure has a left–right extent (projection thickness on a radiograph, slice coverage
in MR: sub-slice sampling across the slice thickness gives through-plane partial volume).

* :func:`render_lateral`: Beer–Lambert projection ``I = 1 - exp(-gain * sum mu_i L_i)`` (bone bright,
  MONOCHROME2), rotation/translation jitter, blur, noise; neutral, flexion (ADI + laxity) or extension.
* :func:`render_mr`: tissue fractions painted back to front with T1 or T2 tissue values (marrow,
  cortex, CSF, cord, ligament, pannus, facet effusion and subchondral oedema), Rician noise.

The four atlantoaxial landmarks follow Okita et al. 2023 (ADI: posterior margin of the anterior arch of
C1 to the anterior surface of the dens; SAC: posterior surface of the dens to the anterior margin of the
posterior arch); Ranawat's C2 pedicle centre and C1 arch centres, the basion, the dens tip and the C1–C2
facet surfaces complete the set (:data:`LANDMARKS`, the detector's template). For Redlund-Johnell's measure
the skull base is drawn too: the hard palate (its posterior end ``PNS``) and the occipital bone behind the
foramen magnum (the lowest point of its curve ``OCC``) give McGregor's line; ``C2E`` is the midpoint of C2's
inferior endplate (:data:`SKULL_LANDMARKS`). Palate and occiput move with the skull (the basion), so they
settle with C1 as the facets collapse. McGregor's line of the default geometry passes 1.7 mm below the dens
tip and its Redlund-Johnell distance is 43.8 mm. These three lie outside the default 70-mm field (the palate is
about 38 mm in front of the basion): a radiograph shows them, and ``landmarks.csv`` lists them, only when the
field is wide enough (e.g. ``xr_size = 224`` at 0.55 mm); the truth tables always carry the true value. Sizes: adult means (dens AP width ~10 mm, C1 canal ~30 mm,
ADI < 3 mm, SAC ~17–20 mm, Ranawat ~15–17 mm, basion–dens interval < 12 mm; CLINICAL_FACTS.md).

References
----------
Okita Y, et al. Deep learning for the detection of atlantoaxial subluxation on lateral cervical spine
radiographs in rheumatoid arthritis. Arthritis Res Ther 2023;25:181.
Ranawat CS, et al. Cervical spine fusion in rheumatoid arthritis. J Bone Joint Surg Am 1979;61:1003-10.
"""
from __future__ import annotations

__all__ = ["CervicalGeometry", "LANDMARKS", "SKULL_LANDMARKS", "XR_VIEWS", "MR_CONTRASTS", "XrAcquisition", "landmarks_mm",
           "measures_mm", "skull_landmarks_mm", "render_lateral", "render_mr", "sagittal_direction", "template_fractions"]

import math
from dataclasses import dataclass, replace

import numpy as np
from scipy import ndimage

from raoutcome.anatomy import REGIONS

#: landmark names (the ``craniocervical`` body part's template, in this order)
LANDMARKS: tuple[str, ...] = ("C1A", "DA", "DP", "C1P", "C1AT", "C1PT", "C2P", "BA", "DT", "F1", "F2")
#: Redlund-Johnell's landmarks (outside the detector's template): posterior end of the hard palate, lowest
#: point of the occipital curve (McGregor's line through the two), midpoint of C2's inferior endplate
SKULL_LANDMARKS: tuple[str, ...] = ("PNS", "OCC", "C2E")
# skull-base geometry relative to the basion (mm): palate's posterior end, occiput's lowest point
PNS_FROM_BASION = (-38.0, 7.5)
OCC_FROM_BASION = (47.0, 9.5)
C2_BOTTOM = 32.0  # v of C2's inferior endplate (the C2 body's lower edge)
OCC_SHELL = (24.0, 22.0, 3.0)  # occipital curve: semi-axes of its mid-surface ellipse, half-thickness (mm)
XR_VIEWS: tuple[str, ...] = ("neutral", "flexion", "extension")
MR_CONTRASTS: tuple[str, ...] = ("t1", "t2")

# radiograph attenuation per mm (a unitless phantom scale): trabecular bone, cortex, soft tissue
MU_BONE, MU_CORTEX, MU_SOFT = 0.05, 0.16, 0.004
CORTEX_MM = 1.0
# T1 / T2 tissue values (fractions of full scale)
TISSUE = {"soft": (0.40, 0.30), "csf": (0.12, 0.90), "cord": (0.50, 0.45), "marrow": (0.70, 0.45),
          "cortex": (0.05, 0.05), "ligament": (0.08, 0.08), "pannus": (0.30, 0.62), "effusion": (0.20, 0.85),
          "cartilage": (0.40, 0.35), "oedema": (0.35, 0.78)}
#: world point (u, v) at the centre of every image (before acquisition jitter)
VIEW_CENTRE = (12.0, -4.0)


@dataclass(frozen=True)
class CervicalGeometry:
    """One patient-visit's craniocervical anatomy (mm) and RA latents.

    ``adi``/``sac``: neutral-position values; ``canal`` = ADI + dens width + SAC is the C1 ring's inner
    AP diameter (fixed for a patient: the ring slides forward over the dens, so SAC falls as ADI grows).
    ``facet``: degeneration 0–1 (narrows the C1–C2 facet gap from ``gap0``, sclerosis, effusion);
    ``vt``: vertical translocation (mm the C1 ring and skull settle onto C2); ``pannus``: retro-odontoid
    soft-tissue thickness (mm); ``erosion``: dens erosion 0–1; ``laxity``: extra ADI in flexion (mm).
    """

    dens_w: float = 10.0
    adi: float = 1.5
    canal: float = 30.0
    gap0: float = 2.5
    bdi0: float = 7.0
    pannus: float = 0.5
    erosion: float = 0.0
    facet: float = 0.1
    laxity: float = 0.8
    vt: float = 0.0

    @property
    def sac(self) -> float:
        return self.canal - self.dens_w - self.adi

    @property
    def facet_gap(self) -> float:
        return self.gap0 * (1.0 - 0.8 * min(max(self.facet, 0.0), 1.0))

    def at_view(self, view: str) -> "CervicalGeometry":
        """The geometry in a flexion / extension radiograph: the C1 ring slides over the dens by the
        laxity (flexion: ADI + laxity; extension: ADI - laxity / 2, at least 0.5 mm)."""
        if view == "flexion":
            return replace(self, adi=self.adi + self.laxity)
        if view == "extension":
            return replace(self, adi=max(0.5, self.adi - 0.5 * self.laxity))
        if view != "neutral":
            raise ValueError(f"unknown radiograph view {view!r} (expected one of {XR_VIEWS})")
        return self

    # ---- derived levels (v, mm, inferior +)
    @property
    def v_f2(self) -> float:  # top of C2's superior articular facet (fixed C2 frame)
        return 8.0

    @property
    def v_f1(self) -> float:  # bottom of C1's inferior facet
        return self.v_f2 - self.facet_gap

    @property
    def v_c1(self) -> float:  # level of the C1 ring's centre; sinks with facet collapse and translocation
        return self.v_f1 - (11.0 - self.vt) / 2.0 - 0.0

    @property
    def v_tip(self) -> float:
        return -13.5

    @property
    def v_basion(self) -> float:  # the skull settles with C1
        return self.v_tip - self.bdi0 + (self.v_c1 - 0.0) + 0.5 * self.vt


def skull_landmarks_mm(g: CervicalGeometry) -> dict[str, tuple[float, float]]:
    """``PNS``, ``OCC`` (McGregor's line) and ``C2E`` in mm (``(u, v)``), for the geometry as given."""
    ub, vb = 1.0, g.v_basion
    return {"PNS": (ub + PNS_FROM_BASION[0], vb + PNS_FROM_BASION[1]),
            "OCC": (ub + OCC_FROM_BASION[0], vb + OCC_FROM_BASION[1]),
            "C2E": (g.dens_w / 2.0 + 1.0, C2_BOTTOM)}


def landmarks_mm(g: CervicalGeometry) -> dict[str, tuple[float, float]]:
    """Every landmark of :data:`LANDMARKS` as ``(u, v)`` in mm, for the geometry as given (call ``at_view``
    first); :func:`skull_landmarks_mm` has the Redlund-Johnell ones."""
    c1 = g.v_c1
    return {
        "C1A": (-g.adi, c1), "DA": (0.0, c1), "DP": (g.dens_w, c1), "C1P": (g.dens_w + g.sac, c1),
        "C1AT": (-g.adi - 4.0, c1), "C1PT": (g.dens_w + g.sac + 5.0, c1),
        "C2P": (g.dens_w / 2.0 + 2.0, 17.0), "BA": (1.0, g.v_basion), "DT": (g.dens_w / 2.0, g.v_tip),
        "F1": (g.dens_w / 2.0 + 0.5, g.v_f1), "F2": (g.dens_w / 2.0 + 0.5, g.v_f2),
    }


def measures_mm(g: CervicalGeometry) -> dict[str, float]:
    """True measurements from the exact landmarks: ADI, SAC, Ranawat, basion–dens interval, facet gap,
    Redlund-Johnell."""
    from raoutcome.analysis.craniocervical import measure_points

    return measure_points({**landmarks_mm(g), **skull_landmarks_mm(g)}, 1.0)


# --------------------------------------------------------------------------- shapes (signed distances, mm)
def _ellipse(u, v, cu, cv, a, b):
    r = np.sqrt(((u - cu) / a) ** 2 + ((v - cv) / b) ** 2)
    return (r - 1.0) * min(a, b)


def _rbox(u, v, u0, u1, v0, v1, r):
    cu, cv, hu, hv = (u0 + u1) / 2, (v0 + v1) / 2, (u1 - u0) / 2 - r, (v1 - v0) / 2 - r
    qu, qv = np.abs(u - cu) - hu, np.abs(v - cv) - hv
    return np.hypot(np.maximum(qu, 0), np.maximum(qv, 0)) + np.minimum(np.maximum(qu, qv), 0) - r


def _obox(u, v, pu, pv, du, dv, length, width):
    """A box from point ``(pu, pv)`` along unit direction ``(du, dv)``, ``width`` across."""
    a = (u - pu) * du + (v - pv) * dv - length / 2
    b = -(u - pu) * dv + (v - pv) * du
    qa, qb = np.abs(a) - length / 2, np.abs(b) - width / 2
    return np.hypot(np.maximum(qa, 0), np.maximum(qb, 0)) + np.minimum(np.maximum(qa, qb), 0)


@dataclass(frozen=True)
class _Part:
    name: str
    tissue: str            # "bone" (marrow + cortex), or a TISSUE key
    region: str
    w: tuple[float, float]  # |w| range (mm) it spans left-right


def _parts(g: CervicalGeometry, u, v) -> list[tuple[_Part, np.ndarray]]:
    """(part, sdf) in painting order, back to front."""
    c1 = g.v_c1
    dw = g.dens_w
    dens = _rbox(u, v, 0.0, dw, g.v_tip, 12.0, dw / 2 - 0.05)
    notch = _ellipse(u, v, dw, c1 - 4.5, 0.3 + 3.0 * g.erosion, 2.5) if g.erosion > 0.02 else None
    if notch is not None:
        dens = np.maximum(dens, -notch)
    pan = g.pannus
    sk = skull_landmarks_mm(g)
    pns, occ = sk["PNS"], sk["OCC"]
    parts = [
        (_Part("neck", "soft", "soft_tissue", (0.0, 50.0)), _ellipse(u, v, 14.0, 0.0, 46.0, 90.0)),
        (_Part("canal", "csf", "cc_canal", (0.0, 9.0)), _rbox(u, v, dw + 0.3, dw + g.sac + 1.5, -80.0, 80.0, 0.5)),
        (_Part("cord", "cord", "cc_canal", (0.0, 6.0)),
         _rbox(u, v, max(dw + 0.2 * g.sac, dw + 1.5 + pan + 0.5), dw + 0.78 * g.sac, -80.0, 80.0, 1.0)),
        (_Part("c2", "bone", "cc_c2_body", (0.0, 8.0)), _rbox(u, v, -2.0, dw + 4.0, 10.0, C2_BOTTOM, 3.0)),
        (_Part("facets_c2", "bone", "cc_facet_c1c2", (10.0, 22.0)), _rbox(u, v, 1.5, dw + 2.0, g.v_f2, g.v_f2 + 8.0, 1.5)),
        (_Part("facets_c1", "bone", "cc_facet_c1c2", (10.0, 22.0)),
         _rbox(u, v, 1.5, dw + 2.0, g.v_f1 - (11.0 - g.vt), g.v_f1, 1.5)),
        (_Part("joint", "cartilage", "cc_facet_c1c2", (10.0, 22.0)), _rbox(u, v, 2.0, dw + 1.5, g.v_f1, g.v_f2, 0.2)),
        (_Part("dens", "bone", "cc_dens", (0.0, 5.0)), dens),
        (_Part("c1_anterior", "bone", "cc_c1_anterior_arch", (0.0, 9.0)), _ellipse(u, v, -g.adi - 4.0, c1, 4.0, 5.5)),
        (_Part("c1_posterior", "bone", "cc_c1_posterior_arch", (0.0, 14.0)),
         _ellipse(u, v, dw + g.sac + 5.0, c1, 5.0, 4.5)),
        (_Part("clivus", "bone", "cc_clivus", (0.0, 10.0)), _obox(u, v, 1.0, g.v_basion, -0.55, -0.835, 40.0, 9.0)),
        (_Part("palate", "bone", "cc_skull_base", (0.0, 12.0)), _obox(u, v, pns[0], pns[1], -1.0, 0.0, 45.0, 7.0)),
        (_Part("occiput", "bone", "cc_skull_base", (0.0, 12.0)),
         np.maximum(np.abs(_ellipse(u, v, occ[0], occ[1] - OCC_SHELL[2] - OCC_SHELL[1], OCC_SHELL[0], OCC_SHELL[1]))
                    - OCC_SHELL[2], occ[0] - 14.0 - u)),
        (_Part("ligament", "ligament", "cc_ligament", (0.0, 12.0)), _rbox(u, v, dw, dw + 1.3, c1 - 3.0, c1 + 3.0, 0.3)),
    ]
    if pan > 0.05:
        parts.append((_Part("pannus", "pannus", "cc_pannus", (0.0, 7.0)),
                      _ellipse(u, v, dw + 1.3 + pan / 2, c1 - 2.0, pan / 2 + 0.3, 4.5 + pan / 2)))
    if notch is not None:  # the erosion is filled with pannus
        parts.append((_Part("erosion", "pannus", "cc_pannus", (0.0, 5.0)),
                      np.maximum(notch, _rbox(u, v, 0.0, dw + 0.01, g.v_tip, 12.0, 0.0))))
    return parts


def _occ(sdf: np.ndarray, px: float) -> np.ndarray:
    return np.clip(0.5 - sdf / px, 0.0, 1.0)


def _atl_region(g: CervicalGeometry, u, v) -> np.ndarray:
    return (u > -g.adi) & (u < 0.0) & (np.abs(v - g.v_c1) < 3.0)


# --------------------------------------------------------------------------- radiographs
@dataclass(frozen=True)
class XrAcquisition:
    """One lateral exposure: in-plane rotation (rad), translation (mm), film gain, noise, blur (px)."""

    rotation: float = 0.0
    tu: float = 0.0
    tv: float = 0.0
    gain: float = 1.0
    noise_sd: float = 0.01
    blur_px: float = 0.6

    @classmethod
    def draw(cls, rng: np.random.Generator, view: str = "neutral", rotation_deg: float = 4.0,
             translation_mm: float = 3.0, noise: float = 0.012) -> "XrAcquisition":
        tilt = {"neutral": 0.0, "flexion": -6.0, "extension": 6.0}[view]
        return cls(rotation=math.radians(tilt + rng.uniform(-rotation_deg, rotation_deg)),
                   tu=float(rng.uniform(-translation_mm, translation_mm)),
                   tv=float(rng.uniform(-translation_mm, translation_mm)), gain=float(rng.uniform(0.9, 1.1)),
                   noise_sd=float(rng.uniform(0.5, 1.0) * noise), blur_px=float(rng.uniform(0.4, 0.8)))

    def pixel_to_world(self, col, row, size: int, spacing: float):
        x = (np.asarray(col, float) - (size - 1) / 2) * spacing
        y = (np.asarray(row, float) - (size - 1) / 2) * spacing
        c, s = math.cos(self.rotation), math.sin(self.rotation)
        return VIEW_CENTRE[0] + self.tu + c * x - s * y, VIEW_CENTRE[1] + self.tv + s * x + c * y

    def world_to_pixel(self, u, v, size: int, spacing: float):
        du, dv = np.asarray(u, float) - VIEW_CENTRE[0] - self.tu, np.asarray(v, float) - VIEW_CENTRE[1] - self.tv
        c, s = math.cos(self.rotation), math.sin(self.rotation)
        x, y = c * du + s * dv, -s * du + c * dv
        return x / spacing + (size - 1) / 2, y / spacing + (size - 1) / 2


def render_lateral(g: CervicalGeometry, view: str, size: int, spacing: float, acq: XrAcquisition,
                   rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, dict[str, tuple[float, float]]]:
    """A lateral radiograph of ``g`` in ``view``: ``(image [0, 1], region labels, landmarks in pixels)``.

    Pixel ``(col, row)`` centres are at integer indices; landmarks are ``(x = col, y = row)``: every one of
    :data:`LANDMARKS`, and those of :data:`SKULL_LANDMARKS` that fall inside the image.
    """
    gv = g.at_view(view)
    rows, cols = np.mgrid[0:size, 0:size].astype(float)
    u, v = acq.pixel_to_world(cols, rows, size, spacing)
    atten = np.zeros((size, size))
    label = np.zeros((size, size), np.uint8)
    for part, sdf in _parts(gv, u, v):
        occ = _occ(sdf, spacing)
        thick = 2.0 * (part.w[1] - part.w[0])
        if part.tissue == "bone":
            rim = occ - _occ(sdf + CORTEX_MM, spacing)
            sclerosis = 1.0 + (2.0 * gv.facet if part.name.startswith("facets") else 0.0)
            atten += thick * (MU_BONE * occ + (MU_CORTEX - MU_BONE) * sclerosis * rim)
        elif part.tissue == "soft":
            atten += thick * MU_SOFT * occ
        if part.name not in ("neck", "cord"):
            label[occ > 0.5] = REGIONS[part.region]
        elif part.name == "neck":
            label[occ > 0.5] = REGIONS["soft_tissue"]
    label[_atl_region(gv, u, v)] = REGIONS["cc_atlantodental"]
    img = 1.0 - np.exp(-acq.gain * atten)
    img = ndimage.gaussian_filter(img, acq.blur_px)
    img = np.clip(img + rng.normal(0.0, acq.noise_sd, img.shape), 0.0, 1.0).astype(np.float32)
    pts = {}
    for name, (pu, pv) in landmarks_mm(gv).items():
        x, y = acq.world_to_pixel(pu, pv, size, spacing)
        pts[name] = (float(x), float(y))
    for name, (pu, pv) in skull_landmarks_mm(gv).items():  # only when the field shows them
        x, y = acq.world_to_pixel(pu, pv, size, spacing)
        if -0.5 <= x <= size - 0.5 and -0.5 <= y <= size - 0.5:
            pts[name] = (float(x), float(y))
    return img, label, pts


def template_fractions(size: int = 128, spacing: float = 0.55) -> dict[str, tuple[float, float]]:
    """The landmarks of the default geometry in a neutral, unjittered radiograph, as fractions of the image
    side (the ``craniocervical`` landmark template of :mod:`raoutcome.anatomy`)."""
    g = CervicalGeometry()
    acq = XrAcquisition()
    out = {}
    for name, (pu, pv) in landmarks_mm(g).items():
        x, y = acq.world_to_pixel(pu, pv, size, spacing)
        out[name] = (round(float((x + 0.5) / size), 4), round(float((y + 0.5) / size), 4))
    return out


# --------------------------------------------------------------------------- MR
def sagittal_direction() -> tuple[float, ...]:
    """ITK direction (row-major 3x3) of an array stored as ``[slice R->L, row S->I, col A->P]``: index axes
    0, 1, 2 point P, I, L in LPS (the canonical frame of :mod:`raoutcome.imaging.volume`)."""
    return (0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, -1.0, 0.0)


def render_mr(g: CervicalGeometry, contrast: str, shape: tuple[int, int, int], spacing: tuple[float, float, float],
              rng: np.random.Generator, shift_mm: tuple[float, float, float] = (0.0, 0.0, 0.0),
              noise_sd: float = 0.03, sub: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """A sagittal T1 or T2 volume ``[slice (R->L), row (S->I), col (A->P)]`` in [0, 1] and its region labels.

    ``spacing``: ``(slice thickness, row, col)`` mm; ``shift_mm``: ``(w, v, u)`` patient position offset.
    Each slice averages ``sub`` planes across its thickness (through-plane partial volume); in-plane
    occupancy is anti-aliased by the signed distance. Noise is Rician (magnitude of complex Gaussian).
    """
    if contrast not in MR_CONTRASTS:
        raise ValueError(f"unknown MR contrast {contrast!r} (expected one of {MR_CONTRASTS})")
    ci = MR_CONTRASTS.index(contrast)
    ns, nr, nc = shape
    ds, dr, dc = spacing
    rows, cols = np.mgrid[0:nr, 0:nc].astype(float)
    u = VIEW_CENTRE[0] + shift_mm[2] + (cols - (nc - 1) / 2) * dc
    v = VIEW_CENTRE[1] + shift_mm[1] + (rows - (nr - 1) / 2) * dr
    px = min(dr, dc)
    parts = [(p, _occ(sdf, px), (_occ(sdf, px) - _occ(sdf + CORTEX_MM, px)) if p.tissue == "bone" else None)
             for p, sdf in _parts(g, u, v)]
    facet_rows = None
    vol = np.zeros(shape)
    label = np.zeros(shape, np.uint8)
    offsets = (np.arange(sub) + 0.5) / sub - 0.5
    for k in range(ns):
        w_centre = (k - (ns - 1) / 2) * ds + shift_mm[0]  # right -> left
        acc = np.zeros((nr, nc))
        for off in offsets:
            aw = abs(w_centre + off * ds)
            val = np.zeros((nr, nc))
            for p, occ, rim in parts:
                if not p.w[0] <= aw <= p.w[1]:
                    continue
                if p.tissue == "bone":
                    marrow = TISSUE["marrow"][ci]
                    if p.name.startswith("facets"):  # subchondral oedema of an inflamed facet
                        if facet_rows is None:
                            facet_rows = np.exp(-np.minimum(np.abs(v - g.v_f1), np.abs(v - g.v_f2)) / 2.5)
                        marrow = marrow + g.facet * facet_rows * (TISSUE["oedema"][ci] - marrow)
                    val = val * (1 - occ) + occ * marrow
                    val = val * (1 - rim) + rim * TISSUE["cortex"][ci]
                else:
                    t = p.tissue
                    tv = TISSUE[t][ci]
                    if t == "cartilage":  # effusion replaces cartilage as the facet degenerates
                        tv = tv + g.facet * (TISSUE["effusion"][ci] - tv)
                    val = val * (1 - occ) + occ * tv
            acc += val
        vol[k] = acc / len(offsets)
        aw = abs(w_centre)
        for p, occ, _ in parts:
            if p.w[0] <= aw <= p.w[1] and p.name not in ("cord",):
                label[k][occ > 0.5] = REGIONS[p.region]
    gain = float(rng.uniform(0.9, 1.1))
    re = vol * gain + rng.normal(0.0, noise_sd, vol.shape)
    im = rng.normal(0.0, noise_sd, vol.shape)
    return np.clip(np.hypot(re, im), 0.0, 1.0).astype(np.float32), label
