"""A right-censored proportional-hazards sample for the Cox tests (three covariates: normal, skewed gamma,
binary; exponential event and censoring times; optional ties on a quarter-year grid)."""
from __future__ import annotations

import numpy as np


def cox_sample(n: int, seed: int = 0, tied: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(x [n, 3], time [n], event [n])`` with log-hazard ``0.5 x0 + 0.03 x1 - 0.4 x2``."""
    rng = np.random.default_rng(seed)
    x = np.column_stack([rng.normal(size=n), rng.gamma(0.6, 10.0, n), rng.integers(0, 2, n)])
    t = rng.exponential(1 / np.exp(0.5 * x[:, 0] + 0.03 * x[:, 1] - 0.4 * x[:, 2]))
    c = rng.exponential(2.0, n)
    time, event = np.minimum(t, c), (t <= c).astype(int)
    if tied:
        time = np.ceil(time * 4) / 4
    return x, time, event
