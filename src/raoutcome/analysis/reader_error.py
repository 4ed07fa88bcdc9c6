"""Reader error of a damage score and its correction by regression calibration.

A human SvdH reading ``W`` is the true damage ``X`` plus reader error ``U``
(``W = X + U``, ``E[U | X] ≈ 0``; its variance grows with damage). Any
score that reads ``X`` more precisely than ``W`` — a trained image model is
one — then predicts outcomes "beyond W" although it carries nothing beyond
``X`` (residual confounding by the unmeasured part of ``X``). Regression
calibration replaces ``W`` by ``X̂ = E[X | W, Z]``, the best prediction of
true damage from everything measured (Carroll, Ruppert, Stefanski &
Crainiceanu, *Measurement Error in Nonlinear Models*, 2nd ed. 2006, ch. 4;
Rosner, Spiegelman & Willett, Am J Epidemiol 1990;132:734):

* :func:`calibrate_replicate` — with a **second, independent reading**
  ``W₂`` of the same radiographs (a retest set), ``W₂`` is an unbiased
  instrument for ``X`` whose error is independent of ``W₁`` and ``Z``, so
  ``E[X | W₁, Z] = E[W₂ | W₁, Z]``: an ordinary least-squares regression of
  ``W₂`` on ``(W₁, Z)`` (Carroll et al. 2006, §4.4.1: "if T is unbiased for X,
  regress T on (W, Z)"). No error variance and no normality is needed, and
  ``Z`` may hold spline bases, so the calibration need not be linear in the
  image scores;
* :func:`calibrate_moments` — without repeat readings, from the error
  variance ``σ²_U`` alone (e.g. a published SDC or ICC): the best linear
  predictor ``X̂ = μ + Σ_ZX' Σ_ZZ⁻¹ (Z − μ_Z)`` with ``Z = (W, other
  covariates)`` and ``Σ_ZX = Σ_ZW − σ²_U e_W`` (Carroll et al. 2006, eq. 4.5),
  which reduces to ``X̂ = λ W + (1 − λ) Ŵ_rest`` with the conditional
  reliability ``λ = 1 − σ²_U / Var(W | rest)``; without other covariates
  ``λ = (s²_W − σ²_U) / s²_W`` and a regression on ``X̂`` has slope = naive
  slope / λ (the classical correction for regression dilution).

The error variance of one reading comes from repeat readings as
``σ²_U = Var(W₁ − W₂) / 2`` (:func:`error_variance`), from a smallest
detectable change as ``σ_U = SDC / (1.96 √2)`` (SDC = 1.96 · SD of the
difference of two readings; :func:`error_variance_from_sdc`) or from an ICC
as ``σ²_U = (1 − ICC) · Var(W)`` (:func:`error_variance_from_icc`).
"""
from __future__ import annotations

__all__ = [
    "PUBLISHED_SDC", "PUBLISHED_SOURCE", "spline_basis", "error_variance", "error_variance_from_sdc",
    "error_variance_from_icc", "calibrate_replicate", "calibrate_basis", "calibrate_moments", "reader_agreement",
]

from typing import Sequence

import numpy as np
import pandas as pd
import patsy
from numpy.typing import ArrayLike

from raoutcome.errors import InputError

#: Smallest detectable change of the SvdH total score, mean over 15 RCT data sets (95 % limits of
#: agreement): used when a cohort has no repeat readings.
PUBLISHED_SDC = 3.0
PUBLISHED_SOURCE = ("published SDC 3.0 SvdH units (mean over 15 RCT data sets, Navarro-Compán et al., "
                    "Ann Rheum Dis 2014), σ_U = SDC / (1.96 √2) = 1.08 units per reading")
_Z = 1.959964


def spline_basis(x: ArrayLike, df: int = 4, prefix: str = "s") -> pd.DataFrame:
    """Natural cubic regression spline basis of ``x`` (patsy ``cr``), centred, ``df`` columns.

    Inner knots sit at quantiles of the distinct finite values (a score with
    many zeros would otherwise get repeated knots); with too few distinct
    values the basis degrades to fewer columns, down to ``x`` itself. Rows
    where ``x`` is missing get NaN. The centring constraint makes the columns
    free of the intercept, so they enter a Cox or OLS model as they are.
    """
    x = np.asarray(x, dtype=float)
    ok = np.isfinite(x)
    out = pd.DataFrame(np.nan, index=range(len(x)), columns=[f"{prefix}1"])
    if ok.sum() < 3:
        raise InputError(f"spline of {prefix}: fewer than 3 finite values")
    values = x[ok]
    distinct = np.unique(values)
    n_inner = min(df - 1, len(distinct) - 2)
    if df < 2 or n_inner < 1:
        out.loc[ok, f"{prefix}1"] = values - values.mean()
        return out
    knots = np.unique(np.quantile(distinct, np.linspace(0, 1, n_inner + 2)[1:-1]))
    basis = np.asarray(patsy.dmatrix("cr(v, knots=k, constraints='center') - 1", {"v": values, "k": knots}))
    cols = [f"{prefix}{j + 1}" for j in range(basis.shape[1])]
    out = pd.DataFrame(np.nan, index=range(len(x)), columns=cols)
    out.loc[ok, cols] = basis
    return out


def error_variance(reading_a: ArrayLike, reading_b: ArrayLike) -> tuple[float, int]:
    """Variance of one reading's error from two independent readings: ``Var(a − b) / 2`` and the pairs used."""
    a, b = np.asarray(reading_a, float), np.asarray(reading_b, float)
    if a.shape != b.shape:
        raise InputError(f"repeat readings differ in shape {a.shape} vs {b.shape}")
    d = (a - b)[np.isfinite(a) & np.isfinite(b)]
    if len(d) < 3:
        raise InputError(f"repeat readings: only {len(d)} complete pairs (need >= 3)")
    return float(np.var(d, ddof=1) / 2.0), int(len(d))


def error_variance_from_sdc(sdc: float) -> float:
    """``σ²_U = (SDC / (1.96 √2))²``: the SDC is 1.96 × the SD of the difference of two readings."""
    if not np.isfinite(sdc) or sdc <= 0:
        raise InputError(f"SDC must be a positive number, got {sdc!r}")
    return float((sdc / (_Z * np.sqrt(2.0))) ** 2)


def error_variance_from_icc(icc: float, reading: ArrayLike) -> float:
    """``σ²_U = (1 − ICC) · Var(W)``: the ICC is the share of the reading's variance that is true damage."""
    if not 0 < icc <= 1:
        raise InputError(f"ICC must lie in (0, 1], got {icc!r}")
    w = np.asarray(reading, float)
    return float((1.0 - icc) * np.nanvar(w, ddof=1))


def _design(frame: pd.DataFrame, columns: Sequence[str]) -> np.ndarray:
    return np.column_stack([np.ones(len(frame)), frame[list(columns)].to_numpy(float)])


def calibrate_replicate(frame: pd.DataFrame, reading: str, retest: str, predictors: Sequence[str]) -> pd.Series:
    """``E[X | W₁, Z]`` as the least-squares regression of the retest reading on ``(W₁, Z)``.

    ``frame`` holds one row per reading occasion with the first reading
    ``reading``, the repeat reading ``retest`` (NaN where none was made) and
    the error-free ``predictors`` Z (covariates, spline bases of image
    scores). The regression is fitted on rows with both readings and
    complete Z and evaluated on every row with ``reading`` and Z present
    (NaN elsewhere). Valid when the two readers' errors are independent of
    each other and of Z (Carroll et al. 2006, §4.4.1).
    """
    cols = [reading, *predictors]
    missing = [c for c in (*cols, retest) if c not in frame]
    if missing:
        raise InputError(f"regression calibration: table lacks column(s) {missing}")
    usable = frame[cols].notna().all(axis=1).to_numpy()
    fit = usable & frame[retest].notna().to_numpy()
    if fit.sum() < len(cols) + 5:
        raise InputError(f"regression calibration of {reading}: only {int(fit.sum())} rows with a repeat reading")
    x = _design(frame.loc[fit], cols)
    beta, *_ = np.linalg.lstsq(x, frame.loc[fit, retest].to_numpy(float), rcond=None)
    out = np.full(len(frame), np.nan)
    out[usable] = _design(frame.loc[usable], cols) @ beta
    return pd.Series(out, index=frame.index, name=f"cal_{reading}")


def calibrate_basis(frame: pd.DataFrame, targets: Sequence[str], predictors: Sequence[str]) -> pd.DataFrame:
    """``E[B(W₂) | V]`` for every column of a basis ``B`` of the retest reading: regression calibration of the basis.

    If the outcome depends on damage only through ``g(X) = B(X)'θ`` — any
    function in the span of the basis: splines, their tensor products —
    then ``E[Y | V] = E[B(X) | V]'θ`` exactly for a linear model, and to the
    usual regression-calibration approximation for a Cox model (Carroll et al.
    2006, §4.7: model ``E{f(X) | W}`` itself, not ``f(E{X | W})``, which
    differs by a Jensen term that varies with ``V``). With a second reading
    ``W₂ = X + U₂``, ``U₂`` independent of ``X``-given-``V``, the smoothed
    basis ``B̃(X) = E[B(W₂) | X]`` spans as flexible a family as ``B`` and
    ``E[B̃(X) | V] = E[B(W₂) | V]``: the least-squares regression of each
    column of ``B(W₂)`` on ``(1, V)`` — no error variance and no error
    distribution needed. ``frame`` holds the basis columns ``targets`` (NaN
    where no retest was made) and the error-free ``predictors`` V (the first
    reading's terms, image-score splines, covariates); the fit uses rows with
    every target and predictor, the fitted values are returned for every row
    with the predictors (NaN elsewhere), one column per target, same names.
    """
    targets, predictors = list(targets), list(predictors)
    missing = [c for c in (*targets, *predictors) if c not in frame]
    if missing:
        raise InputError(f"regression calibration: table lacks column(s) {missing}")
    usable = frame[predictors].notna().all(axis=1).to_numpy()
    fit = usable & frame[targets].notna().all(axis=1).to_numpy()
    if fit.sum() < len(predictors) + 10:
        raise InputError(f"regression calibration of the damage basis: only {int(fit.sum())} rows with a "
                         f"repeat reading for {len(predictors)} predictors")
    x = _design(frame.loc[fit], predictors)
    beta, *_ = np.linalg.lstsq(x, frame.loc[fit, targets].to_numpy(float), rcond=None)
    out = np.full((len(frame), len(targets)), np.nan)
    out[usable] = _design(frame.loc[usable], predictors) @ beta
    return pd.DataFrame(out, index=frame.index, columns=targets)


def calibrate_moments(frame: pd.DataFrame, reading: str, predictors: Sequence[str], error_var: float) -> pd.Series:
    """Best linear predictor of true damage from ``W`` and ``Z`` given the error variance ``σ²_U`` of ``W``.

    ``X̂ = W̄ + b'(V − V̄)`` with ``V = (W, Z)``, ``b = Σ_VV⁻¹ (Σ_VW − σ²_U e_W)``
    (Carroll et al. 2006, eq. 4.5), i.e. ``X̂ = λ W + (1 − λ) Ŵ(Z)`` with
    ``λ = 1 − σ²_U / Var(W | Z)``, floored at 0.
    """
    cols = [reading, *predictors]
    missing = [c for c in cols if c not in frame]
    if missing:
        raise InputError(f"regression calibration: table lacks column(s) {missing}")
    if not np.isfinite(error_var) or error_var < 0:
        raise InputError(f"error variance must be >= 0, got {error_var!r}")
    usable = frame[cols].notna().all(axis=1).to_numpy()
    v = frame.loc[usable, cols].to_numpy(float)
    if len(v) < len(cols) + 3:
        raise InputError(f"regression calibration of {reading}: only {len(v)} complete rows")
    centred = v - v.mean(axis=0)
    s_vv = centred.T @ centred / (len(v) - 1)
    s_vx = s_vv[:, 0].copy()
    s_vx[0] -= error_var
    b = np.linalg.solve(s_vv, s_vx)
    if b[0] < 0:  # error variance above Var(W | Z): the reading adds nothing, X̂ = Ŵ(Z)
        b = np.linalg.lstsq(centred[:, 1:], centred[:, 0], rcond=None)[0] if len(cols) > 1 else np.zeros(0)
        b = np.r_[0.0, b]
    out = np.full(len(frame), np.nan)
    out[usable] = v[:, 0].mean() + centred @ b
    return pd.Series(out, index=frame.index, name=f"cal_{reading}")


def reader_agreement(visits: pd.DataFrame, retest: pd.DataFrame,
                     columns: Sequence[str] = ("svdh_total", "svdh_jsn", "svdh_erosion")) -> pd.DataFrame:
    """Agreement of the first reading (``visits``) with the repeat reading (``retest``), per score column.

    One row per column both tables hold: ``pairs``; ICC(A,1) (two-way,
    absolute agreement, single reading; McGraw & Wong 1996) with its 95 % CI;
    Bland–Altman bias and 95 % limits of agreement (Bland & Altman 1986);
    ``error_sd`` = SD(difference) / √2, one reading's error SD; ``sdc`` =
    1.96 × SD(difference), the smallest detectable difference between two
    readings of the same radiograph. Computed by
    :mod:`raoutcome.evaluation.agreement`.
    """
    from raoutcome.evaluation.agreement import bland_altman, icc

    keys = ["patient_id", "visit_id"]
    rows = []
    for col in columns:
        if col not in visits or col not in retest:
            continue
        pair = visits[[*keys, col]].astype({k: str for k in keys}).merge(
            retest[[*keys, col]].astype({k: str for k in keys}), on=keys, suffixes=("_a", "_b")).dropna()
        if len(pair) < 3:
            continue
        a, b = pair[f"{col}_a"].to_numpy(float), pair[f"{col}_b"].to_numpy(float)
        agreement = icc(np.column_stack([a, b]))
        ba = bland_altman(a, b)
        rows.append(dict(score=col, pairs=len(pair), icc=agreement.icc, icc_ci_low=agreement.ci_low,
                         icc_ci_high=agreement.ci_high, bias=ba.bias, loa_low=ba.loa_low, loa_high=ba.loa_high,
                         error_sd=ba.sd / np.sqrt(2.0), sdc=_Z * ba.sd))
    return pd.DataFrame(rows)
