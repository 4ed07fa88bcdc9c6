"""Simulator configuration: one TOML file -> a validated, frozen :class:`SimulationConfig`.

Every key has a default (``SimulationConfig()`` is the code default, 256 px); a TOML file
overrides any subset. Read by the library's one config system (:mod:`raoutcome.config`): unknown keys
and bad values raise :class:`raoutcome.errors.ConfigError` naming the file, the key (with the nearest
valid name) and the value. The sections and their meaning are documented in
``cohorts/README.md``.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from raoutcome import config
from raoutcome.anatomy import FOOT_VIEWS, HAND_VIEWS
from raoutcome.errors import ConfigError

SIM_VIEWS = HAND_VIEWS + FOOT_VIEWS
IMAGE_FORMATS = ("dicom", "png")


@dataclass(frozen=True)
class VisitsConfig:
    times_years: tuple[float, ...] = (0.0, 1.0, 2.0, 3.0)  # scheduled visit times
    jitter_years: float = 0.08      # SD of the deviation from each scheduled follow-up time
    dropout: float = 0.03           # probability that a scheduled follow-up visit is missed


@dataclass(frozen=True)
class MissingConfig:
    svdh: float = 0.03              # probability that a visit has no SvdH reading
    haq: float = 0.05
    pain: float = 0.05
    das28: float = 0.05
    view: float = 0.02              # probability that an image is missing (>= 1 image kept per visit)


@dataclass(frozen=True)
class CourseConfig:
    """Damage course in full-SvdH units (hands + feet); scaled to the simulated views."""
    baseline_log_mean: float = 1.2       # log(1 + baseline SvdH) ~ Normal(mean + covariate terms, sd)
    baseline_log_sd: float = 1.25
    slow_rate_median: float = 0.6        # units / year, most patients
    slow_rate_log_sd: float = 1.0
    rapid_rate_median: float = 10.0      # units / year, rapid progressors
    rapid_rate_log_sd: float = 0.45
    rapid_fraction: float = 0.15         # share of rapid progressors (before covariate shifts)
    erosion_share: float = 0.55          # mean share of damage units that are erosions
    concentration: float = 0.8           # preference of new damage for already damaged joints
    reader_flip: float = 0.004           # per joint-score probability of a +-1 misreading at score 0
    reader_flip_per_unit: float = 0.02   # ... plus this much per unit of true score


@dataclass(frozen=True)
class FeatureConfig:
    enabled: bool = True
    visibility: float = 1.0              # strength of the rendered sign (0 = drawn but invisible)


@dataclass(frozen=True)
class FeaturesConfig:
    osteopenia: FeatureConfig = FeatureConfig()
    swelling: FeatureConfig = FeatureConfig()
    carpal_collapse: FeatureConfig = FeatureConfig()


@dataclass(frozen=True)
class HaqConfig:
    intercept: float = 0.15
    damage: float = 0.36             # per unit of log(1 + JSN + 0.5 erosion)
    activity: float = 0.12           # per SD of latent activity
    osteopenia: float = 0.55         # per unit of osteopenia (0-1)
    carpal_collapse: float = 0.5     # per unit of carpal collapse (0-1)
    age: float = 0.03                # per decade above 55
    female: float = 0.08
    noise_sd: float = 0.31


@dataclass(frozen=True)
class PainConfig:
    intercept: float = 22.0
    activity: float = 9.0
    swelling: float = 30.0           # per unit of swelling (0-1)
    damage: float = 2.0
    noise_sd: float = 13.0


@dataclass(frozen=True)
class HazardConfig:
    erosion: float = 1.0            # per unit of log(1 + baseline true erosion score)
    carpal_collapse: float = 2.3     # per unit of baseline carpal collapse
    osteopenia: float = 1.0          # per unit of baseline osteopenia
    rf: float = 0.15
    acpa: float = 0.15
    age: float = 0.05                # per decade above 55
    baseline_rate: float = 0.10      # Weibull scale: events / year at lp = 0
    shape: float = 1.3               # Weibull shape
    follow_up_years: float = 0.0     # administrative censoring; 0 = last scheduled visit time
    dropout_rate: float = 0.04       # random censoring, per year (exponential)
    at_visits: bool = False          # events found at visits: interval (last visit without, first with]
    death_smr: float = 0.0           # RA mortality as a competing event: SMR x US 2011 life table (0 = none)


@dataclass(frozen=True)
class OutcomesConfig:
    haq: HaqConfig = HaqConfig()
    pain: PainConfig = PainConfig()
    hazard: HazardConfig = HazardConfig()


@dataclass(frozen=True)
class AcquisitionConfig:
    rotation_deg: float = 4.0        # uniform +- this
    translation: float = 0.03        # uniform +- this fraction of the image side
    scale: float = 0.05              # uniform 1 +- this
    exposure: float = 0.12           # gain uniform 1 +- this
    noise: float = 0.02              # max Gaussian noise SD (fraction of full scale)
    blur_px: float = 0.8             # max Gaussian blur sigma in pixels at 256 px (scales with size)
    pixel_spacing_mm: float = 0.0    # 0 = derived from a 220 mm field of view
    landmark_sd: float = 0.0         # annotation error of the written landmarks: Gaussian SD per coordinate,
                                     # as a fraction of the image side (0 = exact; 0.005 ~ 1 mm at 220 mm)


@dataclass(frozen=True)
class SimulationConfig:
    seed: int = 0
    null: bool = False
    n_patients: int = 200
    views: tuple[str, ...] = ("hand_left", "hand_right")
    image_size: int = 256
    image_format: str = "dicom"
    render: bool = True              # false: tables and truth only, no image files
    workers: int = 2
    visits: VisitsConfig = VisitsConfig()
    missing: MissingConfig = MissingConfig()
    course: CourseConfig = CourseConfig()
    features: FeaturesConfig = FeaturesConfig()
    outcomes: OutcomesConfig = OutcomesConfig()
    acquisition: AcquisitionConfig = AcquisitionConfig()

    def replace(self, **changes: Any) -> "SimulationConfig":
        return dataclasses.replace(self, **changes)


# ---------------------------------------------------------------------------------------- checks
_PROBABILITIES = {"dropout", "svdh", "haq", "pain", "das28", "view", "rapid_fraction", "erosion_share",
                  "reader_flip", "reader_flip_per_unit"}


def _check_value(key: str, name: str, value: Any) -> None:
    def bad(msg: str) -> None:
        raise ConfigError(f"config key '{key}': {msg} (value: {value!r})")

    if name in _PROBABILITIES and not 0.0 <= value <= 1.0:
        bad("must be a probability in [0, 1]")
    if name.endswith("_sd") or name in ("jitter_years", "visibility", "concentration", "rotation_deg",
                                         "translation", "scale", "exposure", "noise", "blur_px",
                                         "pixel_spacing_mm", "follow_up_years", "dropout_rate", "landmark_sd",
                                         "death_smr"):
        if value < 0:
            bad("must be >= 0")
    if name in ("slow_rate_median", "rapid_rate_median", "baseline_rate", "shape") and value <= 0:
        bad("must be > 0")
    if key == "seed" and value < 0:
        bad("must be a non-negative integer")
    if key == "n_patients" and not 1 <= value <= 10_000_000:
        bad("must be a positive integer")
    if key == "image_size" and not 32 <= value <= 4096:
        bad("must be between 32 and 4096 pixels")
    if key == "workers" and not 1 <= value <= 256:
        bad("must be between 1 and 256")
    if key == "image_format" and value not in IMAGE_FORMATS:
        bad(f"must be one of {', '.join(IMAGE_FORMATS)}")
    if key == "views":
        if not value:
            bad("must name at least one view")
        unknown = [v for v in value if v not in SIM_VIEWS]
        if unknown:
            bad(f"unknown view {unknown[0]!r}; the simulator draws {', '.join(SIM_VIEWS)}")
        if len(set(value)) != len(value):
            bad("lists a view twice")
    if key == "visits.times_years":
        if not value:
            bad("must list at least one visit time")
        if value[0] != 0.0 or any(b <= a for a, b in zip(value, value[1:])):
            bad("must start at 0 and increase strictly")
    if key == "acquisition.scale" and value >= 0.5:
        bad("must be < 0.5")


def from_dict(data: dict, source: str = "<config>") -> SimulationConfig:
    """Build a validated config from a (TOML-like) dict; raises ConfigError (:func:`raoutcome.config.from_dict`)."""
    return config.from_dict(SimulationConfig, data, source, validate=_check_value)


def load_config(path: str | Path | None) -> SimulationConfig:
    """Read a simulator TOML; ``None`` gives the code defaults."""
    if path is None:
        return SimulationConfig()
    return from_dict(config.read_toml(path, "simulator config"), str(path))


def to_dict(cfg: Any) -> dict:
    """Plain nested dict (lists for tuples), e.g. to save the resolved config."""
    return config.to_dict(cfg)
