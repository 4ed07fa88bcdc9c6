"""The registry of views and their scoring sites, plus region codes: names shared across the library.

One source of truth, so the simulator, the validator, the model and the attribution regions can never
disagree on what a view or a site is called:

* **body parts** (:class:`BodyPart`, :func:`register_body_part`): the scoring sites of each score kind
  (SvdH JSN and erosion sites of a hand or foot now; mSASSS vertebral corners or craniocervical
  landmarks next), the per-site maximum, and the landmark template (where each landmark sits in a
  standard-framed image of the LEFT side), with the landmark names that stand for a site of another name.
* **views** (:class:`View`, :func:`register_view`): a radiograph or MR view, its body part, and the
  mirroring rule (right-side views are flipped into the left layout).

Registration order is kept and is append-only; a model records the views it was trained with
(``ModelSpec.views``), so registering a view never changes an old checkpoint's view embedding.
Outcomes and visit columns live in :mod:`raoutcome.outcomes`.
Sources: ../shared/CLINICAL_FACTS.md (SvdH, van der Heijde 1999/2000; mSASSS, Creemers 2005).
"""
from __future__ import annotations

__all__ = ["BodyPart", "View", "register_body_part", "register_view", "views_registered", "view", "view_names",
           "views_of", "body_part", "body_part_spec", "sites_for", "joint_name", "joint_max", "landmark_template",
           "landmark_site", "is_mirrored", "LEGACY_VIEWS", "VIEWS", "HAND_VIEWS", "FOOT_VIEWS", "DEFORMITY_EVENT",
           "LANDMARK_TEMPLATES", "LANDMARK_SITE", "MAX_JSN", "MAX_EROSION_HAND", "MAX_EROSION_FOOT",
           "OUTCOME_RANGES", "OUTCOMES", "REGIONS", "REGION_NAMES", "CRANIOCERVICAL_LANDMARKS",
           "CRANIOCERVICAL_VIEWS", "CRANIOCERVICAL_MR_VIEWS"]

from dataclasses import dataclass, field
from typing import Mapping

from raoutcome import msasss as _msasss
from raoutcome import outcomes as _outcomes
from raoutcome.registry import Registry, registering


@dataclass(frozen=True)
class BodyPart:
    """Scoring sites of one body part, per score kind, with the per-site maximum of each kind; the
    landmark template (``name -> (x, y)`` as fractions of the image side, x right, y down, LEFT side);
    ``landmark_sites``: landmark names that stand for a scored site of another name."""

    name: str
    sites: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    max_score: Mapping[str, int] = field(default_factory=dict)
    landmarks: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    landmark_sites: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class View:
    """A view: its body part, whether it is mirrored into the canonical (left) layout, its modality."""

    name: str
    body_part: str
    mirrored: bool = False
    modality: str = "radiograph"  # "radiograph" | "mr"


_BODY_PARTS: Registry[BodyPart] = Registry("body part")
_VIEWS: Registry[View] = Registry("view")


def register_body_part(part: BodyPart) -> BodyPart:
    """Add a body part (idempotent for an identical one; a conflicting one is refused)."""
    return _BODY_PARTS.add(part.name, part)


def register_view(spec: View) -> View:
    """Add a view (appended: the index of every view registered before stays the same)."""
    _VIEWS.add(spec.name, spec)
    if spec.body_part not in _BODY_PARTS:
        register_body_part(BodyPart(spec.body_part))
    return spec


def views_registered(*specs: View | BodyPart):
    """Register views / body parts for a ``with`` block (tests, notebooks), then restore the registry."""
    return registering((_VIEWS, _BODY_PARTS), lambda s: (register_view if isinstance(s, View)
                                                          else register_body_part)(s), specs)


view = _VIEWS.get
view_names = _VIEWS.names  # every registered view, in registration order


def views_of(part: str) -> tuple[str, ...]:
    """The registered views of a body part (``"hand"`` -> left and right hand)."""
    return tuple(v.name for v in _VIEWS.values() if v.body_part == part)


def body_part(view_name: str | None) -> str | None:
    """The body part of a registered view with scoring sites or landmarks ("hand", "foot"), else None."""
    v = _VIEWS.find(view_name)
    if v is None:
        return None
    part = _BODY_PARTS.get(v.body_part)
    return part.name if part.sites or part.landmarks else None


def body_part_spec(name: str) -> BodyPart:
    return _BODY_PARTS.get(name)


def is_mirrored(view_name: str) -> bool:
    return view(view_name).mirrored


def joint_name(view: str, site: str) -> str:
    """Name of one joint in the `joints` table, e.g. ``hand_left:MCP2``."""
    return f"{view}:{site}"


def joint_max(joint: str, kind: str) -> int:
    """Maximum score of ``kind`` (e.g. 'jsn' or 'erosion') at ``joint`` (``view:site``)."""
    part = _BODY_PARTS.get(view(joint.split(":", 1)[0]).body_part)
    if kind not in part.max_score:
        raise ValueError(f"unknown score kind {kind!r} for {joint} (expected one of {sorted(part.max_score)})")
    return part.max_score[kind]


def sites_for(view_name: str, kind: str) -> tuple[str, ...]:
    """The sites scored for ``kind`` on a view (() for an unknown view or kind)."""
    v = _VIEWS.find(view_name)
    return tuple(_BODY_PARTS.get(v.body_part).sites.get(kind, ())) if v is not None else ()


def landmark_template(view_name: str | None) -> dict[str, tuple[float, float]]:
    """The landmark template of a view's body part ({} when it has none)."""
    v = _VIEWS.find(view_name)
    return dict(_BODY_PARTS.get(v.body_part).landmarks) if v is not None else {}


def landmark_site(view_name: str, landmark: str) -> str:
    """The scored site a landmark stands for on a view (its own name unless the body part maps it)."""
    v = _VIEWS.find(view_name)
    return _BODY_PARTS.get(v.body_part).landmark_sites.get(landmark, landmark) if v is not None else landmark


# --------------------------------------------------------------------------- built-ins
# SvdH erosion areas, per hand (16) and per foot (6).
HAND_EROSION_SITES: tuple[str, ...] = (
    "IP", "PIP2", "PIP3", "PIP4", "PIP5",
    "MCP1", "MCP2", "MCP3", "MCP4", "MCP5",
    "MC1", "MUL", "NAV", "LUN", "RAD", "ULN",
)
# SvdH joint-space-narrowing sites, per hand (15) and per foot (6).
HAND_JSN_SITES: tuple[str, ...] = (
    "PIP2", "PIP3", "PIP4", "PIP5",
    "MCP1", "MCP2", "MCP3", "MCP4", "MCP5",
    "CMC3", "CMC4", "CMC5", "MNA", "CNL", "RADCAR",
)
FOOT_EROSION_SITES: tuple[str, ...] = ("IP", "MTP1", "MTP2", "MTP3", "MTP4", "MTP5")
FOOT_JSN_SITES: tuple[str, ...] = FOOT_EROSION_SITES

# Per-joint score maxima (inclusive).
MAX_JSN = 4
MAX_EROSION_HAND = 5
MAX_EROSION_FOOT = 10  # 0-5 per side of the joint

#: Where each landmark sits in a standard-framed radiograph of a LEFT hand (PA) or foot (dorsoplantar):
#: (x, y) as fractions of the image side, x to the right, y down. Taken from the phantom
#: (:mod:`raoutcome.synth.phantom`, no damage, no acquisition transform; a test keeps the two in step),
#: whose joints follow the proportions of a real adult PA hand radiograph. The joint patches of
#: :mod:`raoutcome.imaging.joint_anomaly` are rotated and scaled to this frame
#: (:mod:`raoutcome.imaging.landmark_pose`), so a hand's pose and size on the film do not change them.
LANDMARK_TEMPLATES: dict[str, dict[str, tuple[float, float]]] = {
    "hand": {"MP": (0.6971, 0.5960), "IP": (0.7688, 0.4706), "MCP2": (0.5986, 0.4398), "PIP2": (0.6203, 0.2619),
             "MCP3": (0.4936, 0.4270), "PIP3": (0.4718, 0.2274), "MCP4": (0.4040, 0.4680), "PIP4": (0.3464, 0.2670),
             "MCP5": (0.3285, 0.5128), "PIP5": (0.2363, 0.3874), "W1": (0.6254, 0.7394), "W2": (0.4258, 0.7266),
             "W3": (0.3746, 0.8930), "W4": (0.4885, 0.8930), "W5": (0.5755, 0.8930), "CMC3": (0.4898, 0.7202),
             "CMC4": (0.4258, 0.7266), "CMC5": (0.3694, 0.7406), "MC1": (0.6352, 0.7199), "MUL": (0.5819, 0.7794),
             "NAV": (0.5755, 0.8520), "LUN": (0.4885, 0.8546), "RAD": (0.5128, 0.9230), "ULN": (0.3938, 0.9134),
             "MNA": (0.5819, 0.8136), "CNL": (0.4885, 0.8136), "RADCAR": (0.5320, 0.8930)},
    "foot": {"MTP1": (0.6408, 0.5448), "IP": (0.6600, 0.3528), "MTP2": (0.5192, 0.4808), "MTP3": (0.4334, 0.5128),
             "MTP4": (0.3528, 0.5576), "MTP5": (0.2760, 0.6152)},
    # lateral spine (patient facing left): the mSASSS corners and the vertebral centres of the spine phantom
    # (:mod:`raoutcome.synth.phantom.spine`, default pose, no acquisition transform; a test keeps them in step)
    "spine_cervical": {
        "C2_inf": (0.4509, 0.1263), "C2_c": (0.5217, 0.0904), "C3_sup": (0.4487, 0.1681), "C3_inf": (0.4380, 0.2435),
        "C3_c": (0.4993, 0.2138), "C4_sup": (0.4325, 0.2836), "C4_inf": (0.4270, 0.3596), "C4_c": (0.4873, 0.3258),
        "C5_sup": (0.4236, 0.4014), "C5_inf": (0.4234, 0.4788), "C5_c": (0.4831, 0.4402), "C6_sup": (0.4230, 0.5223),
        "C6_inf": (0.4285, 0.6008), "C6_c": (0.4871, 0.5573), "C7_sup": (0.4307, 0.6446), "C7_inf": (0.4422, 0.7248),
        "C7_c": (0.4997, 0.6756), "T1_sup": (0.4465, 0.7691), "T1_c": (0.5217, 0.7964)},
    "spine_lumbar": {
        "T12_inf": (0.4604, 0.0930), "T12_c": (0.5366, 0.0776), "L1_sup": (0.4439, 0.1341),
        "L1_inf": (0.4240, 0.2153), "L1_c": (0.5020, 0.1914), "L2_sup": (0.4128, 0.2614), "L2_inf": (0.4017, 0.3467),
        "L2_c": (0.4791, 0.3134), "L3_sup": (0.3956, 0.3971), "L3_inf": (0.3945, 0.4856), "L3_c": (0.4700, 0.4423),
        "L4_sup": (0.3952, 0.5396), "L4_inf": (0.4050, 0.6287), "L4_c": (0.4765, 0.5758), "L5_sup": (0.4138, 0.6835),
        "L5_inf": (0.4340, 0.7696), "L5_c": (0.4993, 0.7088), "S1_sup": (0.4526, 0.8187), "S1_c": (0.5366, 0.8339)},
}
#: Landmark names used by real-hand landmark sets for a scored site of another name
#: (the thumb MCP is "MP" there, "MCP1" in the SvdH site list).
LANDMARK_SITE: dict[str, str] = {"MP": "MCP1"}

register_body_part(BodyPart("hand", {"jsn": HAND_JSN_SITES, "erosion": HAND_EROSION_SITES},
                            {"jsn": MAX_JSN, "erosion": MAX_EROSION_HAND}, LANDMARK_TEMPLATES["hand"], LANDMARK_SITE))
register_body_part(BodyPart("foot", {"jsn": FOOT_JSN_SITES, "erosion": FOOT_EROSION_SITES},
                            {"jsn": MAX_JSN, "erosion": MAX_EROSION_FOOT}, LANDMARK_TEMPLATES["foot"]))
# mSASSS: 12 anterior corners per lateral view, each 0-3 (raoutcome.msasss, Creemers 2005)
for _part in _msasss.SPINE_VIEWS:
    register_body_part(BodyPart(_part, {"msasss": _msasss.CORNERS[_part]}, {"msasss": _msasss.MAX_CORNER},
                                LANDMARK_TEMPLATES[_part]))
for _name, _part, _mirror in (("hand_left", "hand", False), ("hand_right", "hand", True),
                              ("foot_left", "foot", False), ("foot_right", "foot", True),
                              ("spine_cervical", "spine_cervical", False), ("spine_lumbar", "spine_lumbar", False)):
    register_view(View(_name, _part, _mirror))

#: The views every checkpoint written before the view registry was trained with (its view embedding rows).
LEGACY_VIEWS: tuple[str, ...] = view_names()
VIEWS = LEGACY_VIEWS  # the built-in views; code that must see registered views calls view_names()
HAND_VIEWS = views_of("hand")
FOOT_VIEWS = views_of("foot")

# The time-to-event outcome the library predicts by default.
DEFORMITY_EVENT = _outcomes.DEFAULT_EVENT
# Built-in visit columns and their ranges (the registry is raoutcome.outcomes: visit_columns(), column()).
OUTCOME_RANGES: dict[str, tuple[float, float]] = {c: (_outcomes.column(c).lower, _outcomes.column(c).upper)
                                                  for c in _outcomes.visit_columns()}
OUTCOMES = tuple(OUTCOME_RANGES)

# Anatomical region codes used by label maps (synth truth) and attribution.
REGIONS: dict[str, int] = {
    "background": 0,
    "soft_tissue": 1,
    "shaft": 2,          # bone away from joints (metacarpal/phalangeal shafts, radius/ulna)
    "svdh_site": 3,      # joint spaces and erosion areas that the Sharp score looks at
    "periarticular": 4,  # bone next to MCP/PIP joints, outside the scored site itself
    "carpus": 5,         # carpal bones outside the scored wrist sites
    "msasss_corner": 6,  # the anterior vertebral corners that mSASSS scores (lateral spine views)
}
REGION_NAMES = {v: k for k, v in REGIONS.items()}

# --------------------------------------------------------------------------- craniocervical junction (issue 30)
# Lateral cervical radiographs (neutral, flexion, extension) of the craniocervical junction and sagittal
# T1/T2 MR series. Landmarks: the four atlantoaxial points of Okita et al. 2023 (C1A posterior margin of the
# anterior arch of C1, DA / DP anterior / posterior surface of the dens, C1P anterior margin of the posterior
# arch), Ranawat's C1 arch centres (C1AT, C1PT) and C2 pedicle centre (C2P), the basion (BA), the dens tip
# (DT) and the C1 / C2 facet surfaces (F1, F2). Template: the phantom's default geometry in a neutral,
# unjittered 128-px radiograph (raoutcome.synth.phantom.craniocervical.template_fractions; a test keeps the
# two in step). Region codes 10+ label the phantom's structures for attribution.
CRANIOCERVICAL_LANDMARKS: dict[str, tuple[float, float]] = {
    "C1A": (0.3082, 0.5597), "DA": (0.3295, 0.5597), "DP": (0.4716, 0.5597), "C1P": (0.7344, 0.5597),
    "C1AT": (0.2514, 0.5597), "C1PT": (0.8054, 0.5597), "C2P": (0.429, 0.7983), "BA": (0.3438, 0.2685),
    "DT": (0.4006, 0.3651), "F1": (0.4077, 0.6378), "F2": (0.4077, 0.6705)}
register_body_part(BodyPart("craniocervical", landmarks=CRANIOCERVICAL_LANDMARKS))
CRANIOCERVICAL_VIEWS: tuple[str, ...] = ("cervical_neutral", "cervical_flexion", "cervical_extension")
CRANIOCERVICAL_MR_VIEWS: tuple[str, ...] = ("cervical_mr_t1", "cervical_mr_t2")
for _name in CRANIOCERVICAL_VIEWS:
    register_view(View(_name, "craniocervical"))
for _name in CRANIOCERVICAL_MR_VIEWS:  # own body part: no 2-D landmark template, never sent to the detector
    register_view(View(_name, "craniocervical_mr", modality="mr"))
REGIONS.update({"cc_dens": 10, "cc_c2_body": 11, "cc_c1_anterior_arch": 12, "cc_c1_posterior_arch": 13,
                "cc_atlantodental": 14, "cc_facet_c1c2": 15, "cc_clivus": 16, "cc_canal": 17, "cc_pannus": 18,
                "cc_ligament": 19, "cc_skull_base": 20})  # 20: hard palate and occipital bone (McGregor's line)
REGION_NAMES.update({v: k for k, v in REGIONS.items()})
