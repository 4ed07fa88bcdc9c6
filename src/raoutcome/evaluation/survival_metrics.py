"""Time-to-event metrics: C-index (Harrell, Uno), time-dependent AUC, Brier / IBS, calibration.

Conventions
    ``time`` (years since the first visit, > 0 where noted), ``event`` (1 =
    observed, 0 = censored) and ``risk``: **higher risk = earlier event** (a
    hazard ratio or log-hazard, an event probability). For metrics that need
    survival probabilities, ``surv_prob`` is an ``(n, len(times))`` array of
    S(t) per patient at ``times``; :func:`survival_at` builds it from a fitted
    lifelines or scikit-survival model.

Ties and evaluation times
    The concordance-type metrics (:func:`concordance`, :func:`harrell_c`,
    :func:`uno_c`, :func:`time_dependent_auc`) depend on the risk only through
    its order, so they receive its dense ranks: two risks are tied only when
    they are equal, and every metric is invariant to a positive rescaling of
    the risk (scikit-survival's absolute ``tied_tol=1e-8`` would otherwise
    count risks of order 1e-9 as tied). Evaluation ``times`` may come in any
    order (the results follow that order; the integrated Brier score
    integrates over the sorted times), the prediction columns travel with
    their times; a repeated time is rejected.

Censoring weights
    Uno's C, the cumulative/dynamic AUC and the Brier score weight by the
    inverse probability of staying uncensored, estimated by Kaplan–Meier on
    ``train_time``/``train_event`` (the training cohort, as Uno et al. and
    scikit-survival intend). Without them the evaluated data are used. The
    evaluation ``times`` must lie inside the follow-up of the data: for
    follow-up beyond the last training time, pass ``tau`` (Uno) or earlier
    ``times``.

Calibration at a horizon
    :func:`calibration_at_horizon` is the smoothed calibration of Austin,
    Harrell & van Klaveren (Stat Med 2020) as lifelines'
    ``survival_probability_calibration`` computes it (a Royston–Parmar
    spline model of the outcome on ``cloglog`` of the predicted event
    probability), returning ICI (mean absolute predicted-minus-observed
    difference), E50 and E90 plus the curve, and no plot (figures belong to
    ``raoutcome.reporting``).
"""
from __future__ import annotations

import inspect
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from raoutcome.errors import InputError
from raoutcome.evaluation._common import as_array, check_events, complete, same_length


@dataclass(frozen=True)
class Concordance:
    """A concordance index with the pair counts behind it."""

    c_index: float
    concordant: int
    discordant: int
    tied_risk: int
    tied_time: int
    n: int
    method: str


@dataclass(frozen=True)
class TimeDependentAUC:
    """Cumulative/dynamic AUC at each time and its mean over the times (weighted by S(t))."""

    times: np.ndarray
    auc: np.ndarray
    mean_auc: float


@dataclass(frozen=True)
class Calibration:
    """Smoothed calibration of predicted event probabilities at ``horizon``."""

    horizon: float
    ici: float
    e50: float
    e90: float
    n: int
    predicted: np.ndarray = field(repr=False)  # grid of predicted probabilities
    observed: np.ndarray = field(repr=False)   # smoothed observed probability at each grid point


def _surv(time: np.ndarray, event: np.ndarray) -> np.ndarray:
    from sksurv.util import Surv

    return Surv.from_arrays(event=event, time=time)


def _survival_data(time: ArrayLike, event: ArrayLike, *extra: tuple[str, ArrayLike], min_n: int = 2
                   ) -> tuple[np.ndarray, ...]:
    named = {"time": time, "event": event, **dict(extra)}
    arrays = complete(min_n=min_n, **named)
    t, e = arrays[0], check_events(arrays[1])
    if np.any(t < 0):
        i = int(np.flatnonzero(t < 0)[0])
        raise InputError(f"time: value {float(t[i])!r} at complete row {i} is negative")
    return (t, e, *arrays[2:])


def _train(train_time: ArrayLike | None, train_event: ArrayLike | None, t: np.ndarray, e: np.ndarray
           ) -> np.ndarray:
    if (train_time is None) != (train_event is None):
        raise InputError("give both train_time and train_event, or neither")
    if train_time is None:
        return _surv(t, e)
    tt, te = _survival_data(train_time, train_event)
    return _surv(tt, te)


def _ranks(risk: np.ndarray) -> np.ndarray:
    """Dense ranks of ``risk`` (per column for a 2-D array): order kept, equal only when equal.

    Concordance and the cumulative/dynamic AUC depend on the risk through its
    order alone; ranks spare them scikit-survival's absolute tie tolerance.
    """
    from scipy.stats import rankdata

    return rankdata(risk, method="dense", axis=0).astype(np.float64)


def _sorted_grid(grid: np.ndarray, name: str = "times") -> tuple[np.ndarray, np.ndarray]:
    """``(sorted times, order)`` with ``grid[order]`` increasing; a repeated time is an error."""
    order = np.argsort(grid, kind="stable")
    ordered = grid[order]
    same = np.flatnonzero(np.diff(ordered) == 0)
    if len(same):
        raise InputError(f"{name}: time {float(ordered[same[0]])!r} is given more than once")
    return ordered, order


def _sksurv_call(fn, *args, **kwargs):
    """Call a scikit-survival metric; its complaints about the data become InputError."""
    try:
        return fn(*args, **kwargs)
    except ValueError as err:
        hint = ""
        if "censoring survival function is zero" in str(err):
            hint = (" - an event falls at or after the last censoring time of the training data;"
                    " evaluate up to an earlier time (tau / times)")
        raise InputError(f"{fn.__name__}: {err}{hint}") from err


def concordance(time: ArrayLike, event: ArrayLike, risk: ArrayLike) -> Concordance:
    """Harrell's C with pair counts (scikit-survival ``concordance_index_censored``)."""
    from sksurv.metrics import concordance_index_censored

    t, e, r = _survival_data(time, event, ("risk score", risk))
    if not e.any():
        raise InputError("concordance: no observed event, so no comparable pair")
    c, conc, disc, tr, tt = _sksurv_call(concordance_index_censored, e, t, _ranks(r))
    return Concordance(float(c), int(conc), int(disc), int(tr), int(tt), len(t), "harrell")


def harrell_c(time: ArrayLike, event: ArrayLike, risk: ArrayLike) -> float:
    """Harrell's concordance index (ties in risk count 1/2).

    lifelines' O(n log n) ``concordance_index`` (given ``-risk``, as it expects
    survival-time-like scores); equal to :func:`concordance`, which also counts
    the pairs, and several times faster inside a bootstrap.
    """
    from lifelines.utils import concordance_index

    t, e, r = _survival_data(time, event, ("risk score", risk))
    if not e.any():
        raise InputError("harrell_c: no observed event, so no comparable pair")
    try:
        return float(concordance_index(t, -_ranks(r), e))
    except ZeroDivisionError as err:  # lifelines: no admissible pair
        raise InputError("harrell_c: no comparable pair") from err


def uno_c(time: ArrayLike, event: ArrayLike, risk: ArrayLike, tau: float | None = None,
          train_time: ArrayLike | None = None, train_event: ArrayLike | None = None) -> float:
    """Uno's IPCW concordance index up to ``tau`` (scikit-survival ``concordance_index_ipcw``)."""
    from sksurv.metrics import concordance_index_ipcw

    t, e, r = _survival_data(time, event, ("risk score", risk))
    if not e.any():
        raise InputError("uno_c: no observed event, so no comparable pair")
    train = _train(train_time, train_event, t, e)
    return float(_sksurv_call(concordance_index_ipcw, train, _surv(t, e), _ranks(r), tau=tau)[0])


def time_dependent_auc(time: ArrayLike, event: ArrayLike, risk: ArrayLike, times: ArrayLike,
                       train_time: ArrayLike | None = None, train_event: ArrayLike | None = None
                       ) -> TimeDependentAUC:
    """Cumulative/dynamic AUC at ``times`` (scikit-survival ``cumulative_dynamic_auc``).

    ``risk`` is one score per patient, or an ``(n, len(times))`` array of
    time-specific risks (e.g. 1 - S(t)). A time with no event up to it (no case)
    or no patient event-free after it (no control) has no AUC: NaN there, and
    the mean is NaN too; InputError when no time has an AUC.
    """
    from sksurv.metrics import cumulative_dynamic_auc

    given = as_array(times, "times")
    grid, order = _sorted_grid(given)
    if np.ndim(risk) == 2:
        t, e, est = _with_matrix(time, event, risk, given, "risk score")
        est = est[:, order]
    else:
        t, e, est = _survival_data(time, event, ("risk score", risk))
    est = _ranks(est)
    train = _train(train_time, train_event, t, e)
    # Past the last evaluation time a patient can only be a control, whatever happened to
    # them later; censoring those later events leaves every AUC and the mean unchanged and
    # spares scikit-survival an inverse weight it cannot compute (G = 0 at the last time).
    late = e & (t > grid.max())
    e_eval = e & ~late
    # AUC(t) needs a case (event by t) and a control (still event-free after t); without one it
    # is 0/0 (a bootstrap resample may hold no event before the first time). Such times get NaN
    # (a bootstrap counts the resample as failed for them), and so does the mean over the times.
    defined = (((t[:, None] <= grid[None, :]) & e_eval[:, None]).any(axis=0)
               & (t[:, None] > grid[None, :]).any(axis=0))
    if not ((grid >= t.min()) & (grid < t.max())).all():
        defined[:] = True  # a time outside the follow-up: scikit-survival's own error says so
    if not defined.any():
        raise InputError(f"time_dependent_auc: no time in {[float(g) for g in given]} has both an event by it "
                         "and a patient still event-free after it: AUC undefined")
    auc = np.full(len(grid), np.nan)
    sub = est[:, defined] if est.ndim == 2 else est
    part, mean_auc = _sksurv_call(cumulative_dynamic_auc, train, _surv(t, e_eval), sub, grid[defined])
    auc[defined] = np.asarray(part, dtype=float)
    back = np.empty_like(auc)
    back[order] = auc  # results in the order the times were given
    return TimeDependentAUC(times=given, auc=back, mean_auc=float(mean_auc) if defined.all() else float("nan"))


def mean_time_dependent_auc(time: ArrayLike, event: ArrayLike, risk: ArrayLike, times: ArrayLike,
                            train_time: ArrayLike | None = None, train_event: ArrayLike | None = None) -> float:
    """The mean of :func:`time_dependent_auc` alone (for the bootstrap)."""
    return time_dependent_auc(time, event, risk, times, train_time, train_event).mean_auc


def _with_matrix(time: ArrayLike, event: ArrayLike, matrix: ArrayLike, times: np.ndarray, name: str
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    m = np.asarray(matrix, dtype=np.float64)
    t0, e0 = as_array(time, "time"), as_array(event, "event")
    same_length({"time": t0, "event": e0, name: m[:, 0] if m.ndim == 2 else m})
    if m.ndim != 2 or m.shape[1] != len(times):
        raise InputError(f"{name}: expected shape (n, {len(times)}) for {len(times)} time(s), got {m.shape}")
    keep = np.isfinite(t0) & np.isfinite(e0) & np.isfinite(m).all(axis=1)
    t, e = _survival_data(t0[keep], e0[keep])
    return t, e, m[keep]


def brier_scores(time: ArrayLike, event: ArrayLike, surv_prob: ArrayLike, times: ArrayLike,
                 train_time: ArrayLike | None = None, train_event: ArrayLike | None = None) -> pd.Series:
    """IPCW Brier score at each time (scikit-survival ``brier_score``), indexed by time."""
    from sksurv.metrics import brier_score

    given = as_array(times, "times")
    grid, order = _sorted_grid(given)
    t, e, s = _with_matrix(time, event, surv_prob, given, "surv_prob")
    train = _train(train_time, train_event, t, e)
    _, scores = _sksurv_call(brier_score, train, _surv(t, e), s[:, order], grid)
    back = np.empty(len(grid))
    back[order] = np.asarray(scores, dtype=float)  # in the order the times were given
    return pd.Series(back, index=pd.Index(given, name="time"), name="brier")


def integrated_brier(time: ArrayLike, event: ArrayLike, surv_prob: ArrayLike, times: ArrayLike,
                     train_time: ArrayLike | None = None, train_event: ArrayLike | None = None) -> float:
    """Integrated Brier score over ``times`` (scikit-survival ``integrated_brier_score``; lower is better)."""
    from sksurv.metrics import integrated_brier_score

    given = as_array(times, "times")
    if len(given) < 2:
        raise InputError("integrated_brier: need at least 2 time points")
    grid, order = _sorted_grid(given)
    t, e, s = _with_matrix(time, event, surv_prob, given, "surv_prob")
    train = _train(train_time, train_event, t, e)
    return float(_sksurv_call(integrated_brier_score, train, _surv(t, e), s[:, order], grid))


def survival_at(model, X, times: ArrayLike) -> np.ndarray:
    """S(t) at ``times`` for each row of ``X`` from a fitted lifelines or scikit-survival model.

    Returns an ``(n, len(times))`` array for :func:`integrated_brier`,
    :func:`brier_scores` and (as ``1 - S``) :func:`time_dependent_auc`.
    """
    grid = as_array(times, "times")
    predict = getattr(model, "predict_survival_function", None)
    if predict is None:
        raise InputError(f"{type(model).__name__} has no predict_survival_function")
    if "times" in inspect.signature(predict).parameters:  # lifelines: DataFrame, times x subjects
        return np.asarray(predict(X, times=grid), dtype=np.float64).T
    functions = predict(X)  # scikit-survival: one StepFunction per subject
    try:
        return np.vstack([fn(grid) for fn in functions]).astype(np.float64)
    except ValueError as err:
        raise InputError(f"survival_at: times outside the model's time range ({err})") from err


def calibration_at_horizon(time: ArrayLike, event: ArrayLike, event_prob: ArrayLike, horizon: float,
                           n_grid: int = 100) -> Calibration:
    """ICI / E50 / E90 of predicted P(event by ``horizon``) against a smoothed observed curve."""
    from lifelines import CRCSplineFitter

    t, e, p = _survival_data(time, event, ("event_prob", event_prob), min_n=10)
    if np.any(t <= 0):
        i = int(np.flatnonzero(t <= 0)[0])
        raise InputError(f"calibration_at_horizon: time {float(t[i])!r} at complete row {i} must be > 0")
    if np.any((p < 0) | (p > 1)):
        i = int(np.flatnonzero((p < 0) | (p > 1))[0])
        raise InputError(f"event_prob: value {float(p[i])!r} at complete row {i} is not a probability")
    if not e.any():
        raise InputError("calibration_at_horizon: no observed event")
    p = np.clip(p, 1e-10, 1 - 1e-10)
    frame = pd.DataFrame({"cll": _cloglog(p), "T": t, "E": e.astype(int)})
    fitter = CRCSplineFitter(n_baseline_knots=3, penalizer=1e-6)
    regressors = {"beta_": ["cll"], "gamma0_": "1", "gamma1_": "1", "gamma2_": "1"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            fitter.fit_right_censoring(frame, "T", "E", regressors=regressors)
        except Exception as err:  # noqa: BLE001 - lifelines raises many kinds on degenerate data
            raise InputError(f"calibration_at_horizon: smoother did not converge ({err})") from err

        def observed(probs: np.ndarray) -> np.ndarray:
            grid_frame = pd.DataFrame({"cll": _cloglog(probs)})
            return 1 - np.asarray(fitter.predict_survival_function(grid_frame, times=[horizon]), float)[0]

        delta = np.abs(observed(p) - p)
        grid = np.linspace(max(p.min() - 0.01, 1e-10), min(p.max() + 0.01, 1 - 1e-10), n_grid)
        curve = observed(grid)
    return Calibration(horizon=float(horizon), ici=float(delta.mean()), e50=float(np.percentile(delta, 50)),
                       e90=float(np.percentile(delta, 90)), n=len(t), predicted=grid, observed=curve)


def _cloglog(p: np.ndarray) -> np.ndarray:
    return np.log(-np.log(1 - p))
