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
4. **beyond Sharp** — incremental value of the image score over log(1 + SvdH)
   + covariates (Cox LRT, ΔC with bootstrap CI, continuous NRI, ML mixed-model
   LRT, partial R² F-test; see :func:`raoutcome.analysis.incremental.beyond_sharp`
   for why SvdH enters on the log scale there) → ``incremental.csv``;
5. **endpoints** — per-patient change (SvdH, the learned progression score,
   HAQ), SRM, SDC (when a ``retest.csv`` of repeat readings sits in the cohort
   folder), % progressors, sample size per arm, simulated two-arm power →
   ``endpoints.csv``, ``change_scores.csv``, ``cumulative_probability.png``,
   ``power.csv``, ``power_curves.png``.

``summary.json`` holds the headline numbers, the list of files and every
note (analyses skipped for lack of data, with the reason). The folder is
built under a temporary name and renamed into place at the end: an
interrupted run leaves no half-written output.

Image scores: ``pred_risk`` for the time-to-event analyses; ``pred_haq`` /
``pred_pain`` for HAQ / pain when those heads exist (else the risk score).
The learned progression score is the ``svdh`` head. If the Predictions are not
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
from raoutcome.analysis.features import (DURATION, HEAD_TARGETS, OBSERVED, AnalysisData, NotCrossFittedWarning, analysis_data,
                                         check_cross_fitted)
from raoutcome.analysis.incremental import beyond_sharp
from raoutcome.analysis.longitudinal import GEEModel, MixedModel
from raoutcome.analysis.survival import (CoxModel, CoxNetModel, SurvivalForest, TimeVaryingCox, cross_val_risk,
                                         event_folds, km_by_groups)
from raoutcome.errors import InputError
from raoutcome.evaluation import harrell_c, regression_report, survival_report
from raoutcome.io_utils import atomic_path, atomic_write
from raoutcome.predictions import load_predictions
from raoutcome.reporting import stats_figures as figs

RETEST_FILE = "retest.csv"
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
        ("metrics", _metrics), ("survival", _survival), ("longitudinal", _longitudinal),
        ("beyond Sharp", _incremental), ("endpoints", _endpoints),
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
        with atomic_write(tmp / "summary.json") as fh:
            json.dump(_jsonable(run.summary), fh, indent=2, allow_nan=False)
    return out_dir


# ------------------------------------------------------------------------------------------- stages
def _survival_image(data: AnalysisData) -> str | None:
    for head in ("risk", "svdh", "erosion", "jsn", "haq", "pain"):
        if head in data.heads:
            return data.pred(head)
    return None


def _outcome_images(data: AnalysisData) -> dict[str, str]:
    default = _survival_image(data)
    out = {}
    for outcome in ("haq", "pain"):
        if outcome in data.visits and data.visits[outcome].notna().any():
            col = data.pred(outcome) if outcome in data.heads else default
            if col is not None:
                out[outcome] = col
    return out


def _metrics(run: _Run) -> None:
    data, s = run.data, run.settings
    rows = []
    for head in data.heads:
        outcome = HEAD_TARGETS.get(head)
        if head == "risk" or outcome not in data.visits:
            continue
        pairs = data.visits[["patient_id", outcome, data.pred(head)]].dropna()
        try:
            report = regression_report(pairs[outcome], pairs[data.pred(head)], pairs["patient_id"], n_boot=s.n_boot,
                                       seed=s.seed, dream=head in ("svdh", "jsn", "erosion"), progress=False)
        except InputError as err:
            run.note("metrics", f"{head}: {err}")
            continue
        rows.append(report.reset_index().assign(head=head, outcome=outcome))
        est = report["estimate"]
        text = f"RMSE {est['rmse']:.3g}\nr {est['pearson_r']:.2f}\nn patients {pairs['patient_id'].nunique()}"
        run.figure(f"scatter_{head}.png", figs.scatter_figure(pairs[outcome], pairs[data.pred(head)], head, outcome, text),
                   f"{head} head: predicted vs observed {outcome}")
        run.summary.setdefault("metrics", {})[head] = {k: float(est[k]) for k in ("rmse", "pearson_r")}
    pts = data.patients
    if "risk" in data.heads and DURATION in pts:
        pairs = pts[[data.pred("risk"), DURATION, OBSERVED]].dropna()
        try:
            times = _time_grid(pairs[DURATION], pairs[OBSERVED])
            report = survival_report(pairs[DURATION], pairs[OBSERVED], pairs[data.pred("risk")],
                                     times=times if len(times) else None, horizon=_horizon(run),
                                     n_boot=s.n_boot, seed=s.seed, progress=False)
        except InputError as err:
            run.note("metrics", f"risk: {err}")
        else:
            rows.append(report.reset_index().assign(head="risk", outcome=data.event))
            c = report.loc["harrell_c"]
            run.summary.setdefault("metrics", {})["risk"] = {"harrell_c": float(c["estimate"]),
                                                             "harrell_c_ci": [float(c["ci_low"]), float(c["ci_high"])]}
            text = f"Harrell C {c['estimate']:.3f} ({c['ci_low']:.3f}–{c['ci_high']:.3f})"
            run.figure("scatter_risk.png",
                       figs.risk_scatter_figure(pairs[data.pred("risk")], pairs[DURATION], pairs[OBSERVED], text),
                       "risk head (first visit) vs time to event")
    if rows:
        table = pd.concat(rows, ignore_index=True)
        run.table("metrics.csv", table[["head", "outcome", *[c for c in table if c not in ("head", "outcome")]]],
                  "accuracy of each head against the observed outcome, bootstrap CIs")


def _survival(run: _Run) -> None:
    data, s = run.data, run.settings
    image = _survival_image(data)
    pts = data.patients
    if DURATION not in pts or image is None:
        run.note("survival", f"no '{data.event}' event table or no image score: survival analyses skipped")
        return
    sharp = ["svdh_total"] if "svdh_total" in pts and pts["svdh_total"].notna().any() else []
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
            run.table("cox_ph_test.csv", model.check_proportional_hazards(),
                      "proportional-hazards test (Schoenfeld residuals, rank time) of the full Cox model")
            row = model.summary.set_index("covariate").loc[image]
            run.summary["cox_image_hr_per_sd"] = {"image": image, "hr": row["hr"], "ci": [row["hr_lower"], row["hr_upper"]],
                                                  "p": row["p"], "n": model.n_, "events": model.n_events_}
    if hr_rows:
        hr = pd.concat(hr_rows, ignore_index=True)
        run.table("cox_hazard_ratios.csv", hr, "Cox hazard ratios with 95 % CIs (image score and SvdH per SD)")
        run.figure("cox_forest.png", figs.forest_figure(hr, f"Cox models for {data.event}: hazard ratios (95 % CI)"),
                   "forest plot of the Cox hazard ratios")
    try:
        km = km_by_groups(pts, image)
        run.table("km_groups.csv", km.groups.assign(logrank_statistic=km.statistic, logrank_df=km.df,
                                                    logrank_p=km.p_value),
                  "Kaplan–Meier groups (image-score tertiles) and the log-rank test")
        run.figure("km_tertiles.png", figs.km_figure(km.curves, km.groups, km.p_value, image, data.event),
                   "Kaplan–Meier curves by image-score tertile")
        run.summary["km_logrank_p"] = km.p_value
    except InputError as err:
        run.note("survival", f"Kaplan–Meier: {err}")
    try:
        events = pts[["patient_id", DURATION, OBSERVED]]
        tv = TimeVaryingCox([image, *base], standardize=scaled).fit(data.visits, events)
        run.table("cox_time_varying.csv", tv.summary.assign(intervals=len(tv.table_)),
                  "time-varying Cox model: scores updated at every visit (per SD)")
    except (InputError, ValueError, np.linalg.LinAlgError) as err:
        run.note("survival", f"time-varying Cox: {err}")
    run.table("survival_models.csv", _survival_models(run, image, base), "cross-validated C-index of survival models")


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
    sharp = "svdh_total" if "svdh_total" in data.visits and data.visits["svdh_total"].notna().any() else None
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
    run.table("mixed_models.csv", mixed_t, "linear mixed models (random intercept + time slope, REML), "
                                           "image score and SvdH per SD")
    run.table("mixed_random_effects.csv", pd.concat(effects, ignore_index=True), "mixed-model variance components")
    run.table("gee_models.csv", pd.concat(gee, ignore_index=True), "GEE (Gaussian, exchangeable), per SD")
    shown = mixed_t[mixed_t["term"].isin([*outcome_images.values(), sharp, "time_years"])]
    shown = shown.drop(columns="model").rename(columns={"predictors": "model"})
    run.figure("mixed_coefficients.png",
               figs.coefficient_figure(shown, "Mixed models: change in outcome per SD of each score (95 % CI)"),
               "mixed-model coefficients of the image score and SvdH")


def _incremental(run: _Run) -> None:
    data, s = run.data, run.settings
    image = _survival_image(data)
    if image is None or "svdh_total" not in data.visits:
        run.note("beyond Sharp", "no image score or no svdh_total column: incremental-value tests skipped")
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotCrossFittedWarning)  # already noted once for the whole run
        table = beyond_sharp(data, image, outcome_images=_outcome_images(data), horizon=_horizon(run),
                             n_boot=s.n_boot, seed=s.seed, require_cross_fitted=s.require_cross_fitted)
    if table.empty:
        run.note("beyond Sharp", "no test could run")
        return
    table = table.assign(cross_fitted=data.cross_fitted)
    run.table("incremental.csv", table, "does the image score add information beyond SvdH + covariates?")
    run.summary["beyond_sharp"] = [
        {k: row[k] for k in ("test", "outcome", "added", "estimate", "ci_lower", "ci_upper", "p_value", "n")}
        for _, row in table.iterrows()
    ]


def _endpoints(run: _Run) -> None:
    data, s = run.data, run.settings
    sources = [("SvdH change (observed)", "svdh_total"), ("learned progression score", data.pred("svdh")),
               ("HAQ change (observed)", "haq")]
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
    run.table("endpoints.csv", table, "endpoint responsiveness: SRM, SDC, % progressors, sample size per arm "
                                      "(50 % reduction of change)")
    run.table("change_scores.csv", pd.concat(per_patient, ignore_index=True), "per-patient change, first to last visit")
    run.figure("cumulative_probability.png", figs.cumulative_probability_figure(changes, sdcs),
               "cumulative probability plots of change scores")
    n = s.n_per_arm
    if n is None:
        first = table.iloc[0]
        n = int(np.clip(first["n_per_arm"], 20, 500)) if np.isfinite(first["n_per_arm"]) else 100
    power = ep.simulate_power(changes, s.effects, n_per_arm=n, n_sim=s.n_sim, seed=s.seed, progress=False)
    run.table("power.csv", power, "simulated two-arm trial power per endpoint and effect")
    run.figure("power_curves.png", figs.power_figure(power), "simulated power curves")
    run.summary["endpoints"] = {row["endpoint"]: {"srm": row["srm"], "sdc": row["sdc"], "n_per_arm": row["n_per_arm"]}
                                for _, row in table.iterrows()}
    run.summary["power_n_per_arm"] = n


def _retest_sdc(run: _Run, sources: dict[str, str]) -> dict[str, float]:
    """SDC per endpoint from ``<cohort>/retest.csv`` (patient_id, visit_id, repeat readings), if present."""
    root = getattr(run.cohort, "root", None)
    path = Path(root) / RETEST_FILE if root is not None else None
    if path is None or not path.exists():
        run.note("endpoints", f"no {RETEST_FILE} (repeat readings) in the cohort folder: SDC not estimated")
        return {}
    retest = pd.read_csv(path, dtype={"patient_id": str, "visit_id": str})
    out = {}
    for label, col in sources.items():
        if col not in retest:
            continue
        main = run.data.visits[["patient_id", "visit_id", "time_years", col]]
        again = main.drop(columns=[col]).merge(retest[["patient_id", "visit_id", col]], on=["patient_id", "visit_id"])
        a, b = ep.change_scores(main, col), ep.change_scores(again, col)
        pair = a.merge(b, on="patient_id", suffixes=("_a", "_b"))
        pair = pair[(pair["t_start_a"] == pair["t_start_b"]) & (pair["t_end_a"] == pair["t_end_b"])]
        if len(pair) >= 3:
            out[label] = ep.sdc(pair["change_a"], pair["change_b"])
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

    def __exit__(self, *exc):
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

    def __exit__(self, *exc):
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
