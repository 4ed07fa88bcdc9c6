"""Disease course: covariates, visit times, latent activity, per-joint SvdH scores and the
features the Sharp score ignores, for one patient.

Model (symbols as in ``cohorts/README.md``; figures from ``shared/CLINICAL_FACTS.md``):

* Covariates: age ~ N(55, 12) clipped 20-85; female ~ Bernoulli(0.7); ACPA ~ Bernoulli(0.6);
  RF ~ Bernoulli(0.8) if ACPA+ else Bernoulli(0.3); disease duration at baseline ~ Gamma(2, 0.4) years
  (early RA).
* Activity: a_i ~ N(0, 0.8) per patient; a_it = a_i - 0.15 t + e_it, e_it ~ N(0, 0.6) (treatment lowers it).
* Damage in full-SvdH units: log(1 + B_i) ~ N(mu_B + 0.3 ACPA + 0.25 duration + 0.2 a_i, sd_B)
  (early RA: median ~2-3, right-skewed tail); yearly rate R_i from a two-part mixture: rapid with
  probability logit^-1(logit(p_rapid) + 0.7 (ACPA - 0.6) + 0.5 a_i), R ~ LogNormal(log rapid_median,
  rapid_sd), else R ~ LogNormal(log slow_median, slow_sd) (mostly 0-2 units/year). Expected damage
  D_i(t) = (B_i + R_i t) x share of the simulated views; integer target N_it = round(D_i(t)).
* Allocation: units are placed one at a time on a (joint, kind) with probability proportional to
  w_site x patient modulation x (1 + concentration x current score), never above the joint maximum,
  so per-joint scores are integers that never decrease. Site weights prefer MCP2/3, PIP, wrist
  (ulnar styloid, scaphoid) and MTP5, as in early-RA series.
* Non-Sharp features (each in [0, 1]), per visit:
  osteopenia o_it = logit^-1(-1.0 + z_i + 0.6 a_it + 0.25 t + 0.3 z_R), z_i ~ N(0, 1);
  swelling s_it = logit^-1(-0.4 + 1.3 a_it + N(0, 0.5));
  carpal collapse c_it = min(1, c_i + g_i t), c_i ~ Beta(1.2, 5), g_i ~ Gamma(1.5, 0.03).
  In null mode the activity inside o and s is an independent copy (same law) and z_R is dropped, so
  the features are drawn and rendered with the same marginals but carry no outcome information.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from raoutcome.anatomy import FOOT_VIEWS, MAX_EROSION_FOOT, MAX_EROSION_HAND, MAX_JSN, sites_for
from .config import SimulationConfig

# Relative preference of new damage for each site (erosion, JSN).
_HAND_EROSION_W = {
    "IP": 0.8, "PIP2": 1.4, "PIP3": 1.4, "PIP4": 1.1, "PIP5": 1.1,
    "MCP1": 0.8, "MCP2": 2.8, "MCP3": 2.6, "MCP4": 1.4, "MCP5": 2.2,
    "MC1": 0.5, "MUL": 0.7, "NAV": 1.5, "LUN": 1.1, "RAD": 1.2, "ULN": 2.4,
}
_HAND_JSN_W = {
    "PIP2": 1.3, "PIP3": 1.3, "PIP4": 1.1, "PIP5": 1.0,
    "MCP1": 0.7, "MCP2": 2.0, "MCP3": 2.0, "MCP4": 1.4, "MCP5": 1.5,
    "CMC3": 0.8, "CMC4": 0.8, "CMC5": 0.8, "MNA": 1.1, "CNL": 1.5, "RADCAR": 1.3,
}
_FOOT_EROSION_W = {"IP": 0.9, "MTP1": 2.0, "MTP2": 1.5, "MTP3": 1.3, "MTP4": 1.4, "MTP5": 3.5}
_FOOT_JSN_W = {"IP": 0.8, "MTP1": 1.8, "MTP2": 1.4, "MTP3": 1.2, "MTP4": 1.2, "MTP5": 1.8}
_ALL_VIEWS = ("hand_left", "hand_right", "foot_left", "foot_right")


@dataclass(frozen=True)
class SiteTable:
    """Every scored (view, site, kind) of the simulated views, in a fixed order."""
    view: tuple[str, ...]
    site: tuple[str, ...]
    kind: tuple[str, ...]
    maximum: np.ndarray      # int
    weight: np.ndarray       # float, base preference
    share: float             # share of full-SvdH damage that lands in the simulated views

    def __len__(self) -> int:
        return len(self.site)


def _rows(views) -> list[tuple[str, str, str, int, float]]:
    rows = []
    for view in views:
        foot = view in FOOT_VIEWS
        for kind in ("erosion", "jsn"):
            weights = (_FOOT_EROSION_W if kind == "erosion" else _FOOT_JSN_W) if foot else \
                (_HAND_EROSION_W if kind == "erosion" else _HAND_JSN_W)
            mx = MAX_JSN if kind == "jsn" else (MAX_EROSION_FOOT if foot else MAX_EROSION_HAND)
            for site in sites_for(view, kind):
                rows.append((view, site, kind, mx, weights[site] * (0.8 if foot else 1.0)))
    return rows


def site_table(views) -> SiteTable:
    rows = _rows(views)
    full = sum(r[4] for r in _rows(_ALL_VIEWS))
    return SiteTable(
        view=tuple(r[0] for r in rows), site=tuple(r[1] for r in rows), kind=tuple(r[2] for r in rows),
        maximum=np.array([r[3] for r in rows], dtype=np.int64),
        weight=np.array([r[4] for r in rows], dtype=float),
        share=sum(r[4] for r in rows) / full,
    )


@dataclass
class PatientCourse:
    patient_id: str
    age: float
    female: int
    rf: int
    acpa: int
    duration: float
    baseline: float          # B_i, full-SvdH units
    rate: float              # R_i, full-SvdH units / year
    rapid: int
    times: np.ndarray        # (V,) years since first visit
    activity: np.ndarray     # (V,)
    osteopenia: np.ndarray   # (V,)
    swelling: np.ndarray     # (V,)
    carpal_collapse: np.ndarray  # (V,)
    scores: np.ndarray       # (V, J) int true per-joint scores (SiteTable order)
    site_order: np.ndarray   # (J, 4) int: per-joint order in which erosion bites appear (renderer)


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def visit_times(cfg: SimulationConfig, rng: np.random.Generator) -> np.ndarray:
    sched = np.asarray(cfg.visits.times_years, dtype=float)
    times = [0.0]
    for t in sched[1:]:
        if rng.random() < cfg.visits.dropout:
            continue
        times.append(t + rng.normal(0.0, cfg.visits.jitter_years))
    times = np.array(times)
    # keep strictly increasing, rounded to days
    times = np.round(times * 365.25) / 365.25
    keep = np.concatenate([[True], np.diff(times) > 10 / 365.25])
    return times[keep]


def allocate(target: np.ndarray, sites: SiteTable, weight: np.ndarray, concentration: float,
             rng: np.random.Generator) -> np.ndarray:
    """Place integer damage units visit by visit; scores per joint never decrease."""
    n_v, n_j = len(target), len(sites)
    scores = np.zeros((n_v, n_j), dtype=np.int64)
    current = np.zeros(n_j, dtype=np.int64)
    capacity = int(sites.maximum.sum())
    placed = 0
    for v in range(n_v):
        goal = min(int(target[v]), capacity)
        while placed < goal:
            w = weight * (1.0 + concentration * current) * (current < sites.maximum)
            j = rng.choice(n_j, p=w / w.sum())
            current[j] += 1
            placed += 1
        scores[v] = current
    return scores


def draw_course(cfg: SimulationConfig, sites: SiteTable, patient_id: str,
                rng_course: np.random.Generator, rng_features: np.random.Generator) -> PatientCourse:
    c = cfg.course
    age = float(np.clip(rng_course.normal(55, 12), 20, 85))
    female = int(rng_course.random() < 0.7)
    acpa = int(rng_course.random() < 0.6)
    rf = int(rng_course.random() < (0.8 if acpa else 0.3))
    duration = float(rng_course.gamma(2.0, 0.4))
    times = visit_times(cfg, rng_course)
    n_v = len(times)

    act_i = rng_course.normal(0.0, 0.8)
    activity = act_i - 0.15 * times + rng_course.normal(0.0, 0.6, n_v)

    log_b = rng_course.normal(c.baseline_log_mean + 0.3 * acpa + 0.25 * duration + 0.2 * act_i,
                              c.baseline_log_sd)
    baseline = float(np.expm1(max(log_b, 0.0)))
    logit_p = np.log(c.rapid_fraction / (1 - c.rapid_fraction)) if 0 < c.rapid_fraction < 1 else (
        -np.inf if c.rapid_fraction == 0 else np.inf)
    p_rapid = float(_sigmoid(logit_p + 0.7 * (acpa - 0.6) + 0.5 * act_i))
    rapid = int(rng_course.random() < p_rapid)
    z_rate = rng_course.normal()
    if rapid:
        rate = float(c.rapid_rate_median * np.exp(c.rapid_rate_log_sd * z_rate))
    else:
        rate = float(c.slow_rate_median * np.exp(c.slow_rate_log_sd * z_rate))
    log_rate_z = (np.log(rate) - np.log(c.slow_rate_median)) / max(c.slow_rate_log_sd, 1e-6) / 2.0

    # patient-specific site preference: shared between sides, plus a little side-specific noise
    base_mod = {}
    mod = np.empty(len(sites))
    for j, (view, site, kind) in enumerate(zip(sites.view, sites.site, sites.kind)):
        key = (view.split("_")[0], site, kind)
        if key not in base_mod:
            base_mod[key] = rng_course.gamma(1.5, 1 / 1.5)
        mod[j] = base_mod[key] * rng_course.gamma(6.0, 1 / 6.0)
    ero_share = rng_course.beta(5.0 * c.erosion_share / 0.5, 5.0 * (1 - c.erosion_share) / 0.5) \
        if 0 < c.erosion_share < 1 else c.erosion_share
    is_ero = np.array([k == "erosion" for k in sites.kind])
    w = sites.weight * mod
    w_ero, w_jsn = w * is_ero, w * ~is_ero
    weight = np.zeros(len(sites))
    if w_ero.sum() > 0:
        weight += ero_share * w_ero / w_ero.sum()
    if w_jsn.sum() > 0:
        weight += (1 - ero_share) * w_jsn / w_jsn.sum()
    target = np.round((baseline + rate * times) * sites.share)
    scores = allocate(target, sites, weight, c.concentration, rng_course)
    site_order = np.argsort(rng_course.random((len(sites), 4)), axis=1)

    # ---- features the Sharp score ignores (own stream, so null mode cannot touch the course)
    f = cfg.features
    if cfg.null:
        act_f = rng_features.normal(0.0, 0.8) - 0.15 * times + rng_features.normal(0.0, 0.6, n_v)
        rate_term = 0.0
    else:
        act_f = activity
        rate_term = 0.3 * log_rate_z
    z_o = rng_features.normal()
    osteopenia = _sigmoid(-1.0 + z_o + 0.6 * act_f + 0.25 * times + rate_term)
    swelling = _sigmoid(-0.4 + 1.3 * act_f + rng_features.normal(0.0, 0.5, n_v))
    c0 = rng_features.beta(1.2, 5.0)
    g = rng_features.gamma(1.5, 0.03)
    collapse = np.minimum(1.0, c0 + g * times)
    if not f.osteopenia.enabled:
        osteopenia = np.zeros(n_v)
    if not f.swelling.enabled:
        swelling = np.zeros(n_v)
    if not f.carpal_collapse.enabled:
        collapse = np.zeros(n_v)

    return PatientCourse(
        patient_id=patient_id, age=round(age, 1), female=female, rf=rf, acpa=acpa,
        duration=round(duration, 2), baseline=baseline, rate=rate, rapid=rapid, times=times,
        activity=activity, osteopenia=osteopenia, swelling=swelling, carpal_collapse=collapse,
        scores=scores, site_order=site_order,
    )


def read_scores(scores: np.ndarray, sites: SiteTable, c, rng: np.random.Generator) -> np.ndarray:
    """A human reading of the true per-joint scores: +-1 misreadings, more likely on damaged joints."""
    if c.reader_flip == 0 and c.reader_flip_per_unit == 0:
        return scores.copy()
    p = np.clip(c.reader_flip + c.reader_flip_per_unit * scores, 0, 0.5)
    u = rng.random(scores.shape)
    delta = np.where(u < p / 2, -1, np.where(u < p, 1, 0))
    return np.clip(scores + delta, 0, sites.maximum[None, :])
