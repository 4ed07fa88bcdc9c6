"""Names shared across the library: radiograph views, SvdH joint sites, score
ranges, outcome columns and anatomical region codes.

One source of truth, so the simulator, the validator, the model heads and the
attribution regions can never disagree on what a site is called.
Sources: ../shared/CLINICAL_FACTS.md (SvdH, van der Heijde 1999/2000; mSASSS,
Creemers 2005).
"""
from __future__ import annotations

VIEWS: tuple[str, ...] = (
    "hand_left", "hand_right", "foot_left", "foot_right", "spine_cervical", "spine_lumbar",
)
HAND_VIEWS = ("hand_left", "hand_right")
FOOT_VIEWS = ("foot_left", "foot_right")

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

# Visit-level outcome columns and their valid closed ranges.
OUTCOME_RANGES: dict[str, tuple[float, float]] = {
    "svdh_total": (0.0, 448.0),
    "svdh_jsn": (0.0, 168.0),
    "svdh_erosion": (0.0, 280.0),
    "haq": (0.0, 3.0),
    "pain": (0.0, 100.0),
    "das28": (0.0, 10.0),
    "msasss": (0.0, 72.0),
}
OUTCOMES = tuple(OUTCOME_RANGES)

# The time-to-event outcome the library predicts by default.
DEFORMITY_EVENT = "deformity"
#: Landmark names used by real-hand landmark sets for a scored site of another name
#: (the thumb MCP is "MP" there, "MCP1" in the SvdH site list).
LANDMARK_SITE: dict[str, str] = {"MP": "MCP1"}

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
}


def body_part(view: str | None) -> str | None:
    """"hand" or "foot" for a hand or foot view, else None (spine views, unknown view)."""
    return "hand" if view in HAND_VIEWS else "foot" if view in FOOT_VIEWS else None


def joint_name(view: str, site: str) -> str:
    """Name of one joint in the `joints` table, e.g. ``hand_left:MCP2``."""
    return f"{view}:{site}"


def joint_max(joint: str, kind: str) -> int:
    """Maximum SvdH score of ``kind`` ('jsn' or 'erosion') at ``joint`` (``view:site``)."""
    view = joint.split(":", 1)[0]
    if kind == "jsn":
        return MAX_JSN
    if kind == "erosion":
        return MAX_EROSION_FOOT if view in FOOT_VIEWS else MAX_EROSION_HAND
    raise ValueError(f"unknown score kind {kind!r} (expected 'jsn' or 'erosion')")


def sites_for(view: str, kind: str) -> tuple[str, ...]:
    """The SvdH sites scored for ``kind`` on ``view``."""
    if view in HAND_VIEWS:
        return HAND_JSN_SITES if kind == "jsn" else HAND_EROSION_SITES
    if view in FOOT_VIEWS:
        return FOOT_JSN_SITES if kind == "jsn" else FOOT_EROSION_SITES
    return ()


# Anatomical region codes used by label maps (synth truth) and attribution.
REGIONS: dict[str, int] = {
    "background": 0,
    "soft_tissue": 1,
    "shaft": 2,          # bone away from joints (metacarpal/phalangeal shafts, radius/ulna)
    "svdh_site": 3,      # joint spaces and erosion areas that the Sharp score looks at
    "periarticular": 4,  # bone next to MCP/PIP joints, outside the scored site itself
    "carpus": 5,         # carpal bones outside the scored wrist sites
}
REGION_NAMES = {v: k for k, v in REGIONS.items()}
