"""The whole study as one resumable pipeline, ending in one self-contained HTML report.

``run_demo(out_dir)`` (``raoutcome demo`` / ``make demo``) runs, on the embedded synthetic cohort::

    simulate -> validate -> train (cross-fitted) -> predict (out-of-fold)
             -> anomaly (label-free joint score) -> analyze -> attribute -> report

``run_study(cohort, config, out_dir)`` (``raoutcome study``) runs the same chain on a user's own cohort,
without the simulator and without a truth section. Each stage writes into ``<out_dir>/<stage>/`` and
leaves a ``DONE.json`` marker once its outputs are atomically in place; re-running skips finished stages
(``force=True`` re-runs everything), an interrupted training resumes from its checkpoints, and
``<out_dir>/run_record.json`` records the resolved configuration, package versions, seeds, hardware and
stage timings (see :mod:`raoutcome.workflows.stages`).

Where the demo's configuration comes from: inside a source checkout (``make demo``), the repository's
``cohorts/demo.toml`` and ``cohorts/train_demo.toml``; from an installed package, the copies shipped in
``raoutcome/data/`` (a test keeps them identical to the ``cohorts/`` files).

Study TOML (``cohorts/study_example.toml`` documents every key)::

    [study]       title, seed, landmarks ("given" | "detect"), landmark_detector (a .safetensors; default: shipped)
    [train]       config = "train.toml"          (relative to the study file)
    [attribution] enabled, method, max_images
    [report]      example_views, example_patient
"""
from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

from raoutcome.config import check, dumps_toml, from_dict, read_toml
from raoutcome.errors import ConfigError, InputError
from raoutcome.workflows.stages import RUN_RECORD, Stage, StageContext, StageRunner

REPO_COHORTS = Path(__file__).resolve().parents[3] / "cohorts"
ATTRIBUTION_METHODS = ("integrated_gradients", "gradcam", "occlusion")
REPORT_NAME = "report.html"


# --------------------------------------------------------------------------------------------- settings
def _registered_views(v: tuple[str, ...]) -> bool:
    from raoutcome.anatomy import view_names

    return bool(v) and all(x in view_names() for x in v)


@dataclass(frozen=True)
class StudySection:
    title: str = "raoutcome study"
    seed: int = field(default=0, metadata={"check": check(lambda v: v >= 0, "a non-negative integer")})
    # "detect": landmarks from the landmark detector (raoutcome.workflows.landmarks), written to
    # <out>/validate/landmarks.csv; landmark_detector: a .safetensors file ("" = the shipped one)
    landmarks: str = field(default="given", metadata={"check": check(lambda v: v in ("given", "detect"),
                                                                      "'given' or 'detect'")})
    landmark_detector: str = ""


@dataclass(frozen=True)
class TrainReference:
    config: str = ""  # the training TOML, relative to the study TOML (required)


@dataclass(frozen=True)
class AttributionSection:
    enabled: bool = True
    method: str = field(default="integrated_gradients", metadata={"check": check(
        lambda v: v in ATTRIBUTION_METHODS, f"one of {', '.join(ATTRIBUTION_METHODS)}")})
    max_images: int = field(default=24, metadata={"check": check(lambda v: v >= 1, "an integer >= 1")})


@dataclass(frozen=True)
class ReportSection:
    example_views: tuple[str, ...] = field(default=("hand_left", "hand_right"), metadata={"check": check(
        _registered_views, "registered views (at least one)")})
    example_patient: str = ""


@dataclass(frozen=True)
class StudyConfig:
    """A study TOML: one frozen dataclass per section, the defaults are the field defaults (the demo's)."""

    study: StudySection = field(default_factory=StudySection)
    train: TrainReference = field(default_factory=TrainReference)
    attribution: AttributionSection = field(default_factory=AttributionSection)
    report: ReportSection = field(default_factory=ReportSection)


@dataclass
class StudySettings:
    """Resolved study settings (defaults = :class:`StudyConfig`'s, the demo's)."""

    title: str = StudySection.title
    seed: int = StudySection.seed
    train_config: Path | None = None
    attribution: bool = AttributionSection.enabled
    attribution_method: str = AttributionSection.method
    max_images: int = AttributionSection.max_images
    example_views: tuple[str, ...] = ReportSection.example_views
    example_patient: str | None = None
    source: Path | None = None  # the study TOML, if any
    landmarks: str = "given"  # "detect": landmarks from the detector (raoutcome.workflows.landmarks)
    landmark_detector: Path | None = None

    def as_record(self) -> dict[str, Any]:
        out = asdict(self)
        out["train_config"] = str(self.train_config) if self.train_config else None
        out["source"] = str(self.source) if self.source else None
        out["landmark_detector"] = str(self.landmark_detector) if self.landmark_detector else None
        out["example_views"] = list(self.example_views)
        return out


def load_study_config(path: str | Path) -> StudySettings:
    """Read and check a study TOML (:class:`StudyConfig`, :mod:`raoutcome.config`); every bad key or value
    raises :class:`ConfigError` naming it."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    cfg = from_dict(StudyConfig, read_toml(path, "study config"), str(path))
    if not cfg.train.config:
        raise ConfigError(f"{path}: missing key 'train.config' (the training TOML, e.g. cohorts/train_demo.toml)")
    tpath = Path(cfg.train.config)
    train_config = (tpath if tpath.is_absolute() else path.parent / tpath).resolve()
    if not train_config.is_file():
        raise ConfigError(f"{path}: 'train.config' = {cfg.train.config!r}: file not found ({train_config})")
    return StudySettings(title=cfg.study.title, seed=cfg.study.seed, train_config=train_config,
                         attribution=cfg.attribution.enabled, attribution_method=cfg.attribution.method,
                         max_images=cfg.attribution.max_images, example_views=cfg.report.example_views,
                         example_patient=cfg.report.example_patient or None, source=path.resolve(),
                         landmarks=cfg.study.landmarks,
                         landmark_detector=_detector_path(path, cfg.study.landmark_detector))


def _detector_path(study_toml: Path, value: str) -> Path | None:
    """The study's ``landmark_detector`` (relative to the study TOML), checked to exist; None = default."""
    if not value:
        return None
    dpath = Path(value) if Path(value).is_absolute() else study_toml.parent / value
    if not dpath.is_file():
        raise ConfigError(f"{study_toml}: 'study.landmark_detector' = {value!r}: file not found ({dpath})")
    return dpath.resolve()


def packaged_config(name: str) -> Path:
    """A shipped TOML (``demo.toml``, ``train_demo.toml``, ``train_image.toml``): the repository's
    ``cohorts/`` in a source checkout, else the copy packaged in ``raoutcome/data``."""
    for folder in (REPO_COHORTS, Path(str(resources.files("raoutcome") / "data"))):
        if (folder / name).is_file():
            return folder / name
    raise ConfigError(f"{name} not found in {REPO_COHORTS} nor in the package's data folder")


def demo_config_paths() -> tuple[Path, Path]:
    """(simulator TOML, training TOML) for the demo: the repository's ``cohorts/`` in a source checkout,
    else the copies packaged in ``raoutcome/data``."""
    sim, train = REPO_COHORTS / "demo.toml", REPO_COHORTS / "train_demo.toml"
    if sim.is_file() and train.is_file():
        return sim, train
    data = Path(str(resources.files("raoutcome") / "data"))
    sim, train = data / "demo.toml", data / "train_demo.toml"
    if not (sim.is_file() and train.is_file()):
        raise ConfigError(f"demo configuration not found in {REPO_COHORTS} nor in {data}")
    return sim, train


# ------------------------------------------------------------------------------------------------ stages
def _load_cohort(path: Path):
    from raoutcome.cohort import load

    return load(path, images=True)  # every image decoded (cached) before any work starts


def _stage_simulate(sim_config: Path, seed: int | None):
    def run(ctx: StageContext):
        from raoutcome.synth import simulate

        target = ctx.stage_dir / "cohort"
        if target.exists() and not (target / "visits.csv").exists():
            shutil.rmtree(target)  # an interrupted write; the simulator builds atomically beside it
        path = simulate(sim_config, target, seed=seed)
        return {"cohort": Path(path)}

    return run


def _stage_validate(source: Path | None, settings: StudySettings):
    """Load + validate the cohort; write the cohort summary, overview and example radiographs."""

    def cohort_path(ctx: StageContext) -> Path:
        return ctx.path("simulate", "cohort") if source is None else source

    def reload(ctx: StageContext) -> None:
        if "cohort" not in ctx.state:  # run_study validated it before starting
            ctx.state["cohort"] = _load_cohort(cohort_path(ctx))
        if settings.landmarks == "detect" and not ctx.state.get("landmarks_detected"):
            from raoutcome.workflows.landmarks import with_detected_landmarks

            ctx.state["cohort"] = with_detected_landmarks(ctx.state["cohort"], ctx.stage_dir / "landmarks.csv",
                                                          settings.landmark_detector)
            ctx.state["landmarks_detected"] = True

    def run(ctx: StageContext):
        from raoutcome.io_utils import atomic_write
        from raoutcome.reporting import cohort_figures as cf

        reload(ctx)
        cohort = ctx.state["cohort"]
        if settings.example_patient and settings.example_patient not in set(cohort.patients["patient_id"]):
            raise ConfigError(f"'report.example_patient' = {settings.example_patient!r} is not in the cohort")
        out: dict[str, Any] = {}
        with atomic_write(ctx.stage_dir / "summary.txt") as fh:
            fh.write(cohort.summary())
        out["summary"] = ctx.stage_dir / "summary.txt"
        table = cf.cohort_table(cohort)
        with atomic_write(ctx.stage_dir / "cohort_table.csv") as fh:
            table.to_csv(fh, index=False)
        out["table"] = ctx.stage_dir / "cohort_table.csv"
        pid = settings.example_patient or cf.pick_rapid_progressor(cohort, settings.example_views)
        out["overview"] = cf.save_figure(cf.cohort_overview_figure(cohort, highlight=pid),
                                         ctx.stage_dir / "cohort_overview.png")
        if pid is not None:
            out["examples"] = cf.save_figure(cf.example_radiographs_figure(cohort, pid, settings.example_views),
                                             ctx.stage_dir / "example_radiographs.png", dpi=130)
        out["example_patient"] = pid
        out["cohort"] = Path(cohort_path(ctx))
        return out

    return run, reload


def _stage_train(train_config: Path):
    def run(ctx: StageContext):
        from raoutcome.training import train_run

        # The run folder is kept between attempts: train_run resumes from its checkpoints.
        run_dir = train_run(ctx.state["cohort"], train_config, ctx.stage_dir / "run")
        return {"run": Path(run_dir)}

    return run


def _stage_predict():
    """The out-of-fold predictions of the cross-fitted training; in-sample predictions only as a
    (flagged) fallback when the training was not cross-fitted."""

    def run(ctx: StageContext):
        from raoutcome.analysis.features import is_cross_fitted
        from raoutcome.io_utils import atomic_write
        from raoutcome.predictions import load_predictions, save_predictions, to_frame

        run_dir = ctx.path("train", "run")
        target = ctx.stage_dir / "predictions.nc"
        cv = run_dir / "cv_predictions.nc"
        if cv.exists():
            ds = load_predictions(cv)
            save_predictions(ds, target)
        else:
            from raoutcome.training import predict_run

            predict_run(run_dir, ctx.state["cohort"], target)
            ds = load_predictions(target)
        frame = to_frame(ds)
        with atomic_write(ctx.stage_dir / "predictions.csv") as fh:
            frame.to_csv(fh, index=False)
        folds = ds["fold"].values if "fold" in ds else []
        return {"predictions": target, "table": ctx.stage_dir / "predictions.csv",
                "cross_fitted": is_cross_fitted(ds), "n_folds": len({int(f) for f in folds if f >= 0})}

    return run


#: Patients of the demo's independent test cohort, and its seed offset from the demo cohort's (the learning
#: check's: seed + 1 served to choose a readout, so the test cohort is seed + 2).
TEST_PATIENTS = 360
TEST_SEED_OFFSET = 2


def _stage_test(sim_config: Path, n_patients: int, seed_offset: int = TEST_SEED_OFFSET):
    """An independent test cohort (the demo's simulator config, ``n_patients``, seed + ``seed_offset``) predicted
    by the trained fold ensemble, and accuracy on every patient the models never saw
    (:func:`raoutcome.workflows.never_seen.never_seen_table`: the out-of-fold predictions pooled with the test
    cohort's, each part alone, each fold), next to the simulator's ceilings of the same patients."""

    def run(ctx: StageContext):
        from dataclasses import replace

        from raoutcome.workflows.never_seen import never_seen_table
        from raoutcome.io_utils import atomic_write
        from raoutcome.synth import simulate
        from raoutcome.synth.config import load_config as load_sim_config
        from raoutcome.training import predict_run

        cfg = load_sim_config(sim_config)
        target = ctx.stage_dir / "cohort"
        if target.exists() and not (target / "visits.csv").exists():
            shutil.rmtree(target)  # an interrupted write
        if not (target / "visits.csv").exists():
            simulate(config=replace(cfg, n_patients=int(n_patients)), out_dir=target, seed=cfg.seed + seed_offset)
        run_dir = ctx.path("train", "run")
        predictions = ctx.stage_dir / "predictions.nc"
        predict_run(run_dir, _load_cohort(target), predictions)
        parts = [("test", predictions, target)]
        if (run_dir / "cv_predictions.nc").exists():
            parts.insert(0, ("train", run_dir / "cv_predictions.nc", ctx.path("validate", "cohort")))
        table = never_seen_table(parts)
        with atomic_write(ctx.stage_dir / "never_seen.csv") as fh:
            table.to_csv(fh, index=False)
        return {"cohort": target, "predictions": predictions, "never_seen": ctx.stage_dir / "never_seen.csv",
                "n_patients": int(n_patients), "seed": int(cfg.seed + seed_offset)}

    return run


def _stage_anomaly(folds: int = 3):
    """The label-free joint anomaly score (:mod:`raoutcome.imaging.joint_anomaly`), each patient scored by
    a PCA fitted without them: visit scores, their agreement with the Sharp score (and the simulator's
    truth), the first-visit C for deformity, a figure. A cohort without enough landmarked images writes
    nothing and says why (``skipped``)."""

    def run(ctx: StageContext):
        from raoutcome.errors import InputError
        from raoutcome.workflows.anomaly import evaluate_joint_anomaly, write_evaluation

        cohort = ctx.state["cohort"]
        if len(cohort.patients) < 2 * folds:
            return {"skipped": f"{len(cohort.patients)} patients are too few for {folds}-fold cross-fitting"}
        try:
            evaluation = evaluate_joint_anomaly(cohort, folds)
        except InputError as err:  # no landmarks table, or too few landmarked images
            return {"skipped": str(err).removeprefix(f"{cohort.root}: ")}  # the report shows no absolute paths
        return write_evaluation(evaluation, ctx.stage_dir)

    return run


def _stage_analyze(n_boot: int = 200):
    def run(ctx: StageContext):
        from raoutcome.analysis import outputs as files
        from raoutcome.io_utils import atomic_write
        from raoutcome.workflows.analyze import analyze

        cohort = ctx.state["cohort"]
        pred_path = ctx.path("predict", "predictions")
        path = Path(analyze(cohort, pred_path, ctx.stage_dir / "analysis"))
        table = accuracy_vs_ceiling(cohort, pred_path, path / files.METRICS_CSV, n_boot=n_boot)
        with atomic_write(ctx.stage_dir / "accuracy_vs_ceiling.csv") as fh:
            table.to_csv(fh, index=False)
        return {"analysis": path, "accuracy": ctx.stage_dir / "accuracy_vs_ceiling.csv"}

    return run


def headline() -> list[tuple[str, str, str, str | None]]:
    """The headline accuracy of each registered outcome and the simulator's ceiling for it:
    ``(output, metric shown, metric row in metrics.csv, ceiling)`` with the ceiling an
    oracle.json key or ``truth:<column>``. Count outcomes: Pearson r of each output against the truth's
    reader-free score (and the RA2-DREAM RMSE); bounded ones: R² against the oracle's noise-free R², and
    Pearson r; time to event: Harrell's C against the oracle's."""
    from raoutcome.outcomes import DEFAULT_EVENT, outcomes

    rows: list[tuple[str, str, str, str | None]] = []
    for spec in outcomes():
        if spec.kind == "count":
            for i, (out, col) in enumerate(spec.columns.items()):
                rows.append((out, "Pearson r", "pearson_r", f"truth:{col}"))
                if i == 0 and spec.dream:
                    rows.append((out, "RA2-DREAM weighted RMSE", "dream_weighted_rmse", None))
        elif spec.kind == "time_to_event":
            rows.append((spec.name, "Harrell C-index", "harrell_c", f"{DEFAULT_EVENT}.c_index_oracle"))
        elif spec.per_visit:
            rows += [(spec.name, "R²", "r2", f"{spec.name}.r2_noise_free"), (spec.name, "Pearson r", "pearson_r", None)]
    return rows


def accuracy_vs_ceiling(cohort, predictions_path: Path, metrics_csv: Path, n_boot: int = 200, seed: int = 0):
    """One row per head and headline metric (:func:`headline`): estimate with its 95 % patient-bootstrap CI
    from the analysis' ``metrics.csv`` and, for a simulated cohort, the best achievable value: the oracle's
    noise-free R² / C-index, or for the Sharp scores the Pearson r of the true score with the recorded
    (reader-noisy) one. A metric missing from ``metrics.csv`` is computed with
    :func:`raoutcome.evaluation.regression_report` on the predictions."""
    import numpy as np
    import pandas as pd

    from raoutcome.analysis.truth import read_truth
    from raoutcome.evaluation import pearson_r, regression_report
    from raoutcome.outcomes import output_columns, title
    from raoutcome.predictions import load_predictions, to_frame

    metrics = pd.read_csv(metrics_csv) if Path(metrics_csv).exists() else pd.DataFrame(columns=["head", "metric"])
    truth = read_truth(cohort.root)
    frame = to_frame(load_predictions(predictions_path))
    rows = []
    for head, label, row_name, ceiling_key in headline():
        hit = metrics[(metrics["head"] == head) & (metrics["metric"] == row_name)]
        outcome = output_columns().get(head)
        if hit.empty and row_name == "r2" and head in frame and outcome in cohort.visits:
            pairs = frame[["patient_id", "visit_id", head]].merge(
                cohort.visits[["patient_id", "visit_id", outcome]], on=["patient_id", "visit_id"],
                suffixes=("_pred", "")).dropna()
            pred = f"{head}_pred" if head == outcome else head
            try:
                report = regression_report(pairs[outcome], pairs[pred], pairs["patient_id"], n_boot=n_boot, seed=seed,
                                           progress=False)
            except InputError:
                continue
            hit = report.loc[["r2"]].reset_index()
        if hit.empty:
            continue
        est, lo, hi = (float(hit.iloc[0][c]) for c in ("estimate", "ci_low", "ci_high"))
        n = hit.iloc[0].get("n")
        ceiling = np.nan
        if ceiling_key and ceiling_key.startswith("truth:") and truth.visits is not None:
            col = ceiling_key[6:]
            both = truth.visits[["patient_id", "visit_id", col]].merge(
                cohort.visits[["patient_id", "visit_id", col]], on=["patient_id", "visit_id"],
                suffixes=("_true", "")).dropna()
            if len(both) > 2:
                ceiling = pearson_r(both[f"{col}_true"], both[col])
        elif ceiling_key and isinstance(truth.oracle_value(ceiling_key), (int, float)):
            ceiling = float(truth.oracle_value(ceiling_key))
        rows.append({"outcome": title(head), "head": head, "metric": label, "estimate": est,
                     "ci_low": lo, "ci_high": hi, "best_achievable": ceiling, "n": n})
    return pd.DataFrame(rows, columns=["outcome", "head", "metric", "estimate", "ci_low", "ci_high",
                                       "best_achievable", "n"])


def _stage_attribute(settings: StudySettings):
    def run(ctx: StageContext):
        from raoutcome.workflows.attribute import attribute

        path = attribute(ctx.path("train", "run"), ctx.state["cohort"], ctx.stage_dir / "attribution",
                         method=settings.attribution_method, max_images=settings.max_images)
        return {"attribution": Path(path)}

    return run


def _stage_report(settings: StudySettings, demo: bool, record: Mapping[str, Any]):
    def run(ctx: StageContext):
        from raoutcome.reporting.study_report import build_report

        path = build_report(ctx, settings=settings, demo=demo, record=record, target=ctx.out_dir / REPORT_NAME)
        return {"report": Path(path)}

    return run


def build_stages(settings: StudySettings, *, cohort_source: Path | None, sim_config: Path | None,
                 demo: bool, record: Mapping[str, Any], test_patients: int = 0) -> list[Stage]:
    """The chain of stages for a demo (``sim_config`` given; with ``test_patients``, an independent test cohort
    of that many patients) or a user's cohort (``cohort_source``)."""
    stages: list[Stage] = []
    if sim_config is not None:
        stages.append(Stage("simulate", _stage_simulate(sim_config, None), "simulate the synthetic cohort",
                            config={"config": Path(sim_config).read_text(encoding="utf-8")}))
    v_run, v_reload = _stage_validate(cohort_source, settings)
    stages.append(Stage("validate", v_run, "validate the cohort and describe it",
                        needs=("simulate",) if sim_config is not None else (),
                        config={"cohort": str(cohort_source), "views": settings.example_views,
                                "patient": settings.example_patient, "landmarks": settings.landmarks,
                                "detector": str(settings.landmark_detector)},
                        reload=v_reload))
    train_text = Path(settings.train_config).read_text(encoding="utf-8")
    stages.append(Stage("train", _stage_train(settings.train_config), "train the model (cross-fitted folds)",
                        needs=("validate",), config={"config": train_text}))
    stages.append(Stage("predict", _stage_predict(), "collect out-of-fold predictions", needs=("train",)))
    if sim_config is not None and test_patients:
        stages.append(Stage("test", _stage_test(sim_config, test_patients), "predict an independent test cohort",
                            needs=("validate", "train"), config={"patients": int(test_patients)}))
    stages.append(Stage("anomaly", _stage_anomaly(), "label-free joint anomaly score (landmarked cohorts)",
                        needs=("validate",)))
    stages.append(Stage("analyze", _stage_analyze(), "statistics: accuracy, survival, beyond-Sharp, endpoints",
                        needs=("validate", "predict")))
    if settings.attribution:
        stages.append(Stage("attribute", _stage_attribute(settings), "attribution maps and regions",
                            needs=("validate", "train"),
                            config={"method": settings.attribution_method, "max_images": settings.max_images}))
    needs = tuple(s.name for s in stages)
    stages.append(Stage("report", _stage_report(settings, demo, record), "write the HTML report", needs=needs,
                        config={"title": settings.title}))
    return stages


# ------------------------------------------------------------------------------------------- entry points
def _run(stages: list[Stage], out_dir: Path, force: bool, record: dict[str, Any],
         state: dict[str, Any] | None = None) -> Path:
    runner = StageRunner(out_dir, stages, force=force, record=record)
    runner.state.update(state or {})
    results = runner.run()
    return out_dir / results["report"].outputs["report"]


def run_demo(out_dir: str | Path = "demo_out", force: bool = False, *, sim_config: str | Path | None = None,
             train_config: str | Path | None = None, attribution: bool = True, max_images: int = 24,
             test_patients: int | None = None) -> Path:
    """Simulate the embedded cohort and run the whole study on it; returns ``<out_dir>/report.html``.

    ``sim_config`` / ``train_config`` override the embedded demo configuration (tests use tiny ones).
    ``test_patients``: the size of the independent test cohort the fold ensemble predicts (0: none; default
    :data:`TEST_PATIENTS` with the embedded configuration, none with a given ``sim_config``).
    """
    out_dir = Path(out_dir)
    if test_patients is None:
        test_patients = TEST_PATIENTS if sim_config is None else 0
    if sim_config is None or train_config is None:
        default_sim, default_train = demo_config_paths()
        sim_config, train_config = sim_config or default_sim, train_config or default_train
    sim, train = Path(sim_config), Path(train_config)
    for p in (sim, train):
        if not p.is_file():
            raise ConfigError(f"{p}: config file not found")
    settings = StudySettings(title="raoutcome demo: what the radiographs know beyond the Sharp score",
                             train_config=train.resolve(), attribution=attribution, max_images=max_images)
    record = {"command": "demo", "configs": _resolved_configs(settings, sim), "settings": settings.as_record(),
              "seeds": {}}
    record["seeds"] = _seeds(record["configs"], settings)
    if test_patients < 0:
        raise ConfigError(f"test_patients must be >= 0, not {test_patients}")
    stages = build_stages(settings, cohort_source=None, sim_config=sim.resolve(), demo=True, record=record,
                          test_patients=test_patients)
    return _run(stages, out_dir, force, record)


def run_study(cohort_path: str | Path, config_path: str | Path, out_dir: str | Path, force: bool = False) -> Path:
    """The demo's pipeline on a user's cohort (no simulator, no truth section); returns the report path."""
    cohort_path = Path(cohort_path)
    if not cohort_path.exists():
        raise InputError(f"{cohort_path}: cohort folder or cohort.toml not found")
    settings = load_study_config(config_path)
    cohort = _load_cohort(cohort_path)  # bad input is rejected before anything is written
    record = {"command": "study", "cohort": str(cohort_path.resolve()),
              "configs": _resolved_configs(settings, None), "settings": settings.as_record()}
    record["seeds"] = _seeds(record["configs"], settings)
    stages = build_stages(settings, cohort_source=cohort_path.resolve(), sim_config=None, demo=False, record=record)
    return _run(stages, Path(out_dir), force, record, state={"cohort": cohort})


def _resolved_configs(settings: StudySettings, sim: Path | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if sim is not None:
        out["simulate"] = {"path": str(sim.resolve()), "values": read_toml(sim)}
    if settings.train_config is not None:
        out["train"] = {"path": str(settings.train_config), "values": read_toml(settings.train_config)}
    if settings.source is not None:
        out["study"] = {"path": str(settings.source), "values": read_toml(settings.source)}
    return out


def _seeds(configs: Mapping[str, Any], settings: StudySettings) -> dict[str, Any]:
    """Every ``seed``-named value in the resolved configs, by dotted key."""
    found: dict[str, Any] = {"study.seed": settings.seed}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)
        elif prefix.rsplit(".", 1)[-1].lower() == "seed" or prefix.lower().endswith("_seed"):
            found[prefix] = value

    for name, cfg in configs.items():
        walk(name, cfg.get("values", {}))
    return found


# --------------------------------------------------------------------------- small studies (notebooks, tests)
def _merge(base: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in changes.items():
        out[key] = _merge(out.get(key, {}), value) if isinstance(value, Mapping) else value
    return out


#: The demo configuration shrunk for notebooks and tests (about a minute on 2 CPU cores): a smoke
#: test of the pipeline, not of learning (MobileNetV3-Small, ~4x faster than the demo's resnet10t).
SMALL_SIM = {"n_patients": 36, "image_size": 64, "image_format": "png", "workers": 1,
             "visits": {"times_years": [0.0, 1.0, 2.0]}}
SMALL_TRAIN = {"model": {"encoder": "mobilenetv3_small_100", "image_size": 64, "d_model": 32},
               "train": {"epochs": 3, "patience": 3, "num_workers": 0, "batch_patients": 6},
               "cv": {"folds": 2}, "predict": {"num_workers": 0}}


def small_configs(folder: str | Path, sim: Mapping[str, Any] | None = None,
                  train: Mapping[str, Any] | None = None) -> tuple[Path, Path]:
    """Write the demo's simulator TOML and the whole-image training TOML (``train_image.toml``, the
    route whose tiny model trains fastest: the pipeline tests and notebooks run it) with ``sim`` / ``train``
    overrides (default :data:`SMALL_SIM` / :data:`SMALL_TRAIN`) into ``folder``; return their paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    demo_sim, demo_train = demo_config_paths()[0], packaged_config("train_image.toml")
    paths = []
    for name, src, change in (("sim.toml", demo_sim, SMALL_SIM if sim is None else sim),
                              ("train.toml", demo_train, SMALL_TRAIN if train is None else train)):
        text = dumps_toml(_merge(read_toml(src), change))
        target = folder / name
        if not target.exists() or target.read_text() != text:  # keep the file (and its stage hashes) stable
            from raoutcome.io_utils import atomic_write

            with atomic_write(target) as fh:
                fh.write(text)
        paths.append(target)
    return paths[0], paths[1]


def example_study(out_dir: str | Path = "example_study", *, sim: Mapping[str, Any] | None = None,
                  train: Mapping[str, Any] | None = None, force: bool = False) -> dict[str, Path]:
    """A small simulated cohort with a cross-fitted model, for notebooks and tests.

    Runs the demo's first stages (simulate -> validate -> train -> predict) on the shrunken
    configuration of :func:`small_configs`; finished stages are skipped, so calling it again just
    returns the paths: ``cohort``, ``run``, ``predictions`` (out-of-fold, netCDF) and ``out_dir``.
    """
    out_dir = Path(out_dir)
    sim_path, train_path = small_configs(out_dir / "configs", sim, train)
    settings = StudySettings(title="example study", train_config=train_path.resolve(), attribution=False)
    record = {"command": "example_study", "configs": _resolved_configs(settings, sim_path), "settings": settings.as_record()}
    record["seeds"] = _seeds(record["configs"], settings)
    stages = build_stages(settings, cohort_source=None, sim_config=sim_path.resolve(), demo=True, record=record)
    keep = [s for s in stages if s.name in ("simulate", "validate", "train", "predict")]
    results = StageRunner(out_dir, keep, force=force, record=record).run()
    return {"out_dir": out_dir, "cohort": out_dir / results["simulate"].outputs["cohort"],
            "run": out_dir / results["train"].outputs["run"],
            "predictions": out_dir / results["predict"].outputs["predictions"]}


def read_run_record(out_dir: str | Path) -> dict[str, Any]:
    return json.loads((Path(out_dir) / RUN_RECORD).read_text())


__all__ = ["StudySettings", "load_study_config", "demo_config_paths", "packaged_config", "build_stages", "run_demo", "run_study",
           "read_run_record", "small_configs", "example_study", "StudyConfig"]
