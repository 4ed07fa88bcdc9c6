"""AS outcomes against the mSASSS: function (BASFI), disease activity (BASDAI), time to a new bridge.

The AS study (:mod:`raoutcome.workflows.spine_study`) reads every film twice over: the human mSASSS of the
cohort (``visits.csv``) and the learned mSASSS of the corner reader. This module asks what each says about
the patient's outcomes, on the same visits and patients for every score:

* :func:`association_table`: per visit, a linear mixed model ``outcome ~ score`` with a random intercept
  per patient (statsmodels ``mixedlm``, REML; :class:`raoutcome.analysis.longitudinal.MixedModel`): the
  coefficient per 10 mSASSS units with its Wald 95 % CI, and the cross-fitted R² (:func:`grouped_r2`):
  patient-grouped folds, each fold's patients predicted from the fixed effects of a model fitted on the
  other patients (a new patient's random intercept is 0), R² = 1 − Σ(y − ŷ)² / Σ(y − ȳ_train)² pooled
  over folds (out-of-sample; can be < 0).
* :func:`bridge_table`: Cox model (lifelines, Efron ties) of the time to the first new bridge on the
  baseline (first-visit) score: hazard ratio per 10 units, its CI and Wald p, Harrell's C of the fitted
  linear predictor and of out-of-fold risks (5 folds stratified on the event). The event is seen at the
  visit that shows it (interval-censored); the Cox model takes that visit's time as the event time (a
  simplification: the bridge formed between the previous visit and that one).
* :func:`change_table`: change against change. Per patient, from the first to the last visit where the outcome
  and every score are read (the same visits for every score), ordinary least squares of the outcome's change on
  the score's change and the years between the two visits, ``Δoutcome = a + b Δscore + c Δt``, with HC3
  standard errors (MacKinnon & White 1985): ``b`` per 10 mSASSS units with its 95 % CI and p, the partial R² of
  ``Δscore``, and the score change's standardized response mean (SRM = mean / SD of Δscore). This is where a
  more precise reading should matter: a reader's error is a large part of a small two-year change.
* :func:`beyond_msasss`: does the learned mSASSS add to the human mSASSS? The RA side's incremental-value
  tests (:mod:`raoutcome.analysis.incremental`, as ``beyond_sharp`` runs them: nested Cox likelihood-ratio
  test, ΔC, continuous NRI; nested ML mixed models, here with a random intercept only; partial R² F-test on
  each patient's last complete visit), with the human mSASSS (a natural spline of the mSASSS) in the
  base model in place of SvdH. The p-value answers *"does the learned reading carry information on this
  outcome that the human reading of the same films does not?"* — yes whenever the reader reads damage
  more precisely than the human reader, so a small p-value says nothing about information other than
  damage (:data:`QUESTION`). The learned score must come from a reader that never saw these patients.

Never imports torch: the inputs are the study's tables.

References: Calin et al., J Rheumatol 1994 (BASFI); Garrett et al., J Rheumatol 1994 (BASDAI);
Landewé et al., Arthritis Rheum 2009 and Ramiro et al., Ann Rheum Dis 2014 (mSASSS and function);
Harrell et al., Stat Med 1996 (C-index); MacKinnon & White, J Econometrics 1985 (HC3); Liang et al., Med Care
1990 (SRM).
"""
from __future__ import annotations

__all__ = ["SCORES", "QUESTION", "PER", "outcome_visits", "baseline_table", "patient_folds", "grouped_r2",
           "mixed_association", "association_table", "change_rows", "change_ols", "change_table", "bridge_cox",
           "bridge_table", "beyond_msasss", "as_outcome_tables"]

import warnings
from functools import partial
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from raoutcome.analysis.features import DURATION, OBSERVED
from raoutcome.errors import AnalysisSkippedWarning, InputError

#: the score columns compared, in report order, and their labels
SCORES: dict[str, str] = {"msasss_learned": "learned mSASSS", "msasss": "human mSASSS",
                          "msasss_true": "true mSASSS (simulation)"}
#: effects are reported per this many mSASSS units
PER = 10.0
QUESTION = ("Does the learned mSASSS add to the human mSASSS of the same films? (it does whenever the reader "
            "reads damage more precisely than the human reader; a small p-value is no evidence of "
            "information other than damage)")
Z95 = 1.959963984540054
_FIT_ERRORS = (InputError, np.linalg.LinAlgError, ValueError)  # a model that cannot be fitted on these rows


def outcome_visits(totals: pd.DataFrame, visits: pd.DataFrame, truth: pd.DataFrame | None = None,
                   outcomes: Sequence[str] = ("basfi", "basdai")) -> pd.DataFrame:
    """One row per visit: ``patient_id, visit_id, time_years``, the scores and the outcome columns.

    ``totals``: the study's ``totals.csv`` (``msasss``, ``msasss_learned``); ``visits``: the cohort's visit
    table (the outcomes); ``truth``: a simulation's ``truth/visits.csv`` (adds ``msasss_true``)."""
    key = ["patient_id", "visit_id"]
    t = totals.astype({"patient_id": str, "visit_id": str})
    v = visits.astype({"patient_id": str, "visit_id": str})
    cols = [c for c in outcomes if c in v and c not in t]
    out = t.merge(v[key + cols], on=key, how="left")
    if truth is not None and "msasss_true" in truth:
        out = out.merge(truth.astype({"patient_id": str, "visit_id": str})[key + ["msasss_true"]], on=key,
                        how="left")
    return out


def baseline_table(visit_table: pd.DataFrame, events: pd.DataFrame | None, event: str) -> pd.DataFrame:
    """One row per patient: the scores of the first visit and the time to ``event`` (``duration`` from the
    first visit, ``observed``); patients without an events row for ``event`` are left out."""
    first = visit_table.sort_values(["patient_id", "time_years"]).groupby("patient_id", sort=False).head(1)
    if events is None or not len(events) or "event" not in events:
        return first.iloc[0:0].assign(**{DURATION: [], OBSERVED: []})
    ev = events[events["event"] == event].astype({"patient_id": str})
    ev = ev.sort_values("time_years").groupby("patient_id").head(1)
    t0 = first.set_index("patient_id")["time_years"]
    out = first.merge(ev[["patient_id", "time_years", "observed"]].rename(
        columns={"time_years": "_t", "observed": OBSERVED}), on="patient_id")
    out[DURATION] = out["_t"].to_numpy(float) - t0.reindex(out["patient_id"]).to_numpy(float)
    out[OBSERVED] = out[OBSERVED].astype(int)
    return out.drop(columns="_t")[out[DURATION] > 0].reset_index(drop=True)


def patient_folds(groups: Sequence, k: int = 5, seed: int = 0) -> np.ndarray:
    """Fold number per row, whole patients per fold (seeded shuffle of the patients, dealt round-robin)."""
    groups = np.asarray(groups)
    ids = np.unique(groups)
    if len(ids) < 2:
        raise InputError("patient-grouped folds need at least 2 patients")
    k = int(min(k, len(ids)))
    order = np.random.default_rng(seed).permutation(ids)
    fold_of = {p: i % k for i, p in enumerate(order)}
    return np.array([fold_of[g] for g in groups], dtype=int)


def _mixed(rows: pd.DataFrame, outcome: str, score: str, methods: Sequence[str] = ("bfgs", "lbfgs")):
    from raoutcome.analysis.longitudinal import MixedModel

    return MixedModel(outcome, [score], random_slope=False, include_time=False, reml=True,
                      methods=methods).fit(rows)


def grouped_r2(rows: pd.DataFrame, outcome: str, score: str, k: int = 5, seed: int = 0) -> tuple[float, np.ndarray]:
    """Cross-fitted R² of the random-intercept model ``outcome ~ score`` over patient-grouped folds.

    Returns (R², the out-of-fold predictions). Each fold is predicted from the fixed effects fitted on the
    other folds' patients; R² = 1 − Σ(y − ŷ)² / Σ(y − ȳ_train)², sums pooled over folds."""
    folds = patient_folds(rows["patient_id"], k, seed)
    y = rows[outcome].to_numpy(float)
    x = rows[score].to_numpy(float)
    pred, ybar = np.full(len(rows), np.nan), np.full(len(rows), np.nan)
    for f in np.unique(folds):
        test = folds == f
        fe = _mixed(rows.loc[~test], outcome, score, methods=("bfgs",)).result_.fe_params  # fixed effects only
        pred[test] = float(fe["Intercept"]) + float(fe[score]) * x[test]
        ybar[test] = float(y[~test].mean())
    return float(1.0 - np.sum((y - pred) ** 2) / np.sum((y - ybar) ** 2)), pred


def mixed_association(rows: pd.DataFrame, outcome: str, score: str, k: int = 5, seed: int = 0) -> dict:
    """Random-intercept LMM of ``outcome`` on ``score`` (per :data:`PER` units) and its cross-fitted R²."""
    fit = _mixed(rows, outcome, score)
    r = fit.result_
    est, se = float(r.fe_params[score]), float(r.bse_fe[score])
    r2, _ = grouped_r2(rows, outcome, score, k=k, seed=seed)
    return {"outcome": outcome, "score": score, "label": SCORES.get(score, score), "visits": fit.n_obs_,
            "patients": fit.n_groups_, f"coef_per_{PER:g}": PER * est, "ci_lower": PER * (est - Z95 * se),
            "ci_upper": PER * (est + Z95 * se), "p": float(r.pvalues[score]), "r2_cv": r2,
            "folds": int(min(k, rows["patient_id"].nunique())), "converged": fit.converged_}


def _each(fit, scores: Sequence[str], what: str) -> list[dict]:
    """``fit(score)`` for each score; a score whose model cannot be fitted is left out with a warning."""
    rows = []
    for score in scores:
        try:
            rows.append(fit(score))
        except _FIT_ERRORS as err:
            warnings.warn(f"{what} ~ {score} skipped: {err}", AnalysisSkippedWarning, stacklevel=3)
    return rows


def _present(table: pd.DataFrame, scores: Sequence[str]) -> list[str]:
    return [s for s in scores if s in table and table[s].notna().any()]


def association_table(visit_table: pd.DataFrame, outcomes: Sequence[str] = ("basfi", "basdai"),
                      scores: Sequence[str] = tuple(SCORES), k: int = 5, seed: int = 0) -> pd.DataFrame:
    """:func:`mixed_association` for each outcome and score, every score on the same visits (complete on
    all scores and the outcome). An outcome with fewer than 3 patients is skipped with a warning."""
    rows_out = []
    scores = _present(visit_table, scores)
    for outcome in outcomes:
        if outcome not in visit_table:
            continue
        rows = visit_table.dropna(subset=[outcome, *scores]).reset_index(drop=True)
        if rows["patient_id"].nunique() < 3:
            warnings.warn(f"{outcome}: fewer than 3 patients with the outcome and every score; skipped",
                          AnalysisSkippedWarning, stacklevel=2)
            continue
        rows_out.extend(_each(partial(mixed_association, rows, outcome, k=k, seed=seed), scores, outcome))
    return pd.DataFrame(rows_out)


def change_rows(visit_table: pd.DataFrame, outcome: str, scores: Sequence[str]) -> pd.DataFrame:
    """One row per patient with two or more visits where ``outcome`` and every score of ``scores`` are read:
    ``patient_id``, ``d_years`` and ``d_<column>`` (last minus first of those visits) for the outcome and each
    score."""
    cols = [outcome, *scores]
    rows = visit_table.dropna(subset=cols).sort_values(["patient_id", "time_years"])
    g = rows.groupby("patient_id", sort=True)
    first, last, n = g.head(1).set_index("patient_id"), g.tail(1).set_index("patient_id"), g.size()
    keep = n[n >= 2].index
    d = (last.loc[keep, ["time_years", *cols]] - first.loc[keep, ["time_years", *cols]]).astype(float)
    return d.rename(columns={"time_years": "d_years", **{c: f"d_{c}" for c in cols}}).reset_index()


def change_ols(rows: pd.DataFrame, outcome: str, score: str) -> dict:
    """OLS ``d_outcome ~ d_score + d_years`` (HC3) on :func:`change_rows`' rows: the ``d_score`` coefficient per
    :data:`PER` units with its 95 % CI and p, its partial R², and the score change's SRM."""
    import statsmodels.api as sm

    y = rows[f"d_{outcome}"].to_numpy(float)
    dx = rows[f"d_{score}"].to_numpy(float)
    t = rows["d_years"].to_numpy(float)
    if len(rows) < 5 or np.std(dx) == 0:
        raise InputError(f"change of {outcome} on {score}: needs >= 5 patients with a varying change "
                         f"(got {len(rows)})")
    full = sm.OLS(y, sm.add_constant(np.column_stack([dx, t]), has_constant="add")).fit(cov_type="HC3")
    base = sm.OLS(y, sm.add_constant(t, has_constant="add")).fit()
    est, se = float(full.params[1]), float(full.bse[1])
    sd = float(np.std(dx, ddof=1))
    return {"outcome": outcome, "score": score, "label": SCORES.get(score, score), "patients": int(len(rows)),
            f"coef_per_{PER:g}": PER * est, "ci_lower": PER * (est - Z95 * se), "ci_upper": PER * (est + Z95 * se),
            "p": float(full.pvalues[1]),
            "partial_r2": float((base.ssr - full.ssr) / base.ssr) if base.ssr > 0 else float("nan"),
            "score_srm": float(np.mean(dx) / sd) if sd > 0 else float("nan"),
            "years_mean": float(np.mean(t))}


def change_table(visit_table: pd.DataFrame, outcomes: Sequence[str] = ("basfi", "basdai"),
                 scores: Sequence[str] = tuple(SCORES)) -> pd.DataFrame:
    """:func:`change_ols` per outcome and score present, on the same patients and visits for every score."""
    present = _present(visit_table, scores)
    out = []
    for outcome in outcomes:
        if outcome not in visit_table or visit_table[outcome].notna().sum() == 0 or not present:
            continue
        rows = change_rows(visit_table, outcome, present)
        out += _each(partial(change_ols, rows, outcome), present, f"change of {outcome}")
    return pd.DataFrame(out)


def bridge_cox(patients: pd.DataFrame, score: str, k: int = 5, seed: int = 0) -> dict:
    """Cox model of the time to a new bridge on the baseline ``score``: HR per :data:`PER` units, Wald CI
    and p, Harrell's C in sample and of out-of-fold risks."""
    from raoutcome.analysis.survival import CoxModel, cross_val_risk, event_folds
    from raoutcome.evaluation import harrell_c

    rows = patients.dropna(subset=[score, DURATION, OBSERVED]).reset_index(drop=True)
    model = CoxModel([score]).fit(rows)
    s = model.summary.set_index("covariate").loc[score]
    t, e = rows[DURATION].to_numpy(float), rows[OBSERVED].to_numpy(int)
    folds = event_folds(rows[OBSERVED], k, seed)
    try:
        c_cv = harrell_c(t, e, cross_val_risk(CoxModel([score]), rows, folds=folds))
    except _FIT_ERRORS as err:  # a training fold with too few events: no out-of-fold C, the rest stands
        warnings.warn(f"out-of-fold C-index of {score} not computed: {err}", AnalysisSkippedWarning, stacklevel=2)
        c_cv = float("nan")
    return {"score": score, "label": SCORES.get(score, score), "patients": len(rows), "events": int(e.sum()),
            f"hr_per_{PER:g}": float(np.exp(PER * s["coef"])),
            "hr_lower": float(np.exp(PER * (s["coef"] - Z95 * s["se"]))),
            "hr_upper": float(np.exp(PER * (s["coef"] + Z95 * s["se"]))), "p": float(s["p"]),
            "c_index": harrell_c(t, e, model.predict_risk(rows)), "c_index_cv": c_cv,
            "folds": int(folds.max() + 1)}


def bridge_table(patients: pd.DataFrame, scores: Sequence[str] = tuple(SCORES), k: int = 5,
                 seed: int = 0) -> pd.DataFrame:
    """:func:`bridge_cox` per score on the same patients (complete on every score). Empty (with a warning)
    when fewer than 2 events."""
    scores = _present(patients, scores)
    rows = patients.dropna(subset=[*scores, DURATION, OBSERVED]).reset_index(drop=True)
    if len(rows) == 0 or rows[OBSERVED].sum() < 2:
        warnings.warn(f"time to a new bridge: {int(rows[OBSERVED].sum()) if len(rows) else 0} events; "
                      "no Cox model", AnalysisSkippedWarning, stacklevel=2)
        return pd.DataFrame()
    return pd.DataFrame(_each(partial(bridge_cox, rows, k=k, seed=seed), scores, "time to a new bridge"))


def _base_terms(frame: pd.DataFrame, human: str, df: int, prefix: str,
                scale: str = "raw") -> tuple[pd.DataFrame, list[str], str]:
    """``frame`` with a centred natural spline of the human reading (``scale`` "raw") or of log(1 + it)
    ("log1p"), ``df`` columns (the reading alone when ``df`` < 2); the term names and their label."""
    from raoutcome.analysis.reader_error import spline_basis

    if df < 2:
        return frame, [human], human
    if scale not in ("raw", "log1p"):
        raise InputError(f"scale must be 'raw' or 'log1p', got {scale!r}")
    x = frame[human].to_numpy(float)
    basis = spline_basis(np.log1p(x) if scale == "log1p" else x, df=df, prefix=prefix)
    basis.index = frame.index
    name = f"log1p_{human}" if scale == "log1p" else human
    return pd.concat([frame, basis], axis=1), list(basis.columns), f"spline({name}, df={df})"


def beyond_msasss(visit_table: pd.DataFrame, patients: pd.DataFrame, *, learned: str = "msasss_learned",
                  human: str = "msasss", outcomes: Sequence[str] = ("basfi", "basdai"), event: str = "new_bridge",
                  n_boot: int = 200, seed: int = 0, spline_df: int = 3, events_per_term: float = 10.0,
                  scale: str = "raw", folds: int = 5, cross_fitted: bool = True,
                  tests: Sequence[str] = ("cox_lrt", "delta_c", "continuous_nri", "mixed_lrt", "partial_r2_f"),
                  ) -> pd.DataFrame:
    """Does ``learned`` add to ``human``? One row per test (:class:`~raoutcome.analysis.incremental.
    IncrementalResult` rows), ``question`` = :data:`QUESTION`.

    The RA side's tests (:mod:`raoutcome.analysis.incremental`, as :func:`~raoutcome.analysis.incremental.
    beyond_sharp` runs them) with the human mSASSS as the base reading: per outcome the nested ML mixed
    models (``outcome ~ time + base [+ learned]``, random intercept per patient; ``mixed_lrt``) and the
    partial-R² F-test on each patient's last complete visit (``partial_r2``); for the time to a new bridge
    the nested Cox LRT, ΔC of out-of-fold risks and the continuous NRI at the median follow-up
    (``cox_lrt``, ``delta_c_index``, ``continuous_nri``) on the baseline scores. The base is a natural spline of
    the human mSASSS with ``spline_df`` columns (a linear term would leave curvature that any precise damage
    score picks up); for the Cox tests only when there are at least ``events_per_term`` events per model
    term, else the human mSASSS linear (AS cohorts have few new bridges; 4 terms on 11 events did not
    converge out of fold). Each row's ``base`` names what was used. ``scale="raw"`` (default) puts the
    spline on the mSASSS itself, ``"log1p"`` on log(1 + mSASSS) as ``beyond_sharp`` does for SvdH. Chosen
    on 12 simulated cohorts of 250 patients (seeds 1–12, no images): a "learned" score that was the human
    reading plus independent noise (no information beyond it) passed the Cox LRT at 0.05 in 5 of 12 cohorts
    with the log-scale spline and in 0 of 12 with the raw-scale one — a natural spline spans the linear
    function of its argument, and the hazard of a new bridge rises about linearly with the total, which a
    log-scale spline does not follow where the data thin out.

    ``visit_table``: one row per visit (``patient_id, time_years``, both scores, the outcomes);
    ``patients``: :func:`baseline_table`. ``folds``: of ΔC and the NRI's out-of-fold risks.
    ``cross_fitted``: False when the reader was trained on these
    patients (the tests are then anti-conservative; a ``NotCrossFittedWarning``)."""
    from raoutcome.analysis.features import NotCrossFittedWarning
    from raoutcome.analysis.incremental import (continuous_nri, cox_lrt, delta_c_index, last_complete_visit,
                                                mixed_lrt, partial_r2)

    for name, table in (("visit table", visit_table), ("patient table", patients)):
        missing = [c for c in (learned, human) if c not in table]
        if missing:
            raise InputError(f"beyond_msasss: the {name} lacks column(s) {missing}")
    if not cross_fitted:
        warnings.warn(f"{learned!r} comes from a reader trained on these patients: the tests below are biased "
                      "towards significance", NotCrossFittedWarning, stacklevel=2)
    results: list[dict] = []

    def attempt(fn, label: str, *args, **kwargs) -> None:
        try:
            row = fn(*args, **kwargs).to_row()
        except (InputError, np.linalg.LinAlgError, ValueError) as err:
            warnings.warn(f"{fn.__name__} skipped: {err}", AnalysisSkippedWarning, stacklevel=3)
            return
        results.append({**row, "base": label})

    visits = visit_table.dropna(subset=[learned, human]).reset_index(drop=True)
    if len(visits) >= 3:
        visits, vterms, vlabel = _base_terms(visits, human, spline_df, "s_human_", scale)
        for outcome in outcomes:
            if outcome not in visits or visits[outcome].notna().sum() == 0:
                continue
            if "mixed_lrt" in tests:
                attempt(mixed_lrt, vlabel, visits, outcome, vterms, [learned], random_slope=False)
            if "partial_r2_f" in tests:
                last = last_complete_visit(visits, [outcome, *vterms, learned])
                attempt(partial_r2, vlabel, last, outcome, vterms, [learned])
    pts = patients.dropna(subset=[learned, human, DURATION, OBSERVED]).reset_index(drop=True)
    events = int(pts[OBSERVED].sum()) if len(pts) else 0
    if events >= 2:
        df = spline_df if events >= events_per_term * (spline_df + 1) else 1
        pts, pterms, plabel = _base_terms(pts, human, df, "s_human_", scale)
        horizon = float(np.median(pts[DURATION]))
        if "cox_lrt" in tests:
            attempt(cox_lrt, plabel, pts, pterms, [learned])
        if "delta_c" in tests:
            attempt(delta_c_index, plabel, pts, pterms, [learned], k=folds, n_boot=n_boot, seed=seed)
        if "continuous_nri" in tests:
            attempt(continuous_nri, plabel, pts, pterms, [learned], horizon=horizon, k=folds, n_boot=n_boot,
                    seed=seed)
    table = pd.DataFrame(results)
    if len(table):
        table.loc[table["outcome"] == OBSERVED, "outcome"] = event
        table.insert(0, "question", QUESTION)
    return table


def as_outcome_tables(visit_table: pd.DataFrame, patients: pd.DataFrame, *, n_boot: int = 200, seed: int = 0,
                      folds: int = 5, cross_fitted: bool = True) -> Mapping[str, pd.DataFrame]:
    """The four tables of the AS study: ``associations``, ``change``, ``bridge``, ``beyond_msasss`` (each may be
    empty); ``folds``: the cross-fitting folds of the R², the out-of-fold C-index, ΔC and NRI."""
    assoc = association_table(visit_table, k=folds, seed=seed)
    change = change_table(visit_table)
    bridge = bridge_table(patients, k=folds, seed=seed)
    beyond = (beyond_msasss(visit_table, patients, n_boot=n_boot, seed=seed, folds=folds, cross_fitted=cross_fitted)
              if {"msasss", "msasss_learned"} <= set(visit_table.columns) else pd.DataFrame())
    return {"associations": assoc, "change": change, "bridge": bridge, "beyond_msasss": beyond}
