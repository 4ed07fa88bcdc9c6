"""General-population mortality and the excess mortality of RA: the competing event of the simulator.

A patient's death time is drawn from a piecewise-constant hazard by single year of age,

    mu(x) = SMR x -log(1 - q_x)        (q_x: probability of dying between ages x and x + 1),

from age at the first visit onward (``draw_death_time``; inverse cumulative hazard). Past age 99
the hazard of age 99 continues (the table's last row, "100 and over", has q = 1 by construction).

Source of q_x: Arias E, Heron M, Xu JQ. United States life tables, 2011. National Vital Statistics
Reports vol 64 no 11. Hyattsville, MD: National Center for Health Statistics; 2015 (Table 2 males,
Table 3 females: q_x by single year of age, ages 18-99 reproduced here; public domain). The standardised
mortality ratio of RA, about 1.5 against the general population, is the pooled estimate of
Dadoun S et al., Mortality in rheumatoid arthritis over the last fifty years: systematic review and
meta-analysis, Joint Bone Spine 2013;80:29-33 (SMR 1.5; see ``shared/CLINICAL_FACTS.md``).
"""
from __future__ import annotations

__all__ = ["FIRST_AGE", "QX_FEMALE", "QX_MALE", "SOURCE", "annual_hazard", "cumulative_hazard",
           "draw_death_time"]

import numpy as np

SOURCE = ("Arias E, Heron M, Xu JQ. United States life tables, 2011. Natl Vital Stat Rep 64(11). "
          "Hyattsville, MD: National Center for Health Statistics, 2015")
FIRST_AGE = 18  # q_x below is for ages FIRST_AGE, FIRST_AGE + 1, ..., 99

QX_FEMALE = np.array([
    0.00032, 0.000351, 0.000384, 0.000416, 0.000445, 0.000467, 0.000486, 0.000505, 0.000526, 0.000553,
    0.000587, 0.000627, 0.000673, 0.000721, 0.000766, 0.000805, 0.000842, 0.000888, 0.000947, 0.001017,
    0.001099, 0.001192, 0.001291, 0.001402, 0.001535, 0.001695, 0.001879, 0.00207, 0.002268, 0.002486,
    0.002725, 0.002977, 0.003245, 0.003514, 0.003776, 0.004029, 0.004289, 0.004564, 0.004875, 0.005234,
    0.005647, 0.006103, 0.006589, 0.007104, 0.007665, 0.008303, 0.00905, 0.009953, 0.011001, 0.012124,
    0.01325, 0.014419, 0.015718, 0.017201, 0.018896, 0.020818, 0.022996, 0.025387, 0.02809, 0.031225,
    0.034786, 0.038792, 0.043109, 0.0478, 0.053181, 0.059365, 0.066859, 0.075391, 0.084744, 0.095072,
    0.106427, 0.118857, 0.132396, 0.147063, 0.162859, 0.179765, 0.197737, 0.216706, 0.236577, 0.257228,
    0.278515, 0.300271,
])
QX_MALE = np.array([
    0.000807, 0.000942, 0.001085, 0.001216, 0.00131, 0.001353, 0.001358, 0.001351, 0.001349, 0.001353,
    0.001371, 0.001399, 0.001432, 0.001464, 0.001496, 0.001528, 0.001563, 0.001613, 0.001682, 0.001764,
    0.001857, 0.001964, 0.002083, 0.002227, 0.002414, 0.002653, 0.002939, 0.003243, 0.003563, 0.003922,
    0.00432, 0.004749, 0.005193, 0.005647, 0.006122, 0.00663, 0.007181, 0.007779, 0.008415, 0.009074,
    0.009727, 0.010371, 0.011034, 0.011738, 0.012489, 0.013335, 0.014319, 0.015482, 0.016824, 0.01833,
    0.0199, 0.021539, 0.023396, 0.025476, 0.027794, 0.03035, 0.033204, 0.036345, 0.039788, 0.04372, 0.048335,
    0.05365, 0.059565, 0.065848, 0.072956, 0.080741, 0.089357, 0.09965, 0.110901, 0.123146, 0.136412,
    0.15071, 0.166038, 0.182374, 0.199676, 0.21788, 0.236903, 0.256636, 0.276954, 0.297713, 0.318755,
    0.339914,
])


def annual_hazard(female: bool | int, smr: float = 1.0) -> np.ndarray:
    """Hazard per year of age (ages FIRST_AGE..99), ``smr`` x -log(1 - q_x)."""
    q = QX_FEMALE if female else QX_MALE
    return float(smr) * -np.log1p(-q)


def cumulative_hazard(age0: float, years: np.ndarray | float, female: bool | int, smr: float = 1.0) -> np.ndarray:
    """Integrated hazard from age ``age0`` over the next ``years`` (vectorised over ``years``)."""
    mu = annual_hazard(female, smr)
    edges = np.arange(FIRST_AGE, FIRST_AGE + len(mu) + 1, dtype=float)  # ages at the start of each year
    cum = np.concatenate([[0.0], np.cumsum(mu)])

    def big_h(age: np.ndarray) -> np.ndarray:
        a = np.clip(age, FIRST_AGE, None)
        k = np.minimum(np.floor(a - FIRST_AGE).astype(int), len(mu) - 1)
        return cum[k] + mu[k] * (a - edges[k])

    years = np.asarray(years, float)
    return big_h(age0 + years) - big_h(np.asarray(age0, float))


def draw_death_time(age0: float, female: bool | int, smr: float, rng: np.random.Generator) -> float:
    """Years from the first visit to death: H(T) = E, E ~ Exp(1), H the cumulative hazard above.

    ``smr`` <= 0 means no death in the simulation (returns inf).
    """
    if smr <= 0:
        return float("inf")
    target = rng.exponential()
    mu = annual_hazard(female, smr)
    age = max(float(age0), FIRST_AGE)
    t = 0.0
    while True:
        k = min(int(np.floor(age + 1e-12)) - FIRST_AGE, len(mu) - 1)
        step = (FIRST_AGE + k + 1 - age) if k < len(mu) - 1 else np.inf
        if mu[k] * step >= target:
            return t + target / mu[k]
        target -= mu[k] * step
        t += step
        age += step
