"""Competing risks: a death before deformity ends the chance of deformity; it is not a censoring.

Status per patient: 1 = the event of interest (deformity), 2 = the competing event (death) first,
0 = censored. :func:`competing_status` builds it from an events table with a ``death`` event.

* :func:`cumulative_incidence` — Aalen–Johansen cumulative incidence
  ``F_1(t) = sum_{s <= t} S(s-) d_1(s) / n(s)`` (lifelines ``AalenJohansenFitter``; S the
  all-cause Kaplan–Meier), per group; 1 - Kaplan–Meier with deaths censored overstates it.
* :class:`CauseSpecificCox` — Cox on the deformity hazard with deaths censored (lifelines
  ``CoxPHFitter``): the hazard ratio of the hazard that acts on those still alive.
* :class:`FineGray` — the subdistribution-hazard model of Fine & Gray (JASA 1999): patients who die
  stay in the risk set after death with weight G(t-)/G(T_i-), G the Kaplan–Meier of the censoring
  times, fitted as R ``cmprsk::crr`` does (:mod:`raoutcome.analysis.fine_gray`: Breslow ties, Fine–Gray
  variance with the censoring-estimation term). No maintained Python package offers Fine–Gray
  (lifelines, scikit-survival and statsmodels do not), so this is the smallest correct one; it matches
  ``crr``'s output on the follicular-lymphoma data of Pintilie (2006). :func:`fine_gray_table` builds the equivalent expanded data set
  (Geskus, Biometrics 2011; R ``survival::finegray``) used to cross-check it with lifelines.
* :func:`competing_c_index` — Wolbers et al. (Epidemiology 2009) C for a cause: pairs where i had the
  cause at T_i and j was still free of it after T_i (later time, or the competing event at any time).
* :func:`competing_auc` — cumulative/dynamic AUC for a cause at t (Blanche, Dartigues &
  Jacqmin-Gadda, Stat Med 2013, controls of "definition 2": everyone without the cause by t), with
  inverse-probability-of-censoring weights from the Kaplan–Meier of the censoring times.
"""
from __future__ import annotations

__all__ = ["CauseSpecificCox", "FineGray", "competing_auc", "competing_c_index", "competing_status",
           "cumulative_incidence", "has_competing"]

import warnings
from typing import Sequence

import numpy as np
import pandas as pd

from raoutcome.anatomy import DEFORMITY_EVENT
from raoutcome.errors import InputError

DEATH = "death"


def has_competing(events: pd.DataFrame, competing: str = DEATH) -> bool:
    """Whether ``events`` records the competing event as observed for anyone."""
    return bool(((events["event"] == competing) & (events["observed"] == 1)).any())


def competing_status(events: pd.DataFrame, event: str = DEFORMITY_EVENT, competing: str = DEATH,
                     time_col: str = "time_years") -> pd.DataFrame:
    """One row per patient with ``event``: ``patient_id, time, status`` (1 event, 2 competing first, 0 censored).

    The event's own row gives its time (observed: the time recorded, e.g. the visit that found it;
    censored: the last time seen without it). A competing event observed before that censoring time
    or after it (the patient was seen event-free until then and died later) makes status 2 at its time.
    """
    ev = events[events["event"] == event].set_index("patient_id")
    if ev.empty:
        raise InputError(f"competing risks: no {event!r} rows in the events table")
    out = pd.DataFrame({"time": ev[time_col].astype(float), "status": ev["observed"].astype(int)})
    dead = events[(events["event"] == competing) & (events["observed"] == 1)].set_index("patient_id")[time_col]
    dead = dead.reindex(out.index)
    first = (out["status"] == 0) & dead.notna() & (dead >= 0)
    out.loc[first, "status"] = 2
    out.loc[first, "time"] = np.maximum(dead[first].astype(float), out.loc[first, "time"])
    return out.reset_index()


def _check_status(time, status) -> tuple[np.ndarray, np.ndarray]:
    t, s = np.asarray(time, float), np.asarray(status, float)
    if t.shape != s.shape:
        raise InputError(f"competing risks: time and status differ in length ({len(t)}, {len(s)})")
    bad = ~np.isin(s, (0, 1, 2))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InputError(f"status: value {s[i]!r} at index {i} is not 0 (censored), 1 (event) or 2 (competing)")
    return t, s.astype(int)


def cumulative_incidence(time: Sequence[float], status: Sequence[int], group: Sequence | None = None,
                         cause: int = 1, seed: int = 0) -> pd.DataFrame:
    """Aalen–Johansen cumulative incidence of ``cause`` per group: ``group, time, cif, lower, upper``.

    lifelines breaks tied times by a tiny seeded jitter (it cannot take ties); ``seed`` fixes it.
    """
    from lifelines import AalenJohansenFitter

    t, s = _check_status(time, status)
    g = np.asarray(group, dtype=object) if group is not None else np.full(len(t), "all", dtype=object)
    parts = []
    for label in pd.unique(g):
        sel = g == label
        if not (s[sel] == cause).any():
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            aj = AalenJohansenFitter(seed=seed).fit(t[sel], s[sel], event_of_interest=cause)
        cif = aj.cumulative_density_
        ci = aj.confidence_interval_
        parts.append(pd.DataFrame({"group": str(label), "time": cif.index.to_numpy(float),
                                   "cif": cif.iloc[:, 0].to_numpy(float), "lower": ci.iloc[:, 0].to_numpy(float),
                                   "upper": ci.iloc[:, 1].to_numpy(float)}))
    if not parts:
        raise InputError(f"cumulative_incidence: no patient with status {cause}")
    return pd.concat(parts, ignore_index=True)


def _table(fitter) -> pd.DataFrame:
    from raoutcome.analysis.survival import _hazard_table

    return _hazard_table(fitter, False)


class CauseSpecificCox:
    """Cox model of one cause's hazard, other causes censored (lifelines ``CoxPHFitter``)."""

    def __init__(self, covariates: Sequence[str], cause: int = 1, penalizer: float = 0.0):
        self.covariates = list(covariates)
        self.cause = cause
        self.penalizer = penalizer

    def fit(self, df: pd.DataFrame, time_col: str = "time", status_col: str = "status") -> "CauseSpecificCox":
        from lifelines import CoxPHFitter

        from raoutcome.analysis.survival import _fit_with_smaller_steps

        rows = df.dropna(subset=[*self.covariates, time_col, status_col])
        t, s = _check_status(rows[time_col], rows[status_col])
        if not (s == self.cause).any():
            raise InputError(f"cause-specific Cox: no patient with status {self.cause}")
        frame = rows[self.covariates].astype(float).assign(_T=t, _E=(s == self.cause).astype(int))
        self.fitter_ = _fit_with_smaller_steps(CoxPHFitter(penalizer=self.penalizer), frame,
                                               duration_col="_T", event_col="_E")
        return self

    @property
    def summary(self) -> pd.DataFrame:
        return _table(self.fitter_)

    def predict_risk(self, df: pd.DataFrame) -> np.ndarray:
        x = df[self.covariates].astype(float)
        return np.log(np.asarray(self.fitter_.predict_partial_hazard(x), float).ravel())


def fine_gray_table(time: np.ndarray, status: np.ndarray, cause: int = 1) -> pd.DataFrame:
    """Counting-process rows ``row, start, stop, event, weight`` of the Fine–Gray weighted risk set.

    Patients without a competing event keep one row (0, T]. A patient with a competing event at T_i
    keeps (0, T_i] with weight 1 and then one row per interval between later censoring times up to the
    last follow-up time, weighted G(start)/G(T_i) = G(s-)/G(T_i-) for s inside it (G: Kaplan–Meier of
    the censoring times; censorings tied with events count as after them).
    """
    t, s = _check_status(time, status)
    order = np.argsort(t, kind="stable")
    cens_times = np.unique(t[s == 0])
    # Kaplan–Meier of censoring: at each censoring time c, factor 1 - d_c / n(c), n(c) = #{t >= c}.
    at_risk = np.array([(t >= c).sum() for c in cens_times], float)
    d_c = np.array([((t == c) & (s == 0)).sum() for c in cens_times], float)
    g_after = np.cumprod(1 - d_c / at_risk)  # G(c) just after each censoring time

    def g(u: float) -> float:  # G(u), right-continuous
        k = np.searchsorted(cens_times, u, side="right")
        return 1.0 if k == 0 else float(g_after[k - 1])

    tau = float(t.max())
    rows = []
    for i in order:
        rows.append((i, 0.0, t[i], int(s[i] == cause), 1.0))
        if s[i] == 0 or s[i] == cause:
            continue
        g_i = g(t[i] - 1e-12) if t[i] > 0 else 1.0  # G(T_i-)
        cuts = cens_times[cens_times > t[i]]
        edges = np.concatenate([[t[i]], cuts[cuts < tau], [tau]])
        for a, b in zip(edges[:-1], edges[1:]):
            if b > a:
                rows.append((i, float(a), float(b), 0, g(a) / g_i if g_i > 0 else 0.0))
    return pd.DataFrame(rows, columns=["row", "start", "stop", "event", "weight"])


def sandwich_covariance(x: np.ndarray, start: np.ndarray, stop: np.ndarray, event: np.ndarray, weight: np.ndarray,
                        cluster: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """Robust covariance I^-1 (sum_c U_c U_c') I^-1 of a weighted counting-process Cox fit (Breslow).

    U_c sums the score residuals of cluster c's rows (Lin & Wei, JASA 1989; Therneau & Grambsch 2000,
    section 7.2): ``w_j d_j (x_j - xbar(t_j)) - sum_k w_j e^{x_j b} (x_j - xbar(t_k)) dN(t_k) / S0(t_k)``
    over the event times t_k in (start_j, stop_j]. lifelines' own robust option does not take delayed
    entry into account, which the Fine–Gray risk set needs.
    """
    risk = weight * np.exp(x @ beta)
    times = np.unique(stop[event == 1])
    n_t, p = len(times), x.shape[1]
    s0, s1, s2 = np.zeros(n_t), np.zeros((n_t, p)), np.zeros((n_t, p, p))
    blocks = [slice(a, a + max(1, 2_000_000 // max(len(x), 1))) for a in range(0, n_t, max(1, 2_000_000 // max(len(x), 1)))]

    def risk_set(b: slice) -> np.ndarray:  # rows x times-in-block (memory bounded by the block size)
        return ((start[:, None] < times[None, b]) & (times[None, b] <= stop[:, None])).astype(float)

    for b in blocks:
        at = risk_set(b)
        s0[b] = risk @ at
        s1[b] = ((risk[:, None] * x).T @ at).T
        s2[b] = np.einsum("j,jk,ja,jb->kab", risk, at, x, x)
    xbar = s1 / s0[:, None]                                                          # K x p
    d_n = np.bincount(np.searchsorted(times, stop[event == 1]), weights=weight[event == 1], minlength=n_t)
    haz = d_n / s0                                                                   # dN / S0 per time
    k_of = np.minimum(np.searchsorted(times, stop), n_t - 1)
    own = np.where(event == 1, 1.0, 0.0)[:, None] * weight[:, None] * (x - xbar[k_of])
    cum_h, cum_hx = np.zeros(len(x)), np.zeros((len(x), p))
    for b in blocks:
        at = risk_set(b)
        cum_h += at @ haz[b]
        cum_hx += at @ (haz[b, None] * xbar[b])
    resid = own - risk[:, None] * (x * cum_h[:, None] - cum_hx)
    info = np.einsum("k,kab->ab", d_n, s2 / s0[:, None, None] - np.einsum("ka,kb->kab", xbar, xbar))
    groups = pd.DataFrame(resid).groupby(np.asarray(cluster)).sum().to_numpy()
    inv = np.linalg.inv(info)
    return inv @ (groups.T @ groups) @ inv


class FineGray:
    """Fine–Gray subdistribution hazards model (``raoutcome.analysis.fine_gray``, as R ``cmprsk::crr``).

    ``variance="fine-gray"`` (default) includes the term for the estimated censoring distribution, as
    ``crr``; ``"fixed-weights"`` is the sandwich of the weighted Cox fit (``survival::finegray`` + robust
    ``coxph``); ``bootstrap=B`` adds a patient-bootstrap SE and CI (``se_bootstrap``; B resamples, each
    imputed once, :func:`raoutcome.analysis.fine_gray.bootstrap_fine_gray`). :meth:`predict_cif` gives the predicted cumulative incidence ``1 - exp(-Lambda_1(t) e^{x'b})``.
    """

    def __init__(self, covariates: Sequence[str], cause: int = 1, penalizer: float = 0.0,
                 variance: str = "fine-gray", imputations: int = 10, seed: int = 0, bootstrap: int = 0,
                 imputer: str = "weibull"):
        self.covariates = list(covariates)
        self.imputer = imputer
        self.bootstrap = bootstrap
        self.cause = cause
        if penalizer:
            raise InputError("Fine–Gray: a penalizer is not supported")
        self.penalizer = penalizer
        self.variance = variance
        self.imputations = imputations
        self.seed = seed

    def fit(self, df: pd.DataFrame, time_col: str = "time", status_col: str = "status",
            lower_col: str | None = None, upper_col: str | None = None) -> "FineGray":
        """Fit on ``time``/``status``; with ``lower_col``/``upper_col`` (an event found at a visit: known
        only within (lower, upper]) the event times are multiply imputed inside their intervals
        (:func:`raoutcome.analysis.fine_gray.fit_fine_gray_imputed`, ``imputer``, ``imputations`` draws,
        ``seed``); a finite ``lower`` on another row is the last visit known free of the event."""
        from raoutcome.analysis.fine_gray import fit_fine_gray, fit_fine_gray_imputed

        rows = df.dropna(subset=[*self.covariates, time_col, status_col]).reset_index(drop=True)
        t, s = _check_status(rows[time_col], rows[status_col])
        if self.cause not in (1, 2):
            raise InputError("Fine–Gray: cause must be 1 or 2")
        x = rows[self.covariates].astype(float).to_numpy()
        lo = rows[lower_col].to_numpy(float) if lower_col else None
        hi = rows[upper_col].to_numpy(float) if upper_col else None
        self.imputed_ = bool(lo is not None and hi is not None and
                             ((s == self.cause) & np.isfinite(lo) & np.isfinite(hi) & (hi > lo)).any())
        if self.imputed_:
            self.fit_ = fit_fine_gray_imputed(t, s, x, lo, hi, cause=self.cause, imputations=self.imputations,
                                              seed=self.seed, variance=self.variance, imputer=self.imputer)
        else:
            self.fit_ = fit_fine_gray(t, s, x, cause=self.cause, variance=self.variance)
        self.robust_cov_ = self.fit_.cov
        self.bootstrap_cov_ = None
        if self.bootstrap:
            from raoutcome.analysis.fine_gray import bootstrap_fine_gray

            reps = bootstrap_fine_gray(t, s, x, lo if self.imputed_ else None, hi if self.imputed_ else None,
                                       cause=self.cause, replicates=self.bootstrap, seed=self.seed + 1,
                                       imputer=self.imputer)
            self.bootstrap_cov_ = np.atleast_2d(np.cov(reps, rowvar=False))
        return self

    @property
    def summary(self) -> pd.DataFrame:
        """Subdistribution hazard ratios (column ``hr``) with 95 % CIs from the chosen variance."""
        from scipy.stats import norm

        coef = self.fit_.coef
        se = self.fit_.se
        z = coef / se
        out = pd.DataFrame({"covariate": self.covariates, "coef": coef, "se": se, "hr": np.exp(coef),
                            "hr_lower": np.exp(coef - 1.959963984540054 * se),
                            "hr_upper": np.exp(coef + 1.959963984540054 * se), "z": z,
                            "p": 2 * norm.sf(np.abs(z)), "per": "unit"})
        if getattr(self, "bootstrap_cov_", None) is not None:  # patient bootstrap (bootstrap= resamples)
            sb = np.sqrt(np.diag(self.bootstrap_cov_))
            out = out.assign(se_bootstrap=sb, hr_lower_bootstrap=np.exp(coef - 1.959963984540054 * sb),
                             hr_upper_bootstrap=np.exp(coef + 1.959963984540054 * sb))
        return out

    def predict_risk(self, df: pd.DataFrame) -> np.ndarray:
        """The linear predictor ``x'b`` (higher: higher cumulative incidence at every time)."""
        return df[self.covariates].astype(float).to_numpy() @ self.fit_.coef

    def predict_cif(self, df: pd.DataFrame, times: Sequence[float]) -> np.ndarray:
        """Predicted cumulative incidence of the cause, rows of ``df`` by ``times``."""
        return self.fit_.cumulative_incidence(df[self.covariates].astype(float).to_numpy(), np.asarray(times, float))


def competing_c_index(time: Sequence[float], status: Sequence[int], risk: Sequence[float], cause: int = 1) -> float:
    """Wolbers' C for ``cause``: P(risk_i > risk_j | i had the cause before j could), ties 1/2."""
    t, s = _check_status(time, status)
    r = np.asarray(risk, float)
    keep = np.isfinite(t) & np.isfinite(r)
    t, s, r = t[keep], s[keep], r[keep]
    case = s == cause
    other = (s != cause) & (s != 0)
    num = den = 0.0
    for i in np.flatnonzero(case):
        comp = (t > t[i]) | other | ((t == t[i]) & (s == 0))
        comp[i] = False
        den += comp.sum()
        num += (comp & (r[i] > r)).sum() + 0.5 * (comp & (r[i] == r)).sum()
    if den == 0:
        raise InputError("competing_c_index: no comparable pair")
    return float(num / den)


def _censoring_km(t: np.ndarray, s: np.ndarray):
    cens = np.unique(t[s == 0])
    factor = np.array([1 - ((t == c) & (s == 0)).sum() / (t >= c).sum() for c in cens])
    g_after = np.cumprod(factor) if len(factor) else np.array([])

    def g(u: np.ndarray, left: bool) -> np.ndarray:
        k = np.searchsorted(cens, np.asarray(u, float), side="left" if left else "right")
        return np.where(k == 0, 1.0, g_after[np.maximum(k - 1, 0)] if len(g_after) else 1.0)

    return g


def competing_auc(time: Sequence[float], status: Sequence[int], risk: Sequence[float], times: Sequence[float],
                  cause: int = 1) -> np.ndarray:
    """IPCW cumulative/dynamic AUC of ``cause`` at each of ``times`` (NaN where no case or control).

    Cases: the cause by t (weight 1/G(T_i-)); controls: event-free after t (weight 1/G(t)) or the
    competing event by t (weight 1/G(T_j-)). Without competing events this is Uno's/Hung–Chiang's AUC.
    """
    t, s = _check_status(time, status)
    r = np.asarray(risk, float)
    g = _censoring_km(t, s)
    out = []
    for u in np.asarray(times, float):
        case = (t <= u) & (s == cause)
        ctrl_late, ctrl_other = t > u, (t <= u) & (s != cause) & (s != 0)
        w_case = np.where(case, 1 / g(t, left=True), 0.0)
        w_ctrl = np.where(ctrl_late, 1 / g(np.full(len(t), u), left=False), 0.0) + \
            np.where(ctrl_other, 1 / g(t, left=True), 0.0)
        if w_case.sum() == 0 or w_ctrl.sum() == 0:
            out.append(np.nan)
            continue
        ci, cj = np.flatnonzero(case), np.flatnonzero(w_ctrl > 0)
        conc = (r[ci][:, None] > r[cj][None, :]) + 0.5 * (r[ci][:, None] == r[cj][None, :])
        out.append(float((w_case[ci][:, None] * w_ctrl[cj][None, :] * conc).sum()
                         / (w_case[ci].sum() * w_ctrl[cj].sum())))
    return np.asarray(out)
