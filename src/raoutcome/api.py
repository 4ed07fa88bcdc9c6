"""The five-call public API: load a cohort, train, predict, analyze (and simulate one to try it).

Why: the command line and the workflows need a dozen modules; a notebook user needs five names.
Each function is a thin call into the packages that do the work (:mod:`raoutcome.cohort`,
:mod:`raoutcome.training`, :mod:`raoutcome.workflows.analyze`, :mod:`raoutcome.synth`), so the
results are those of the matching ``raoutcome`` command. Heavy imports (torch) happen inside the
functions: ``import raoutcome`` stays light.

Examples
--------
>>> import raoutcome as ro
>>> cohort = ro.load_cohort("my_cohort")                      # doctest: +SKIP
>>> run = ro.train(cohort, "cohorts/train_demo.toml", out="run")  # doctest: +SKIP
>>> preds = ro.predict(run, cohort)                            # doctest: +SKIP
>>> result = ro.analyze(cohort, preds, out="analysis")         # doctest: +SKIP
>>> result.table("incremental")                                 # doctest: +SKIP
"""
from __future__ import annotations

__all__ = ["Analysis", "load_cohort", "simulate", "train", "predict", "analyze"]

import json
import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

if TYPE_CHECKING:  # pragma: no cover - typing only
    import pandas as pd
    import xarray as xr

    from raoutcome.cohort import Cohort

log = logging.getLogger(__name__)


def _fresh_dir(prefix: str) -> Path:
    path = Path(tempfile.mkdtemp(prefix=f"raoutcome-{prefix}-"))
    log.info("no output folder given: writing %s into %s", prefix, path)
    return path


def load_cohort(path: str | Path) -> "Cohort":
    """Load and validate a cohort folder (or ``cohort.toml``) in the manifest format.

    Parameters
    ----------
    path
        Folder holding ``patients``, ``visits``, ``images`` (and optional ``events``, ``joints``,
        ``landmarks``) tables as CSV or Parquet, or a ``cohort.toml`` pointing at one.

    Returns
    -------
    Cohort
        The validated tables; see :class:`raoutcome.cohort.Cohort`.

    Raises
    ------
    raoutcome.errors.CohortValidationError
        Every problem found, each naming file, row, column and value.
    """
    from raoutcome.cohort import load

    return load(path)


def simulate(out: str | Path, config: str | Path | None = None, *, seed: int | None = None,
             image_format: str | None = None) -> Path:
    """Simulate a synthetic longitudinal cohort with known truth into ``out``; return the folder.

    ``config`` is a simulator TOML (``None``: the code defaults; ``cohorts/demo.toml`` is the demo
    cohort). The truth (per-joint scores, planted biomarkers, oracle risks) is written to
    ``out/truth/``. Same seed, same cohort.
    """
    from raoutcome.synth import simulate as run_simulation

    return run_simulation(config, out, seed=seed, image_format=image_format)


def _train_config(config: str | Path | Mapping[str, Mapping[str, Any]] | None):
    from raoutcome.training.config import TrainConfig, load_config

    if config is None or isinstance(config, (str, Path)):
        return load_config(config)
    return TrainConfig(config, source="<mapping>")


def train(cohort: "Cohort", config: str | Path | Mapping[str, Mapping[str, Any]] | None = None,
          out: str | Path | None = None) -> Path:
    """Train (or resume) the longitudinal multitask model on ``cohort``; return the run folder.

    Parameters
    ----------
    cohort
        A loaded cohort (:func:`load_cohort`).
    config
        A training TOML path, a mapping of sections (``{"train": {"epochs": 3}, "cv": {"folds": 2}}``)
        or ``None`` for every default; keys are documented in :mod:`raoutcome.training.config`.
    out
        The run folder (resumed if it holds checkpoints); ``None``: a new temporary folder.

    Returns
    -------
    pathlib.Path
        The run folder: checkpoints, ``config.resolved.toml``, ``metrics.json`` and, when
        cross-fitted, ``cv_predictions.nc`` (each patient scored by the fold model that never saw it).
    """
    from raoutcome.training.run import train_run

    cfg = _train_config(config)
    out_dir = Path(out) if out is not None else _fresh_dir("run")
    if isinstance(config, (str, Path)) or config is None:
        return train_run(cohort, config, out_dir)
    with tempfile.TemporaryDirectory() as tmp:  # train_run reads a TOML: hand it the resolved one
        path = Path(tmp) / "train.toml"
        path.write_text(cfg.to_toml())
        return train_run(cohort, path, out_dir)


def predict(run: str | Path, cohort: "Cohort", out: str | Path | None = None) -> "xr.Dataset":
    """Score every visit of ``cohort`` with all models of ``run`` (averaged); return the Predictions.

    The result is an xarray Dataset indexed by ``patient_id`` x ``visit_id`` (see
    :mod:`raoutcome.predictions`), also saved to ``out`` (``.nc`` or ``.zarr``; ``None``: a
    temporary file) so that :func:`analyze` and the CLI can read it.
    """
    from raoutcome.predictions import load_predictions
    from raoutcome.training.run import predict_run

    path = Path(out) if out is not None else _fresh_dir("predictions") / "predictions.nc"
    return load_predictions(predict_run(run, cohort, path))


@dataclass
class Analysis:
    """What :func:`analyze` wrote: the folder, its ``summary.json`` and its tables by name."""

    path: Path
    summary: dict = field(default_factory=dict)

    @property
    def tables(self) -> list[str]:
        """Names of the CSV tables written (without ``.csv``)."""
        return sorted(p.stem for p in self.path.glob("*.csv"))

    def table(self, name: str) -> "pd.DataFrame":
        """One table of the analysis as a DataFrame (e.g. ``"cox"``); see :attr:`tables`."""
        import pandas as pd

        file = self.path / f"{name}.csv"
        if not file.exists():
            raise KeyError(f"no table {name!r} in {self.path}; there are {self.tables}")
        return pd.read_csv(file)


def analyze(cohort: "Cohort", predictions: "xr.Dataset | str | Path", out: str | Path | None = None,
            **settings: Any) -> Analysis:
    """Metrics, survival, mixed models, beyond-Sharp tests and trial endpoints for ``predictions``.

    Parameters
    ----------
    cohort
        The cohort the predictions score.
    predictions
        A Predictions Dataset (from :func:`predict` or :func:`raoutcome.predictions.from_frame`) or
        the path of a saved one.
    out
        Folder for tables (CSV), figures (PNG) and ``summary.json``; ``None``: a temporary folder.
    **settings
        Overrides of :class:`raoutcome.workflows.analyze.AnalyzeSettings` (e.g. ``n_boot=200``).

    Returns
    -------
    Analysis
        The folder and its parsed ``summary.json``.
    """
    from raoutcome.predictions import save_predictions
    from raoutcome.workflows.analyze import analyze as run_analysis

    out_dir = Path(out) if out is not None else _fresh_dir("analysis")
    if isinstance(predictions, (str, Path)):
        path = run_analysis(cohort, predictions, out_dir, **settings)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            saved = save_predictions(predictions, Path(tmp) / "predictions.nc")
            path = run_analysis(cohort, saved, out_dir, **settings)
    summary = json.loads((path / "summary.json").read_text())
    return Analysis(path=path, summary=summary)
