"""The registry of outcomes: one frozen spec per outcome, found by name everywhere else.

Two registries, both torch-free:

* **visit columns** (:class:`Measure`, :func:`register_column`): every per-visit number a cohort
  may carry (``svdh_total``, ``haq``, ``das28``, ...), with its valid closed range, step, human
  label and unit. Cohort validation, summaries and ``Cohort.to_xarray`` loop over them.
* **outcomes** (:class:`Outcome`, :func:`register_outcome`): what a model predicts. One spec names
  the outcome's cohort column(s), its range, its *kind* (count / bounded / ordinal / time-to-event /
  binary), the space its loss is computed in, the closed-form readout that may replace its trained
  head, its label and unit, and which direction is worse. The model's heads and losses are looked
  up by the spec's ``kind`` / ``loss_space`` (:mod:`raoutcome.models.heads`,
  :mod:`raoutcome.models.losses`), and Predictions, the training config, ``analyze``'s metrics and
  the report loop over :func:`outcomes` — so registering one spec here (as timm registers a model)
  is all it takes to train, predict, analyse and report a new outcome::

      register_outcome(Outcome("das28", kind="bounded", column="das28", upper=10.0,
                               label="DAS28", unit="0–10", scale=1.2))

Registration order is kept (it is the order of heads, Predictions variables and report rows), and
names never change meaning, so a checkpoint records the outcome names it was trained with and
reloads whatever else is registered later.
"""
from __future__ import annotations

__all__ = ["KINDS", "LOSS_SPACES", "READOUTS", "Measure", "Outcome", "Part", "register_column", "register_outcome",
           "unregister_outcome", "registered", "column", "visit_columns", "outcome", "outcomes", "outcome_names",
           "score_variables", "output_columns", "output_outcome", "risk_inputs_for", "readout_outcomes",
           "outcome_of_kind", "damage_outcome", "event_outcome", "site_outcome", "label", "title", "DEFAULT_EVENT", "RISK_VISIT_RULES",
           "WEIGHTINGS", "LEGACY_OUTCOMES"]

import math
from dataclasses import dataclass, field
from typing import Sequence

from raoutcome.registry import Registry, registering

#: kinds of outcome: a count of lesions (non-negative, log-normal-ish), a bounded score (questionnaire,
#: VAS), an ordered class, a time to an event, a yes/no.
KINDS: tuple[str, ...] = ("count", "bounded", "ordinal", "time_to_event", "binary")
#: the space the loss compares prediction and label in: as they are, after ``log1p``, a Cox partial
#: likelihood, a logistic likelihood.
LOSS_SPACES: tuple[str, ...] = ("identity", "log1p", "cox", "logit")
#: closed-form readouts that can replace a trained head after training: none, ridge regression on the
#: visit's features, a Cox model on the visit's other outputs.
READOUTS: tuple[str, ...] = ("", "ridge", "cox")
#: the time-to-event outcome's default event (the events table's ``event`` value)
DEFAULT_EVENT = "deformity"
#: which visit's risk represents a patient in the Cox loss: the last at or before the event or censoring
#: time (never an image taken after the event), the first, the last
RISK_VISIT_RULES: tuple[str, ...] = ("last_before_event", "baseline", "last")
#: how the outcomes' losses are weighted: fixed weights, or learned (homoscedastic uncertainty)
WEIGHTINGS: tuple[str, ...] = ("fixed", "uncertainty")


@dataclass(frozen=True)
class Measure:
    """A per-visit cohort column: valid closed range ``[lower, upper]``, ``step`` (0 = continuous)."""

    column: str
    lower: float
    upper: float
    label: str
    unit: str = ""
    step: float = 0.0


@dataclass(frozen=True)
class Part:
    """A sub-score of a count outcome (SvdH JSN, erosion): its own output and column; the outcome's main
    output is the sum of its parts. ``weight``: its term's weight in the outcome's loss (the total's is 1)."""

    name: str
    column: str
    upper: float
    label: str
    weight: float = 0.5
    title: str = ""  # the long human name (headline tables); default the label
    site_kind: str = ""  # the per-site reading (joints table ``kind``) whose sum over a visit's sites it is


@dataclass(frozen=True)
class Outcome:
    """One predicted outcome.

    Parameters
    ----------
    name : the head's name and its Predictions variable (``"haq"``).
    kind : one of :data:`KINDS`; chooses the head (:func:`raoutcome.models.heads.build_head`).
    column : the cohort ``visits`` column holding its label ("" for a time to event: the events table).
    lower, upper, step : the valid closed range of the outcome and its step (0 = continuous).
    loss_space : one of :data:`LOSS_SPACES`; chooses the loss (:func:`raoutcome.models.losses.task_loss`).
    scale : the loss scale used when the training patients do not give one (a typical SD in loss space).
    readout : one of :data:`READOUTS`: the closed-form readout that may replace the trained head.
    label, unit : for people (tables, figures, the report).
    worse : ``"higher"`` or ``"lower"``: which direction of the outcome is worse.
    parts : sub-scores (count outcomes); the main output is their sum.
    default_on : the head is trained when a training config does not say (off by default, so that
        registering an outcome never changes what an existing config, or a resumed run, trains).
    risk_input : the Cox readout reads this outcome's output(s) (``log1p`` of a count's parts).
    dream : RA2-DREAM weighted RMSE is among its metrics (SvdH scores).
    endpoint : its observed change is a trial endpoint (``analyze``'s endpoints stage).
    short : a short name for tight labels ("SvdH"); default the label.
    title : the long human name for headline tables ("HAQ disability"); default the label.
    ucum : its UCUM unit code (DICOM SR, FHIR); default by kind: ``{score}`` for a count, bounded or
        ordinal outcome (and its parts), ``1`` otherwise.
    """

    name: str
    kind: str
    column: str = ""
    lower: float = 0.0
    upper: float = math.inf
    step: float = 0.0
    loss_space: str = "identity"
    scale: float = 1.0
    readout: str = ""
    label: str = ""
    unit: str = ""
    worse: str = "higher"
    parts: tuple[Part, ...] = field(default=())
    default_on: bool = False
    risk_input: bool = False
    dream: bool = False
    endpoint: bool = False
    short: str = ""
    title: str = ""
    ucum: str = ""

    def __post_init__(self) -> None:
        problems = []
        if not self.name.isidentifier():
            problems.append(f"name {self.name!r} must be an identifier")
        if self.kind not in KINDS:
            problems.append(f"kind {self.kind!r} is not one of {KINDS}")
        if self.loss_space not in LOSS_SPACES:
            problems.append(f"loss_space {self.loss_space!r} is not one of {LOSS_SPACES}")
        if self.readout not in READOUTS:
            problems.append(f"readout {self.readout!r} is not one of {READOUTS}")
        if self.worse not in ("higher", "lower"):
            problems.append(f"worse {self.worse!r} must be 'higher' or 'lower'")
        if not self.lower < self.upper:
            problems.append(f"range [{self.lower}, {self.upper}] is empty")
        if (self.kind == "time_to_event") != (self.loss_space == "cox"):
            problems.append("a time_to_event outcome, and only one, has loss_space 'cox'")
        if self.kind != "time_to_event" and not self.column:
            problems.append("a per-visit outcome needs its cohort column")
        if self.scale <= 0:
            problems.append(f"scale {self.scale} must be positive")
        if problems:
            raise ValueError(f"outcome {self.name!r}: " + "; ".join(problems))

    @property
    def outputs(self) -> tuple[str, ...]:
        """The per-visit outputs its head writes (Predictions variables): its name, then its parts'."""
        return (self.name, *(p.name for p in self.parts))

    @property
    def columns(self) -> dict[str, str]:
        """Output -> cohort column (per-visit outputs only)."""
        if not self.column:
            return {}
        return {self.name: self.column, **{p.name: p.column for p in self.parts}}

    @property
    def loss_weights(self) -> dict[str, float]:
        """Output -> weight of its term in the outcome's loss (the main output 1)."""
        return {self.name: 1.0, **{p.name: p.weight for p in self.parts}}

    @property
    def risk_features(self) -> tuple[str, ...]:
        """What a Cox readout reads of it: its parts (or itself), ``log_`` prefixed in ``log1p`` space."""
        if not self.risk_input:
            return ()
        prefix = "log_" if self.loss_space == "log1p" else ""
        return tuple(prefix + o for o in ((p.name for p in self.parts) if self.parts else (self.name,)))

    @property
    def ucum_unit(self) -> str:
        """The UCUM unit of its outputs (:attr:`ucum`, or by kind)."""
        return self.ucum or ("{score}" if self.kind in ("count", "bounded", "ordinal") else "1")

    @property
    def site_parts(self) -> tuple[Part, ...]:
        """Its parts that are sums of per-site readings (the SvdH JSN and erosion over the scored joints)."""
        return tuple(p for p in self.parts if p.site_kind)

    @property
    def short_label(self) -> str:
        return self.short or self.label or self.name

    @property
    def per_visit(self) -> bool:
        return self.kind != "time_to_event"


_COLUMNS: Registry[Measure] = Registry("visit column")
_OUTCOMES: Registry[Outcome] = Registry("outcome")


def register_column(measure: Measure) -> Measure:
    """Add a per-visit cohort column (idempotent for an identical measure; a conflicting one is refused)."""
    return _COLUMNS.add(measure.column, measure)


def register_outcome(spec: Outcome) -> Outcome:
    """Add an outcome (and its cohort column(s), if new). A name registered before is refused unless identical."""
    clash = [o for o in spec.outputs if any(o in x.outputs for x in _OUTCOMES.values() if x.name != spec.name)]
    if clash:
        raise ValueError(f"outcome {spec.name!r}: output(s) {clash} belong to another outcome")
    _OUTCOMES.add(spec.name, spec)  # before its columns: a refused outcome leaves no column behind
    if spec.column:
        register_column(_COLUMNS.find(spec.column) or Measure(spec.column, spec.lower, spec.upper,
                                                             spec.label or spec.name, spec.unit, spec.step))
        for p in spec.parts:
            register_column(_COLUMNS.find(p.column) or Measure(p.column, spec.lower, p.upper, p.label,
                                                              f"{spec.lower:g}–{p.upper:g}", spec.step))
    return spec


def unregister_outcome(name: str) -> None:
    """Remove an outcome (its columns stay known: a cohort may still carry them)."""
    _OUTCOMES.remove(name)


def registered(*specs: Outcome | Measure):
    """Register outcomes / columns for the duration of a ``with`` block (tests, notebooks), then restore."""
    return registering((_OUTCOMES, _COLUMNS), lambda s: (register_outcome if isinstance(s, Outcome)
                                                          else register_column)(s), specs)


column = _COLUMNS.get
outcome = _OUTCOMES.get
visit_columns = _COLUMNS.names
outcome_names = _OUTCOMES.names


def outcomes(names: Sequence[str] | None = None) -> tuple[Outcome, ...]:
    """The registered outcomes (in registration order), or those named, in the order given."""
    return _OUTCOMES.values() if names is None else tuple(outcome(n) for n in names)


def outcome_of_kind(kind: str) -> Outcome | None:
    """The first registered outcome of ``kind`` (e.g. the time-to-event one), or None."""
    return next((o for o in _OUTCOMES.values() if o.kind == kind), None)


def damage_outcome() -> Outcome | None:
    """The human damage reading (the first count outcome: SvdH), which the beyond-damage analyses adjust for."""
    return outcome_of_kind("count")


def site_outcome() -> Outcome | None:
    """The outcome read site by site (the first with :attr:`Outcome.site_parts`: SvdH = JSN + erosion over the
    joints), which the site route sums from its per-joint predictions."""
    return next((o for o in _OUTCOMES.values() if o.site_parts), None)


def event_outcome() -> Outcome | None:
    """The time-to-event outcome (the risk head)."""
    return outcome_of_kind("time_to_event")


def score_variables(names: Sequence[str] | None = None) -> tuple[str, ...]:
    """Every output of these outcomes (default: all registered): the Predictions score variables."""
    return tuple(out for o in outcomes(names) for out in o.outputs)


def output_columns(names: Sequence[str] | None = None) -> dict[str, str]:
    """Per-visit output -> cohort column, over these outcomes (default: all registered)."""
    return {k: v for o in outcomes(names) for k, v in o.columns.items()}


def output_outcome(output: str) -> Outcome:
    """The outcome whose head writes ``output`` (``"jsn"`` -> the SvdH outcome)."""
    for o in _OUTCOMES.values():
        if output in o.outputs:
            return o
    raise KeyError(f"no registered outcome writes {output!r} (known: {', '.join(score_variables())})")


def readout_outcomes(kind: str | None = None) -> tuple[str, ...]:
    """Outcomes a closed-form readout can answer (of readout ``kind``, default any)."""
    return tuple(o.name for o in _OUTCOMES.values() if o.readout and (kind is None or o.readout == kind))


def risk_inputs_for(heads: Sequence[str], joint_anomaly: bool) -> tuple[str, ...]:
    """The Cox readout's inputs of a model with these heads: each switched-on outcome's
    :attr:`Outcome.risk_features` in registration order, then the joint anomaly."""
    return (tuple(f for o in _OUTCOMES.values() if o.name in heads for f in o.risk_features)
            + (("joint_anomaly",) if joint_anomaly else ()))


def label(name: str) -> str:
    """Human label of an output or a visit column, or the name itself."""
    for o in _OUTCOMES.values():
        if name == o.name:
            return o.label or name
        for p in o.parts:
            if name == p.name:
                return p.label
    return _COLUMNS.get(name).label if name in _COLUMNS else name


def title(output: str) -> str:
    """The long human name of an output (headline tables), or the output itself."""
    for o in _OUTCOMES.values():
        if output == o.name:
            return o.title or o.label or output
        for p in o.parts:
            if output == p.name:
                return p.title or p.label
    return output


# --------------------------------------------------------------------------- built-ins
# Sources: ../shared/CLINICAL_FACTS.md (SvdH: van der Heijde 1999/2000; HAQ-DI 0-3 in steps of 0.125;
# pain VAS 0-100 mm; DAS28 0-~10; mSASSS 0-72, Creemers 2005).
register_outcome(Outcome(
    "svdh", kind="count", column="svdh_total", upper=448.0, loss_space="log1p", scale=1.0,
    label="SvdH total", unit="0–448", risk_input=True, dream=True, short="SvdH", default_on=True,
    title="SvdH total score",
    parts=(Part("jsn", "svdh_jsn", 168.0, "SvdH narrowing", title="SvdH joint-space narrowing", site_kind="jsn"),
           Part("erosion", "svdh_erosion", 280.0, "SvdH erosion", site_kind="erosion"))))
register_outcome(Outcome("haq", kind="bounded", column="haq", upper=3.0, step=0.125, scale=0.6, readout="ridge",
                         label="HAQ", unit="0–3", risk_input=True, endpoint=True, default_on=True,
                         title="HAQ disability"))
register_outcome(Outcome("pain", kind="bounded", column="pain", upper=100.0, scale=25.0, readout="ridge",
                         label="pain", unit="0–100 mm", ucum="mm", risk_input=True, default_on=True,
                         title="Pain (VAS)"))
register_outcome(Outcome("risk", kind="time_to_event", loss_space="cox", readout="cox", lower=-math.inf,
                         label="deformity risk", unit="log relative hazard", default_on=True, short="risk",
                         title="Time to deformity"))
#: The outcomes every checkpoint written before the registry could have (its spec lists the ones it trained).
LEGACY_OUTCOMES: tuple[str, ...] = outcome_names()
register_column(Measure("das28", 0.0, 10.0, "DAS28", "0–10"))
register_column(Measure("msasss", 0.0, 72.0, "mSASSS", "0–72"))
