"""Trial endpoints: change scores, responsiveness, measurement error, sample size and power.

Definitions (see ../shared/CLINICAL_FACTS.md, "Measurement error and endpoints"):

* change — per patient, the value at the end visit minus the value at the
  first visit (``end="last"``, or the visit nearest a given time);
* SRM (standardized response mean) = mean(change) / SD(change);
* SDC (smallest detectable change) from two readings of the same images
  (two readers, or a test–retest set): SDC = 1.96 × SD(Δ between readings) / √2
  for a single reading; when each score is the average of k readers it
  shrinks by √k: SDC_k = 1.96 × SD(Δ) / (√2 × √k). The readings may be
  status scores or change scores: SD(Δ) is the SD of their paired difference.
  (Bruynesteyn et al. 2005; the √k form is the commonly cited, unverified one.)
* progressors — patients whose change exceeds a threshold (the SDC), and
  the cumulative probability plot of change scores;
* sample size per arm to detect a standardized difference d (two-sided α,
  power 1 − β): n = 2 (z₁₋α/₂ + z₁₋β)² / d², checked against statsmodels'
  ``TTestIndPower`` (t distribution: a patient or so more);
* the same power in closed form (:func:`ttest_power`): statsmodels' two-sample t-test power at the
  standardized difference of shrinking change by the effect fraction (:func:`shrink_effect_size`, which is
  f·SRM / √((1 + (1 − f)²)/2));
* simulated two-arm trials: resample patients' change scores into two arms,
  shrink the treated arm's change by the effect fraction, test (t-test or
  Mann–Whitney) and count rejections — for each endpoint over a grid of effects.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.power import TTestIndPower

from raoutcome.errors import InputError

Z975 = 1.959963984540054


def change_scores(visits: pd.DataFrame, value_col: str, end: str | float = "last", tolerance: float = 0.25,
                  group_col: str = "patient_id", time_col: str = "time_years") -> pd.DataFrame:
    """Per-patient change of ``value_col`` from the first to the end visit.

    ``end="last"`` takes each patient's last visit with a value; a number
    takes the visit with a value nearest that time (years since the first
    visit) within ``tolerance``. Patients without two values are dropped.
    Returns ``patient_id, start, end, t_start, t_end, change``.
    """
    rows = visits.dropna(subset=[value_col, time_col]).sort_values([group_col, time_col])
    first = rows.groupby(group_col, sort=False).head(1).set_index(group_col)
    if end == "last":
        last = rows.groupby(group_col, sort=False).tail(1).set_index(group_col)
    else:
        target = float(end)
        dist = (rows[time_col] - target).abs()
        near = rows.assign(_d=dist)[dist <= tolerance]
        last = near.sort_values([group_col, "_d"]).groupby(group_col, sort=False).head(1).set_index(group_col)
    both = first[[value_col, time_col]].join(last[[value_col, time_col]], lsuffix="_s", rsuffix="_e", how="inner")
    both = both[both[f"{time_col}_e"] > both[f"{time_col}_s"]]
    out = pd.DataFrame({
        group_col: both.index.astype(str),
        "start": both[f"{value_col}_s"].to_numpy(float), "end": both[f"{value_col}_e"].to_numpy(float),
        "t_start": both[f"{time_col}_s"].to_numpy(float), "t_end": both[f"{time_col}_e"].to_numpy(float),
    })
    out["change"] = out["end"] - out["start"]
    return out.reset_index(drop=True)


def _finite(values, name: str, min_n: int = 2) -> np.ndarray:
    arr = np.asarray(values, dtype=float).ravel()
    arr = arr[np.isfinite(arr)]
    if len(arr) < min_n:
        raise InputError(f"{name}: need at least {min_n} finite values, got {len(arr)}")
    return arr


def srm(change) -> float:
    """Standardized response mean: mean(change) / SD(change) (SD with n − 1).

    Examples
    --------
    >>> round(srm([1.0, 2.0, 3.0, 6.0]), 4)  # mean 3, SD sqrt(14/3)
    1.3887
    """
    arr = _finite(change, "SRM")
    sd = arr.std(ddof=1)
    return float(arr.mean() / sd) if sd > 0 else np.nan


def sdc(reading_a, reading_b, k: int = 1) -> float:
    """Smallest detectable change from paired readings: 1.96 × SD(a − b) / (√2 × √k).

    ``a`` and ``b`` are two readings of the same images (or two change
    scores of the same patient); ``k`` readers averaged per score.
    """
    a, b = np.asarray(reading_a, dtype=float), np.asarray(reading_b, dtype=float)
    if a.shape != b.shape:
        raise InputError(f"SDC: readings differ in shape {a.shape} vs {b.shape}")
    if k < 1:
        raise InputError(f"SDC: k (readers averaged) must be >= 1, got {k}")
    diff = _finite(a - b, "SDC")
    return float(Z975 * diff.std(ddof=1) / (math.sqrt(2) * math.sqrt(k)))


def retest_sdc(visits: pd.DataFrame, retest: pd.DataFrame, column: str, min_patients: int = 3) -> float | None:
    """SDC of the first-to-last change in ``column`` from a repeat reading of the same visits.

    ``visits`` holds the first reading (``patient_id, visit_id, time_years, column``), ``retest`` a second
    reading of some of those visits (``patient_id, visit_id, column``). Each patient's change is computed
    from each reading over the same start and end visits, and :func:`sdc` is taken over the pairs of
    changes (a change's SDC, not a single reading's). None with fewer than ``min_patients`` such pairs.
    """
    main = visits[["patient_id", "visit_id", "time_years", column]]
    again = main.drop(columns=[column]).merge(retest[["patient_id", "visit_id", column]],
                                              on=["patient_id", "visit_id"])
    a, b = change_scores(main, column), change_scores(again, column)
    pair = a.merge(b, on="patient_id", suffixes=("_a", "_b"))
    pair = pair[(pair["t_start_a"] == pair["t_start_b"]) & (pair["t_end_a"] == pair["t_end_b"])]
    return sdc(pair["change_a"], pair["change_b"]) if len(pair) >= min_patients else None


def percent_progressors(change, threshold: float) -> float:
    """Percentage of patients whose change exceeds ``threshold`` (strictly)."""
    arr = _finite(change, "progressors", min_n=1)
    return float(100.0 * np.mean(arr > threshold))


def cumulative_probability(change) -> pd.DataFrame:
    """Sorted change scores with their cumulative probability (for the cumulative probability plot)."""
    arr = np.sort(_finite(change, "cumulative probability", min_n=1))
    return pd.DataFrame({"change": arr, "cumulative_probability": np.arange(1, len(arr) + 1) / len(arr)})


@dataclass(frozen=True)
class SampleSize:
    """Patients per arm by the normal-approximation formula and by statsmodels' t-test power."""

    effect_size: float
    alpha: float
    power: float
    n_formula: int
    n_formula_exact: float
    n_ttest: float


def sample_size_per_arm(effect_size: float, alpha: float = 0.05, power: float = 0.8) -> SampleSize:
    """n per arm = 2 (z₁₋α/₂ + z₁₋β)² / d² (rounded up), and ``TTestIndPower`` for comparison.

    Examples
    --------
    The textbook case: a standardized effect of 0.5 needs 63 patients per arm (80 % power, α = 0.05).

    >>> sample_size_per_arm(0.5).n_formula
    63
    """
    d = abs(float(effect_size))
    if not d > 0 or not np.isfinite(d):
        raise InputError(f"sample size: effect size must be a non-zero number, got {effect_size!r}")
    if not (0 < alpha < 1 and 0 < power < 1):
        raise InputError(f"sample size: alpha and power must lie in (0, 1), got {alpha}, {power}")
    z = stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power)
    exact = 2 * z * z / (d * d)
    n_t = TTestIndPower().solve_power(effect_size=d, alpha=alpha, power=power, ratio=1.0, alternative="two-sided")
    return SampleSize(d, alpha, power, int(math.ceil(exact - 1e-9)), float(exact), float(n_t))


def ttest_power(effect_size: float, n_per_arm: int, alpha: float = 0.05) -> float:
    """Power of a two-sided two-sample t-test with ``n_per_arm`` patients per arm for a standardized
    difference ``effect_size`` (statsmodels ``TTestIndPower``: noncentral t with 2n − 2 degrees of freedom and
    noncentrality d·√(n/2)).

    Examples
    --------
    >>> round(ttest_power(0.5, 64), 3)  # the textbook 80 % at 64 per arm
    0.801
    """
    d = float(effect_size)
    if not np.isfinite(d):
        raise InputError(f"power: effect size must be a finite number, got {effect_size!r}")
    if n_per_arm < 2 or not 0 < alpha < 1:
        raise InputError(f"power: need n_per_arm >= 2 and alpha in (0, 1) (got {n_per_arm}, {alpha})")
    return float(TTestIndPower().power(effect_size=abs(d), nobs1=n_per_arm, alpha=alpha, ratio=1.0,
                                       alternative="two-sided"))


def shrink_effect_size(change, effect: float) -> float:
    """Standardized difference produced by shrinking one arm's change by the fraction ``effect``.

    Treated changes are (1 − f)·x: the mean difference is f·mean(x) and the
    arms' SDs are SD(x) and (1 − f)·SD(x), so d = f·mean / √((1 + (1 − f)²)/2 · var).
    """
    arr = _finite(change, "effect size")
    f = float(effect)
    pooled = math.sqrt((1 + (1 - f) ** 2) / 2) * arr.std(ddof=1)
    return float(f * arr.mean() / pooled) if pooled > 0 else np.nan


def simulate_power(endpoints: Mapping[str, Sequence[float]], effects: Sequence[float], n_per_arm: int,
                   n_sim: int = 1000, alpha: float = 0.05, test: str = "ttest", seed: int = 0,
                   progress: bool = False) -> pd.DataFrame:
    """Simulated two-arm trial power per endpoint and effect.

    For each endpoint (name → per-patient change scores) and effect fraction
    f: draw 2 × ``n_per_arm`` patients with replacement, multiply the
    treated arm's changes by (1 − f), test the arms (``ttest``: Welch t-test;
    ``mannwhitney``), and report the share of trials with p < ``alpha``.
    Every endpoint sees the same seeded stream of draws.
    Returns ``endpoint, effect, power, power_se, n_per_arm, n_sim, test, alpha``.
    """
    if test not in ("ttest", "mannwhitney"):
        raise InputError(f"power: test must be 'ttest' or 'mannwhitney', got {test!r}")
    if n_per_arm < 2 or n_sim < 1:
        raise InputError(f"power: need n_per_arm >= 2 and n_sim >= 1 (got {n_per_arm}, {n_sim})")
    rows = []
    total = len(endpoints) * len(effects)
    bar = _progress(total, "simulated trials", progress)
    for name, values in endpoints.items():
        pool = _finite(values, f"power ({name})")
        for f in effects:
            rng = np.random.default_rng(seed)
            draws = pool[rng.integers(0, len(pool), size=(n_sim, 2 * n_per_arm))]
            control, treated = draws[:, :n_per_arm], draws[:, n_per_arm:] * (1.0 - float(f))
            if test == "ttest":
                p = stats.ttest_ind(treated, control, axis=1, equal_var=False).pvalue
            else:
                p = stats.mannwhitneyu(treated, control, axis=1, alternative="two-sided").pvalue
            p = np.nan_to_num(p, nan=1.0)
            power = float(np.mean(p < alpha))
            rows.append({"endpoint": name, "effect": float(f), "power": power,
                         "power_se": math.sqrt(power * (1 - power) / n_sim), "n_per_arm": n_per_arm,
                         "n_sim": n_sim, "test": test, "alpha": alpha})
            bar.update(1)
    bar.close()
    return pd.DataFrame(rows)


def endpoint_table(changes: Mapping[str, Sequence[float]], sdcs: Mapping[str, float] | None = None,
                   effect: float = 0.5, alpha: float = 0.05, power: float = 0.8) -> pd.DataFrame:
    """One row per endpoint: n, mean and SD of change, SRM, SDC, % progressors > SDC,
    standardized effect of shrinking change by ``effect`` and the sample size per arm for it;
    relative efficiency vs the first endpoint = (SRM / SRM₁)²."""
    sdcs = dict(sdcs or {})
    rows = []
    for name, values in changes.items():
        arr = _finite(values, name)
        s = srm(arr)
        d = shrink_effect_size(arr, effect)
        threshold = sdcs.get(name, np.nan)
        ss = sample_size_per_arm(d, alpha, power) if np.isfinite(d) and d != 0 else None
        rows.append({
            "endpoint": name, "n": len(arr), "mean_change": float(arr.mean()), "sd_change": float(arr.std(ddof=1)),
            "srm": s, "sdc": threshold,
            "pct_progressors_sdc": percent_progressors(arr, threshold) if np.isfinite(threshold) else np.nan,
            "pct_change_gt0": percent_progressors(arr, 0.0),
            "effect_fraction": effect, "effect_size_d": d,
            "n_per_arm": ss.n_formula if ss else np.nan, "n_per_arm_ttest": ss.n_ttest if ss else np.nan,
        })
    table = pd.DataFrame(rows)
    if len(table):
        table["relative_efficiency"] = (table["srm"] / table["srm"].iloc[0]) ** 2
    return table


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def _progress(total: int, desc: str, show: bool):
    if not show:
        return _NoBar()
    from raoutcome.progress import tqdm

    return tqdm(total=total, desc=desc, leave=False)
