"""Tests of added Cox covariates beyond the likelihood ratio: Wald, score and their robust (Lin–Wei) forms.

The likelihood-ratio test of ``added`` beyond ``base`` relies on the Cox
model being right; regression calibration (``beyond_damage``) makes it only
approximately right, and with few events per parameter its χ² is inflated
in small samples. This module gives, from the same two Breslow fits of
:func:`~raoutcome.analysis.cox_newton.fit_cox`, the other classical tests
of ``H0: γ = 0`` (γ the coefficients of ``added``; β those of ``base``):

* Wald ``γ̂' [I⁻¹(β̂, γ̂)]_γγ⁻¹ γ̂`` and score ``U_γ' [I⁻¹(β̂₀, 0)]_γγ U_γ``
  (the score evaluated at the base fit, where ``U_β = 0``);
* **robust** (sandwich) forms (Lin & Wei, JASA 1989, 84:1074–1078): with the
  score residuals ``W_i`` of Breslow's likelihood (Therneau & Grambsch,
  *Modeling Survival Data*, 2000, §4.5 and §7.2)::

      W_i = δ_i (x_i − x̄(T_i)) − Σ_{events j: T_j ≤ T_i} e^{x_i'β} / S₀(T_j) · (x_i − x̄(T_j)),

  the robust Wald test uses ``V = I⁻¹ (Σ W_i W_i') I⁻¹`` at the full fit
  (lifelines ``robust=True``, statsmodels ``PHReg`` ``cov_type="robust"``),
  and the robust score test ``U_γ' (Σ W̃_i W̃_i')⁻¹ U_γ`` at the base fit with
  the efficient score residuals ``W̃_i = W_iγ − I_γβ I_ββ⁻¹ W_iβ``.
  Both are valid when the model's variance is wrong (misspecified hazard,
  measurement error); the score forms need no fit of the bigger model's
  γ, which in small samples is the unstable part.

All statistics are χ² with ``len(added)`` df. Validated in
tests/test_cox_tests.py (score test = log-rank test for one binary covariate;
score residuals and robust covariance against lifelines and statsmodels).
"""
from __future__ import annotations

__all__ = ["COX_TESTS", "CoxTests", "cox_tests", "score_residuals", "score_and_information"]

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

from raoutcome.analysis.cox_newton import _risk_set_ends, fit_cox
from raoutcome.errors import InputError

#: the tests :func:`cox_tests` returns, by name
COX_TESTS = ("lrt", "wald", "score", "robust_wald", "robust_score")


@dataclass(frozen=True)
class CoxTests:
    """χ² statistics (``statistics[name]``) and p-values of the tests in :data:`COX_TESTS`; both fits'
    log partial likelihoods and the added coefficients (per original unit)."""

    statistics: dict
    p_values: dict
    df: int
    ll_base: float
    ll_full: float
    coef_added: np.ndarray
    events: int


def score_and_information(x: ArrayLike, time: ArrayLike, event: ArrayLike,
                          beta: ArrayLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Score ``U(β)``, observed information ``I(β)`` and score residuals ``W`` (n × p, input row order)
    of Breslow's partial likelihood at ``beta`` (the formulas in the module docstring)."""
    x = np.asarray(x, float)
    x = x.reshape(len(x), -1)
    t, e = np.asarray(time, float), np.asarray(event, bool)
    beta = np.asarray(beta, float).reshape(-1)
    if not (len(x) == len(t) == len(e)) or x.shape[1] != len(beta):
        raise InputError("Cox score: covariates, times, events and coefficients do not match in size")
    order = np.argsort(-t, kind="mergesort")
    z = x[order] - x.mean(axis=0)  # centring changes none of U, I, W and keeps exp() in range
    ts, es = t[order], e[order]
    ends = _risk_set_ends(ts)
    starts = np.searchsorted(-ts, -ts, side="left")
    eta = z @ beta
    w = np.exp(eta - eta.max())
    s0 = np.cumsum(w)[ends]
    xbar = np.cumsum(w[:, None] * z, axis=0)[ends] / s0[:, None]
    score = (z[es] - xbar[es]).sum(axis=0)
    inv = np.where(es, 1.0 / s0, 0.0)  # dΛ₀ at each event (scaled like w)
    a = np.cumsum(inv[::-1])[::-1][starts]  # Σ over events j with T_j ≤ T_i of 1/S₀(T_j)
    b = np.cumsum((inv[:, None] * xbar)[::-1], axis=0)[::-1][starts]  # the same of x̄(T_j)/S₀(T_j)
    resid = np.where(es[:, None], z - xbar, 0.0) - w[:, None] * (a[:, None] * z - b)
    m1 = xbar[es]
    info = (z * (w * a)[:, None]).T @ z - m1.T @ m1
    out = np.empty_like(resid)
    out[order] = resid
    return score, info, out


def score_residuals(x: ArrayLike, time: ArrayLike, event: ArrayLike, beta: ArrayLike) -> np.ndarray:
    """Score residuals ``W_i`` (n × p) of Breslow's partial likelihood at ``beta``; they sum to the score."""
    return score_and_information(x, time, event, beta)[2]


def _quadratic(v: np.ndarray, m: np.ndarray) -> float:
    """``v' M⁻¹ v`` (M symmetric positive definite; least squares if it is nearly singular)."""
    try:
        return float(v @ np.linalg.solve(m, v))
    except np.linalg.LinAlgError:
        return float(v @ np.linalg.lstsq(m, v, rcond=None)[0])


def cox_tests(base: ArrayLike, added: ArrayLike, time: ArrayLike, event: ArrayLike) -> CoxTests:
    """The tests of :data:`COX_TESTS` of the ``added`` columns (n × q) in a Cox model holding ``base`` (n × p,
    may have 0 columns). Breslow's likelihood (Efron's when no two events share a time). Raises
    :class:`InputError` when a fit does not converge or its information is singular."""
    t, e = np.asarray(time, float), np.asarray(event, bool)
    xb = np.asarray(base, float).reshape(len(t), -1)
    xa = np.asarray(added, float).reshape(len(t), -1)
    p, q = xb.shape[1], xa.shape[1]
    x = np.column_stack([xb, xa])
    full = fit_cox(x, t, e)
    reduced = fit_cox(xb, t, e) if p else None
    if not full.converged or (reduced is not None and not reduced.converged):
        raise InputError("Cox tests: a fit did not converge")
    ll0 = reduced.log_likelihood if reduced is not None else full.log_likelihood_null
    g = slice(p, p + q)
    stat = {"lrt": max(0.0, 2.0 * (full.log_likelihood - ll0))}
    gamma = full.params[g]
    stat["wald"] = _quadratic(gamma, full.covariance[g, g])
    # robust Wald: sandwich I⁻¹ (W'W) I⁻¹ at the full fit
    _, info_full, w_full = score_and_information(x, t, e, full.params)
    inv_full = np.linalg.inv(info_full)
    sandwich = inv_full @ (w_full.T @ w_full) @ inv_full
    stat["robust_wald"] = _quadratic(gamma, sandwich[g, g])
    # score tests at the base fit (β̂₀, 0)
    beta0 = np.concatenate([reduced.params if reduced is not None else np.zeros(0), np.zeros(q)])
    u, info0, w0 = score_and_information(x, t, e, beta0)
    stat["score"] = float(u[g] @ np.linalg.inv(info0)[g, g] @ u[g])
    if p:
        proj = info0[g, :p] @ np.linalg.inv(info0[:p, :p])  # I_γβ I_ββ⁻¹
        eff = w0[:, g] - w0[:, :p] @ proj.T
    else:
        eff = w0[:, g]
    stat["robust_score"] = _quadratic(u[g], eff.T @ eff)
    pvals = {k: float(stats.chi2.sf(v, q)) for k, v in stat.items()}
    return CoxTests(statistics=stat, p_values=pvals, df=q, ll_base=ll0, ll_full=full.log_likelihood,
                    coef_added=gamma, events=int(e.sum()))
