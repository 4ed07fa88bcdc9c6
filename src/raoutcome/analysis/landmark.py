"""Dynamic prediction: a patient's risk *now*, from the history up to now (landmarking).

At a landmark time s (1 and 2 years by default) the landmark data set holds the patients still
event-free and under follow-up at s; each carries the last value of every covariate recorded at a
visit at or before s (nothing later), and the outcome is the event within the window (s, s + w]
(administratively censored at s + w). A Cox model per landmark then gives
P(event by s + w | history up to s) = 1 - S_s(w | x(s)) (van Houwelingen, Scand J Stat 2007;
van Houwelingen & Putter, Dynamic Prediction in Clinical Survival Analysis, 2012, ch. 7).

:func:`landmark_features` is the only place the visits are read, and it reads only visits at or
before s: the look-ahead test (``tests/test_landmark.py`` and the analysis stage's own check,
:func:`lookahead_check`) changes every visit after s and asserts the prediction does not move.

:func:`time_varying_risk` uses the time-varying Cox model (covariates updated at every visit,
:class:`raoutcome.analysis.survival.TimeVaryingCox`) for prediction the same way: its linear
predictor at s from the last visit at or before s.
"""
from __future__ import annotations

__all__ = ["LandmarkCox", "landmark_data", "landmark_features", "lookahead_check", "time_varying_risk"]

from typing import Sequence

import numpy as np
import pandas as pd

from raoutcome.errors import InputError

ID, TIME = "patient_id", "time_years"


def landmark_features(visits: pd.DataFrame, covariates: Sequence[str], landmark: float) -> pd.DataFrame:
    """Per patient, the last recorded value of each covariate at a visit at or before ``landmark``."""
    missing = [c for c in (ID, TIME, *covariates) if c not in visits]
    if missing:
        raise InputError(f"landmark: visits lack column(s) {missing}")
    past = visits.loc[visits[TIME] <= landmark, [ID, TIME, *covariates]].sort_values([ID, TIME])
    last = past.groupby(ID, sort=True)[list(covariates)].last()  # last non-missing value per column
    last["last_visit"] = past.groupby(ID, sort=True)[TIME].max()
    return last


def landmark_data(visits: pd.DataFrame, events: pd.DataFrame, covariates: Sequence[str], landmark: float,
                  window: float, duration_col: str = "duration", event_col: str = "observed") -> pd.DataFrame:
    """Patients event-free and followed beyond ``landmark``, their covariates at it, and the window outcome.

    ``events``: one row per patient with ``patient_id``, ``duration_col`` and ``event_col``. Columns of
    the result: the covariates, ``last_visit``, ``lm_time`` (time from the landmark, at most ``window``)
    and ``lm_event``.
    """
    ev = events.set_index(ID)[[duration_col, event_col]].dropna()
    at_risk = ev[ev[duration_col] > landmark]
    feats = landmark_features(visits, covariates, landmark)
    table = feats.join(at_risk, how="inner")
    horizon = landmark + window
    table["lm_time"] = np.minimum(table[duration_col], horizon) - landmark
    table["lm_event"] = ((table[event_col] == 1) & (table[duration_col] <= horizon)).astype(int)
    return table.drop(columns=[duration_col, event_col])


class LandmarkCox:
    """One Cox model per landmark time on :func:`landmark_data` (lifelines ``CoxPHFitter``)."""

    def __init__(self, covariates: Sequence[str], landmarks: Sequence[float] = (1.0, 2.0), window: float = 2.0,
                 penalizer: float = 0.0):
        self.covariates = list(covariates)
        self.landmarks = [float(s) for s in landmarks]
        self.window = float(window)
        self.penalizer = penalizer

    def fit(self, visits: pd.DataFrame, events: pd.DataFrame, duration_col: str = "duration",
            event_col: str = "observed") -> "LandmarkCox":
        from lifelines import CoxPHFitter

        from raoutcome.analysis.survival import _fit_with_smaller_steps

        self.models_, self.data_ = {}, {}
        for s in self.landmarks:
            data = landmark_data(visits, events, self.covariates, s, self.window, duration_col, event_col)
            data = data.dropna(subset=self.covariates)
            if data["lm_event"].sum() < 2:
                continue
            frame = data[[*self.covariates, "lm_time", "lm_event"]]
            self.models_[s] = _fit_with_smaller_steps(CoxPHFitter(penalizer=self.penalizer), frame,
                                                      duration_col="lm_time", event_col="lm_event")
            self.data_[s] = data
        if not self.models_:
            raise InputError("landmark Cox: fewer than 2 events in the window after every landmark")
        return self

    def predict(self, visits: pd.DataFrame, landmark: float) -> pd.Series:
        """P(event by landmark + window | visits up to the landmark), per patient with complete covariates."""
        if landmark not in self.models_:
            raise InputError(f"landmark Cox: no model at landmark {landmark} (fitted: {sorted(self.models_)})")
        feats = landmark_features(visits, self.covariates, landmark).dropna(subset=self.covariates)
        surv = self.models_[landmark].predict_survival_function(feats[self.covariates], times=[self.window])
        return pd.Series(1.0 - surv.to_numpy().ravel(), index=feats.index, name=f"risk_{landmark:g}")

    def summary(self) -> pd.DataFrame:
        from raoutcome.analysis.survival import _hazard_table

        return pd.concat([_hazard_table(m, False).assign(landmark=s, n=len(self.data_[s]),
                                                          events=int(self.data_[s]["lm_event"].sum()))
                          for s, m in self.models_.items()], ignore_index=True)


def lookahead_check(model: LandmarkCox, visits: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """Change every visit after each landmark (covariates redrawn, times shifted, an extra visit added)
    and report the largest change of any prediction: 0 means no look-ahead."""
    rng = np.random.default_rng(seed)
    rows = []
    for s in model.models_:
        before = model.predict(visits, s)
        changed = visits.copy()
        late = changed[TIME] > s
        for c in model.covariates:
            col = changed[c] = changed[c].astype(float)
            changed.loc[late, c] = rng.normal(col.mean(), 3 * (col.std() or 1.0), int(late.sum()))
        changed.loc[late, TIME] = changed.loc[late, TIME] + rng.uniform(0.01, 0.5, int(late.sum()))
        extra = changed.groupby(ID, as_index=False).tail(1).copy()
        extra[TIME] = np.maximum(extra[TIME], s) + 0.25
        changed = pd.concat([changed, extra], ignore_index=True)
        after = model.predict(changed, s).reindex(before.index)
        rows.append({"landmark": s, "patients": len(before), "visits_changed": int(late.sum()) + len(extra),
                     "max_abs_change": float(np.nanmax(np.abs(after.to_numpy() - before.to_numpy())))
                     if len(before) else 0.0})
    out = pd.DataFrame(rows)
    out["no_look_ahead"] = out["max_abs_change"] == 0.0
    return out


def time_varying_risk(tvc, visits: pd.DataFrame, landmark: float) -> pd.Series:
    """Linear predictor of a fitted :class:`~raoutcome.analysis.survival.TimeVaryingCox` at ``landmark``,
    from each patient's covariates at the last visit at or before it (standardised as in its fit)."""
    feats = landmark_features(visits, tvc.covariates, landmark).dropna(subset=tvc.covariates)
    x = feats[tvc.covariates].astype(float)
    scale = getattr(tvc, "scale_", None)
    if scale is not None:
        x = (x - scale["mean"]) / scale["sd"]
    coef = tvc.fitter_.params_.loc[tvc.covariates].to_numpy(float)
    return pd.Series(x.to_numpy() @ coef, index=feats.index, name=f"tv_risk_{landmark:g}")
