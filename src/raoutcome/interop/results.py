"""One visit's results read out of a Predictions dataset, in the shape a report needs.

Visit level: the totals and outcomes of :data:`raoutcome.predictions.SCORE_VARIABLES`
(NaN dropped: a switched-off head is simply absent). Joint level (optional): when the dataset
has a ``joint`` dimension (coordinate values ``view:site`` such as ``hand_left:MCP2``; the schema of
``raoutcome.joint_predictions``, docs/dev/issue-23.md), every (joint, kind) with a finite expected
score, its standard deviation and its class probabilities (NaN grades beyond the kind's maximum
dropped): ``joint_score`` (dims ``patient_id, visit_id, joint, kind``), ``joint_sd`` (same) and
``joint_prob`` (one more dim, ``grade``). Visit-level SDs come from ``<name>_sd`` (``svdh_sd``,
``jsn_sd``, ``erosion_sd``) when present. A dataset without joint variables gives visit-level
results only.
"""
from __future__ import annotations

__all__ = ["JointResult", "VisitResult", "visit_result", "has_joints", "OUTCOME_LABELS", "outcome_label"]

import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import xarray as xr

from raoutcome.errors import InputError
from raoutcome.predictions import SCORE_VARIABLES


def outcome_label(name: str) -> tuple[str, str]:
    """(label, UCUM unit) of a visit-level Predictions variable.

    The label is the outcome registry's (:mod:`raoutcome.outcomes`: ``title``; for a risk its label and
    unit, e.g. "Predicted SvdH total score", "Predicted deformity risk (log relative hazard)"); the unit
    is UCUM, the spec's :attr:`~raoutcome.outcomes.Outcome.ucum_unit` (``{score}`` for scores, ``mm`` for
    the pain VAS, ``1`` for a risk); ``1`` for a variable no registered outcome writes.
    """
    from raoutcome import outcomes as registry

    try:
        spec = registry.output_outcome(name)
    except (KeyError, ValueError, LookupError):
        return f"Predicted {name}", "1"
    if spec.kind == "time_to_event":  # the output is a risk score, not a time
        words = f"Predicted {registry.label(name)}" + (f" ({spec.unit})" if spec.unit else "")
        return words, spec.ucum_unit
    title = registry.title(name)
    first = title.split(" ", 1)[0]
    words = f"Predicted {title[:1].lower() + title[1:] if first[1:].islower() else title}"
    return words, spec.ucum_unit


#: label and UCUM unit of each built-in variable (see :func:`outcome_label`)
OUTCOME_LABELS: dict[str, tuple[str, str]] = {n: outcome_label(n) for n in SCORE_VARIABLES}


_SCORE_NAMES = ("joint_score", "joint_expected")
_SD_NAMES = ("joint_sd", "joint_std")
_PROB_NAMES = ("joint_prob", "joint_probs", "joint_probability")


@dataclass(frozen=True)
class JointResult:
    """One SvdH site's predicted score of one kind (``jsn`` or ``erosion``)."""

    joint: str          # view:site, e.g. hand_left:MCP2
    kind: str           # jsn | erosion
    score: float        # expected score
    sd: float | None    # predictive standard deviation
    probs: tuple[float, ...] | None = None  # P(score = k), k = 0..K-1

    @property
    def view(self) -> str:
        return self.joint.split(":", 1)[0]

    @property
    def site(self) -> str:
        return self.joint.split(":", 1)[1]


@dataclass(frozen=True)
class VisitResult:
    """Everything reported for one visit (one study)."""

    patient_id: str
    visit_id: str
    outcomes: dict[str, float]
    joints: tuple[JointResult, ...] = field(default_factory=tuple)
    outcome_sd: dict[str, float] = field(default_factory=dict)  # e.g. svdh_sd, jsn_sd, erosion_sd


def _first(ds: xr.Dataset, names: Sequence[str]) -> xr.DataArray | None:
    for name in names:
        if name in ds and "joint" in ds[name].dims:
            return ds[name]
    return None


def has_joints(ds: xr.Dataset) -> bool:
    """True when the Predictions carry per-joint scores."""
    return _first(ds, _SCORE_NAMES) is not None


def _finite(value) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def visit_result(ds: xr.Dataset, patient_id: str, visit_id: str) -> VisitResult:
    """Read one visit's results; :class:`InputError` when the visit is not in ``ds``."""
    if patient_id not in ds["patient_id"].values or visit_id not in ds["visit_id"].values:
        raise InputError(f"predictions hold no visit ({patient_id!r}, {visit_id!r})")
    at = {"patient_id": patient_id, "visit_id": visit_id}
    outcomes = {}
    for name in _visit_variables(ds):
        if name in ds:
            value = _finite(ds[name].sel(at).values)
            if value is not None:
                outcomes[name] = value
    outcome_sd = {}
    for name in outcomes:
        if f"{name}_sd" in ds and ds[f"{name}_sd"].dims == ("patient_id", "visit_id"):
            value = _finite(ds[f"{name}_sd"].sel(at).values)
            if value is not None:
                outcome_sd[name] = value
    joints: list[JointResult] = []
    score = _first(ds, _SCORE_NAMES)
    if score is not None:
        sd, prob = _first(ds, _SD_NAMES), _first(ds, _PROB_NAMES)
        s = score.sel(at)
        kinds = [str(k) for k in s["kind"].values] if "kind" in s.dims else [None]
        for joint in (str(j) for j in s["joint"].values):
            for kind in kinds:
                where = {"joint": joint} | ({"kind": kind} if kind is not None else {})
                value = _finite(s.sel(where).values)
                if value is None:
                    continue
                sd_value = _finite(sd.sel(at).sel(where).values) if sd is not None else None
                probs = None
                if prob is not None:
                    p = np.asarray(prob.sel(at).sel(where).values, dtype=float).ravel()
                    p = p[np.isfinite(p)]
                    probs = tuple(float(x) for x in p) if p.size else None
                joints.append(JointResult(joint, kind or _kind_of(ds, joint), value, sd_value, probs))
    return VisitResult(str(patient_id), str(visit_id), outcomes, tuple(joints), outcome_sd)


def _visit_variables(ds: xr.Dataset) -> list[str]:
    """The per-visit predicted numbers: the known score variables first, then any other
    ``patient_id x visit_id`` variable (an outcome registered later), bar times and SDs."""
    known = [n for n in SCORE_VARIABLES if n in ds]
    extra = [str(n) for n, v in ds.data_vars.items() if v.dims == ("patient_id", "visit_id") and n not in known
             and n != "time_years" and not str(n).endswith("_sd") and np.issubdtype(v.dtype, np.number)]
    return known + sorted(extra)


def _kind_of(ds: xr.Dataset, joint: str) -> str:
    if "joint_kind" in ds.coords:
        return str(ds["joint_kind"].sel(joint=joint).values)
    raise InputError(f"predictions: joint {joint!r} has no kind (no 'kind' dimension or 'joint_kind' coordinate)")
