"""Survival analyses chosen by how the events were observed, plus dynamic prediction and calibration.

:func:`observed_survival` is what ``raoutcome analyze`` runs after its Cox models (stage
"observed events"); it looks at the events table and says which models it used:

* interval columns (``time_lower``/``time_upper``, docs/manifest.md) with a real interval →
  interval-censored Weibull PH models without and with the image score (hazard ratios per SD, the
  likelihood-ratio test of the image score beyond SvdH + covariates) and the interval C-index of
  cross-validated risks (:mod:`raoutcome.analysis.interval_censored`);
* an observed ``death`` event → competing risks: Aalen–Johansen cumulative incidence by image-risk
  tertile, cause-specific Cox and Fine–Gray, Wolbers' C and the cause-specific AUC
  (:mod:`raoutcome.analysis.competing_risks`), and calibration of the cross-validated Fine–Gray
  cumulative incidence at each horizon (risk groups against Aalen–Johansen, smoothed curve, ICI;
  Austin et al. 2022, :mod:`raoutcome.evaluation.cif_calibration`);
* always: landmark Cox models at 1 and 2 years and the time-varying Cox model used for prediction
  (cross-validated AUC per landmark) with the look-ahead check (:mod:`raoutcome.analysis.landmark`),
  and calibration at 1/2/5 years (those inside follow-up) of every survival model: smoothed
  calibration curve, ICI, E50, E90 (Austin et al. 2020) and D-calibration (Haider et al. 2020), from
  cross-validated predictions.
"""
from __future__ import annotations

__all__ = ["ObservedSurvival", "observed_survival"]

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd

from raoutcome.analysis.competing_risks import (DEATH, CauseSpecificCox, FineGray, competing_auc, competing_c_index,
                                                competing_status, cumulative_incidence, has_competing)
from raoutcome.analysis.features import DURATION, OBSERVED
from raoutcome.analysis.interval_censored import IntervalWeibullModel, has_intervals, interval_bounds, interval_c_index
from raoutcome.analysis.landmark import LandmarkCox, landmark_data, lookahead_check, time_varying_risk
from raoutcome.analysis.survival import CoxModel, TimeVaryingCox, event_folds
from raoutcome.errors import InputError
from raoutcome.evaluation import calibration_at_horizon, time_dependent_auc
from raoutcome.evaluation.cif_calibration import cif_calibration_at_horizon, cif_calibration_groups, observed_cif
from raoutcome.evaluation.d_calibration import d_calibration

FILES = {
    "interval_hazard_ratios.csv": "interval-censored Weibull PH models: hazard ratios (image score and SvdH per SD)",
    "interval_beyond_sharp.csv": "likelihood-ratio test of the image score beyond SvdH + covariates, interval-censored",
    "interval_c_index.csv": "C-index for interval-censored events (pairs the intervals order)",
    "cif_groups.csv": "Aalen–Johansen cumulative incidence by image-risk tertile, death competing",
    "competing_hazard_ratios.csv": "cause-specific Cox and Fine–Gray hazard ratios (death competing)",
    "competing_discrimination.csv": "Wolbers' C and cause-specific AUC(t) of the image score",
    "landmark_models.csv": "landmark Cox models (history up to each landmark)",
    "landmark_lookahead.csv": "look-ahead check: visits after each landmark changed, largest change of a prediction",
    "landmark_auc.csv": "cross-validated AUC per landmark: landmark Cox and time-varying Cox",
    "calibration.csv": "calibration at each horizon: ICI, E50, E90 and D-calibration (cross-validated)",
    "calibration.png": "calibration curves of the survival models at each horizon",
    "cif_groups.png": "cumulative incidence of the event by image-risk tertile, death competing",
    "cif_calibration.csv": "calibration of the Fine–Gray cumulative incidence at each horizon: ICI, E50, E90 "
                           "(cross-validated, death competing)",
    "cif_calibration_groups.csv": "Fine–Gray cumulative incidence by risk group: mean predicted vs Aalen–Johansen",
    "cif_calibration.png": "calibration of the Fine–Gray cumulative incidence at each horizon",
}
HORIZONS = (1.0, 2.0, 5.0)
FINE_GRAY_BOOTSTRAP = 200  # patient-bootstrap resamples for the Fine–Gray SE reported beside the analytic one
LANDMARKS = (1.0, 2.0)
_ERRORS = (InputError, ValueError, ArithmeticError, np.linalg.LinAlgError)


@dataclass
class ObservedSurvival:
    """Tables (file name -> frame), curves for the figures, notes and headline numbers."""

    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    calibration_curves: pd.DataFrame | None = None   # model, horizon, predicted, observed
    cif: pd.DataFrame | None = None                  # group, time, cif, lower, upper
    cif_calibration_curves: pd.DataFrame | None = None  # horizon, predicted, observed (Fine–Gray CIF)
    notes: list[str] = field(default_factory=list)
    summary: dict = field(default_factory=dict)


def _z(frame: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    out = frame.copy()
    for c in columns:
        sd = out[c].std(ddof=1)
        out[c] = (out[c] - out[c].mean()) / (sd if sd and np.isfinite(sd) else 1.0)
    return out


def observed_survival(patients: pd.DataFrame, visits: pd.DataFrame, events: pd.DataFrame, image: str,
                      base: Sequence[str], scaled: Sequence[str], event: str = "deformity",
                      horizons: Sequence[float] = HORIZONS, landmarks: Sequence[float] = LANDMARKS,
                      window: float = 2.0, k: int = 5, seed: int = 0) -> ObservedSurvival:
    """Run every analysis the data call for; see the module docstring. ``patients`` has one row per
    patient with ``duration``/``observed``, the image score and ``base`` columns at the first visit."""
    res = ObservedSurvival()
    ev = events[events["event"].astype(str) == event]
    interval = has_intervals(ev)
    competing = has_competing(events, DEATH)
    used = []
    if interval:
        used.append("interval-censored models (events found between visits: time_lower/time_upper)")
    if competing:
        used.append("competing-risk models (death recorded as a competing event)")
    statement = ("Models for how the events were observed: " + "; ".join(used) + "." if used else
                 "Events have exact times and no competing event: right-censored models only.")
    res.summary["survival_models_used"] = {"interval_censored": interval, "competing_risk": competing,
                                           "statement": statement}
    terms = [image, *base]
    pts = _z(patients.dropna(subset=[*terms, DURATION, OBSERVED]).reset_index(drop=True), scaled)
    if len(pts) < 10 or pts[OBSERVED].sum() < 3:
        res.notes.append("fewer than 10 complete patients or 3 events: observed-event analyses skipped")
        return res
    folds = event_folds(pts[OBSERVED], k, seed)
    if interval:
        _interval(res, pts, ev, image, base, folds)
    if competing:
        _competing(res, pts, events, image, base, event, horizons)
        _cif_calibration(res, pts, events, image, base, event, folds, horizons)
    _landmarks(res, pts, visits, image, base, scaled, landmarks, window, k, seed)
    _calibration(res, pts, ev if interval else None, image, base, folds, horizons)
    return res


def _bounds(pts: pd.DataFrame, ev: pd.DataFrame) -> pd.DataFrame:
    lo, hi = interval_bounds(ev.reset_index(drop=True))
    b = pd.DataFrame({"patient_id": ev["patient_id"].astype(str).to_numpy(), "time_lower": lo, "time_upper": hi})
    return pts.merge(b, on="patient_id", how="inner")


def _interval(res: ObservedSurvival, pts, ev, image, base, folds) -> None:
    data = _bounds(pts, ev)
    rows, fits = [], {}
    for label, terms in (("SvdH + covariates", list(base)), ("image + SvdH + covariates", [image, *base])):
        if not terms:
            continue
        try:
            fits[label] = IntervalWeibullModel(terms).fit(data)
        except _ERRORS as err:
            res.notes.append(f"interval-censored Weibull {label}: {err}")
            continue
        rows.append(fits[label].summary.assign(model=label, n=fits[label].n_, events=fits[label].n_events_))
    if rows:
        res.tables["interval_hazard_ratios.csv"] = pd.concat(rows, ignore_index=True)
    tests = []
    if len(fits) == 2:
        from scipy.stats import chi2

        stat = 2 * (fits["image + SvdH + covariates"].log_likelihood_ - fits["SvdH + covariates"].log_likelihood_)
        tests.append({"test": "interval_weibull_lrt", "added": image, "base": " + ".join(base),
                      "estimate": stat, "p_value": float(chi2.sf(max(stat, 0.0), 1)), "n": fits["SvdH + covariates"].n_})
    # interval C-index of the image score alone and of cross-validated full-model risks
    c_rows = [{"score": image, "c_index_interval": interval_c_index(data["time_lower"], data["time_upper"],
                                                                    data[image]), "cross_validated": False}]
    try:
        oof = np.full(len(data), np.nan)
        fold_of = pd.Series(folds, index=pts["patient_id"]).reindex(data["patient_id"]).to_numpy()
        for f in np.unique(fold_of):
            test = fold_of == f
            model = IntervalWeibullModel([image, *base]).fit(data.loc[~test])
            oof[test] = model.predict_risk(data.loc[test])
        c_rows.append({"score": "interval Weibull: image + SvdH + covariates",
                       "c_index_interval": interval_c_index(data["time_lower"], data["time_upper"], oof),
                       "cross_validated": True})
    except _ERRORS as err:
        res.notes.append(f"interval C-index (cross-validated): {err}")
    res.tables["interval_c_index.csv"] = pd.DataFrame(c_rows)
    if tests:
        res.tables["interval_beyond_sharp.csv"] = pd.DataFrame(tests)
        res.summary["interval_image_lrt_p"] = tests[0]["p_value"]


def _competing_data(pts: pd.DataFrame, events: pd.DataFrame, event: str) -> pd.DataFrame:
    """Patients with ``cr_time``/``cr_status`` and, for events found at a visit, ``cr_lower``/``cr_upper``."""
    st = competing_status(events, event=event).rename(columns={"time": "cr_time", "status": "cr_status"})
    data = pts.merge(st, on="patient_id", how="inner")
    if {"time_lower", "time_upper"} <= set(events.columns):
        # cr_lower on every row: a found event's interval start, otherwise the last visit free of the
        # event (the Weibull imputation of analysis.interval_imputation reads it: an unseen event
        # may hide before a death); cr_upper only where the event was found
        ev = events[events["event"].astype(str) == event].drop_duplicates("patient_id", keep="last")
        bounds = ev.set_index("patient_id")[["time_lower", "time_upper"]].apply(pd.to_numeric, errors="coerce")
        lower = data["patient_id"].map(bounds["time_lower"])
        data["cr_lower"] = lower.where((data["cr_status"] == 1) | (lower <= data["cr_time"]))
        data["cr_upper"] = data["patient_id"].map(bounds["time_upper"]).where(data["cr_status"] == 1)
    return data


def _fine_gray(covariates: list[str], data: pd.DataFrame, bootstrap: int = 0) -> FineGray:
    """Fine–Gray on the recorded times, or with visit-found event times imputed within their intervals."""
    cols = {"lower_col": "cr_lower", "upper_col": "cr_upper"} if "cr_lower" in data else {}
    return FineGray(covariates, bootstrap=bootstrap).fit(data, time_col="cr_time", status_col="cr_status", **cols)


def _competing(res: ObservedSurvival, pts, events, image, base, event, horizons) -> None:
    data = _competing_data(pts, events, event)
    group = pd.qcut(data[image].rank(method="first"), 3, labels=["low", "middle", "high"]).astype(str)
    try:
        res.cif = cumulative_incidence(data["cr_time"], data["cr_status"], group)
        res.tables["cif_groups.csv"] = res.cif
    except _ERRORS as err:
        res.notes.append(f"Aalen–Johansen: {err}")
    rows = []
    for label in ("cause-specific Cox", "Fine–Gray"):
        try:
            if label == "Fine–Gray":
                model = _fine_gray([image, *base], data, bootstrap=FINE_GRAY_BOOTSTRAP)
                times = (f"imputed within the visit intervals from a Weibull model ({model.imputations} draws, "
                         "Rubin's rules)"
                         if model.imputed_ else "as recorded")
            else:
                model = CauseSpecificCox([image, *base]).fit(data, time_col="cr_time", status_col="cr_status")
                times = "as recorded"
            rows.append(model.summary.assign(model=label, n=len(data), events=int((data["cr_status"] == 1).sum()),
                                             competing=int((data["cr_status"] == 2).sum()), event_times=times))
        except _ERRORS as err:
            res.notes.append(f"{label}: {err}")
    if rows:
        res.tables["competing_hazard_ratios.csv"] = pd.concat(rows, ignore_index=True)
    disc = [{"measure": "Wolbers C", "time": np.nan,
             "value": competing_c_index(data["cr_time"], data["cr_status"], data[image])}]
    end = data["cr_time"].max()
    inside = [h for h in horizons if h < end]
    for h, auc in zip(inside, competing_auc(data["cr_time"], data["cr_status"], data[image], inside)):
        disc.append({"measure": "cause-specific AUC(t)", "time": h, "value": auc})
    res.tables["competing_discrimination.csv"] = pd.DataFrame(disc).assign(score=image)


def _cif_calibration(res: ObservedSurvival, pts, events, image, base, event, folds, horizons) -> None:
    """Cross-validated Fine–Gray cumulative incidence at each horizon against Aalen–Johansen (risk groups)
    and a smoothed curve (``raoutcome.evaluation.cif_calibration``)."""
    data = _competing_data(pts, events, event)
    t, s = data["cr_time"].to_numpy(float), data["cr_status"].to_numpy(int)
    inside = [h for h in horizons if (t >= h).any() and ((t <= h) & (s == 1)).sum() >= 3]
    if not inside:
        return
    fold_of = pd.Series(folds, index=pts["patient_id"]).reindex(data["patient_id"]).to_numpy()
    pred = np.full((len(data), len(inside)), np.nan)
    try:
        for f in np.unique(fold_of):
            test = fold_of == f
            model = _fine_gray([image, *base], data.loc[~test])
            pred[test] = model.predict_cif(data.loc[test], inside)
    except _ERRORS as err:
        res.notes.append(f"calibration of the Fine–Gray cumulative incidence: {err}")
        return
    bounds = {"lower": data["cr_lower"].to_numpy(float), "upper": data["cr_upper"].to_numpy(float)} \
        if "cr_lower" in data else {}
    rows, groups, curves = [], [], []
    for j, h in enumerate(inside):
        try:
            cal = cif_calibration_at_horizon(t, s, pred[:, j], h, **bounds)
            grp = cif_calibration_groups(t, s, pred[:, j], h, groups=5, **bounds)
        except _ERRORS as err:
            res.notes.append(f"calibration of the Fine–Gray cumulative incidence at {h:g} years: {err}")
            continue
        rows.append({"model": "Fine–Gray cumulative incidence", "horizon": h, "ici": cal.ici, "e50": cal.e50,
                     "e90": cal.e90, "n": cal.n, "mean_predicted": float(pred[:, j].mean()),
                     "observed_aalen_johansen": observed_cif(t, s, h, **bounds),
                     "event_times": "imputed within the visit intervals" if bounds else "as recorded",
                     "cross_validated": True})
        groups.append(grp.assign(horizon=h))
        curves.append(pd.DataFrame({"horizon": h, "predicted": cal.predicted, "observed": cal.observed}))
    if rows:
        res.tables["cif_calibration.csv"] = pd.DataFrame(rows)
        res.tables["cif_calibration_groups.csv"] = pd.concat(groups, ignore_index=True)
        res.cif_calibration_curves = pd.concat(curves, ignore_index=True)


def _landmarks(res: ObservedSurvival, pts, visits, image, base, scaled, landmarks, window, k, seed) -> None:
    cols = [c for c in [image, *base] if c in visits]
    if image not in cols:
        res.notes.append("landmark models: the image score is not in the visit table")
        return
    events = pts[["patient_id", DURATION, OBSERVED]].rename(columns={DURATION: "duration", OBSERVED: "observed"})
    v = visits[visits["patient_id"].isin(events["patient_id"])]
    try:
        full = LandmarkCox(cols, landmarks, window).fit(v, events)
    except _ERRORS as err:
        res.notes.append(f"landmark Cox: {err}")
        return
    res.tables["landmark_models.csv"] = full.summary()
    check = lookahead_check(full, v, seed=seed)
    res.tables["landmark_lookahead.csv"] = check
    res.summary["landmark_no_look_ahead"] = bool(check["no_look_ahead"].all())
    # cross-validated risk per landmark: landmark Cox and the time-varying Cox used for prediction
    fold_of = pd.Series(event_folds(events["observed"], k, seed), index=events["patient_id"])
    from raoutcome.analysis.survival import counting_process_table

    try:  # built once (lifelines' timeline joins are slow); each fold fits on its patients' rows
        cp_table = counting_process_table(v, events, cols, duration_col="duration", event_col="observed")
    except _ERRORS as err:
        cp_table = None
        res.notes.append(f"time-varying Cox: {err}")
    tv_fits = {}
    for f in np.unique(fold_of):
        if cp_table is None:
            break
        train_ids = fold_of.index[fold_of != f]
        try:
            tv_fits[f] = TimeVaryingCox(cols, standardize=list(scaled), duration_col="duration",
                                        event_col="observed").fit(None, None, cp_table[cp_table["patient_id"].isin(train_ids)])
        except _ERRORS:
            pass
    rows = []
    for s in full.models_:
        lm = landmark_data(v, events, cols, s, window).dropna(subset=cols)
        risk = {"landmark Cox": pd.Series(np.nan, index=lm.index), "time-varying Cox": pd.Series(np.nan, index=lm.index)}
        for f in np.unique(fold_of):
            train_ids = fold_of.index[fold_of != f]
            test_ids = lm.index[fold_of.reindex(lm.index).to_numpy() == f]
            vt, et = v[v["patient_id"].isin(train_ids)], events[events["patient_id"].isin(train_ids)]
            try:
                m = LandmarkCox(cols, [s], window).fit(vt, et)
                risk["landmark Cox"].loc[test_ids] = m.predict(v[v["patient_id"].isin(test_ids)], s).reindex(test_ids)
            except _ERRORS:
                pass
            if f in tv_fits:
                risk["time-varying Cox"].loc[test_ids] = time_varying_risk(
                    tv_fits[f], v[v["patient_id"].isin(test_ids)], s).reindex(test_ids)
        for name, r in risk.items():
            ok = r.notna()
            try:
                auc = time_dependent_auc(lm.loc[ok, "lm_time"], lm.loc[ok, "lm_event"], r[ok],
                                         [window - 1e-6]).auc[0]
            except _ERRORS as err:
                res.notes.append(f"{name} AUC at landmark {s:g}: {err}")
                auc = np.nan
            rows.append({"landmark": s, "horizon": s + window, "model": name, "auc": auc, "n": int(ok.sum()),
                         "events": int(lm.loc[ok, "lm_event"].sum()), "cross_validated": True})
    res.tables["landmark_auc.csv"] = pd.DataFrame(rows)


def _calibration(res: ObservedSurvival, pts, ev, image, base, folds, horizons) -> None:
    time = pts[DURATION].to_numpy(float)
    event = pts[OBSERVED].to_numpy(int)
    inside = [h for h in horizons if (time > h).any() and ((time <= h) & (event == 1)).sum() >= 3]
    skipped = [h for h in horizons if h not in inside]
    if skipped:
        res.notes.append(f"calibration: horizon(s) {', '.join(f'{h:g}' for h in skipped)} years beyond the "
                         "follow-up or with < 3 events by then: not assessed")
    models = {"Cox: image + SvdH + covariates": "cox"}
    data = _bounds(pts, ev) if ev is not None else None
    if data is not None:
        models["interval Weibull: image + SvdH + covariates"] = "interval"
    rows, curves = [], []
    for name, kind in models.items():
        frame = pts if kind == "cox" else data
        t, e = frame[DURATION].to_numpy(float), frame[OBSERVED].to_numpy(int)
        fold_of = pd.Series(folds, index=pts["patient_id"]).reindex(frame["patient_id"]).to_numpy()
        grid = sorted({*inside, *np.unique(t[t > 0])})
        surv = np.full((len(frame), len(grid)), np.nan)
        try:
            for f in np.unique(fold_of):
                test = fold_of == f
                if kind == "cox":
                    m = CoxModel([image, *base]).fit(frame.loc[~test])
                    surv[test] = m.predict_survival(frame.loc[test], grid).to_numpy().T
                else:
                    m = IntervalWeibullModel([image, *base]).fit(frame.loc[~test])
                    surv[test] = m.predict_survival(frame.loc[test], grid)
        except _ERRORS as err:
            res.notes.append(f"calibration of {name}: {err}")
            continue
        col = {g: j for j, g in enumerate(grid)}
        own = np.array([surv[i, col[ti]] if ti in col else 1.0 for i, ti in enumerate(t)])
        try:
            dcal = d_calibration(np.clip(own, 0, 1), e)
        except _ERRORS as err:
            dcal = None
            res.notes.append(f"D-calibration of {name}: {err}")
        for h in inside:
            p = 1 - surv[:, col[h]]
            try:
                cal = calibration_at_horizon(np.maximum(t, 1e-6), e, np.clip(p, 1e-6, 1 - 1e-6), h)
            except _ERRORS as err:
                res.notes.append(f"calibration of {name} at {h:g} years: {err}")
                continue
            rows.append({"model": name, "horizon": h, "ici": cal.ici, "e50": cal.e50, "e90": cal.e90, "n": cal.n,
                         "mean_predicted": float(np.mean(p)),
                         "d_calibration_chi2": dcal.statistic if dcal else np.nan,
                         "d_calibration_p": dcal.p_value if dcal else np.nan, "cross_validated": True})
            curves.append(pd.DataFrame({"model": name, "horizon": h, "predicted": cal.predicted,
                                        "observed": cal.observed}))
    if rows:
        res.tables["calibration.csv"] = pd.DataFrame(rows)
        res.calibration_curves = pd.concat(curves, ignore_index=True)
