"""``raoutcome analyze``: every cohort statistic on a Cohort + Predictions, as CSV tables and PNG figures.

Stages (a progress line each):

1. **metrics** — each head against the cohort's observed outcome
   (:mod:`raoutcome.evaluation`: RMSE, MAE, bias, Pearson, Spearman, the
   RA2-DREAM weighted RMSE for SvdH heads; Harrell / Uno C, AUC(t) for the
   risk head at the first visit), patient-bootstrap CIs →
   ``metrics.csv``, ``scatter_<head>.png``;
2. **survival** — Cox models SvdH + covariates and + image score (hazard
   ratios per SD) → ``cox_hazard_ratios.csv``, ``cox_forest.png``; the
   proportional-hazards test → ``cox_ph_test.csv``; Kaplan–Meier by image-risk
   tertile and the log-rank test → ``km_tertiles.png``, ``km_groups.csv``;
   a time-varying Cox model (scores updated at each visit) →
   ``cox_time_varying.csv``; cross-validated C-index of Cox, CoxNet (with
   embedding principal components, PCA fitted within training folds) and a
   random survival forest → ``survival_models.csv``;
3. **longitudinal** — mixed models (random intercept + slope) and GEE of HAQ
   and pain over time with the image score, SvdH, or both (per SD) →
   ``mixed_models.csv``, ``mixed_random_effects.csv``, ``gee_models.csv``,
   ``mixed_coefficients.png``;
   **observed events** (after survival) — interval-censored models when the
   events table has ``time_lower``/``time_upper`` intervals, competing-risk models
   when a ``death`` event is recorded, landmark models at 1 and 2 years with
   their look-ahead check, calibration at 1/2/5 years (ICI/E50, D-calibration)
   → ``calibration.csv``/``.png``, ``landmark_*.csv``, ``interval_*.csv``,
   ``competing_*.csv``, ``cif_groups.*`` (see
   :mod:`raoutcome.analysis.observed_survival`; ``summary.json`` says which
   models were used under ``survival_models_used``);
4. **reader agreement** — when the cohort has repeat readings (``retest``):
   ICC, Bland–Altman and SDC of the two readings → ``reader_agreement.csv``;
   **beyond Sharp** — two questions, each test's row naming its question in
   column ``question``: *does the image add to the human reading?*
   (:func:`raoutcome.analysis.incremental.beyond_sharp`: image score over a
   spline of log(1 + SvdH) + covariates) and *does the image carry something
   other than damage?* (:func:`~raoutcome.analysis.incremental.beyond_damage`:
   over a spline of reader-error-corrected damage); Cox LRT, ΔC with bootstrap
   CI, continuous NRI, ML mixed-model LRT, partial R² F-test →
   ``incremental.csv``. When only the first question could run, a plain
   warning goes to ``summary.json`` (``beyond_damage_warning``);
5. **endpoints** — per-patient change (SvdH, the learned progression score,
   HAQ), SRM, SDC (when a ``retest.csv`` of repeat readings sits in the cohort
   folder), % progressors, sample size per arm, simulated two-arm power →
   ``endpoints.csv``, ``change_scores.csv``, ``cumulative_probability.png``,
   ``power.csv``, ``power_curves.png``.

``summary.json`` holds the headline numbers, the list of files and every
note (analyses skipped for lack of data, with the reason). The folder is
built under a temporary name and renamed into place at the end: an
interrupted run leaves no half-written output.

Outcomes come from the registry (:mod:`raoutcome.outcomes`). Image scores: the time-to-event
head (``pred_risk``) for the time-to-event analyses; each bounded outcome's own head (``pred_haq``,
``pred_pain``, ...) for that outcome when it exists (else the risk score). The human damage reading
is the count outcome's column (``svdh_total``); the learned progression score is its head. If the Predictions are not
cross-fitted a warning is recorded (``require_cross_fitted=True`` refuses).
"""
from __future__ import annotations

import json
import math
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from raoutcome import anatomy
from raoutcome.analysis import endpoints as ep
from raoutcome.analysis import outputs as files
from raoutcome.analysis.features import (DURATION, OBSERVED, AnalysisData, NotCrossFittedWarning, analysis_data,
                                         check_cross_fitted)
from raoutcome.analysis.incremental import PUBLISHED_CAVEAT, beyond_damage, beyond_sharp
from raoutcome.analysis.reader_error import reader_agreement
from raoutcome.analysis.longitudinal import GEEModel, MixedModel
from raoutcome.analysis.survival import (CoxModel, CoxNetModel, SurvivalForest, TimeVaryingCox, cross_val_risk,
                                         event_folds, km_by_groups)
from raoutcome.errors import InputError
from raoutcome.evaluation import harrell_c, regression_report, survival_report
from raoutcome.io_utils import atomic_path, atomic_write
from raoutcome.outcomes import damage_outcome, event_outcome, outcomes
from raoutcome.predictions import load_predictions
from raoutcome.reporting import stats_figures as figs

RETEST_FILE = files.RETEST_CSV
DEFAULT_EFFECTS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)


@dataclass
class AnalyzeSettings:
    """Knobs of :func:`analyze` (defaults suit a cohort of a few hundred patients)."""

    event: str = anatomy.DEFORMITY_EVENT
    n_boot: int = 200
    n_sim: int = 400
    effects: tuple[float, ...] = DEFAULT_EFFECTS
    n_per_arm: int | None = None      # None: what observed SvdH change needs at a 50 % effect (20..500)
    horizon: float | None = None      # None: median follow-up
    seed: int = 0
    require_cross_fitted: bool = False
    progress: bool = True


@dataclass
class _Run:
    data: AnalysisData
    out: Path
    settings: AnalyzeSettings
    predictions: Any
    cohort: Any
    summary: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)
    files: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)

    def table(self, name: str, frame: pd.DataFrame, what: str) -> None:
        with atomic_write(self.out / name) as fh:
            frame.to_csv(fh, index=False)
        self.files[name] = what

    def figure(self, name: str, fig, what: str) -> None:
        figs.save(fig, self.out / name)
        self.files[name] = what

    def note(self, stage: str, message: str) -> None:
        self.notes.append(f"{stage}: {message}")


def analyze(cohort, predictions_path: str | Path, out_dir: str | Path, settings: AnalyzeSettings | None = None,
            **overrides: Any) -> Path:
    """Run every analysis and write tables, figures and ``summary.json`` into ``out_dir`` (replaced atomically)."""
    settings = settings or AnalyzeSettings()
    for key, value in overrides.items():
        if not hasattr(settings, key):
            raise InputError(f"analyze: unknown setting {key!r}")
        setattr(settings, key, value)
    out_dir = Path(out_dir)
    predictions = load_predictions(predictions_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", NotCrossFittedWarning)
        cross_fitted = check_cross_fitted(predictions, require=settings.require_cross_fitted)
    data = analysis_data(cohort, predictions, event=settings.event)
    if not data.heads:
        raise InputError(f"{predictions_path}: predictions hold no score for any cohort visit")

    stages: list[tuple[str, Callable[[_Run], None]]] = [
        ("metrics", _metrics), ("survival", _survival), ("observed events", _observed_events),
        ("longitudinal", _longitudinal), ("reader agreement", _agreement), ("beyond Sharp", _incremental),
        ("endpoints", _endpoints),
    ]
    with atomic_path(out_dir) as tmp:
        tmp.mkdir(parents=True)
        run = _Run(data=data, out=tmp, settings=settings, predictions=predictions, cohort=cohort)
        run.notes.extend(f"predictions: {w.message}" for w in caught)
        with _progress(settings.progress) as bar:
            task = bar.add_task("analyze", total=len(stages))
            for name, stage in stages:
                bar.update(task, description=f"analyze: {name}")
                with warnings.catch_warnings(record=True) as stage_warnings:
                    warnings.simplefilter("always")
                    started = time.perf_counter()
                    stage(run)
                    run.timings[name] = round(time.perf_counter() - started, 2)
                run.notes.extend(f"{name}: {w.message}" for w in stage_warnings
                                 if not issubclass(w.category, (DeprecationWarning, FutureWarning)))
                bar.advance(task)
        run.summary.update(_cohort_summary(data, cross_fitted, predictions))
        run.summary["notes"] = list(dict.fromkeys(run.notes))
        run.summary["files"] = run.files
        run.summary["seconds"] = run.timings
        with atomic_write(tmp / files.SUMMARY_JSON) as fh:
            json.dump(_jsonable(run.summary), fh, indent=2, allow_nan=False)
    return out_dir


# ------------------------------------------------------------------------------------------- stages
def _survival_image(data: AnalysisData) -> str | None:
    """The image score of the time-to-event analyses: the time-to-event head, else a count head's output,
    else any other."""
    rank = {"time_to_event": 0, "count": 1}
    for spec in sorted(outcomes(), key=lambda o: rank.get(o.kind, 2)):
        for head in spec.outputs:
            if head in data.heads:
                return data.pred(head)
    return None


def _sharp(visits: pd.DataFrame) -> str | None:
    """The human damage reading's column (``svdh_total``) when the cohort has any value of it."""
    damage = damage_outcome()
    col = damage.column if damage is not None else None
    return col if col in visits and visits[col].notna().any() else None


def _outcome_images(data: AnalysisData) -> dict[str, str]:
    """Bounded outcome's column (HAQ, pain, ...) -> its image score (its own head, else the survival image)."""
    default = _survival_image(data)
    out = {}
    for spec in outcomes():
        if spec.kind == "bounded" and spec.column in data.visits and data.visits[spec.column].notna().any():
            col = data.pred(spec.name) if spec.name in data.heads else default
            if col is not None:
                out[spec.column] = col
    return out


def _metrics(run: _Run) -> None:
    data, s = run.data, run.settings
    rows = []
    columns = {out: (spec, col) for spec in outcomes() for out, col in spec.columns.items()}
    for head in data.heads:
        spec, outcome = columns.get(head, (None, None))
        if outcome not in data.visits:
            continue
        pairs = data.visits[["patient_id", outcome, data.pred(head)]].dropna()
        try:
            report = regression_report(pairs[outcome], pairs[data.pred(head)], pairs["patient_id"], n_boot=s.n_boot,
                                       seed=s.seed, dream=spec.dream, progress=False)
        except InputError as err:
            run.note("metrics", f"{head}: {err}")
            continue
        rows.append(report.reset_index().assign(head=head, outcome=outcome))
        est = report["estimate"]
        text = f"RMSE {est['rmse']:.3g}\nr {est['pearson_r']:.2f}\nn patients {pairs['patient_id'].nunique()}"
        run.figure(files.scatter(head), figs.scatter_figure(pairs[outcome], pairs[data.pred(head)], head, outcome, text),
                   f"{head} head: predicted vs observed {outcome}")
        run.summary.setdefault("metrics", {})[head] = {k: float(est[k]) for k in ("rmse", "pearson_r")}
    pts = data.patients
    event = event_outcome()
    risk = event.name if event is not None else None
    if risk in data.heads and DURATION in pts:
        pairs = pts[[data.pred(risk), DURATION, OBSERVED]].dropna()
        try:
            times = _time_grid(pairs[DURATION], pairs[OBSERVED])
            report = survival_report(pairs[DURATION], pairs[OBSERVED], pairs[data.pred(risk)],
                                     times=times if len(times) else None, horizon=_horizon(run),
                                     n_boot=s.n_boot, seed=s.seed, progress=False)
        except InputError as err:
            run.note("metrics", f"{risk}: {err}")
        else:
            rows.append(report.reset_index().assign(head=risk, outcome=data.event))
            c = report.loc["harrell_c"]
            run.summary.setdefault("metrics", {})[risk] = {"harrell_c": float(c["estimate"]),
                                                           "harrell_c_ci": [float(c["ci_low"]), float(c["ci_high"])]}
            text = f"Harrell C {c['estimate']:.3f} ({c['ci_low']:.3f}–{c['ci_high']:.3f})"
            run.figure(files.scatter(risk),
                       figs.risk_scatter_figure(pairs[data.pred(risk)], pairs[DURATION], pairs[OBSERVED], text),
                       f"{risk} head (first visit) vs time to event")
    if rows:
        table = pd.concat(rows, ignore_index=True)
        run.table(files.METRICS_CSV, table[["head", "outcome", *[c for c in table if c not in ("head", "outcome")]]],
                  "accuracy of each head against the observed outcome, bootstrap CIs")


def _survival(run: _Run) -> None:
    data = run.data
    image = _survival_image(data)
    pts = data.patients
    if DURATION not in pts or image is None:
        run.note("survival", f"no '{data.event}' event table or no image score: survival analyses skipped")
        return
    sharp = [c for c in [_sharp(pts)] if c]
    base = [*sharp, *data.covariates]
    scaled = [image, *sharp]
    hr_rows = []
    for label, terms in (("SvdH + covariates", base), ("image + SvdH + covariates", [image, *base])):
        if not terms:
            continue
        try:
            model = CoxModel(terms, standardize=scaled).fit(pts)
        except (InputError, ValueError, np.linalg.LinAlgError) as err:
            run.note("survival", f"Cox {label}: {err}")
            continue
        hr_rows.append(model.summary.assign(model=label, n=model.n_, events=model.n_events_))
        if image in terms:
            run.table(files.COX_PH_TEST_CSV, model.check_proportional_hazards(),
                      "proportional-hazards test (Schoenfeld residuals, rank time) of the full Cox model")
            row = model.summary.set_index("covariate").loc[image]
            run.summary["cox_image_hr_per_sd"] = {"image": image, "hr": row["hr"], "ci": [row["hr_lower"], row["hr_upper"]],
                                                  "p": row["p"], "n": model.n_, "events": model.n_events_}
    if hr_rows:
        hr = pd.concat(hr_rows, ignore_index=True)
        run.table(files.COX_HAZARD_RATIOS_CSV, hr, "Cox hazard ratios with 95 % CIs (image score and SvdH per SD)")
        run.figure(files.COX_FOREST_PNG, figs.forest_figure(hr, f"Cox models for {data.event}: hazard ratios (95 % CI)"),
                   "forest plot of the Cox hazard ratios")
    try:
        km = km_by_groups(pts, image)
        run.table(files.KM_GROUPS_CSV, km.groups.assign(logrank_statistic=km.statistic, logrank_df=km.df,
                                                    logrank_p=km.p_value),
                  "Kaplan–Meier groups (image-score tertiles) and the log-rank test")
        run.figure(files.KM_TERTILES_PNG, figs.km_figure(km.curves, km.groups, km.p_value, image, data.event),
                   "Kaplan–Meier curves by image-score tertile")
        run.summary["km_logrank_p"] = km.p_value
    except InputError as err:
        run.note("survival", f"Kaplan–Meier: {err}")
    try:
        events = pts[["patient_id", DURATION, OBSERVED]]
        tv = TimeVaryingCox([image, *base], standardize=scaled).fit(data.visits, events)
        run.table(files.COX_TIME_VARYING_CSV, tv.summary.assign(intervals=len(tv.table_)),
                  "time-varying Cox model: scores updated at every visit (per SD)")
    except (InputError, ValueError, np.linalg.LinAlgError) as err:
        run.note("survival", f"time-varying Cox: {err}")
    run.table(files.SURVIVAL_MODELS_CSV, _survival_models(run, image, base), "cross-validated C-index of survival models")


def _observed_events(run: _Run) -> None:
    """Interval-censored / competing-risk models when the events call for them, landmark models and
    calibration at 1/2/5 years (:mod:`raoutcome.analysis.observed_survival`)."""
    from raoutcome.analysis.observed_survival import FILES, observed_survival
    from raoutcome.reporting import survival_figures as sfigs

    data = run.data
    image = _survival_image(data)
    pts = data.patients
    if DURATION not in pts or image is None:
        run.note("observed events", "no event table or no image score: skipped")
        return
    sharp = [c for c in [_sharp(pts)] if c]
    res = observed_survival(pts, data.visits, run.cohort.events, image, [*sharp, *data.covariates],
                            scaled=[image, *sharp], event=data.event, seed=run.settings.seed)
    for name, frame in res.tables.items():
        run.table(name, frame, FILES.get(name, name))
    if res.calibration_curves is not None:
        run.figure("calibration.png", sfigs.calibration_figure(res.calibration_curves, res.tables["calibration.csv"],
                                                               data.event), FILES["calibration.png"])
    if res.cif is not None:
        run.figure("cif_groups.png", sfigs.cif_figure(res.cif, figs.score_name(image), data.event),
                   FILES["cif_groups.png"])
    if res.cif_calibration_curves is not None:
        run.figure("cif_calibration.png", sfigs.cif_calibration_figure(
            res.cif_calibration_curves, res.tables["cif_calibration.csv"], res.tables["cif_calibration_groups.csv"],
            data.event), FILES["cif_calibration.png"])
    run.summary.update(res.summary)
    run.notes.extend(f"observed events: {n}" for n in res.notes)


def _survival_models(run: _Run, image: str, base: list[str]) -> pd.DataFrame:
    data, s = run.data, run.settings
    pts = data.patients
    emb = data.embedding_cols
    candidates: list[tuple[str, Any]] = []
    if base:
        candidates.append(("Cox: SvdH + covariates", CoxModel(base)))
    candidates.append(("Cox: image + SvdH + covariates", CoxModel([image, *base])))
    if emb:
        candidates.append(("CoxNet: embedding PCs + SvdH + covariates",
                           CoxNetModel(base, embedding_cols=emb, n_components=8)))
    candidates.append(("Random survival forest: image + SvdH + covariates",
                       SurvivalForest([image, *base], n_estimators=150, random_state=s.seed)))
    rows = []
    used = [image, *base, *emb, DURATION, OBSERVED]
    complete = pts.dropna(subset=used).reset_index(drop=True)
    if complete[OBSERVED].sum() < 5:
        run.note("survival", "fewer than 5 events among complete patients: cross-validated C-index skipped")
        return pd.DataFrame(columns=["model", "c_index_cv", "n", "events", "folds"])
    folds = event_folds(complete[OBSERVED], 5, s.seed)
    for label, model in candidates:
        try:
            risk = cross_val_risk(model, complete, folds=folds)
            c = harrell_c(complete[DURATION], complete[OBSERVED], risk)
        except (InputError, ValueError, np.linalg.LinAlgError) as err:
            run.note("survival", f"{label}: {err}")
            continue
        rows.append({"model": label, "c_index_cv": float(c), "n": len(complete),
                     "events": int(complete[OBSERVED].sum()), "folds": int(folds.max() + 1)})
    return pd.DataFrame(rows)


def _standardized(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    out = frame.copy()
    for col in columns:
        sd = out[col].std(ddof=1)
        if sd and np.isfinite(sd):
            out[col] = (out[col] - out[col].mean()) / sd
    return out


def _longitudinal(run: _Run) -> None:
    data = run.data
    outcome_images = _outcome_images(data)
    sharp = _sharp(data.visits)
    mixed, effects, gee = [], [], []
    for outcome, image in outcome_images.items():
        scaled = _standardized(data.visits, [c for c in (image, sharp) if c])
        variants = [("image", [image])]
        if sharp:
            variants = [("SvdH", [sharp]), ("image", [image]), ("image + SvdH", [image, sharp])]
        for label, terms in variants:
            predictors = [*terms, *data.covariates]
            try:
                mm = MixedModel(outcome, predictors).fit(scaled)
                mixed.append(mm.summary.assign(predictors=label))
                effects.append(mm.random_effects.assign(outcome=outcome, predictors=label))
                gm = GEEModel(outcome, predictors).fit(scaled)
                gee.append(gm.summary.assign(predictors=label, working_correlation=gm.correlation_))
            except (InputError, ValueError, np.linalg.LinAlgError) as err:
                run.note("longitudinal", f"{outcome} ~ {label}: {err}")
    if not mixed:
        run.note("longitudinal", "no HAQ or pain values with an image score: mixed models skipped")
        return
    mixed_t = pd.concat(mixed, ignore_index=True)
    run.table(files.MIXED_MODELS_CSV, mixed_t, "linear mixed models (random intercept + time slope, REML), "
                                           "image score and SvdH per SD")
    run.table(files.MIXED_RANDOM_EFFECTS_CSV, pd.concat(effects, ignore_index=True), "mixed-model variance components")
    run.table(files.GEE_MODELS_CSV, pd.concat(gee, ignore_index=True), "GEE (Gaussian, exchangeable), per SD")
    shown = mixed_t[mixed_t["term"].isin([*outcome_images.values(), sharp, "time_years"])]
    shown = shown.drop(columns="model").rename(columns={"predictors": "model"})
    run.figure(files.MIXED_COEFFICIENTS_PNG,
               figs.coefficient_figure(shown, "Mixed models: change in outcome per SD of each score (95 % CI)"),
               "mixed-model coefficients of the image score and SvdH")


def _incremental(run: _Run) -> None:
    data, s = run.data, run.settings
    image = _survival_image(data)
    damage = damage_outcome()
    if image is None or damage is None or damage.column not in data.visits:
        run.note("beyond Sharp", "no image score or no human damage reading column: incremental-value tests skipped")
        return
    kw = dict(outcome_images=_outcome_images(data), horizon=_horizon(run), n_boot=s.n_boot, seed=s.seed,
              require_cross_fitted=s.require_cross_fitted)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotCrossFittedWarning)  # already noted once for the whole run
        table = beyond_sharp(data, image, sharp=damage.column, **kw)
        try:
            corrected = beyond_damage(data, image, retest=_retest_table(run), **kw)
        except (InputError, ValueError, np.linalg.LinAlgError) as err:
            corrected = pd.DataFrame()
            run.note("beyond Sharp", f"beyond_damage could not run: {err}")
    if table.empty:
        run.note("beyond Sharp", "no test could run")
        return
    keys = ("question", "test", "outcome", "added", "estimate", "ci_lower", "ci_upper", "p_value", "n")
    run.summary["beyond_sharp"] = [{k: row[k] for k in keys} for _, row in table.iterrows()]
    if corrected.empty:
        run.summary["beyond_damage_warning"] = BEYOND_SHARP_ONLY
        run.note("beyond Sharp", BEYOND_SHARP_ONLY)
    else:
        run.summary["beyond_damage"] = [{k: row[k] for k in (*keys, "reliability_source")}
                                        for _, row in corrected.iterrows()]
        if not str(corrected["reliability_source"].iloc[0]).startswith("retest"):
            run.summary["beyond_damage_caveat"] = PUBLISHED_CAVEAT
            run.note("beyond Sharp", PUBLISHED_CAVEAT)
    table = pd.concat([table, corrected], ignore_index=True).assign(cross_fitted=data.cross_fitted)
    run.table(files.INCREMENTAL_CSV, table, "does the image add to the human Sharp reading, and does it carry "
                                        "something other than damage? (column 'question')")


BEYOND_SHARP_ONLY = ("only the 'beyond the human reading' question could be answered: a small p-value there may "
                     "mean no more than that the image reads joint damage more precisely than the human reader, "
                     "not that it sees anything other than damage")


def _retest_table(run: _Run) -> pd.DataFrame | None:
    """The cohort's repeat readings (``Cohort.retest``, else ``<root>/retest.csv``), or None."""
    retest = getattr(run.cohort, "retest", None)
    if retest is not None:
        return retest
    root = getattr(run.cohort, "root", None)
    path = Path(root) / RETEST_FILE if root is not None else None
    if path is None or not path.exists():
        return None
    return pd.read_csv(path, dtype={"patient_id": str, "visit_id": str})


def _agreement(run: _Run) -> None:
    retest = _retest_table(run)
    if retest is None:
        run.note("reader agreement", f"no {RETEST_FILE} (repeat readings): reader agreement not estimated; "
                                     "beyond_damage uses a published reliability")
        return
    table = reader_agreement(run.data.visits, retest)
    if table.empty:
        run.note("reader agreement", f"{RETEST_FILE} shares no scored visit with the cohort")
        return
    run.table(files.READER_AGREEMENT_CSV, table, "agreement of the two readings: ICC(A,1), Bland–Altman, SDC")
    run.summary["reader_agreement"] = {row["score"]: {k: row[k] for k in ("pairs", "icc", "bias", "error_sd", "sdc")}
                                       for _, row in table.iterrows()}


def _endpoints(run: _Run) -> None:
    data, s = run.data, run.settings
    damage = damage_outcome()
    sources = ([(f"{damage.short_label} change (observed)", damage.column),
                ("learned progression score", data.pred(damage.name))] if damage is not None else [])
    sources += [(f"{o.short_label} change (observed)", o.column) for o in outcomes() if o.endpoint]
    changes: dict[str, np.ndarray] = {}
    per_patient = []
    for label, col in sources:
        if col not in data.visits or data.visits[col].notna().sum() == 0:
            continue
        ch = ep.change_scores(data.visits, col)
        if len(ch) >= 3:
            changes[label] = ch["change"].to_numpy()
            per_patient.append(ch.assign(endpoint=label, column=col))
    if not changes:
        run.note("endpoints", "no endpoint with change scores for at least 3 patients")
        return
    sdcs = _retest_sdc(run, dict(sources))
    table = ep.endpoint_table(changes, sdcs, effect=0.5)
    run.table(files.ENDPOINTS_CSV, table, "endpoint responsiveness: SRM, SDC, % progressors, sample size per arm "
                                      "(50 % reduction of change)")
    run.table(files.CHANGE_SCORES_CSV, pd.concat(per_patient, ignore_index=True), "per-patient change, first to last visit")
    run.figure(files.CUMULATIVE_PROBABILITY_PNG, figs.cumulative_probability_figure(changes, sdcs),
               "cumulative probability plots of change scores")
    n = s.n_per_arm
    if n is None:
        first = table.iloc[0]
        n = int(np.clip(first["n_per_arm"], 20, 500)) if np.isfinite(first["n_per_arm"]) else 100
    power = ep.simulate_power(changes, s.effects, n_per_arm=n, n_sim=s.n_sim, seed=s.seed, progress=False)
    run.table(files.POWER_CSV, power, "simulated two-arm trial power per endpoint and effect")
    run.figure(files.POWER_CURVES_PNG, figs.power_figure(power), "simulated power curves")
    run.summary["endpoints"] = {row["endpoint"]: {"srm": row["srm"], "sdc": row["sdc"], "n_per_arm": row["n_per_arm"]}
                                for _, row in table.iterrows()}
    run.summary["power_n_per_arm"] = n


def _retest_sdc(run: _Run, sources: dict[str, str]) -> dict[str, float]:
    """SDC per endpoint from ``<cohort>/retest.csv`` (patient_id, visit_id, repeat readings), if present."""
    retest = _retest_table(run)
    if retest is None:
        run.note("endpoints", f"no {RETEST_FILE} (repeat readings) in the cohort folder: SDC not estimated")
        return {}
    out = {}
    for label, col in sources.items():
        if col in retest and (value := ep.retest_sdc(run.data.visits, retest, col)) is not None:
            out[label] = value
    return out


# ----------------------------------------------------------------------------------------- helpers
def _horizon(run: _Run) -> float | None:
    if run.settings.horizon is not None:
        return float(run.settings.horizon)
    pts = run.data.patients
    if DURATION not in pts:
        return None
    return float(np.round(np.median(pts[DURATION].dropna()), 2))


def _time_grid(time: pd.Series, event: pd.Series) -> np.ndarray:
    """Where to evaluate AUC(t): the event-time quartiles, rounded to times a reader would name.

    Half-year steps (then quarter years) when they keep the quartiles apart as well as two
    significant digits do; else two significant digits (short follow-up).
    """
    ev = np.asarray(time)[np.asarray(event) == 1]
    if len(ev) < 4:
        return np.array([])
    quartiles = np.quantile(ev, [0.25, 0.5, 0.75])
    end = np.asarray(time).max()

    def usable(grid: np.ndarray) -> np.ndarray:
        grid = np.unique(grid)
        return grid[(grid > 0) & (grid < end)]

    fine = usable(np.array([float(f"{q:.2g}") for q in quartiles]))
    for step in (0.5, 0.25):
        stepped = usable(np.round(quartiles / step) * step)
        if len(stepped) >= len(fine):
            return stepped
    return fine


def _cohort_summary(data: AnalysisData, cross_fitted: bool, predictions) -> dict:
    pts = data.patients
    return {
        "n_patients": int(data.visits["patient_id"].nunique()),
        "n_visits": int(len(data.visits)),
        "event": data.event,
        "n_events": int(pts[OBSERVED].sum()) if OBSERVED in pts else 0,
        "heads": data.heads,
        "covariates": data.covariates,
        "cross_fitted": bool(cross_fitted),
        "predictions_run": str(predictions.attrs.get("run", "")),
    }


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value


class _NoProgress:
    def __enter__(self):
        return self

    def __exit__(self, *_exc):
        return False

    def add_task(self, *args, **kwargs):
        return 0

    def update(self, *args, **kwargs):
        pass

    def advance(self, *args, **kwargs):
        pass


class _StageBar(_NoProgress):
    """The add_task/update/advance calls above, on the library's one progress bar (tqdm)."""

    def __enter__(self):
        self.bar = None
        return self

    def __exit__(self, *_exc):
        if self.bar is not None:
            self.bar.close()
        return False

    def add_task(self, description, total=None, **kwargs):
        from raoutcome.progress import tqdm

        self.bar = tqdm(total=total, desc=description, leave=False)
        return 0

    def update(self, task, description=None, **kwargs):
        if self.bar is not None and description is not None:
            self.bar.set_description_str(description)

    def advance(self, task, advance=1):
        if self.bar is not None:
            self.bar.update(advance)


def _progress(show: bool):
    return _StageBar() if show else _NoProgress()
