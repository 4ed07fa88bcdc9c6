"""analyses/c_target_power.py: the scatter of the learning check's C gap over redrawn cohorts."""
from __future__ import annotations

import numpy as np
import pandas as pd
from conftest import load_analysis


def _module():
    return load_analysis("c_target_power")


def _population(n: int = 1500, seed: int = 0) -> pd.DataFrame:
    """Weibull-free toy: exponential event times with log-hazard = log erosion, administrative censoring."""
    rng = np.random.default_rng(seed)
    log_erosion = rng.normal(0.0, 1.0, n)
    event_time = rng.exponential(1.0 / np.exp(log_erosion - 1.5))
    return pd.DataFrame({"log_hazard": log_erosion, "log_erosion": log_erosion,
                         "time": np.minimum(event_time, 3.0), "observed": event_time <= 3.0})


def test_noisy_reaches_the_requested_correlation():
    mod = _module()
    x = np.random.default_rng(1).normal(size=20000)
    for r in (1.0, 0.9, 0.6):
        assert abs(np.corrcoef(x, mod.noisy(x, r, np.random.default_rng(2)))[0, 1] - r) < 0.01


def test_gap_is_zero_for_the_truth_and_grows_and_scatters_less_with_cohort_size():
    mod = _module()
    res = mod.power(_population(), sizes=[100, 600], r_values=[1.0, 0.6], draws=60)
    exact = res["100"]["erosion_r1"]
    assert exact["gap_mean"] == 0.0 and exact["gap_sd"] == 0.0 and exact["pass_rate"] == 1.0
    assert res["population"]["c_erosion_r1"] == res["population"]["c_oracle"]
    small, large = res["100"]["erosion_r0.6"], res["600"]["erosion_r0.6"]
    assert small["gap_mean"] > 0.05 and large["gap_mean"] > 0.05  # r 0.6 loses more than the margin
    assert large["gap_sd"] < small["gap_sd"]  # more patients, less scatter
    assert res["100"]["c_oracle_sd"] > res["600"]["c_oracle_sd"]
