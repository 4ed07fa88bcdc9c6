"""The AS cohort's generative model: who the patients are, how their 24 mSASSS corners progress, how a reader
scores them, and what BASFI, BASDAI and the time to a new bridge are.

Patients (seeds/003: 76 % men, 26.5 +- 10.7 years at diagnosis): sex, age at diagnosis ~ Normal(26.5, 10.7)
clipped to [15, 70], disease duration at the first visit ~ Gamma(2, 5) years (mean 10), a latent disease
activity ``a ~ Normal(0, 1)`` (per visit ``a + Normal(0, 0.5)``).

Corners: damage arrives as events of a Poisson process whose intensity is
``rate * (1 + damage_feedback * total / 24)`` (syndesmophytes beget syndesmophytes), with
``log rate ~ Normal(log_rate_mean + male + activity terms, log_rate_sd)``, from diagnosis on. Each event
raises one corner (grade < 3) by one grade, chosen with weight ``1 + concentration * [grade > 0] +
neighbour * [facing corner > 0]``; a corner reaching 3 is a bridge, and its facing corner becomes 3 with it.
A corner's first grade-1 lesion is an erosion, sclerosis or squaring (never squaring at C3). The defaults
give, read by the reader below, an observed 2-year change of mean ~2.1 and SD ~3.7 and an inter-reader
ICC of the change ~0.5 (CLINICAL_FACTS: 2.0 (SD 3.6), Ramiro 2013; ICC 0.44-0.62); the true change has mean
~2.4 and SD ~3.1 (1 500 patients, no missing corners; chosen on seed 1): ``tests/test_spine_phantom.py`` checks these on a simulated cohort.

Not scorable: persistent osteophytes (per corner ``osteophyte``), blurred corners (per image ``blurred``),
corners hidden by the shoulders (decided by the phantom from the shoulder's height, per patient
``Normal(shoulder_mean, shoulder_sd)`` plus ``Normal(0, 0.05)`` per visit).

Reader: a scorable corner of true grade g is read g +- 1 with probability ``reader_flip + reader_flip_per_grade
* g`` (clipped to 0-3), each reading independent (reading 1: ``joints.csv``, reading 2: ``retest_joints.csv``).

Re-imaging (``reimage``, the share of patients): every visit of such a patient is imaged a second time, a new
acquisition of the same spine (pose, exposure, noise, blur, shoulder height, blurred corners all drawn again; the
grades, lesions and osteophytes are the visit's), and that film is read once more by the same reader model. This
is the test-retest set a learned score's SDC needs (re-reading the same film is not: a model reads it the same).

Outcomes (assumptions of this simulator, not published coefficients): BASFI mean ``basfi_intercept +
basfi_damage * mSASSS/10 + basfi_activity * a_visit``, observed with Normal noise, clipped to 0-10;
BASDAI ``basdai_intercept + basdai_activity * a_visit`` + noise. Time to a new bridge: the first bridge formed
after the first visit, found at the visit that shows it (interval-censored), censored at loss to follow-up.
"""
from __future__ import annotations

__all__ = ["SpineCourseConfig", "SpineOutcomesConfig", "SpineCohortConfig", "PatientCourse", "draw_patient",
           "draw_course", "read_corners", "load_spine_config", "is_spine_config", "COHORT_KIND"]

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from raoutcome import config
from raoutcome.errors import ConfigError
from raoutcome.msasss import CORNERS, FACING, GRADE1_LESIONS, NO_SQUARING, SPINE_VIEWS
from .config import AcquisitionConfig, VisitsConfig

COHORT_KIND = "as_spine"  # the TOML's ``cohort`` key for this simulator


@dataclass(frozen=True)
class SpineCourseConfig:
    log_rate_mean: float = -0.7        # log events/year at the reference (woman, activity 0)
    log_rate_sd: float = 0.6
    male: float = 0.35                  # log-rate shift for men
    activity: float = 0.25              # log-rate per SD of latent activity
    damage_feedback: float = 0.3        # intensity * (1 + this * total / 24)
    concentration: float = 1.5          # weight of corners already damaged
    neighbour: float = 1.5              # weight of corners whose facing corner is damaged
    osteophyte: float = 0.03            # per corner, persistent
    blurred: float = 0.015              # per corner, per image
    shoulder_mean: float = 0.85         # shoulder top along C2..T1 (1 = T1 centre)
    shoulder_sd: float = 0.12
    lordosis_sd: float = 0.2
    reader_flip: float = 0.13
    reader_flip_per_grade: float = 0.04


@dataclass(frozen=True)
class SpineOutcomesConfig:
    basfi_intercept: float = 1.8
    basfi_damage: float = 0.45          # per 10 mSASSS units
    basfi_activity: float = 1.0
    basfi_noise_sd: float = 1.1
    basdai_intercept: float = 3.6
    basdai_activity: float = 1.4
    basdai_noise_sd: float = 1.0
    dropout_rate: float = 0.04          # loss to follow-up per year (exponential)


@dataclass(frozen=True)
class SpineCohortConfig:
    cohort: str = COHORT_KIND
    seed: int = 0
    n_patients: int = 120
    views: tuple[str, ...] = SPINE_VIEWS
    image_size: int = 256
    render: bool = True
    workers: int = 1
    reimage: float = 0.0                # share of patients whose every visit is imaged twice (``reimaged/``)
    male_fraction: float = 0.76
    age_at_diagnosis_mean: float = 26.5
    age_at_diagnosis_sd: float = 10.7
    visits: VisitsConfig = VisitsConfig(times_years=(0.0, 2.0, 4.0), jitter_years=0.08, dropout=0.03)
    course: SpineCourseConfig = SpineCourseConfig()
    outcomes: SpineOutcomesConfig = SpineOutcomesConfig()
    acquisition: AcquisitionConfig = AcquisitionConfig(rotation_deg=6.0, translation=0.03, scale=0.06)

    def replace(self, **changes: Any) -> "SpineCohortConfig":
        return dataclasses.replace(self, **changes)


def _check(key: str, name: str, value: Any) -> None:
    def bad(msg: str) -> None:
        raise ConfigError(f"config key '{key}': {msg} (value: {value!r})")

    if name in ("male_fraction", "reimage", "osteophyte", "blurred", "reader_flip", "reader_flip_per_grade", "dropout") \
            and not 0.0 <= value <= 1.0:
        bad("must be a probability in [0, 1]")
    if (name.endswith("_sd") or name in ("concentration", "neighbour", "damage_feedback", "dropout_rate",
                                         "rotation_deg", "translation", "scale", "exposure", "noise", "blur_px",
                                         "landmark_sd", "jitter_years")) and value < 0:
        bad("must be >= 0")
    if key == "cohort" and value != COHORT_KIND:
        bad(f"must be {COHORT_KIND!r}")
    if key == "n_patients" and not 1 <= value <= 1_000_000:
        bad("must be a positive integer")
    if key == "image_size" and not 64 <= value <= 4096:
        bad("must be between 64 and 4096 pixels")
    if key == "views" and (not value or any(v not in SPINE_VIEWS for v in value) or len(set(value)) != len(value)):
        bad(f"must list distinct views among {', '.join(SPINE_VIEWS)}")
    if key == "visits.times_years" and (not value or value[0] != 0.0
                                        or any(b <= a for a, b in zip(value, value[1:]))):
        bad("must start at 0 and increase strictly")
    if key == "seed" and value < 0:
        bad("must be a non-negative integer")


def is_spine_config(path: str | Path) -> bool:
    """True when the TOML at ``path`` is an AS spine cohort (``cohort = "as_spine"``)."""
    try:
        return config.read_toml(path, "simulator config").get("cohort") == COHORT_KIND
    except Exception:  # unreadable: let the RA simulator's reader report it
        return False


def load_spine_config(path: str | Path | None) -> SpineCohortConfig:
    if path is None:
        return SpineCohortConfig()
    return config.from_dict(SpineCohortConfig, config.read_toml(path, "simulator config"), str(path),
                            validate=_check)


# ------------------------------------------------------------------------------------------- the course
@dataclass
class PatientCourse:
    male: bool
    age_at_diagnosis: float
    duration: float
    activity: float
    log_rate: float
    lordosis: float
    shoulder: float
    osteophytes: frozenset[str]
    corners: tuple[str, ...]            # "view:corner" in view order
    times: np.ndarray                   # visit times (years from the first visit)
    grades: np.ndarray                  # (V, 24) true grades at each visit
    lesions: list[dict[str, str]]       # per visit: corner -> lesion kind (grades > 0)
    bridge_times: list[float] = field(default_factory=list)  # times (from the first visit) bridges formed


def draw_patient(cfg: SpineCohortConfig, rng: np.random.Generator) -> dict:
    male = bool(rng.random() < cfg.male_fraction)
    age_dx = float(np.clip(rng.normal(cfg.age_at_diagnosis_mean, cfg.age_at_diagnosis_sd), 15.0, 70.0))
    duration = float(min(rng.gamma(2.0, 5.0), 80.0 - age_dx))
    return dict(male=male, age_at_diagnosis=age_dx, duration=max(duration, 0.1))


def draw_course(cfg: SpineCohortConfig, rng: np.random.Generator) -> PatientCourse:
    """One patient: demographics, the corner process from diagnosis to the last visit, visit states."""
    c = cfg.course
    p = draw_patient(cfg, rng)
    activity = float(rng.normal())
    log_rate = float(c.log_rate_mean + c.male * p["male"] + c.activity * activity + rng.normal(0, c.log_rate_sd))
    v = cfg.visits
    times = np.array(v.times_years, float)
    times[1:] = np.maximum(times[1:] + rng.normal(0, v.jitter_years, len(times) - 1), 1e-3)
    times = np.maximum.accumulate(times + np.arange(len(times)) * 1e-6)
    corners = tuple(f"{view}:{k}" for view in cfg.views for k in CORNERS[view])
    local = [k.split(":", 1)[1] for k in corners]
    index = {k: i for i, k in enumerate(local)}
    face = np.array([index.get(FACING.get(k, ""), -1) for k in local])
    n = len(corners)
    g = np.zeros(n, int)
    kinds: dict[str, str] = {}
    t = -p["duration"]
    end = float(times[-1])
    grades = np.zeros((len(times), n), int)
    snaps: list[dict[str, str]] = [{} for _ in times]
    nxt = 0
    bridges: list[float] = []
    rate = float(np.exp(log_rate))
    while True:
        lam = rate * (1.0 + c.damage_feedback * g.sum() / 24.0)
        eligible = g < 3
        dt = rng.exponential(1.0 / lam) if lam > 0 and eligible.any() else np.inf
        t_new = t + dt
        while nxt < len(times) and times[nxt] <= t_new:  # record the visits passed
            grades[nxt] = g
            snaps[nxt] = dict(kinds)
            nxt += 1
        if t_new > end or not np.isfinite(t_new):
            break
        t = t_new
        w = (1.0 + c.concentration * (g > 0) + c.neighbour * ((face >= 0) & (g[np.maximum(face, 0)] > 0)))
        w = np.where(eligible, w, 0.0)
        i = int(rng.choice(n, p=w / w.sum()))
        g[i] += 1
        name = local[i]
        if g[i] == 1:
            options = [x for x in GRADE1_LESIONS if not (x == "squaring" and name in NO_SQUARING)]
            kinds[name] = str(rng.choice(options))
        elif g[i] == 2:
            kinds[name] = "syndesmophyte"
        if g[i] == 3:
            j = face[i]
            if j < 0:  # no facing corner in the field (cannot happen for mSASSS corners)
                g[i] = 2
                continue
            g[j] = 3
            kinds[name] = kinds[local[j]] = "bridging"
            if t > 0:
                bridges.append(t)
    osteo = frozenset(k for k in local if rng.random() < c.osteophyte)
    lordosis = float(max(0.2, rng.normal(1.0, c.lordosis_sd)))
    shoulder = float(rng.normal(c.shoulder_mean, c.shoulder_sd))
    return PatientCourse(male=p["male"], age_at_diagnosis=p["age_at_diagnosis"], duration=p["duration"],
                         activity=activity, log_rate=log_rate, lordosis=lordosis, shoulder=shoulder,
                         osteophytes=osteo, corners=corners, times=times, grades=grades, lesions=snaps,
                         bridge_times=bridges)


def read_corners(true: np.ndarray, scorable: np.ndarray, cfg: SpineCohortConfig,
                 rng: np.random.Generator) -> np.ndarray:
    """A reader's grades (float, NaN where not scorable) of true grades ``true`` (any shape)."""
    c = cfg.course
    p = c.reader_flip + c.reader_flip_per_grade * true
    flip = rng.random(true.shape) < p
    step = np.where(rng.random(true.shape) < 0.5, -1, 1)
    step = np.where(true == 0, 1, np.where(true == 3, -1, step))
    read = np.where(flip, true + step, true).astype(float)
    return np.where(scorable, read, np.nan)
