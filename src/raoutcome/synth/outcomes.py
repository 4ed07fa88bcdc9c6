"""Outcome model: HAQ, pain, DAS28 per visit and time to deformity per patient.

Equations (coefficients are config keys ``[outcomes.*]``; defaults in brackets; the same text is in
``cohorts/README.md``):

  damage_it  = log(1 + JSN_it + 0.5 EROSION_it)                    (true scores of the simulated views;
                                                                   JSN weighs more: Aletaha 2011)
  HAQmean_it = clip(b0 + bD damage_it + bA a_it + bO o_it + bC c_it + bAge (age-55)/10 + bF female, 0, 3)
  HAQ_it     = round8(clip(HAQmean_it + N(0, sd_HAQ), 0, 3))          (0.125 steps, HAQ-DI)
  PAINmean_it= clip(p0 + pA a_it + pS s_it + pD damage_it, 0, 100);  PAIN_it = round(clip(PAINmean + N(0, sd_P)))
  DAS28_it   = clip(3.6 + 1.0 a_it + N(0, 0.35), 0.5, 9.5)
  lp_i       = hE (log(1 + EROSION_i0) - 1) + hC (c_i0 - 0.2) + hO (o_i0 - 0.35)
               + hRF RF + hACPA ACPA + hAge (age-55)/10                (baseline-visit latents)
  T_i        ~ Weibull: S(t) = exp(-(lambda t)^k exp(lp_i)),  lambda = baseline_rate, k = shape
  observed   = T_i <= min(follow-up end, C_i),  C_i ~ Exp(dropout_rate)

In null mode bO, bC (HAQ), pS (pain) and hC, hO (hazard) are forced to 0: the non-Sharp features are
drawn and rendered but have no effect. Sources: HAQ-damage link and magnitude (Scott 2000: damage
explains ~25 % of disability in established RA; r 0.3-0.5 at 5-8 years), HAQ 0-3 in 0.125 steps,
pain VAS 0-100, DXR-BMD loss predicting progression, carpal height ratio
(Youm) — see ``shared/CLINICAL_FACTS.md``.
"""
from __future__ import annotations

import numpy as np

from .config import SimulationConfig


def effective(cfg: SimulationConfig):
    """The outcome coefficients in force (null mode zeroes the non-Sharp effects)."""
    haq, pain, hz = cfg.outcomes.haq, cfg.outcomes.pain, cfg.outcomes.hazard
    if cfg.null:
        haq = haq.__class__(**{**haq.__dict__, "osteopenia": 0.0, "carpal_collapse": 0.0})
        pain = pain.__class__(**{**pain.__dict__, "swelling": 0.0})
        hz = hz.__class__(**{**hz.__dict__, "carpal_collapse": 0.0, "osteopenia": 0.0})
    return haq, pain, hz


def damage_term(jsn: np.ndarray, erosion: np.ndarray) -> np.ndarray:
    return np.log1p(jsn + 0.5 * erosion)


def haq_mean(cfg, damage, activity, osteopenia, collapse, age, female) -> np.ndarray:
    h, _, _ = effective(cfg)
    lin = (h.intercept + h.damage * damage + h.activity * activity + h.osteopenia * osteopenia
           + h.carpal_collapse * collapse + h.age * (age - 55) / 10 + h.female * female)
    return np.clip(lin, 0.0, 3.0)


def pain_mean(cfg, damage, activity, swelling) -> np.ndarray:
    _, p, _ = effective(cfg)
    return np.clip(p.intercept + p.activity * activity + p.swelling * swelling + p.damage * damage, 0, 100)


def observe_haq(cfg, mean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    h, _, _ = effective(cfg)
    x = np.clip(mean + rng.normal(0.0, h.noise_sd, mean.shape), 0.0, 3.0)
    return np.round(x * 8) / 8


def observe_pain(cfg, mean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    _, p, _ = effective(cfg)
    return np.round(np.clip(mean + rng.normal(0.0, p.noise_sd, mean.shape), 0, 100))


def das28(activity: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return np.round(np.clip(3.6 + 1.0 * activity + rng.normal(0.0, 0.35, activity.shape), 0.5, 9.5), 2)


def linear_predictor(cfg, erosion0: float, collapse0: float, osteopenia0: float,
                     rf: int, acpa: int, age: float) -> float:
    _, _, hz = effective(cfg)
    return float(hz.erosion * (np.log1p(erosion0) - 1.0) + hz.carpal_collapse * (collapse0 - 0.2)
                 + hz.osteopenia * (osteopenia0 - 0.35) + hz.rf * rf + hz.acpa * acpa
                 + hz.age * (age - 55) / 10)


def follow_up_end(cfg: SimulationConfig) -> float:
    hz = cfg.outcomes.hazard
    return hz.follow_up_years if hz.follow_up_years > 0 else float(max(cfg.visits.times_years[-1], 0.5))


def draw_event(cfg, lp: float, rng: np.random.Generator) -> tuple[float, float, float]:
    """(uncensored Weibull event time, censoring time, random-censoring time) for one patient."""
    _, _, hz = effective(cfg)
    t_event = (rng.exponential() / np.exp(lp)) ** (1.0 / hz.shape) / hz.baseline_rate
    c_random = rng.exponential(1.0 / hz.dropout_rate) if hz.dropout_rate > 0 else np.inf
    return float(t_event), float(min(follow_up_end(cfg), c_random)), float(c_random)
