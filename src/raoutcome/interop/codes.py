"""Coded concepts for the SR and FHIR results: what each reported number is, where it was measured.

SvdH sites and score kinds have no codes of their own in DICOM (PS3.16) or SNOMED CT that we
could check offline, so they are coded in a private scheme, ``99RAOUTCOME`` (PS3.16 §8.2: a
private coding scheme designator starts with ``99``), each with a plain-words meaning. Laterality
and body parts use SNOMED CT (SCT) codes that DICOM itself lists (CID 244 Laterality, CID 4031
Common Anatomic Regions); the standard deviation is SCT 386136009 (CID 226 Population Statistical
Descriptors). Units are UCUM (``{score}`` for ordinal scores, ``1`` for a dimensionless value).
"""
from __future__ import annotations

__all__ = ["SCHEME", "concept", "site_concept", "laterality_concept", "unit_concept", "KIND_CONCEPTS",
           "OUTCOME_CONCEPTS", "outcome_concept", "outcome_of_code", "PROCEDURE", "BODY_PART_CONCEPTS",
           "probability_concept", "QC_USED", "QC_FLAG", "QC_DROPPED", "YES", "NO", "yes_no", "qc_flag_concept",
           "qc_flag_of", "landmark_concept"]

from raoutcome.interop.results import OUTCOME_LABELS, outcome_label

SCHEME = "99RAOUTCOME"

_SITE_WORDS = {
    "IP": "interphalangeal joint of the thumb / hallux", "MC1": "base of the first metacarpal",
    "MUL": "multangulum (trapezium and trapezoid)", "NAV": "navicular (scaphoid)", "LUN": "lunate",
    "RAD": "distal radius", "ULN": "distal ulna", "MNA": "multangulum-navicular joint",
    "CNL": "capitate-navicular-lunate joint", "RADCAR": "radiocarpal joint",
}
for _i in range(1, 6):
    _SITE_WORDS[f"MCP{_i}"] = f"metacarpophalangeal joint {_i}"
    _SITE_WORDS[f"PIP{_i}"] = f"proximal interphalangeal joint {_i}"
    _SITE_WORDS[f"MTP{_i}"] = f"metatarsophalangeal joint {_i}"
    _SITE_WORDS[f"CMC{_i}"] = f"carpometacarpal joint {_i}"


def concept(value: str, meaning: str, scheme: str = SCHEME):
    from highdicom.sr import CodedConcept

    return CodedConcept(value=value, scheme_designator=scheme, meaning=meaning)


def site_concept(view: str, site: str):
    """The SvdH site (``MCP2``) of a hand or foot view, in the private scheme."""
    part = "foot" if view.startswith("foot") else "hand"
    words = _SITE_WORDS.get(site, site)
    return concept(f"{part.upper()}-{site}", f"SvdH {part} site {site}: {words}")


def laterality_concept(view: str):
    """SCT Left (7771000) or Right (24028007) from the view name; None for a midline view."""
    if view.endswith("_left"):
        return concept("7771000", "Left", "SCT")
    if view.endswith("_right"):
        return concept("24028007", "Right", "SCT")
    return None


def unit_concept(ucum: str):
    meaning = {"{score}": "score", "1": "no units", "mm": "millimeter"}.get(ucum, ucum)
    return concept(ucum, meaning, "UCUM")


KIND_CONCEPTS = {"jsn": ("SVDH-JSN-SITE", "Sharp-van der Heijde joint space narrowing score"),
                 "erosion": ("SVDH-ERO-SITE", "Sharp-van der Heijde erosion score")}
OUTCOME_CONCEPTS = {name: (f"RAO-{name.upper()}", label) for name, (label, _unit) in OUTCOME_LABELS.items()}


def outcome_concept(name: str) -> tuple[str, str]:
    """(code value, meaning) of a visit-level outcome; any registered outcome gets ``RAO-<NAME>``."""
    return OUTCOME_CONCEPTS.get(name) or (f"RAO-{name.upper()}", outcome_label(name)[0])


def outcome_of_code(code: str) -> str | None:
    """The outcome name a ``RAO-<NAME>`` code stands for."""
    return code[4:].lower() if code.startswith("RAO-") else None
#: SCT 168537006 Plain radiography (procedure)
PROCEDURE = ("168537006", "Plain radiography", "SCT")
#: DICOM CID 4031 body parts for the views.
BODY_PART_CONCEPTS = {"hand": ("85562004", "Hand", "SCT"), "foot": ("56459004", "Foot", "SCT")}


def probability_concept(k: int):
    return concept(f"P-SCORE-{k}", f"Probability that the score is {k}")


#: Landmark QC of an image (site-route results; :mod:`raoutcome.interop.landmark_gate`), private scheme.
QC_USED = ("LMQC-USED", "Image scored from its detected landmarks")
QC_FLAG = ("LMQC-FLAG", "Landmark quality control finding")
QC_DROPPED = ("LMQC-DROPPED", "Landmark left out by quality control")
#: SCT Yes / No (DICOM CID 230).
YES = ("373066001", "Yes", "SCT")
NO = ("373067005", "No", "SCT")


def yes_no(value: bool):
    return concept(*(YES if value else NO))


def qc_flag_concept(flag: str):
    """A QC flag (``mirrored``, ``ok``, ...) as ``LMQC-<FLAG>``."""
    return concept(f"LMQC-{flag.upper()}", "no landmark QC finding" if flag == "ok" else
                   f"landmark QC: {flag.replace('_', ' ')}")


def qc_flag_of(code: str) -> str:
    return code.removeprefix("LMQC-").lower()


def landmark_concept(text: str):
    """A dropped landmark, ``"PIP3: outlier"`` -> ``LM-PIP3`` with the text as its meaning."""
    return concept(f"LM-{text.split(':', 1)[0]}", text)
