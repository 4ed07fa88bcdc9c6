"""Fine–Gray subdistribution hazards, estimated the way R ``cmprsk::crr`` does.

The model (Fine & Gray, JASA 1999): the subdistribution hazard of cause 1 is ``h_1(t) exp(x'b)``, so the
cumulative incidence is ``F_1(t | x) = 1 - exp(-Lambda_1(t) exp(x'b))``. At each distinct cause-1 time
``t_k`` the risk set holds everyone still event-free (weight 1) and everyone who had the competing event
before ``t_k`` with weight ``G(t_k-) / G(T_j-)`` (``G``: Kaplan–Meier of the censoring times). ``b`` maximises
the weighted Breslow partial likelihood ``sum_k [sum_{i fails at t_k} x_i'b - d_k log S0_k(b)]``,
``S0_k = sum_j w_jk exp(x_j'b)``; ties among cause-1 times are handled as Breslow, as ``crr`` does.

Variance: ``I^-1 (sum_i (eta_i + psi_i)(eta_i + psi_i)') I^-1`` (Fine & Gray 1999, section 3; crr's
``crrvv``): ``eta_i`` is the Lin–Wei score residual of subject i with the weights held fixed and
``psi_i = int q(u) / Y(u) dM^c_i(u)`` the term for the Kaplan–Meier estimate of ``G`` (``q(u)`` sums,
over cause-1 times after ``u``, the weighted deviations of the competing-event subjects who left the
event-free set before ``u``). ``variance="fixed-weights"`` leaves ``psi`` out (the sandwich of a weighted
Cox fit, as R ``survival::finegray`` + ``coxph(robust)``).

Events found at a visit (known only to lie in ``(lower, upper]``): :func:`fit_fine_gray_imputed` draws
each such time ``imputations`` times from a Weibull model of the cause's hazard given the covariates
(and whether a death after the last event-free visit hid an event; :mod:`raoutcome.analysis.interval_imputation`),
fits each completed data set and pools by Rubin's rules (coefficients averaged; variance
``W + (1 + 1/M) B``), so the CI carries the uncertainty of when the event happened. Taking the visit
that found the event as its time, or a uniform draw inside the interval (``imputer="uniform"``), moves
the estimand towards zero (docs/survival.md).

Every sum is a cumulative sum over the time-sorted subjects (no expanded data set), so a fit is
``O(n p^2)`` per Newton step. Validated against ``cmprsk::crr`` on the follicular-lymphoma data of
Pintilie (2006) and against lifelines' Cox fit to the Geskus (2011) expanded data
(``tests/test_fine_gray.py``).

References
----------
Fine JP, Gray RJ. A proportional hazards model for the subdistribution of a competing risk. JASA 1999;94:496–509.
Geskus RB. Cause-specific cumulative incidence estimation and the Fine and Gray model under both left
truncation and right censoring. Biometrics 2011;67:39–49.
Gray B. cmprsk: Subdistribution Analysis of Competing Risks (R package), functions ``crr``/``crrfsv``/``crrvv``.
"""
from __future__ import annotations

__all__ = ["FineGrayFit", "ImputedFineGray", "bootstrap_fine_gray", "censoring_km_before", "fit_fine_gray",
           "fit_fine_gray_imputed", "interval_imputer", "make_imputer"]

from dataclasses import dataclass

import numpy as np

from raoutcome.errors import InputError

VARIANCES = ("fine-gray", "fixed-weights")
IMPUTERS = ("weibull", "uniform")


def censoring_km_before(time: np.ndarray, status: np.ndarray, at: np.ndarray) -> np.ndarray:
    """``G(u-)`` at each ``u`` in ``at``: Kaplan–Meier of the censoring times (status 0) just before ``u``.

    At a censoring time ``c`` the factor is ``1 - (# censored at c) / (# with time >= c)``; an event tied
    with a censoring counts as before it (the usual convention, as ``survfit`` and ``crr`` use).
    """
    cens = np.unique(time[status == 0])
    if len(cens) == 0:
        return np.ones(len(at))
    srt = np.sort(time)
    at_risk = len(time) - np.searchsorted(srt, cens, side="left")
    d = np.bincount(np.searchsorted(cens, time[status == 0]), minlength=len(cens)).astype(float)
    g_after = np.cumprod(1.0 - d / at_risk)
    k = np.searchsorted(cens, np.asarray(at, float), side="left")  # censoring times strictly before u
    return np.where(k == 0, 1.0, g_after[np.maximum(k - 1, 0)])


@dataclass
class FineGrayFit:
    """A fitted Fine–Gray model: coefficients, covariances, baseline and convergence."""

    coef: np.ndarray
    cov: np.ndarray                 # the variance asked for
    cov_fine_gray: np.ndarray       # with the censoring-estimation term (crr)
    cov_fixed_weights: np.ndarray   # weights taken as known
    information: np.ndarray
    loglik: float
    loglik_null: float
    event_times: np.ndarray         # distinct cause-1 times
    baseline_jumps: np.ndarray      # d_k / S0_k(b): Breslow jumps of the cumulative subdistribution hazard
    n: int
    iterations: int
    converged: bool

    @property
    def se(self) -> np.ndarray:
        return np.sqrt(np.diag(self.cov))

    def cumulative_incidence(self, x: np.ndarray, times: np.ndarray) -> np.ndarray:
        """``F_1(t | x) = 1 - exp(-Lambda_1(t) exp(x'b))``: rows of ``x`` by ``times`` (crr's ``predict``)."""
        lam = np.concatenate([[0.0], np.cumsum(self.baseline_jumps)])
        at = lam[np.searchsorted(self.event_times, np.asarray(times, float), side="right")]
        risk = np.exp(np.asarray(x, float) @ self.coef)
        return 1.0 - np.exp(-np.outer(risk, at))


class _Sorted:
    """The data sorted by time with the pieces every Newton step and the variance reuse."""

    def __init__(self, time: np.ndarray, status: np.ndarray, x: np.ndarray, cause: int):
        order = np.argsort(time, kind="stable")
        self.t, self.x = time[order], x[order]
        s = status[order]
        self.fail = s == cause
        self.comp = (s != cause) & (s != 0)
        self.cens = s == 0
        self.tk, self.dk = np.unique(self.t[self.fail], return_counts=True)
        self.dk = self.dk.astype(float)
        self.idx_k = np.searchsorted(self.t, self.tk, side="left")      # first subject with T >= t_k
        self.gk = censoring_km_before(self.t, s, self.tk)                  # G(t_k-)
        self.gj = censoring_km_before(self.t, s, self.t)                   # G(T_j-)
        self.k_of = np.searchsorted(self.tk, self.t, side="left")          # t_k of a failing subject
        if np.any(self.comp & (self.gj <= 0)):
            raise InputError("Fine–Gray: the censoring distribution reaches 0 before a competing event")

    def sums(self, beta: np.ndarray, second: bool = True):
        """S0_k, S1_k (K x p) and S2_k (K x p x p) over the Fine–Gray risk sets at ``beta``."""
        e = np.exp(self.x @ beta)
        ex = e[:, None] * self.x
        cw = np.where(self.comp, 1.0 / np.where(self.comp, self.gj, 1.0), 0.0)

        def at_k(v: np.ndarray) -> np.ndarray:  # sum over T_j >= t_k  +  G(t_k-) * sum over competing T_j < t_k
            rev = np.concatenate([np.cumsum(v[::-1], axis=0)[::-1], np.zeros((1, *v.shape[1:]))])
            pre = np.concatenate([np.zeros((1, *v.shape[1:])), np.cumsum(v * cw.reshape(-1, *[1] * (v.ndim - 1)),
                                                                            axis=0)])
            g = self.gk.reshape(-1, *[1] * (v.ndim - 1))
            return rev[self.idx_k] + g * pre[self.idx_k]

        s0, s1 = at_k(e), at_k(ex)
        s2 = at_k(np.einsum("j,ja,jb->jab", e, self.x, self.x)) if second else None
        return e, s0, s1, s2

    def loglik(self, beta: np.ndarray) -> float:
        _, s0, _, _ = self.sums(beta, second=False)
        return float(self.x[self.fail].sum(axis=0) @ beta - self.dk @ np.log(s0))


def fit_fine_gray(time, status, x, cause: int = 1, variance: str = "fine-gray", max_iter: int = 50,
                  tol: float = 1e-9) -> FineGrayFit:
    """Fit the Fine–Gray model of ``cause`` (status: 0 censored, ``cause``, any other value a competing event).

    Newton–Raphson from ``b = 0`` with step halving on the log pseudo-likelihood (as ``crr``), stopped when
    ``max |U_j| * max(|b_j|, 1) < tol * max(|loglik|, 1)``.
    """
    if variance not in VARIANCES:
        raise InputError(f"Fine–Gray: variance {variance!r} is not one of {', '.join(VARIANCES)}")
    t = np.asarray(time, float)
    s = np.asarray(status)
    xm = np.asarray(x, float)
    if xm.ndim == 1:
        xm = xm[:, None]
    if not (len(t) == len(s) == len(xm)):
        raise InputError(f"Fine–Gray: time, status and covariates differ in length ({len(t)}, {len(s)}, {len(xm)})")
    if not (np.isfinite(t).all() and np.isfinite(xm).all()):
        raise InputError("Fine–Gray: time and covariates must be finite (drop missing rows first)")
    if not (s == cause).any():
        raise InputError(f"Fine–Gray: no patient with status {cause}")
    d = _Sorted(t, s, xm, cause)
    p = xm.shape[1]
    beta = np.zeros(p)
    ll = ll_null = d.loglik(beta)
    converged, iterations = False, 0
    for _ in range(max_iter):
        iterations += 1
        _, s0, s1, s2 = d.sums(beta)
        xbar = s1 / s0[:, None]
        score = d.x[d.fail].sum(axis=0) - d.dk @ xbar
        info = np.einsum("k,kab->ab", d.dk, s2 / s0[:, None, None] - np.einsum("ka,kb->kab", xbar, xbar))
        if np.max(np.abs(score) * np.maximum(np.abs(beta), 1)) < tol * max(abs(ll), 1):
            converged = True
            break
        try:
            step = np.linalg.solve(info, score)
        except np.linalg.LinAlgError as err:
            raise InputError(f"Fine–Gray: singular information matrix ({err}); a covariate may be constant") from err
        for _ in range(30):
            new = d.loglik(beta + step)
            if np.isfinite(new) and new >= ll + 1e-4 * (step @ score) - 1e-12 * abs(ll):
                break
            step = step / 2
        beta, ll = beta + step, new
    e, s0, s1, s2 = d.sums(beta)
    xbar = s1 / s0[:, None]
    info = np.einsum("k,kab->ab", d.dk, s2 / s0[:, None, None] - np.einsum("ka,kb->kab", xbar, xbar))
    eta = _eta(d, e, s0, xbar)
    psi = _psi(d, e, s0, xbar)
    inv = np.linalg.inv(info)
    cov_fg = inv @ ((eta + psi).T @ (eta + psi)) @ inv
    cov_fixed = inv @ (eta.T @ eta) @ inv
    return FineGrayFit(coef=beta, cov=cov_fg if variance == "fine-gray" else cov_fixed, cov_fine_gray=cov_fg,
                       cov_fixed_weights=cov_fixed, information=info, loglik=float(d.loglik(beta)),
                       loglik_null=float(ll_null), event_times=d.tk, baseline_jumps=d.dk / s0, n=len(t),
                       iterations=iterations, converged=converged)


def _eta(d: _Sorted, e: np.ndarray, s0: np.ndarray, xbar: np.ndarray) -> np.ndarray:
    """Score residuals with fixed weights: ``d1_i (x_i - xbar(T_i)) - sum_k w_ik e_i (x_i - xbar_k) d_k / S0_k``."""
    h = d.dk / s0
    pos = np.searchsorted(d.tk, d.t, side="right")           # number of t_k <= T_i
    cum_h = np.concatenate([[0.0], np.cumsum(h)])
    cum_hx = np.vstack([np.zeros(xbar.shape[1]), np.cumsum(h[:, None] * xbar, axis=0)])
    a = h * d.gk                                             # after T_i: weight G(t_k-)/G(T_i-) for competing i
    rev_a = np.concatenate([np.cumsum(a[::-1])[::-1], [0.0]])
    rev_ax = np.vstack([np.cumsum((a[:, None] * xbar)[::-1], axis=0)[::-1], np.zeros(xbar.shape[1])])
    own = np.where(d.fail[:, None], d.x - xbar[np.minimum(d.k_of, len(d.tk) - 1)], 0.0)
    before = e[:, None] * (d.x * cum_h[pos][:, None] - cum_hx[pos])
    cw = np.where(d.comp, e / np.where(d.comp, d.gj, 1.0), 0.0)
    after = cw[:, None] * (d.x * rev_a[pos][:, None] - rev_ax[pos])
    return own - before - after


def _psi(d: _Sorted, e: np.ndarray, s0: np.ndarray, xbar: np.ndarray) -> np.ndarray:
    """The censoring-estimation term ``psi_i = q(T_i) dNc_i / Y(T_i) - sum_{c <= T_i} q(c) dNc(c) / Y(c)^2``."""
    p = xbar.shape[1]
    cens_t, d_c = np.unique(d.t[d.cens], return_counts=True)
    if len(cens_t) == 0 or not d.comp.any():
        return np.zeros((len(d.t), p))
    y_c = len(d.t) - np.searchsorted(d.t, cens_t, side="left")          # number with T >= c
    a = (d.dk / s0) * d.gk
    first = np.searchsorted(d.tk, cens_t, side="left")                  # first t_k >= c
    rev_a = np.concatenate([np.cumsum(a[::-1])[::-1], [0.0]])[first]
    rev_ax = np.vstack([np.cumsum((a[:, None] * xbar)[::-1], axis=0)[::-1], np.zeros(p)])[first]
    cw = np.where(d.comp, e / np.where(d.comp, d.gj, 1.0), 0.0)          # competing j: e_j / G(T_j-)
    pre0 = np.concatenate([[0.0], np.cumsum(cw)])
    pre1 = np.vstack([np.zeros(p), np.cumsum(cw[:, None] * d.x, axis=0)])
    before_c = np.searchsorted(d.t, cens_t, side="left")                # subjects with T_j < c
    q = pre1[before_c] * rev_a[:, None] - pre0[before_c][:, None] * rev_ax   # q(c), one row per censoring time
    comp_term = np.cumsum(q * (d_c / y_c.astype(float) ** 2)[:, None], axis=0)
    upto = np.searchsorted(cens_t, d.t, side="right")                   # censoring times <= T_i
    psi = -np.vstack([np.zeros(p), comp_term])[upto]
    at = np.searchsorted(cens_t, d.t[d.cens])
    psi[d.cens] += q[at] / y_c[at, None]
    return psi


def interval_imputer(time, status, lower, upper, cause: int = 1, seed: int = 0):
    """A function returning ``time`` with each cause-``cause`` time in ``(lower, upper]`` redrawn uniformly.

    Rows whose interval is missing or empty (an exact time) and other statuses keep ``time``.
    """
    t = np.asarray(time, float)
    s = np.asarray(status)
    lo, hi = np.asarray(lower, float), np.asarray(upper, float)
    if not (len(lo) == len(hi) == len(t)):
        raise InputError(f"interval times: lower/upper differ in length from time ({len(lo)}, {len(hi)}, {len(t)})")
    draw = (s == cause) & np.isfinite(lo) & np.isfinite(hi) & (hi > lo)
    bad = draw & ((t < lo - 1e-9) | (t > hi + 1e-9))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InputError(f"interval times: time {t[i]!r} at row {i} lies outside its interval ({lo[i]!r}, {hi[i]!r}]")
    rng = np.random.default_rng(seed)

    def one() -> np.ndarray:
        out = t.copy()
        out[draw] = hi[draw] - rng.random(int(draw.sum())) * (hi[draw] - lo[draw])  # uniform on (lo, hi]
        return out

    return one


@dataclass
class ImputedFineGray:
    """Fine–Gray pooled over completed data sets (Rubin's rules); predictions average the fits'."""

    coef: np.ndarray
    cov: np.ndarray
    within: np.ndarray      # W: mean of the fits' covariances
    between: np.ndarray     # B: covariance of the coefficients across imputations
    fits: list

    @property
    def se(self) -> np.ndarray:
        return np.sqrt(np.diag(self.cov))

    def cumulative_incidence(self, x: np.ndarray, times: np.ndarray) -> np.ndarray:
        return np.mean([f.cumulative_incidence(x, times) for f in self.fits], axis=0)


def make_imputer(kind: str, time, status, x, lower, upper, cause: int = 1, seed: int = 0):
    """A callable returning one completed ``(time, status)`` per call, from the imputer ``kind``:
    ``"weibull"`` (model-based, proper, hidden events before a competing event drawn too;
    :mod:`raoutcome.analysis.interval_imputation`) or ``"uniform"`` (:func:`interval_imputer`, times only;
    kept for comparison: its Fine–Gray estimate is attenuated)."""
    if kind == "weibull":
        from raoutcome.analysis.interval_imputation import weibull_interval_imputer

        return weibull_interval_imputer(time, status, x, lower, upper, cause=cause, seed=seed)
    if kind == "uniform":
        one, s = interval_imputer(time, status, lower, upper, cause, seed), np.asarray(status)
        return lambda: (one(), s)
    raise InputError(f"Fine–Gray: imputer {kind!r} is not one of {', '.join(IMPUTERS)}")


def fit_fine_gray_imputed(time, status, x, lower, upper, cause: int = 1, imputations: int = 10, seed: int = 0,
                          variance: str = "fine-gray", imputer: str = "weibull") -> ImputedFineGray:
    """Fine–Gray with each cause-``cause`` time known only within ``(lower, upper]`` multiply imputed.

    ``imputer="weibull"`` (default) draws each time from a Weibull PH model of the cause-specific hazard
    given the covariates, fitted to the intervals, with the model's parameters redrawn for every data
    set (proper imputation); ``"uniform"`` draws uniformly in the interval, which attenuates the
    coefficients (``docs/survival.md``). Rows whose interval is missing or empty (``upper <= lower``,
    an exact time) keep ``time``; a competing event or a censoring is recorded exactly, and a finite
    ``lower`` there is read as the last visit free of the event (with ``"weibull"``, a competing event
    after it may hide an earlier event of the cause, drawn in each data set).
    ``seed`` makes the draws reproducible. Rubin DB, *Multiple Imputation for Nonresponse in Surveys*
    (Wiley 1987).
    """
    if imputations < 2:
        raise InputError(f"Fine–Gray: imputations must be at least 2, got {imputations}")
    draw = make_imputer(imputer, time, status, x, lower, upper, cause, seed)
    fits = [fit_fine_gray(*draw(), x, cause=cause, variance=variance) for _ in range(imputations)]
    coefs = np.array([f.coef for f in fits])
    within = np.mean([f.cov for f in fits], axis=0)
    between = np.atleast_2d(np.cov(coefs, rowvar=False))
    return ImputedFineGray(coef=coefs.mean(axis=0), cov=within + (1 + 1 / imputations) * between, within=within,
                           between=between, fits=fits)


def bootstrap_fine_gray(time, status, x, lower=None, upper=None, cause: int = 1, replicates: int = 200,
                        seed: int = 0, imputer: str = "weibull") -> np.ndarray:
    """Coefficients of ``replicates`` Fine–Gray fits to patients resampled with replacement.

    The censoring distribution is re-estimated in each resample, and with ``lower``/``upper`` each
    resample's visit-found times are imputed once inside their intervals (bootstrap, then impute:
    Schomaker & Heumann, Stat Med 2018;37:2252–2266), so the spread carries every source of variability.
    ``imputer="uniform"`` draws inside each resample; ``"weibull"`` fits its model once to all patients
    and takes one proper draw (parameters redrawn from their asymptotic normal) per resample, which
    stands in for refitting it to every resample (a lifelines fit each).
    Their covariance is a variance estimate for the (imputed) Fine–Gray coefficients; resamples that do
    not fit (no event of the cause, a singular information) are dropped.
    """
    if replicates < 2:
        raise InputError(f"Fine–Gray bootstrap: replicates must be at least 2, got {replicates}")
    t = np.asarray(time, float)
    s = np.asarray(status)
    xm = np.asarray(x, float)
    xm = xm[:, None] if xm.ndim == 1 else xm
    rng = np.random.default_rng(seed)
    intervals = lower is not None and upper is not None
    once = (make_imputer(imputer, t, s, xm, lower, upper, cause, int(rng.integers(2**31)))
            if intervals and imputer == "weibull" else None)
    out = []
    for _ in range(replicates):
        i = rng.integers(0, len(t), len(t))
        ti, si = t[i], s[i]
        if once is not None:
            tf, sf = once()
            ti, si = tf[i], sf[i]
        elif intervals:
            ti, si = make_imputer(imputer, ti, si, xm[i], np.asarray(lower, float)[i], np.asarray(upper, float)[i],
                                  cause, int(rng.integers(2**31)))()
        try:
            out.append(fit_fine_gray(ti, si, xm[i], cause=cause, variance="fixed-weights").coef)
        except (InputError, np.linalg.LinAlgError):
            continue
    if len(out) < 2:
        raise InputError("Fine–Gray bootstrap: fewer than 2 resamples could be fitted")
    return np.array(out)
