"""The label-free joint anomaly score on a cohort: cross-fitted scores, their agreement with the Sharp
score (and a simulated cohort's truth), their first-visit C for an event, a figure, files.

One place for what the study's ``anomaly`` stage, ``analyses/joint_anomaly_check.py``, the learning
check's label-free reference and ``raoutcome joint-anomaly`` share. The score itself is
:mod:`raoutcome.imaging.joint_anomaly`; the statistics are :mod:`raoutcome.analysis.anomaly`.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from raoutcome.anatomy import DEFORMITY_EVENT
from raoutcome.errors import InputError
from raoutcome.outcomes import damage_outcome

LEVELS = ("visit", "image")


@dataclass
class AnomalyEvaluation:
    """Cross-fitted scores per image and per visit (beside the visit table and any truth) and a
    ``summary``: ``folds``, ``pearson_r`` per reference, ``survival`` (first-visit C)."""

    images: pd.DataFrame
    visits: pd.DataFrame
    summary: dict = field(default_factory=dict)


def evaluate_joint_anomaly(cohort, folds: int = 3, seed: int = 0, n_components: int = 5,
                           event: str = DEFORMITY_EVENT, progress: bool = True) -> AnomalyEvaluation:
    """Score every patient with a PCA fitted without them (folds stratified on ``event``) and compare
    the visit scores with the Sharp score, the truth when simulated, and ``event``. Raises
    :class:`~raoutcome.errors.InputError` without enough landmarked images."""
    from raoutcome.analysis.anomaly import first_visit_c_index, score_correlations, with_references
    from raoutcome.imaging.joint_anomaly import cross_fitted_joint_anomaly, visit_anomaly

    events = cohort.events[cohort.events["event"] == event]
    strata = dict(zip(events["patient_id"], events["observed"].astype(int)))
    images = cross_fitted_joint_anomaly(cohort, folds, seed, n_components, strata=strata, progress=progress)
    visits = with_references(visit_anomaly(images), cohort)
    summary = {"folds": folds, "seed": seed, "components": n_components, "n_images": int(len(images)),
               "n_visits": int(len(visits)), "pearson_r": score_correlations(visits),
               "survival": first_visit_c_index(visits, cohort.events, event)}
    return AnomalyEvaluation(images, visits, summary)


def write_evaluation(evaluation: AnomalyEvaluation, out_dir: str | Path, image_scores: bool = False) -> dict[str, Path]:
    """Write ``visit_scores.csv``, ``summary.json``, ``anomaly_vs_svdh.png`` (when SvdH was recorded) and,
    with ``image_scores``, ``image_scores.csv`` (every landmark) into ``out_dir``, atomically."""
    from raoutcome.io_utils import atomic_write
    from raoutcome.reporting.stats_figures import anomaly_figure, save

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    visits = evaluation.visits
    paths: dict[str, Path] = {"scores": out_dir / "visit_scores.csv", "summary": out_dir / "summary.json"}
    with atomic_write(paths["scores"]) as fh:
        visits[["patient_id", "visit_id", "time_years", "anomaly", "n_views"]].to_csv(fh, index=False)
    with atomic_write(paths["summary"]) as fh:
        json.dump(evaluation.summary, fh, indent=2)
    if image_scores:
        paths["images"] = out_dir / "image_scores.csv"
        with atomic_write(paths["images"]) as fh:
            evaluation.images.to_csv(fh, index=False)
    damage = damage_outcome()
    if damage is not None and damage.column in visits and visits[damage.column].notna().sum() >= 3:
        paths["figure"] = save(anomaly_figure(visits), out_dir / "anomaly_vs_svdh.png")
    return paths


def export_scores(cohort, out: str | Path, folds: int = 3, level: str = "visit", n_components: int = 5,
                  seed: int = 0) -> pd.DataFrame:
    """Joint anomaly scores as a CSV (``raoutcome joint-anomaly``): per ``level`` ("visit": the mean over
    views; "image": every landmark), cross-fitted over ``folds`` patient folds, or with ``folds = 0`` one
    PCA fitted on every patient. Bad options raise :class:`~raoutcome.errors.InputError` before anything
    is read or written."""
    from raoutcome.imaging.joint_anomaly import cohort_joint_anomaly, cross_fitted_joint_anomaly, visit_anomaly
    from raoutcome.io_utils import atomic_write

    if level not in LEVELS:
        raise InputError(f"--level must be 'visit' or 'image', not {level!r}")
    if folds == 1 or folds < 0:
        raise InputError(f"--folds must be 0 (no cross-fitting) or >= 2, not {folds}")
    scores = (cross_fitted_joint_anomaly(cohort, folds, seed, n_components) if folds
              else cohort_joint_anomaly(cohort, None, n_components))
    table = visit_anomaly(scores) if level == "visit" else scores
    with atomic_write(out) as fh:
        table.to_csv(fh, index=False)
    return table


__all__ = ["AnomalyEvaluation", "evaluate_joint_anomaly", "write_evaluation", "export_scores", "LEVELS"]
