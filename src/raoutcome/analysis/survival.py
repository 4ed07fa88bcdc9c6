"""Time-to-event models on image scores, embeddings, SvdH and covariates.

Estimators in the lifelines / scikit-survival spirit: construct with the
columns to use, ``fit(df)`` on a table with one row per patient, then
``predict_risk(df)`` (higher = earlier event), ``summary`` and ``score(df)``
(Harrell's C-index):

* :class:`CoxModel` — lifelines ``CoxPHFitter``: hazard ratios with 95 % CIs,
  the proportional-hazards test, survival curves and risk at a horizon;
* :class:`CoxNetModel` — scikit-survival elastic-net Cox;
* :class:`SurvivalForest` — scikit-survival random survival forest;
* :class:`TimeVaryingCox` — lifelines ``CoxTimeVaryingFitter`` on start/stop
  intervals built from repeated visits (covariates change at each visit).

Embedding columns (``emb_*``) are reduced with PCA *inside* ``fit``, so under
:func:`cross_val_risk` the projection is learned from training folds only.
Rows with a missing value in a used column are dropped (complete cases).

:func:`km_by_groups` gives Kaplan–Meier curves and the log-rank test by
image-risk tertiles.
"""
from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd
from lifelines import CoxPHFitter, CoxTimeVaryingFitter, KaplanMeierFitter
from lifelines.exceptions import ConvergenceError, ConvergenceWarning
from lifelines.statistics import multivariate_logrank_test, proportional_hazard_test
from lifelines.utils import add_covariate_to_timeline, to_long_format
from sklearn.decomposition import PCA
from sklearn.model_selection import StratifiedKFold

from raoutcome.analysis.features import DURATION, OBSERVED
from raoutcome.errors import InputError
from raoutcome.evaluation import harrell_c

Z95 = 1.959963984540054


def _scaled(standardize: bool | Sequence[str], column: str) -> bool:
    """Whether ``column`` is standardised: ``standardize`` is True/False or the columns to scale."""
    if isinstance(standardize, bool):
        return standardize
    return column in set(standardize)


class _Design:
    """Column selection, optional standardisation and PCA of embeddings (fitted once)."""

    def __init__(self, covariates: Sequence[str], embedding_cols: Sequence[str], n_components: int | None,
                 standardize: bool | Sequence[str]):
        self.covariates = list(covariates)
        self.embedding_cols = list(embedding_cols)
        self.n_components = n_components
        self.standardize = standardize

    @property
    def columns(self) -> list[str]:
        return [*self.covariates, *self.embedding_cols]

    def fit(self, df: pd.DataFrame) -> "_Design":
        if not self.columns:
            raise InputError("a survival model needs at least one covariate or embedding column")
        x = df[self.covariates].to_numpy(dtype=float)
        scale = np.array([_scaled(self.standardize, c) for c in self.covariates], dtype=bool)
        self.mean_ = np.where(scale, x.mean(axis=0), 0.0) if len(x) else np.zeros(x.shape[1])
        sd = x.std(axis=0, ddof=1) if len(x) > 1 else np.ones(x.shape[1])
        self.sd_ = np.where(scale & (sd > 0), sd, 1.0)
        self.pca_ = None
        if self.embedding_cols:
            k = min(self.n_components or 5, len(self.embedding_cols), len(df) - 1)
            self.pca_ = PCA(n_components=k).fit(df[self.embedding_cols].to_numpy(dtype=float))
        return self

    def names(self) -> list[str]:
        pcs = [f"emb_pc{i + 1}" for i in range(self.pca_.n_components_)] if self.pca_ is not None else []
        return [*self.covariates, *pcs]

    def transform(self, df: pd.DataFrame) -> pd.DataFrame:
        parts = [(df[self.covariates].to_numpy(dtype=float) - self.mean_) / self.sd_]
        if self.pca_ is not None:
            parts.append(self.pca_.transform(df[self.embedding_cols].to_numpy(dtype=float)))
        return pd.DataFrame(np.hstack(parts), columns=self.names(), index=df.index)


class SurvivalEstimator:
    """Shared plumbing: column handling, complete cases, C-index, cloning."""

    def __init__(self, covariates: Sequence[str] = (), embedding_cols: Sequence[str] = (),
                 n_components: int | None = None, duration_col: str = DURATION,
                 event_col: str = OBSERVED, standardize: bool | Sequence[str] = False):
        self.covariates = list(covariates)
        self.embedding_cols = list(embedding_cols)
        self.n_components = n_components
        self.duration_col = duration_col
        self.event_col = event_col
        self.standardize = standardize

    # -- sklearn-style cloning (unfitted copy with the same settings)
    def clone(self) -> "SurvivalEstimator":
        fresh = copy.copy(self)
        fresh.__dict__ = {k: copy.deepcopy(v) for k, v in self.__dict__.items() if not k.endswith("_")}
        return fresh

    def fit(self, df: pd.DataFrame) -> "SurvivalEstimator":
        """Fit on the complete rows of ``df`` (standardisation and PCA learned here)."""
        needed = [*self.covariates, *self.embedding_cols, self.duration_col, self.event_col]
        missing = [c for c in needed if c not in df]
        if missing:
            raise InputError(f"survival model: table lacks column(s) {missing}")
        rows = df.dropna(subset=needed)
        self.design_ = _Design(self.covariates, self.embedding_cols, self.n_components, self.standardize).fit(rows)
        x = self.design_.transform(rows)
        if rows[self.event_col].sum() == 0:
            raise InputError("survival model: no observed events among the complete rows")
        self.n_ = len(rows)
        self.n_events_ = int(rows[self.event_col].sum())
        self._fit(x, rows[self.duration_col].to_numpy(float), rows[self.event_col].to_numpy(int))
        return self

    def predict_risk(self, df: pd.DataFrame) -> np.ndarray:
        """Risk score per row (higher = earlier event); NaN where a used column is missing."""
        out = np.full(len(df), np.nan)
        ok = df[[*self.covariates, *self.embedding_cols]].notna().all(axis=1).to_numpy()
        if ok.any():
            out[ok] = self._risk(self.design_.transform(df.loc[ok]))
        return out

    def score(self, df: pd.DataFrame) -> float:
        """Harrell's C-index of :meth:`predict_risk` on ``df``."""
        risk = self.predict_risk(df)
        ok = np.isfinite(risk) & df[self.duration_col].notna().to_numpy()
        return harrell_c(df[self.duration_col].to_numpy(float)[ok], df[self.event_col].to_numpy(int)[ok], risk[ok])

    def _fit(self, x: pd.DataFrame, time: np.ndarray, event: np.ndarray) -> None:  # pragma: no cover
        raise NotImplementedError

    def _risk(self, x: pd.DataFrame) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError


class CoxModel(SurvivalEstimator):
    """Cox proportional hazards (lifelines ``CoxPHFitter``).

    With ``standardize=True`` (or a list of the columns to scale) covariates
    are centred and scaled by their training SD, so their hazard ratios are
    per standard deviation (column ``per`` of :attr:`summary`).
    """

    def __init__(self, covariates: Sequence[str] = (), embedding_cols: Sequence[str] = (),
                 n_components: int | None = None, duration_col: str = DURATION, event_col: str = OBSERVED,
                 standardize: bool | Sequence[str] = False, penalizer: float = 0.0):
        super().__init__(covariates, embedding_cols, n_components, duration_col, event_col, standardize)
        self.penalizer = penalizer

    def _fit(self, x, time, event):
        frame = x.assign(_T=time, _E=event)
        self.fitter_ = _fit_with_smaller_steps(CoxPHFitter(penalizer=self.penalizer), frame,
                                               duration_col="_T", event_col="_E")
        self.training_frame_ = frame

    def _risk(self, x):
        return np.log(np.asarray(self.fitter_.predict_partial_hazard(x), dtype=float).ravel())

    @property
    def log_likelihood_(self) -> float:
        return float(self.fitter_.log_likelihood_)

    @property
    def params_(self) -> pd.Series:
        return self.fitter_.params_

    @property
    def summary(self) -> pd.DataFrame:
        """Tidy table: covariate, coef, se, hr, hr_lower, hr_upper (95 %), z, p, per (SD or unit)."""
        return _hazard_table(self.fitter_, self.standardize)

    def check_proportional_hazards(self, time_transform: str = "rank") -> pd.DataFrame:
        """Schoenfeld-residual test per covariate (lifelines ``proportional_hazard_test``)."""
        res = proportional_hazard_test(self.fitter_, self.training_frame_, time_transform=time_transform)
        table = res.summary.reset_index()
        first = table.columns[0]
        table = table.rename(columns={first: "covariate", "test_statistic": "statistic"})
        return table[["covariate", "statistic", "p"]].assign(time_transform=time_transform)

    def predict_survival(self, df: pd.DataFrame, times: Sequence[float]) -> pd.DataFrame:
        """S(t | x): one row per time, one column per row of ``df`` with complete data."""
        rows = df.dropna(subset=[*self.covariates, *self.embedding_cols])
        return self.fitter_.predict_survival_function(self.design_.transform(rows), times=list(times))

    def predict_risk_at(self, df: pd.DataFrame, horizon: float) -> np.ndarray:
        """Predicted probability of the event by ``horizon`` (1 − S(horizon)); NaN where incomplete."""
        out = np.full(len(df), np.nan)
        ok = df[[*self.covariates, *self.embedding_cols]].notna().all(axis=1).to_numpy()
        if ok.any():
            surv = self.fitter_.predict_survival_function(self.design_.transform(df.loc[ok]), times=[horizon])
            out[ok] = 1.0 - surv.to_numpy().ravel()
        return out


def _fit_with_smaller_steps(fitter, frame: pd.DataFrame, **kwargs):
    """Fit a lifelines Cox fitter; if Newton–Raphson diverges (long-tailed covariates such as
    SvdH can make the first full step overshoot), retry with damped steps (same likelihood).

    lifelines reports a stalled Newton–Raphson (its step size shrunk to nothing, e.g. with a
    strongly skewed covariate among many) only by a ``ConvergenceWarning`` and returns the
    unconverged estimate; its log-likelihood would then bias a likelihood-ratio test, so that
    warning also triggers the damped retries."""
    last: Exception | None = None
    for step in (None, 0.5, 0.2):
        options = {"step_size": step} if step else None
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("ignore", RuntimeWarning)
                warnings.simplefilter("always", ConvergenceWarning)
                fitted = fitter.fit(frame, fit_options=options, **kwargs)
            stalled = [w for w in caught if issubclass(w.category, ConvergenceWarning)
                       and "failed to converge" in str(w.message)]
            for w in caught:
                if w not in stalled:
                    warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
            if not stalled:
                return fitted
            last = ConvergenceError(f"Newton-Raphson stalled (step size {step or 'default'})")
        except ConvergenceError as err:
            last = err
    raise InputError(f"Cox model did not converge: {last}") from last


def _hazard_table(fitter, standardize: bool | Sequence[str]) -> pd.DataFrame:
    """A lifelines Cox summary as a tidy hazard-ratio table."""
    s = fitter.summary
    names = s.index.astype(str)
    return pd.DataFrame({
        "covariate": names, "coef": s["coef"].to_numpy(), "se": s["se(coef)"].to_numpy(),
        "hr": s["exp(coef)"].to_numpy(), "hr_lower": s["exp(coef) lower 95%"].to_numpy(),
        "hr_upper": s["exp(coef) upper 95%"].to_numpy(), "z": s["z"].to_numpy(), "p": s["p"].to_numpy(),
        "per": ["SD" if _scaled(standardize, c) else "unit" for c in names],
    })


def _surv_array(time: np.ndarray, event: np.ndarray):
    from sksurv.util import Surv

    return Surv.from_arrays(event=event.astype(bool), time=time)


class CoxNetModel(SurvivalEstimator):
    """Elastic-net Cox (scikit-survival ``CoxnetSurvivalAnalysis``) at one penalty ``alpha``.

    Covariates are always standardised (penalties need a common scale).
    """

    def __init__(self, covariates: Sequence[str] = (), embedding_cols: Sequence[str] = (),
                 n_components: int | None = None, duration_col: str = DURATION, event_col: str = OBSERVED,
                 l1_ratio: float = 0.5, alpha: float = 0.01):
        super().__init__(covariates, embedding_cols, n_components, duration_col, event_col, standardize=True)
        self.l1_ratio = l1_ratio
        self.alpha = alpha

    def _fit(self, x, time, event):
        from sksurv.linear_model import CoxnetSurvivalAnalysis

        self.model_ = CoxnetSurvivalAnalysis(l1_ratio=self.l1_ratio, alphas=[self.alpha], fit_baseline_model=True)
        self.model_.fit(x.to_numpy(), _surv_array(time, event))

    def _risk(self, x):
        return np.asarray(self.model_.predict(x.to_numpy()), dtype=float)

    @property
    def summary(self) -> pd.DataFrame:
        coef = np.asarray(self.model_.coef_).ravel()
        return pd.DataFrame({"covariate": self.design_.names(), "coef": coef, "hr": np.exp(coef), "per": "SD"})


class SurvivalForest(SurvivalEstimator):
    """Random survival forest (scikit-survival). A forest has no coefficients: ``summary`` lists its inputs."""

    def __init__(self, covariates: Sequence[str] = (), embedding_cols: Sequence[str] = (),
                 n_components: int | None = None, duration_col: str = DURATION, event_col: str = OBSERVED,
                 n_estimators: int = 200, min_samples_leaf: int = 10, max_features: str | float = "sqrt",
                 random_state: int = 0, n_jobs: int | None = None):
        super().__init__(covariates, embedding_cols, n_components, duration_col, event_col, standardize=False)
        self.n_estimators = n_estimators
        self.min_samples_leaf = min_samples_leaf
        self.max_features = max_features
        self.random_state = random_state
        self.n_jobs = n_jobs

    def _fit(self, x, time, event):
        from sksurv.ensemble import RandomSurvivalForest

        self.model_ = RandomSurvivalForest(n_estimators=self.n_estimators, min_samples_leaf=self.min_samples_leaf,
                                           max_features=self.max_features, random_state=self.random_state,
                                           n_jobs=self.n_jobs)
        self.model_.fit(x.to_numpy(), _surv_array(time, event))

    def _risk(self, x):
        return np.asarray(self.model_.predict(x.to_numpy()), dtype=float)

    @property
    def summary(self) -> pd.DataFrame:
        return pd.DataFrame({"covariate": self.design_.names()})


def cross_val_risk(estimator: SurvivalEstimator, df: pd.DataFrame, k: int = 5, seed: int = 0,
                   folds: Sequence[int] | np.ndarray | None = None, horizon: float | None = None) -> np.ndarray:
    """Out-of-fold risk: each row scored by a model (and PCA) fitted without it.

    Returns :meth:`~SurvivalEstimator.predict_risk`, or with ``horizon`` the
    predicted probability of the event by then (:meth:`CoxModel.predict_risk_at`).
    ``folds`` (one integer per row) fixes the partition; otherwise a seeded
    K-fold stratified on the event indicator. Rows with missing inputs get NaN.
    """
    folds = np.asarray(folds) if folds is not None else event_folds(df[estimator.event_col], k, seed)
    out = np.full(len(df), np.nan)
    for f in np.unique(folds):
        test = folds == f
        model = estimator.clone().fit(df.loc[~test])
        held_out = df.loc[test]
        out[test] = model.predict_risk(held_out) if horizon is None else model.predict_risk_at(held_out, horizon)
    return out


def event_folds(event: pd.Series | np.ndarray, k: int = 5, seed: int = 0) -> np.ndarray:
    """Fold number per row: seeded K-fold stratified on the (0/1) event indicator."""
    event = np.nan_to_num(np.asarray(event, dtype=float)).astype(int)
    counts = np.bincount(event, minlength=2)
    k = max(2, min(k, int(counts[counts > 0].min()))) if (counts > 0).all() else k
    folds = np.empty(len(event), dtype=int)
    splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    for i, (_, test) in enumerate(splitter.split(np.zeros(len(event)), event)):
        folds[test] = i
    return folds


# -- time-varying covariates ----------------------------------------------------------------------

def counting_process_table(visits: pd.DataFrame, events: pd.DataFrame, covariates: Sequence[str],
                           id_col: str = "patient_id", time_col: str = "time_years",
                           duration_col: str = DURATION, event_col: str = OBSERVED) -> pd.DataFrame:
    """Start/stop intervals (lifelines ``to_long_format`` + ``add_covariate_to_timeline``).

    Each visit opens a new interval carrying that visit's covariate values
    (a missing value carries the patient's last known value forward; visits
    that change nothing are merged into one interval); the last interval ends
    at the event or censoring time. Intervals before a
    patient's first complete reading and visits after the event are dropped.
    """
    base = events[[id_col, duration_col, event_col]].dropna().copy()
    base[duration_col] = base[duration_col].astype(float)
    base = base[base[duration_col] > 0]
    long = to_long_format(base, duration_col=duration_col)
    cv = visits[[id_col, time_col, *covariates]].sort_values([id_col, time_col]).copy()
    cv[list(covariates)] = cv.groupby(id_col, sort=False)[list(covariates)].ffill()
    cv = cv.rename(columns={time_col: "_visit_time"})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = add_covariate_to_timeline(long, cv, id_col=id_col, duration_col="_visit_time", event_col=event_col)
    table = table.dropna(subset=list(covariates))
    table = table[table["stop"] > table["start"]].astype({event_col: int})
    return table.reset_index(drop=True)


class TimeVaryingCox:
    """Cox model with covariates updated at every visit (lifelines ``CoxTimeVaryingFitter``)."""

    def __init__(self, covariates: Sequence[str], id_col: str = "patient_id", time_col: str = "time_years",
                 duration_col: str = DURATION, event_col: str = OBSERVED, penalizer: float = 0.0,
                 standardize: bool | Sequence[str] = False):
        self.covariates = list(covariates)
        self.id_col = id_col
        self.time_col = time_col
        self.duration_col = duration_col
        self.event_col = event_col
        self.penalizer = penalizer
        self.standardize = standardize

    def fit(self, visits: pd.DataFrame, events: pd.DataFrame, table: pd.DataFrame | None = None) -> "TimeVaryingCox":
        """Fit on the start/stop table of ``visits``/``events`` (or a prebuilt ``table`` from
        :func:`counting_process_table`, e.g. the rows of some patients of one built once)."""
        if table is None:
            table = counting_process_table(visits, events, self.covariates, self.id_col, self.time_col,
                                           self.duration_col, self.event_col)
        table = table.copy()
        if table.empty or table[self.event_col].sum() == 0:
            raise InputError("time-varying Cox: no intervals with observed events")
        scaled = [c for c in self.covariates if _scaled(self.standardize, c)]
        mean = pd.Series(0.0, index=self.covariates)
        sd_all = pd.Series(1.0, index=self.covariates)
        if scaled:
            sd = table[scaled].std(ddof=1).replace(0, 1.0)
            mean[scaled], sd_all[scaled] = table[scaled].mean(), sd
            table[scaled] = (table[scaled] - table[scaled].mean()) / sd
        self.scale_ = {"mean": mean, "sd": sd_all}  # for predictions (raoutcome.analysis.landmark)
        self.table_ = table
        self.fitter_ = _fit_with_smaller_steps(
            CoxTimeVaryingFitter(penalizer=self.penalizer),
            table[[self.id_col, "start", "stop", self.event_col, *self.covariates]],
            id_col=self.id_col, event_col=self.event_col, start_col="start", stop_col="stop")
        return self

    @property
    def log_likelihood_(self) -> float:
        return float(self.fitter_.log_likelihood_)

    @property
    def summary(self) -> pd.DataFrame:
        """Same columns as :attr:`CoxModel.summary`."""
        return _hazard_table(self.fitter_, self.standardize)


# -- Kaplan–Meier by risk group ---------------------------------------------------------------------

@dataclass
class KMResult:
    """Kaplan–Meier curves per group and the log-rank test across groups."""

    curves: pd.DataFrame      # group, time, survival, lower, upper, at_risk
    groups: pd.DataFrame      # group, n, events, score_min, score_max, median_survival
    statistic: float
    df: int
    p_value: float
    score_col: str


def km_by_groups(df: pd.DataFrame, score_col: str, q: int = 3, duration_col: str = DURATION,
                 event_col: str = OBSERVED, labels: Sequence[str] | None = None) -> KMResult:
    """Kaplan–Meier curves by quantile group of ``score_col`` (tertiles by default) + log-rank."""
    rows = df.dropna(subset=[score_col, duration_col, event_col])
    if len(rows) < 2 * q:
        raise InputError(f"Kaplan–Meier by {score_col}: only {len(rows)} complete patients")
    labels = list(labels) if labels is not None else _tertile_labels(q)
    group = pd.qcut(rows[score_col].rank(method="first"), q, labels=labels)
    curves, summary = [], []
    for label in labels:
        sel = rows[group == label]
        km = KaplanMeierFitter().fit(sel[duration_col], sel[event_col], label=str(label))
        ci = km.confidence_interval_survival_function_
        table = km.event_table
        curves.append(pd.DataFrame({
            "group": str(label), "time": km.survival_function_.index.to_numpy(),
            "survival": km.survival_function_.iloc[:, 0].to_numpy(),
            "lower": ci.iloc[:, 0].to_numpy(), "upper": ci.iloc[:, 1].to_numpy(),
            "at_risk": table["at_risk"].reindex(km.survival_function_.index).to_numpy(),
        }))
        summary.append({"group": str(label), "n": len(sel), "events": int(sel[event_col].sum()),
                        "score_min": float(sel[score_col].min()), "score_max": float(sel[score_col].max()),
                        "median_survival": float(km.median_survival_time_)})
    test = multivariate_logrank_test(rows[duration_col], group.astype(str), rows[event_col])
    return KMResult(curves=pd.concat(curves, ignore_index=True), groups=pd.DataFrame(summary),
                    statistic=float(test.test_statistic), df=int(test.degrees_of_freedom),
                    p_value=float(test.p_value), score_col=score_col)


def _tertile_labels(q: int) -> list[str]:
    if q == 3:
        return ["low", "middle", "high"]
    return [f"Q{i + 1}" for i in range(q)]
