"""Craniocervical deformity predicted from baseline images: MR alone, radiograph alone, and both.

Per feature set, on the training patients only:

1. an image score: L2-penalised logistic regression (``sklearn.linear_model.LogisticRegressionCV``, penalty
   chosen by 5-fold CV on AUROC) of "deformity found by the horizon" on the standardised baseline features
   (patients censored before the horizon left out). The training patients' scores are cross-fitted
   (5 folds: each patient scored by a model that never saw them), so step 2 does not see an overfitted score.
   Every model's scores are standardised by its own training scores (``(f(x) - mean) / SD`` over the
   patients it was fitted on): each fold picks its own penalty and intercept, and where the CV's AUROC is
   flat it can pick a far stronger penalty than the final model, so raw decision values of the folds (on which
   the Weibull model and the thresholds are fitted) and of the final model (held-out) were on different
   scales (seen on the held-out seed of the cervical study: final radiograph score SD 0.02 against fold
   scores of SD ~0.4, every held-out probability below the training thresholds);
2. the event model on that score: the interval-censored Weibull model
   (:class:`raoutcome.analysis.interval_censored.IntervalWeibullModel`: the deformity lies between the last
   visit without it and the first with it) gives ``P(deformity by horizon | score) = 1 - S(h | score)``;
   a cause-specific Cox model with death as the competing event
   (:class:`raoutcome.analysis.competing_risks.CauseSpecificCox`) gives the score's hazard ratio;
3. the decision threshold on that probability, from the cross-fitted training probabilities: the one with the
   highest training accuracy (``accuracy``, specified first), and the one that predicts as many positives as
   there were training events by the horizon (``prevalence``; added after the accuracy rule predicted no
   positive at all for weak scores: with a 15 % prevalence, maximal accuracy is often "nobody").

On the held-out patients: accuracy, PPV, NPV, sensitivity, specificity and AUROC of the thresholded
probability for "found by the horizon" (seeds/004's metrics: 0.84 / 0.56 / 0.92), the interval-censored
C-index (:func:`raoutcome.analysis.interval_censored.interval_c_index`), Wolbers' competing-risk C and the
cumulative/dynamic time-dependent AUC at the horizon with death as a competing event
(:func:`raoutcome.analysis.competing_risks.competing_auc`), each with a patient bootstrap 95 % CI; the
calibration of the horizon probability (ICI, :func:`raoutcome.evaluation.survival_metrics.calibration_at_horizon`).

Features: radiograph — the detected-landmark measures of the baseline neutral and flexion views (ADI, SAC,
Ranawat, basion–dens interval, facet gap, flexion - neutral ADI); MR — aligned slab block means of T1 and T2
(:class:`raoutcome.imaging.mr_features.MRFeaturizer`); both — the MR and radiograph scores side by side
(stacked: the training scores are the cross-fitted ones; Wolpert 1992). On the training seed, 5-fold AUROC of
the MR score: L2 on all block means 0.73, PCA(10) 0.58, PCA(30) 0.68, mid-sagittal slab only 0.70, L1 0.72. ``truth`` — the baseline
latents the simulator drew (pannus, facet degeneration, erosion, laxity, visible activity): the ceiling an
image model could reach (the unseen frailty is in nobody's reach).
"""
from __future__ import annotations

__all__ = ["FEATURE_SETS", "event_table", "radiograph_features", "mr_features", "fit_predict", "evaluate",
           "horizon_status"]

import warnings
from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd

from raoutcome.errors import InputError

FEATURE_SETS: tuple[str, ...] = ("mr", "radiograph", "both")
XR_MEASURES = ("adi_mm", "sac_mm", "ranawat_mm", "bdi_mm", "facet_gap_mm")


def event_table(cohort_dir: str | Path) -> pd.DataFrame:
    """Per patient: the deformity's ``time, observed, lower, upper`` and the competing-risk ``status``
    (1 deformity found, 2 death first, 0 censored) at ``cr_time``."""
    from raoutcome.analysis.competing_risks import competing_status
    from raoutcome.analysis.interval_censored import interval_bounds

    ev = pd.read_csv(Path(cohort_dir) / "events.csv")
    d = ev[ev["event"] == "deformity"].reset_index(drop=True)
    if d.empty:
        raise InputError(f"{cohort_dir}/events.csv: no 'deformity' rows")
    lo, hi = interval_bounds(d)
    out = pd.DataFrame({"patient_id": d["patient_id"], "time": d["time_years"].astype(float),
                        "observed": d["observed"].astype(int), "lower": lo, "upper": hi})
    cr = competing_status(ev).rename(columns={"time": "cr_time", "status": "status"})
    return out.merge(cr, on="patient_id", how="left")


def horizon_status(events: pd.DataFrame, horizon: float) -> tuple[np.ndarray, np.ndarray]:
    """``(label, known)``: deformity found by ``horizon`` (1), known free at the horizon (0)."""
    t, o = events["time"].to_numpy(float), events["observed"].to_numpy(int)
    pos = (o == 1) & (t <= horizon)
    neg = t > horizon
    return pos.astype(int), pos | neg


def radiograph_features(measured: pd.DataFrame, visit: str = "v0") -> pd.DataFrame:
    """Per patient (index) the baseline measures of the neutral and flexion views and the flexion - neutral ADI."""
    m = measured[measured["visit_id"] == visit]
    wide = {}
    for view, short in (("cervical_neutral", "n"), ("cervical_flexion", "f")):
        v = m[m["view"] == view].set_index("patient_id")
        for col in XR_MEASURES:
            wide[f"{col}_{short}"] = v[col]
    out = pd.DataFrame(wide)
    out["adi_delta"] = out["adi_mm_f"] - out["adi_mm_n"]
    return out


def mr_features(cohort_dir: str | Path, patients: list[str], featurizer=None, visit: str = "v0",
                table: str = "images.csv") -> tuple[pd.DataFrame, object]:
    """Per patient the aligned slab block means of the baseline T1 and T2 volumes; fits ``featurizer``
    (one per contrast) when it is None (training), else reuses it (held-out). ``table``: the image list
    (``prior_images.csv`` for the visits before baseline)."""
    from raoutcome.imaging.mr_features import MRFeaturizer

    images = pd.read_csv(Path(cohort_dir) / table)
    images = images[images["visit_id"] == visit].set_index(["patient_id", "view"])["path"]
    fitted = {} if featurizer is None else dict(featurizer)
    parts = []
    for contrast in ("t1", "t2"):
        vols = []
        for pid in patients:
            key = (pid, f"cervical_mr_{contrast}")
            if key not in images.index:
                raise InputError(f"{cohort_dir}/{table}: patient {pid} has no {contrast.upper()} MR series at "
                                 f"visit {visit}")
            vols.append(MRFeaturizer.read(Path(cohort_dir) / images.loc[key]))
        f = fitted.get(contrast) or MRFeaturizer().fit(vols)
        fitted[contrast] = f
        x = f.transform(vols)
        parts.append(pd.DataFrame(x, index=patients, columns=[f"{contrast}_{i}" for i in range(x.shape[1])]))
    return pd.concat(parts, axis=1), fitted


def _logistic(seed: int):
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegressionCV(Cs=np.logspace(-4, 1, 11), cv=5, scoring="roc_auc",
                                                                max_iter=2000, random_state=seed))


def _standard_score(model, x_fit: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``model``'s decision values on ``x`` in units of its own training scores: ``(f(x) - m) / s`` with ``m``,
    ``s`` the mean and SD of ``f`` over ``x_fit`` (the rows it was fitted on)."""
    ref = _score(model, x_fit)
    sd = float(ref.std())
    return (_score(model, x) - float(ref.mean())) / (sd if sd > 0 else 1.0)


def _score(model, x: np.ndarray) -> np.ndarray:
    return model.decision_function(x)


def fit_predict(train_x: pd.DataFrame, train_ev: pd.DataFrame, test_x: pd.DataFrame, horizon: float,
                seed: int = 0) -> dict:
    """Fit the score, the event models and the threshold on training patients; predict the held-out ones.

    ``*_x``: features indexed by patient; ``*_ev``: :func:`event_table` rows (``patient_id`` column).
    Returns ``train`` / ``test`` frames (patient_id, score, prob) and the fitted ``weibull``, ``cs_cox``,
    ``thresholds`` (``accuracy`` and ``prevalence`` rules; ``threshold`` is the accuracy one).
    """
    from sklearn.model_selection import StratifiedKFold

    from raoutcome.analysis.competing_risks import CauseSpecificCox
    from raoutcome.analysis.interval_censored import IntervalWeibullModel

    ev = train_ev.set_index("patient_id").loc[train_x.index]
    label, known = horizon_status(ev, horizon)
    x = train_x.to_numpy(float)
    xk, yk = x[known], label[known]
    if yk.sum() < 5 or (1 - yk).sum() < 5:
        raise InputError(f"training patients: {int(yk.sum())} found by the horizon, {int((1 - yk).sum())} free; "
                         "need at least 5 of each")
    oof = np.full(len(x), np.nan)
    folds = StratifiedKFold(5, shuffle=True, random_state=seed)
    idx_known = np.flatnonzero(known)
    with warnings.catch_warnings():  # scikit-learn 1.8+ announces LogisticRegressionCV attribute changes
        warnings.simplefilter("ignore", FutureWarning)
        for tr, te in folds.split(xk, yk):
            fold = _logistic(seed).fit(xk[tr], yk[tr])
            oof[idx_known[te]] = _standard_score(fold, xk[tr], xk[te])
        final = _logistic(seed).fit(xk, yk)
    # patients censored before the horizon: scored by the model fitted on all the known ones
    oof[~known] = _standard_score(final, xk, x[~known])
    tr_frame = pd.DataFrame({"patient_id": train_x.index, "score": oof, "time_lower": ev["lower"].to_numpy(),
                             "time_upper": np.where(np.isfinite(ev["upper"]), ev["upper"], np.nan),
                             "time": ev["cr_time"].to_numpy(float), "status": ev["status"].to_numpy(int)})
    weib = IntervalWeibullModel(["score"]).fit(tr_frame)
    cs = CauseSpecificCox(["score"]).fit(tr_frame)
    tr_frame["prob"] = 1.0 - weib.predict_survival(tr_frame, [horizon])[:, 0]
    pk = tr_frame.loc[known, "prob"].to_numpy()
    grid = np.unique(np.round(pk, 4))
    acc = [np.mean((pk >= g) == (yk == 1)) for g in grid]
    thresholds = {"accuracy": float(grid[int(np.argmax(acc))]),
                  # as many predicted positives as training events by the horizon
                  "prevalence": float(np.quantile(pk, 1.0 - yk.mean(), method="higher"))}
    te_frame = pd.DataFrame({"patient_id": test_x.index, "score": _standard_score(final, xk, test_x.to_numpy(float))})
    te_frame["prob"] = 1.0 - weib.predict_survival(te_frame, [horizon])[:, 0]
    return {"train": tr_frame, "test": te_frame, "weibull": weib, "cs_cox": cs, "threshold": thresholds["accuracy"],
            "thresholds": thresholds, "logistic": final}


def evaluate(pred: pd.DataFrame, events: pd.DataFrame, horizon: float, threshold: float, n_boot: int = 1000,
             seed: int = 0) -> dict[str, Mapping]:
    """Held-out metrics with patient-bootstrap 95 % CIs: accuracy, PPV, NPV, sensitivity, specificity,
    AUROC at the horizon; interval-censored C; competing-risk C and td-AUC at the horizon; calibration ICI."""
    from raoutcome.analysis.competing_risks import competing_auc, competing_c_index
    from raoutcome.analysis.interval_censored import interval_c_index
    from raoutcome.evaluation.bootstrap import bootstrap_metrics
    from raoutcome.evaluation.classification import auroc_score

    j = pred.merge(events, on="patient_id", how="inner")
    label, known = horizon_status(j, horizon)
    p = j["prob"].to_numpy(float)
    lo, hi = j["lower"].to_numpy(float), j["upper"].to_numpy(float)
    cr_t, cr_s = j["cr_time"].to_numpy(float), j["status"].to_numpy(int)
    kn = known.astype(float)

    def rates(y, k, q) -> dict[str, float]:
        yy, pp = y[k == 1] == 1, q[k == 1] >= threshold
        tp, fp = np.sum(yy & pp), np.sum(~yy & pp)
        tn, fn = np.sum(~yy & ~pp), np.sum(yy & ~pp)
        r = lambda a, b: float(a / b) if b else float("nan")  # noqa: E731
        return {"accuracy": r(tp + tn, len(yy)), "ppv": r(tp, tp + fp), "npv": r(tn, tn + fn),
                "sensitivity": r(tp, tp + fn), "specificity": r(tn, tn + fp)}

    def rate(name: str):
        return lambda y, k, q, *_: rates(y, k, q)[name]

    metrics = {name: rate(name) for name in ("accuracy", "ppv", "npv", "sensitivity", "specificity")}
    metrics.update({
        "auroc": lambda y, k, q, *_: auroc_score(y[k == 1], q[k == 1]),
        "c_interval": lambda y, k, q, a, b, *_: interval_c_index(a, b, q),
        "c_competing": lambda y, k, q, a, b, t, s: competing_c_index(t, s, q),
        "td_auc": lambda y, k, q, a, b, t, s: float(competing_auc(t, s, q, [horizon])[0]),
    })
    res = bootstrap_metrics(metrics, label, kn, p, lo, hi, cr_t, cr_s, n_boot=n_boot, seed=seed, progress=False)
    out: dict[str, Mapping] = {k: {"estimate": r.estimate, "ci_low": r.ci_low, "ci_high": r.ci_high}
                               for k, r in res.items()}
    out["counts"] = {"n": int(len(j)), "n_known": int(known.sum()), "events_by_horizon": int(label.sum()),
                     "positive_predictions": int(np.sum(p[known] >= threshold)), "threshold": threshold}
    try:
        from raoutcome.evaluation.survival_metrics import calibration_at_horizon

        cal = calibration_at_horizon(np.maximum(j["time"].to_numpy(float), 1e-3), j["observed"].to_numpy(int), p,
                                     horizon)
        out["calibration"] = {"ici": cal.ici, "e50": cal.e50, "e90": cal.e90,
                              "mean_predicted": float(p.mean()), "observed_by_horizon": float(label[known].mean())}
    except InputError as err:
        out["calibration"] = {"error": str(err)}
    return out
