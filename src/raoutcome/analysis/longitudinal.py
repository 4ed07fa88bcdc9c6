"""Outcomes over time (HAQ, pain): linear mixed models and GEE (statsmodels).

* :class:`MixedModel` — ``smf.mixedlm(outcome ~ time + predictors,
  groups=patient, re_formula="~time")``: a random intercept and a random
  slope on time per patient (``random_slope=False`` keeps the intercept only).
  Each model is fitted with BFGS and with L-BFGS and the higher likelihood is
  kept: near a zero slope variance one of them often stops at a worse point,
  which would bias likelihood-ratio tests.
  Fit by REML for estimates; by ML (``reml=False``) when log-likelihoods of
  models with different fixed effects are compared (see
  :func:`raoutcome.analysis.incremental.mixed_lrt`).
* :class:`GEEModel` — population-average GEE, Gaussian, exchangeable working
  correlation, robust (sandwich) standard errors.

Both take a visit table (one row per visit), drop visits with a missing value
in a used column, and give a tidy ``summary`` table: term, estimate, se, z,
p, ci_lower, ci_upper.
"""
from __future__ import annotations

import re
import warnings
from typing import Sequence

import numpy as np
import pandas as pd
import statsmodels.api as sm
import statsmodels.formula.api as smf
from statsmodels.tools.sm_exceptions import ConvergenceWarning

from raoutcome.errors import InputError

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _formula(outcome: str, terms: Sequence[str]) -> str:
    for name in (outcome, *terms):
        if not _IDENT.match(name):
            raise InputError(f"column name {name!r} must be a Python identifier to enter a model formula")
    return f"{outcome} ~ " + (" + ".join(terms) if terms else "1")


def tidy(params: pd.Series, bse: pd.Series, pvalues: pd.Series, names: Sequence[str] | None = None) -> pd.DataFrame:
    """A tidy coefficient table with Wald 95 % confidence intervals."""
    names = list(names) if names is not None else list(params.index)
    est, se = params[names].to_numpy(float), bse[names].to_numpy(float)
    z = 1.959963984540054
    return pd.DataFrame({"term": names, "estimate": est, "se": se, "z": est / se,
                         "p": pvalues[names].to_numpy(float), "ci_lower": est - z * se, "ci_upper": est + z * se})


class _LongitudinalModel:
    def __init__(self, outcome: str, predictors: Sequence[str] = (), time_col: str = "time_years",
                 group_col: str = "patient_id", include_time: bool = True):
        self.outcome = outcome
        self.predictors = list(predictors)
        self.time_col = time_col
        self.group_col = group_col
        self.include_time = include_time

    @property
    def terms(self) -> list[str]:
        return ([self.time_col] if self.include_time else []) + [p for p in self.predictors if p != self.time_col]

    def _rows(self, df: pd.DataFrame) -> pd.DataFrame:
        used = [self.outcome, *self.terms, self.group_col, self.time_col]
        missing = [c for c in dict.fromkeys(used) if c not in df]
        if missing:
            raise InputError(f"{type(self).__name__}: table lacks column(s) {missing}")
        rows = df.dropna(subset=list(dict.fromkeys(used))).sort_values([self.group_col, self.time_col])
        if rows[self.group_col].nunique() < 3:
            raise InputError(f"{type(self).__name__} for {self.outcome}: fewer than 3 patients with complete data")
        return rows.reset_index(drop=True)


class MixedModel(_LongitudinalModel):
    """Linear mixed model with a random intercept (and by default a random time slope) per patient."""

    def __init__(self, outcome: str, predictors: Sequence[str] = (), time_col: str = "time_years",
                 group_col: str = "patient_id", random_slope: bool = True, reml: bool = True,
                 include_time: bool = True, methods: Sequence[str] = ("bfgs", "lbfgs"), fallback: str = "powell"):
        super().__init__(outcome, predictors, time_col, group_col, include_time)
        self.random_slope = random_slope
        self.reml = reml
        self.methods = list(methods)
        self.fallback = fallback

    def fit(self, df: pd.DataFrame) -> "MixedModel":
        rows = self._rows(df)
        re_formula = f"~{self.time_col}" if self.random_slope else None
        model = smf.mixedlm(_formula(self.outcome, self.terms), rows, groups=rows[self.group_col],
                            re_formula=re_formula)
        result, self.warnings_ = _best_fit(model, self.reml, self.methods, self.fallback)
        self.result_ = result
        self.converged_ = bool(result.converged)
        self.n_obs_ = int(result.nobs)
        self.n_groups_ = int(rows[self.group_col].nunique())
        return self

    @property
    def log_likelihood_(self) -> float:
        return float(self.result_.llf)

    @property
    def summary(self) -> pd.DataFrame:
        """Fixed effects (Intercept, time, predictors) with Wald CIs."""
        fe = self.result_.fe_params.index
        table = tidy(self.result_.params, self.result_.bse, self.result_.pvalues, fe)
        return table.assign(model="mixed", outcome=self.outcome, n_obs=self.n_obs_, n_patients=self.n_groups_,
                            method="REML" if self.reml else "ML", converged=self.converged_)

    @property
    def random_effects(self) -> pd.DataFrame:
        """Random-effect covariance (group variance, slope variance, covariance) and the residual scale."""
        cov = self.result_.cov_re.rename(index={"Group": "intercept"}, columns={"Group": "intercept"})
        rows = [{"component": f"cov({b}, {a})" if a != b else f"var({a})", "value": float(cov.loc[a, b])}
                for i, a in enumerate(cov.index) for b in cov.columns[: i + 1]]
        rows.append({"component": "var(residual)", "value": float(self.result_.scale)})
        return pd.DataFrame(rows)


def _best_fit(model, reml: bool, methods: Sequence[str], fallback: str):
    """Fit with each optimiser separately and keep the highest (RE)ML log-likelihood.

    Near a singular random-effect covariance statsmodels' optimisers stop at
    different points (L-BFGS "converged" 5 log-likelihood units below BFGS on
    one data set, BFGS short of L-BFGS on another), and their convergence flags
    are unreliable; the best of several keeps likelihood-ratio tests honest.
    The ``fallback`` (Powell, slow) runs only when no fit gave a finite likelihood.
    """
    fits, messages = [], []
    for method in [*methods, fallback]:
        if method == fallback and fits:
            break
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                result = model.fit(reml=reml, method=[method])
                if np.isfinite(result.llf):
                    fits.append(result)
            except (np.linalg.LinAlgError, ValueError) as err:
                messages.append(f"{method}: {err}")
        messages.extend(str(w.message) for w in caught if issubclass(w.category, (ConvergenceWarning, UserWarning)))
    if not fits:
        raise InputError("mixed model could not be fitted: " + "; ".join(dict.fromkeys(messages)))
    return max(fits, key=lambda r: r.llf), list(dict.fromkeys(messages))


class GEEModel(_LongitudinalModel):
    """Population-average model: Gaussian GEE with an exchangeable working correlation."""

    def fit(self, df: pd.DataFrame) -> "GEEModel":
        rows = self._rows(df)
        model = smf.gee(_formula(self.outcome, self.terms), groups=self.group_col, data=rows,
                        cov_struct=sm.cov_struct.Exchangeable(), family=sm.families.Gaussian())
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            self.result_ = model.fit()
        self.n_obs_ = int(self.result_.nobs)
        self.n_groups_ = int(rows[self.group_col].nunique())
        self.correlation_ = float(np.atleast_1d(self.result_.cov_struct.dep_params)[0])
        return self

    @property
    def summary(self) -> pd.DataFrame:
        table = tidy(self.result_.params, self.result_.bse, self.result_.pvalues)
        return table.assign(model="gee", outcome=self.outcome, n_obs=self.n_obs_, n_patients=self.n_groups_,
                            method="exchangeable", converged=True)
