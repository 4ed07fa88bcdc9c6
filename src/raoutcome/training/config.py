"""Training configuration: a TOML file over documented defaults (:class:`TrainingConfig`).

Every key is optional; a missing key takes the default of its dataclass field (stated once, below in
the code; the table here is tested against it). Read by the library's one config system
(:mod:`raoutcome.config`): an unknown section or key (with the nearest valid name), a value of the
wrong type or out of range raises :class:`~raoutcome.errors.ConfigError` naming the file, the key and
the value. ``[heads]``, ``loss.weights`` and ``readout.heads`` are keyed by the registered outcomes
(:mod:`raoutcome.outcomes`). The resolved config (defaults filled in) is written to
``config.resolved.toml`` in every run folder and is what ``predict``/``load_run`` read. Validating a
config never imports torch.

```toml
[model]
encoder = "resnet10t"      # any timm architecture (built with in_chans=1, num_classes=0)
pretrained = ""            # "" random init | a local .pth/.pt/.safetensors file | "wheel:efficientnet_lite0"
image_size = 128           # images are resized/padded to image_size x image_size
d_model = 128              # width of visit embeddings (per-visit output embedding is 2*d_model)
layers = 2                 # causal transformer layers over visits
attention_heads = 4
dropout = 0.1
drop_path_rate = 0.0       # stochastic depth inside the encoder (if the architecture has it)
lesion_maps = 2            # sum-pooled lesion-density maps (the SvdH head's JSN / erosion counts); 0 = off
views = []                 # views to use; [] = every view present in the cohort
route = "image"            # "image": whole-image encoder (lesion maps); "sites": posed joint patches read
                           # site by site with ordinal per-joint scores ([sites], raoutcome.training.site_run)

[sites]                    # the site route (model.route = "sites"); see raoutcome.models.site_model
encoder = "test_convnext"  # timm patch encoder shared by every site
grid = 32                  # samples per side of a posed site patch
half_width = 0.08          # patch half-width in units of the standard frame
d_model = 64
context = true             # one attention layer over a visit's sites
epochs = 6
batch_visits = 4           # visits (with all their sites) per step
lr = 3e-3
stall_epoch = 3            # a fold whose validation loss has not fallen by stall_tolerance (relative)
stall_tolerance = 0.10     # from its start by this epoch is reported loudly as not learning (the folds of
                           # the tuning seed 20240601 had fallen 23-28 % by epoch 3)
stall_restarts = 2         # ... and trained again from a new seed (recorded), at most this many times
outcome_epochs = 40        # the outcome model on sites (HAQ, pain, risk from the frozen site embeddings)
outcome_stall_epoch = 10   # its stall rule: validation loss not fallen by outcome_stall_tolerance (relative)
outcome_stall_tolerance = 0.02  # from its start by this epoch: reported loudly, stopped there and trained
outcome_stall_restarts = 2 # again from a new seed at most this many times (every attempt recorded; 0 = never)

[heads]                    # switch any head off; svdh = false is the "no human score" model
svdh = true                # SvdH total + JSN + erosion (needs the svdh_* columns)
haq = true
pain = true
risk = true                # Cox head for [survival].event

[loss]
weighting = "uncertainty"  # "uncertainty" (learned, Kendall et al. 2018) or "fixed"
weights = { svdh = 1.0, haq = 1.0, pain = 1.0, risk = 1.0 }   # fixed weight / prior factor per head
joint_weight = 1.0         # per-joint readings (joints table) located by the landmarks table train the
                           # JSN / erosion lesion maps cell by cell; needs the SvdH head and lesion_maps;
                           # cohorts without both tables just skip it; 0 = off
progression_rank = 0.0     # weight of the label-free ranking term: of two radiographs of one view of a
                           # patient, the later should show more damage (sum of the damage lesion maps);
                           # needs lesion_maps; 0 = off

[survival]
event = "deformity"
risk_visit = "last_before_event"   # visit whose risk enters the Cox loss: | "baseline" | "last"

[train]
epochs = 20                # maximum; early stopping may end sooner
batch_patients = 8         # patients per step (each brings all its visits and views)
lr = 1e-3                  # AdamW peak learning rate (linear warm-up, cosine decay per step)
weight_decay = 0.01
warmup_epochs = 1.0
grad_clip = 1.0            # max gradient norm; 0 = off
patience = 5               # early stopping: epochs without a better validation criterion
val_fraction = 0.15        # share of each fold's training patients held out for early stopping
augment = true             # small random shifts and contrast changes
seed = 0
num_workers = 2            # DataLoader worker processes (a CPU run with no core to spare beyond torch's
                           # threads loads in the main process: workers would only take the model's cores)
amp = "auto"               # mixed precision: "auto" (on with CUDA) | "on" | "off"
device = "auto"            # "auto" | "cpu" | "cuda"
deterministic = true       # torch.use_deterministic_algorithms (warn-only) + fixed seeds
stall_epoch = 8            # a model whose validation criterion has not fallen by stall_tolerance (relative)
stall_tolerance = 0.05     # from its first epoch by this epoch is reported loudly (and recorded) as not learning
                           # (demo recipe: learning folds fell 9-26 % by epoch 8, plateaued folds 1.6-3.3 %)
stall_restarts = 1         # a model that stalls is abandoned at stall_epoch and trained again from a new seed (same
                           # split), at most this many times; every abandoned attempt is recorded; 0 = never restart

[readout]                  # after training, refit these heads in closed form on the model's training patients:
heads = ["haq", "pain", "risk"]  # HAQ / pain: ridge on the frozen visit features (embedding, counts, pooled
folds = 5                  # image features), penalty by patient-grouped K-fold CV; risk: a Cox model on the
cox_penalizer = 0.1        # first visit's outputs (log counts, HAQ, pain), lifelines penalizer; [] = off
joint_anomaly = false      # the readouts also read the visit's label-free joint anomaly (needs landmarks.csv):
                           # its PCA is fitted on the same training patients (raoutcome.imaging.joint_anomaly)
measures = []              # site route: the readouts also read these label-free image measures of the visit
                           # (joint_density, joint_contrast, carpal_height_ratio; raoutcome.imaging.visit_measures)
risk_inputs = []           # the Cox readout reads only these of its inputs (log_jsn, log_erosion, haq, pain,
                           # joint_anomaly, the measures); [] = all

[cv]
folds = 3                  # >= 2: patient-grouped cross-fitting; 1: one model on every patient
seed = 0                   # fold assignment
ensemble_seeds = 1         # models per fold with different seeds, averaged

[predict]
batch_patients = 16
num_workers = 2

[data]
cache_dir = ""             # preprocessed-image cache; "" = <run folder>/image_cache
contrast = []              # [lo, hi] percentile contrast stretch before caching; [] = none

[tracking]                 # experiment tracking (raoutcome.training.tracking); off by default
backend = ""               # "" off | "tensorboard": params, per-epoch losses, per-fold figures, artefacts
dir = ""                   # log folder; "" = <run folder>/tracking (view: tensorboard --logdir DIR)
```
"""
from __future__ import annotations

__all__ = ["TrainingConfig", "TrainConfig", "DEFAULTS", "load_config", "dumps_toml", "write_config_variant",
           "WEIGHTINGS", "RISK_VISIT_RULES"]

import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping

from raoutcome.anatomy import view_names
from raoutcome.config import check, dumps_toml, from_dict, read_toml, to_dict
from raoutcome.errors import ConfigError
from raoutcome.imaging.visit_measures import MEASURES
from raoutcome.io_utils import atomic_write
from raoutcome.outcomes import (DEFAULT_EVENT, RISK_VISIT_RULES, WEIGHTINGS, outcome, outcome_names, outcomes,
                                readout_outcomes, risk_inputs_for)


def _positive_int(v) -> bool:
    return isinstance(v, int) and v >= 1


def _number(lo=-math.inf, hi=math.inf, lo_open=False):
    return lambda v: (v > lo if lo_open else v >= lo) and v <= hi


def _meta(fn, expected: str) -> dict:
    return {"check": check(fn, expected)}


@dataclass(frozen=True)
class ModelSection:
    encoder: str = field(default="resnet10t", metadata=_meta(bool, "a timm architecture name"))
    pretrained: str = ""
    image_size: int = field(default=128, metadata=_meta(lambda v: v >= 16, "an integer >= 16"))
    d_model: int = field(default=128, metadata=_meta(_positive_int, "a positive integer"))
    layers: int = field(default=2, metadata=_meta(_positive_int, "a positive integer"))
    attention_heads: int = field(default=4, metadata=_meta(_positive_int, "a positive integer dividing d_model"))
    dropout: float = field(default=0.1, metadata=_meta(_number(0, 0.95), "a number in [0, 0.95]"))
    drop_path_rate: float = field(default=0.0, metadata=_meta(_number(0, 0.95), "a number in [0, 0.95]"))
    lesion_maps: int = field(default=2, metadata=_meta(lambda v: v == 0 or v >= 2, "0 (off) or an integer >= 2"))
    views: tuple[str, ...] = field(default=(), metadata=_meta(lambda v: all(x in view_names() for x in v),
                                                              "a list of registered views"))
    route: str = field(default="image", metadata=_meta(lambda v: v in ("image", "sites"),
                                                       "'image' (whole-image encoder) or 'sites' (posed joint patches)"))

    def __post_init__(self) -> None:
        if self.d_model % self.attention_heads:
            raise ConfigError(f"model.attention_heads = {self.attention_heads!r} must divide "
                              f"model.d_model = {self.d_model!r}")


@dataclass(frozen=True)
class SitesSection:
    """The site route (``model.route = "sites"``, :mod:`raoutcome.models.site_model`)."""

    encoder: str = field(default="test_convnext", metadata=_meta(bool, "a timm architecture name"))
    grid: int = field(default=32, metadata=_meta(lambda v: v >= 16, "an integer >= 16"))
    half_width: float = field(default=0.08, metadata=_meta(_number(0.01, 0.5), "a number in [0.01, 0.5]"))
    d_model: int = field(default=64, metadata=_meta(_positive_int, "a positive integer"))
    context: bool = True
    epochs: int = field(default=6, metadata=_meta(_positive_int, "a positive integer"))
    batch_visits: int = field(default=4, metadata=_meta(_positive_int, "a positive integer"))
    lr: float = field(default=3e-3, metadata=_meta(_number(0, lo_open=True), "a positive number"))
    stall_epoch: int = field(default=3, metadata=_meta(_positive_int, "a positive integer"))
    stall_tolerance: float = field(default=0.10, metadata=_meta(_number(0, 1), "a number in [0, 1]"))
    stall_restarts: int = field(default=2, metadata=_meta(lambda v: v >= 0, "a non-negative integer"))
    outcome_epochs: int = field(default=40, metadata=_meta(lambda v: v >= 0,
                                                           "a non-negative integer (0: no outcome model on sites)"))
    outcome_stall_epoch: int = field(default=10, metadata=_meta(_positive_int, "a positive integer"))
    outcome_stall_tolerance: float = field(default=0.02, metadata=_meta(_number(0, 1), "a number in [0, 1]"))
    outcome_stall_restarts: int = field(default=2, metadata=_meta(lambda v: v >= 0, "a non-negative integer"))


def _default_heads() -> dict[str, bool]:
    return {o.name: o.default_on for o in outcomes()}


def _known_outcomes(v: Mapping) -> bool:
    return all(k in outcome_names() for k in v)


@dataclass(frozen=True)
class LossSection:
    weighting: str = field(default="uncertainty", metadata=_meta(lambda v: v in WEIGHTINGS,
                                                                f"one of {list(WEIGHTINGS)}"))
    weights: dict[str, float] = field(default_factory=lambda: {h: 1.0 for h in outcome_names()}, metadata=_meta(
        lambda v: _known_outcomes(v) and all(x >= 0 for x in v.values()),
        "a table of non-negative numbers keyed by registered outcomes"))
    joint_weight: float = field(default=1.0, metadata=_meta(_number(0), "a non-negative number"))
    progression_rank: float = field(default=0.0, metadata=_meta(_number(0), "a non-negative number"))


@dataclass(frozen=True)
class SurvivalSection:
    event: str = field(default=DEFAULT_EVENT, metadata=_meta(bool, "an event name"))
    risk_visit: str = field(default="last_before_event", metadata=_meta(lambda v: v in RISK_VISIT_RULES,
                                                                       f"one of {list(RISK_VISIT_RULES)}"))


@dataclass(frozen=True)
class TrainSection:
    epochs: int = field(default=20, metadata=_meta(_positive_int, "a positive integer"))
    batch_patients: int = field(default=8, metadata=_meta(_positive_int, "a positive integer"))
    lr: float = field(default=1e-3, metadata=_meta(_number(0, lo_open=True), "a positive number"))
    weight_decay: float = field(default=0.01, metadata=_meta(_number(0), "a non-negative number"))
    warmup_epochs: float = field(default=1.0, metadata=_meta(_number(0), "a non-negative number"))
    grad_clip: float = field(default=1.0, metadata=_meta(_number(0), "a non-negative number"))
    patience: int = field(default=5, metadata=_meta(_positive_int, "a positive integer"))
    val_fraction: float = field(default=0.15, metadata=_meta(_number(0, 0.9), "a number in [0, 0.9]"))
    augment: bool = True
    seed: int = field(default=0, metadata=_meta(lambda v: v >= 0, "a non-negative integer"))
    num_workers: int = field(default=2, metadata=_meta(lambda v: v >= 0, "a non-negative integer"))
    amp: str = field(default="auto", metadata=_meta(lambda v: v in ("auto", "on", "off"), "'auto', 'on' or 'off'"))
    device: str = field(default="auto", metadata=_meta(lambda v: v in ("auto", "cpu", "cuda"),
                                                       "'auto', 'cpu' or 'cuda'"))
    deterministic: bool = True
    stall_epoch: int = field(default=8, metadata=_meta(_positive_int, "a positive integer"))
    stall_tolerance: float = field(default=0.05, metadata=_meta(_number(0, 1), "a number in [0, 1]"))
    stall_restarts: int = field(default=1, metadata=_meta(lambda v: v >= 0, "a non-negative integer"))


def _distinct(v) -> bool:
    return len(set(v)) == len(v)


@dataclass(frozen=True)
class ReadoutSection:
    heads: tuple[str, ...] = field(
        default_factory=lambda: tuple(h for h in readout_outcomes() if outcome(h).default_on),
        metadata=_meta(lambda v: all(x in readout_outcomes() for x in v) and _distinct(v),
                       "a list of distinct outcomes that have a closed-form readout"))
    folds: int = field(default=5, metadata=_meta(lambda v: v >= 2, "an integer >= 2"))
    cox_penalizer: float = field(default=0.1, metadata=_meta(_number(0), "a non-negative number"))
    joint_anomaly: bool = False
    measures: tuple[str, ...] = field(default=(), metadata=_meta(
        lambda v: all(x in MEASURES for x in v) and _distinct(v),
        f"a list of distinct image measures ({', '.join(MEASURES)})"))
    risk_inputs: tuple[str, ...] = field(default=(), metadata=_meta(
        lambda v: all(x in risk_inputs_for(outcome_names(), True) or x in MEASURES for x in v) and _distinct(v),
        "a list of distinct inputs of the Cox readout (log_ counts of count outcomes, risk-input outcomes, "
        "joint_anomaly, image measures)"))


@dataclass(frozen=True)
class CVSection:
    folds: int = field(default=3, metadata=_meta(_positive_int, "a positive integer (1 = no cross-fitting)"))
    seed: int = field(default=0, metadata=_meta(lambda v: v >= 0, "a non-negative integer"))
    ensemble_seeds: int = field(default=1, metadata=_meta(_positive_int, "a positive integer"))


@dataclass(frozen=True)
class PredictSection:
    batch_patients: int = field(default=16, metadata=_meta(_positive_int, "a positive integer"))
    num_workers: int = field(default=2, metadata=_meta(lambda v: v >= 0, "a non-negative integer"))


@dataclass(frozen=True)
class DataSection:
    cache_dir: str = ""
    contrast: tuple[float, ...] = field(default=(), metadata=_meta(
        lambda v: v == () or (len(v) == 2 and 0 <= v[0] < v[1] <= 100),
        "[] or [lo, hi] percentiles with 0 <= lo < hi <= 100"))


@dataclass(frozen=True)
class TrackingSection:
    backend: str = field(default="", metadata=_meta(lambda v: v in ("", "tensorboard"),
                                                    "'' (off) or 'tensorboard'"))
    dir: str = ""


@dataclass(frozen=True)
class TrainingConfig:
    """A training config: one frozen dataclass per section; the defaults are the field defaults."""

    model: ModelSection = field(default_factory=ModelSection)
    sites: SitesSection = field(default_factory=SitesSection)
    heads: dict[str, bool] = field(default_factory=_default_heads, metadata=_meta(
        _known_outcomes, "a table of true/false keyed by registered outcomes"))
    loss: LossSection = field(default_factory=LossSection)
    survival: SurvivalSection = field(default_factory=SurvivalSection)
    train: TrainSection = field(default_factory=TrainSection)
    readout: ReadoutSection = field(default_factory=ReadoutSection)
    cv: CVSection = field(default_factory=CVSection)
    predict: PredictSection = field(default_factory=PredictSection)
    data: DataSection = field(default_factory=DataSection)
    tracking: TrackingSection = field(default_factory=TrackingSection)

    def __post_init__(self) -> None:
        # a table keyed by outcomes overrides the defaults key by key
        object.__setattr__(self, "heads", {**_default_heads(), **self.heads})
        object.__setattr__(self, "loss", replace(self.loss, weights={**LossSection().weights, **{
            k: float(v) for k, v in self.loss.weights.items()}}))
        if self.loss.progression_rank > 0 and not self.model.lesion_maps:
            raise ConfigError(f"loss.progression_rank = {self.loss.progression_rank!r} ranks the lesion maps, but "
                              f"model.lesion_maps = 0: switch the maps on or the term off")
        if not any(self.heads.values()):
            raise ConfigError("[heads] switches every head off; keep at least one")
        r = self.readout
        if r.joint_anomaly and not r.heads:
            raise ConfigError("readout.joint_anomaly = true, but readout.heads = [] fits no readout to read it")
        if r.measures and not r.heads:
            raise ConfigError("readout.measures names image measures, but readout.heads = [] fits no readout to "
                              "read them")
        if r.measures and self.model.route != "sites":
            raise ConfigError(f"readout.measures = {list(r.measures)!r}: only the site route (model.route = "
                              f"\"sites\") reads image measures")
        provided = risk_inputs_for(tuple(h for h, on in self.heads.items() if on), r.joint_anomaly) + r.measures
        missing = [x for x in r.risk_inputs if x not in provided]
        if missing:
            raise ConfigError(f"readout.risk_inputs = {list(r.risk_inputs)!r} names {missing}, which this model "
                              f"does not have (the SvdH head gives log_jsn/log_erosion, readout.joint_anomaly the "
                              f"anomaly, readout.measures the image measures)")


class TrainConfig:
    """A validated config with dict access by section: ``cfg.train["lr"]``, ``cfg.heads_on``, ``cfg.to_toml()``.

    ``cfg.config`` is the typed :class:`TrainingConfig`; ``cfg.values`` the same as plain nested dicts.
    """

    def __init__(self, values: Mapping[str, Any], source: str = "<defaults>"):
        self.source = source
        self.config = from_dict(TrainingConfig, values, source)
        self.values = to_dict(self.config)

    def __getattr__(self, section: str) -> dict[str, Any]:
        values = self.__dict__.get("values", {})
        if section in values:
            return values[section]
        raise AttributeError(section)

    def __eq__(self, other) -> bool:
        return isinstance(other, TrainConfig) and self.values == other.values

    @property
    def heads_on(self) -> tuple[str, ...]:
        return tuple(h for h in outcome_names() if self.values["heads"].get(h))

    @property
    def readout_heads(self) -> tuple[str, ...]:
        """Heads to refit in closed form after training: those switched on (a Cox readout only when a head
        it reads is on)."""
        on = self.heads_on
        has_inputs = bool(risk_inputs_for(on, False))
        return tuple(h for h in self.values["readout"]["heads"] if h in on
                     and (outcome(h).readout != "cox" or has_inputs))

    def model_spec(self):
        from raoutcome.models.multitask import ModelSpec

        m = self.config.model
        return ModelSpec(encoder=m.encoder, pretrained=m.pretrained, d_model=m.d_model, layers=m.layers,
                         attention_heads=m.attention_heads, dropout=m.dropout, drop_path_rate=m.drop_path_rate,
                         heads=self.heads_on, lesion_maps=m.lesion_maps)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return to_dict(self.config)

    def to_toml(self) -> str:
        return dumps_toml(self.values)

    def differences(self, other: "TrainConfig") -> list[str]:
        """``section.key: a != b`` for each value that differs."""
        out = []
        for section, keys in self.values.items():
            for key, value in keys.items():
                theirs = other.values[section].get(key)
                if value != theirs:
                    out.append(f"{section}.{key}: {theirs!r} -> {value!r}")
        return out


#: the defaults with the built-in outcomes (TrainingConfig() has those registered since)
DEFAULTS = to_dict(TrainingConfig())


def load_config(path: str | Path | None) -> TrainConfig:
    """Read and validate a training TOML (``None``: every default)."""
    if path is None:
        return TrainConfig({})
    return TrainConfig(read_toml(path, "training config"), source=str(path))


def write_config_variant(config: str | Path, overrides: Mapping[str, Mapping[str, Any]], out: str | Path,
                         note: str = "") -> Path:
    """``config`` with ``{section: {key: value}}`` overrides, validated and written to ``out`` (for
    analyses that train variants of one recipe, e.g. without a head or with more seeds)."""
    values = load_config(config).to_dict()
    for section, table in overrides.items():
        values.setdefault(section, {}).update(table)
    TrainConfig(values, source=f"{config} with {dict(overrides)}")  # refuse a bad override before writing
    header = f"# {config}" + (f" {note}" if note else "") + "\n"
    with atomic_write(out) as fh:
        fh.write(header + dumps_toml(values))
    return Path(out)
