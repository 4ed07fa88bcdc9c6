"""Reader / method agreement: intraclass correlation, Bland–Altman, weighted kappa.

ICC
    From the two-way ANOVA mean squares of an ``n targets x k raters`` table
    (complete rows only), in the six forms of Shrout & Fleiss (1979), named also
    as McGraw & Wong (1996):

    ======  ===========  ==========================================  ==========
    form    McGraw-Wong  model / question                            measure
    ======  ===========  ==========================================  ==========
    ICC1    ICC(1)       one-way random: different raters per target  single
    ICC2    ICC(A,1)     two-way, absolute **agreement**              single
    ICC3    ICC(C,1)     two-way, **consistency** (rater means off)   single
    ICC1k   ICC(k)       one-way, mean of k ratings                   average
    ICC2k   ICC(A,k)     two-way agreement, mean of k ratings         average
    ICC3k   ICC(C,k)     two-way consistency, mean of k ratings       average
    ======  ===========  ==========================================  ==========

    Confidence intervals are the exact F-based ones for ICC1/ICC3 and the
    Satterthwaite approximation of McGraw & Wong (1996, Table 7) for ICC2;
    two-sided at ``level``. Checked against Shrout & Fleiss's own example
    (tests/test_evaluation_agreement.py).

Bland–Altman
    Differences ``a - b``: mean difference (bias) with its t interval, limits of
    agreement ``bias ± z·SD`` (z = 1.96 for 95 %) and their approximate
    intervals (SE = sqrt(3·SD²/n), Bland & Altman 1986).

Weighted kappa
    scikit-learn's ``cohen_kappa_score`` with linear or quadratic weights. The
    categories are the sorted union of both readers' values and the weights
    use their *rank* distance, so unequally spaced grades count as adjacent.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from scipy import stats
from sklearn.metrics import cohen_kappa_score

from raoutcome.errors import InputError
from raoutcome.evaluation._common import complete

ICC_FORMS: dict[str, tuple[str, str]] = {
    "ICC1": ("ICC(1)", "one-way random, single rating"),
    "ICC2": ("ICC(A,1)", "two-way random, absolute agreement, single rating"),
    "ICC3": ("ICC(C,1)", "two-way mixed, consistency, single rating"),
    "ICC1k": ("ICC(k)", "one-way random, mean of k ratings"),
    "ICC2k": ("ICC(A,k)", "two-way random, absolute agreement, mean of k ratings"),
    "ICC3k": ("ICC(C,k)", "two-way mixed, consistency, mean of k ratings"),
}
_ALIASES = {
    ("oneway", "single"): "ICC1", ("agreement", "single"): "ICC2", ("consistency", "single"): "ICC3",
    ("oneway", "average"): "ICC1k", ("agreement", "average"): "ICC2k", ("consistency", "average"): "ICC3k",
}


@dataclass(frozen=True)
class ICCResult:
    """One intraclass correlation with its F test and confidence interval."""

    form: str          # ICC1 .. ICC3k (Shrout & Fleiss)
    name: str          # McGraw & Wong name, e.g. ICC(A,1)
    icc: float
    ci_low: float
    ci_high: float
    f_stat: float
    df1: float
    df2: float
    p_value: float
    n_targets: int
    n_raters: int


@dataclass(frozen=True)
class BlandAltman:
    """Bland–Altman summary of the differences ``a - b``."""

    bias: float
    sd: float
    loa_low: float
    loa_high: float
    bias_ci: tuple[float, float]
    loa_low_ci: tuple[float, float]
    loa_high_ci: tuple[float, float]
    n: int
    level: float


def _ratings_matrix(ratings: ArrayLike) -> np.ndarray:
    try:
        x = np.asarray(ratings, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise InputError(f"ratings: expected numbers ({err})") from err
    if x.ndim != 2:
        raise InputError(f"ratings: expected a 2-D table (targets x raters), got shape {x.shape}")
    x = x[np.isfinite(x).all(axis=1)]
    if x.shape[1] < 2 or x.shape[0] < 2:
        raise InputError(f"ratings: need at least 2 complete targets and 2 raters, got {x.shape}")
    return x


def ratings_table(frame: pd.DataFrame, target: str, rater: str, score: str) -> pd.DataFrame:
    """Long ``(target, rater, score)`` rows -> wide targets x raters table for :func:`icc`."""
    missing = [c for c in (target, rater, score) if c not in frame]
    if missing:
        raise InputError(f"ratings frame lacks column(s) {missing}")
    dup = frame.duplicated([target, rater])
    if dup.any():
        i = int(np.flatnonzero(dup.to_numpy())[0])
        raise InputError(f"ratings frame: row {i + 1} repeats ({target}, {rater}) = "
                         f"({frame[target].iloc[i]!r}, {frame[rater].iloc[i]!r})")
    return frame.pivot(index=target, columns=rater, values=score)


def icc_table(ratings: ArrayLike, level: float = 0.95) -> pd.DataFrame:
    """All six ICC forms for an ``n targets x k raters`` table (rows with a gap dropped)."""
    x = _ratings_matrix(ratings)
    n, k = x.shape
    grand = x.mean()
    ss_rows = k * ((x.mean(axis=1) - grand) ** 2).sum()
    ss_cols = n * ((x.mean(axis=0) - grand) ** 2).sum()
    ss_err = ((x - grand) ** 2).sum() - ss_rows - ss_cols
    msr = ss_rows / (n - 1)
    msc = ss_cols / (k - 1)
    mse = ss_err / ((n - 1) * (k - 1))
    msw = (ss_cols + ss_err) / (n * (k - 1))
    q = 1 - (1 - level) / 2

    def f_limits(f_obs: float, df1: float, df2: float) -> tuple[float, float]:
        return f_obs / stats.f.ppf(q, df1, df2), f_obs * stats.f.ppf(q, df2, df1)

    rows = []
    with np.errstate(divide="ignore", invalid="ignore"):
        # one-way (ICC1, ICC1k)
        f1, d1, d2 = msr / msw, n - 1, n * (k - 1)
        fl, fu = f_limits(f1, d1, d2)
        p1 = stats.f.sf(f1, d1, d2)
        rows.append(("ICC1", (msr - msw) / (msr + (k - 1) * msw), (fl - 1) / (fl + k - 1),
                     (fu - 1) / (fu + k - 1), f1, d1, d2, p1))
        one_k = ("ICC1k", (msr - msw) / msr, 1 - 1 / fl, 1 - 1 / fu, f1, d1, d2, p1)
        # two-way (ICC2, ICC3 and their k forms) share F = MSR / MSE
        f3, d1, d2 = msr / mse, n - 1, (n - 1) * (k - 1)
        fl, fu = f_limits(f3, d1, d2)
        p3 = stats.f.sf(f3, d1, d2)
        icc2 = (msr - mse) / (msr + (k - 1) * mse + k * (msc - mse) / n)
        lo2, hi2 = _icc2_limits(icc2, msr, msc, mse, n, k, q)
        rows.append(("ICC2", icc2, lo2, hi2, f3, d1, d2, p3))
        rows.append(("ICC3", (msr - mse) / (msr + (k - 1) * mse), (fl - 1) / (fl + k - 1),
                     (fu - 1) / (fu + k - 1), f3, d1, d2, p3))
        rows.append(one_k)
        rows.append(("ICC2k", (msr - mse) / (msr + (msc - mse) / n), lo2 * k / (1 + lo2 * (k - 1)),
                     hi2 * k / (1 + hi2 * (k - 1)), f3, d1, d2, p3))
        rows.append(("ICC3k", (msr - mse) / msr, 1 - 1 / fl, 1 - 1 / fu, f3, d1, d2, p3))
    table = pd.DataFrame(rows, columns=["form", "icc", "ci_low", "ci_high", "f_stat", "df1", "df2", "p_value"])
    table.insert(1, "name", [ICC_FORMS[f][0] for f in table["form"]])
    table.insert(2, "description", [ICC_FORMS[f][1] for f in table["form"]])
    table["n_targets"], table["n_raters"] = n, k
    return table.set_index("form")


def _icc2_limits(icc2: float, msr: float, msc: float, mse: float, n: int, k: int, q: float) -> tuple[float, float]:
    """McGraw & Wong (1996) Table 7, case 2A: Satterthwaite degrees of freedom."""
    a = k * icc2 / (n * (1 - icc2))
    b = 1 + k * icc2 * (n - 1) / (n * (1 - icc2))
    v = (a * msc + b * mse) ** 2 / ((a * msc) ** 2 / (k - 1) + (b * mse) ** 2 / ((n - 1) * (k - 1)))
    f_u, f_l = stats.f.ppf(q, n - 1, v), stats.f.ppf(q, v, n - 1)
    c = k * msc + (k * n - k - n) * mse
    low = n * (msr - f_u * mse) / (f_u * c + n * msr)
    high = n * (f_l * msr - mse) / (c + n * f_l * msr)
    return float(low), float(high)


def icc(ratings: ArrayLike, model: str = "agreement", unit: str = "single", level: float = 0.95) -> ICCResult:
    """One ICC: ``model`` in agreement | consistency | oneway, ``unit`` in single | average."""
    form = _ALIASES.get((model, unit))
    if form is None:
        raise InputError(f"icc: unknown model/unit {model!r}/{unit!r} "
                         "(model: agreement, consistency, oneway; unit: single, average)")
    row = icc_table(ratings, level).loc[form]
    return ICCResult(form=form, name=str(row["name"]), icc=float(row["icc"]), ci_low=float(row["ci_low"]),
                     ci_high=float(row["ci_high"]), f_stat=float(row["f_stat"]), df1=float(row["df1"]),
                     df2=float(row["df2"]), p_value=float(row["p_value"]),
                     n_targets=int(row["n_targets"]), n_raters=int(row["n_raters"]))


def bland_altman(a: ArrayLike, b: ArrayLike, level: float = 0.95) -> BlandAltman:
    """Bias and limits of agreement of two measurements of the same targets (``a - b``)."""
    x, y = complete(min_n=3, a=a, b=b)
    d = x - y
    n = len(d)
    bias_ = float(d.mean())
    sd = float(d.std(ddof=1))
    z = float(stats.norm.ppf(1 - (1 - level) / 2))
    t = float(stats.t.ppf(1 - (1 - level) / 2, n - 1))
    se_bias = sd / np.sqrt(n)
    se_loa = np.sqrt(3 * sd ** 2 / n)
    lo, hi = bias_ - z * sd, bias_ + z * sd
    return BlandAltman(bias=bias_, sd=sd, loa_low=lo, loa_high=hi,
                       bias_ci=(bias_ - t * se_bias, bias_ + t * se_bias),
                       loa_low_ci=(lo - t * se_loa, lo + t * se_loa),
                       loa_high_ci=(hi - t * se_loa, hi + t * se_loa), n=n, level=level)


def weighted_kappa(a: ArrayLike, b: ArrayLike, weights: str | None = "quadratic") -> float:
    """Cohen's kappa between two readers' grades; ``weights``: 'linear', 'quadratic' or None."""
    if weights not in ("linear", "quadratic", None):
        raise InputError(f"weighted_kappa: weights must be 'linear', 'quadratic' or None, got {weights!r}")
    x, y = complete(min_n=1, a=a, b=b)
    if len(np.union1d(x, y)) < 2:
        return float("nan")
    return float(cohen_kappa_score(x, y, weights=weights))
