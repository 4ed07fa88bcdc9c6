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
