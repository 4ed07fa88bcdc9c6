"""``raoutcome msasss ...``: train the mSASSS corner reader, read the corners of a cohort's lateral spine films.

Registered on the main app in :mod:`raoutcome.cli` (one line). Thin: parse, call
:mod:`raoutcome.training.corner_train` / :mod:`raoutcome.evaluation.msasss`, print; user errors exit with code 2
and one message; outputs are written atomically.
"""
from __future__ import annotations

__all__ = ["app"]

from pathlib import Path
from typing import Optional

import typer

from raoutcome.errors import InputError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="mSASSS: per-corner reading of lateral cervical and lumbar spine radiographs (AS).")


def _fail(err: Exception) -> None:
    typer.echo(f"error: {err}", err=True)
    raise typer.Exit(code=2)


def _landmarks(path: Optional[Path]):
    if path is None:
        return None
    import pandas as pd

    if not path.is_file():
        raise InputError(f"--landmarks {path}: no such file")
    try:
        table = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise InputError(f"{path}: not a readable CSV table ({err})") from None
    missing = [c for c in ("path", "landmark", "x", "y") if c not in table]
    if missing:
        raise InputError(f"{path}: missing column(s) {', '.join(missing)} (expected path, landmark, x, y)")
    for col in ("x", "y"):
        bad = pd.to_numeric(table[col], errors="coerce").isna()
        if bad.any():
            row = int(bad.to_numpy().nonzero()[0][0])
            raise InputError(f"{path}: row {row + 2}, column {col}: not a number ({table[col].iloc[row]!r})")
    return table


@app.command()
def fit(
    cohort: Path = typer.Option(..., "--cohort", help="AS cohort with spine landmarks and per-corner readings "
                                "(joints.csv, kind msasss)"),
    out: Path = typer.Option(..., "--out", help="Reader file to write (.pt)"),
    epochs: int = typer.Option(12, "--epochs", help="Passes over the (re-balanced) corner patches"),
    balance: float = typer.Option(0.5, "--balance", help="Class re-weighting exponent (0 = none, 1 = equal)"),
    seed: int = typer.Option(0, "--seed", help="Validation patients, draws, augmentation"),
) -> None:
    """Train a corner reader: posed corner patches -> encoder -> grade 0-3 and 'not scorable'."""
    from raoutcome.cohort import load
    from raoutcome.imaging.corner_patches import cohort_corner_patches, corner_targets
    from raoutcome.training.corner_train import fit_corner_reader, save_corner_reader

    try:
        c = load(cohort, images=True)
        cp = cohort_corner_patches(c)
        grade, scorable = corner_targets(cp.table, c.joints)
        if not (grade == grade).any():
            raise InputError(f"{cohort}: no per-corner mSASSS reading (joints table rows of kind 'msasss') to "
                             "train on")
        result = fit_corner_reader(cp, grade, scorable, epochs=epochs, balance=balance, seed=seed, log=typer.echo)
        save_corner_reader(result.model, out)
    except (InputError, ValueError, OSError) as err:
        _fail(err)
    typer.echo(f"corner reader written to {out}")


@app.command()
def read(
    reader: Path = typer.Option(..., "--reader", help="Reader file from `raoutcome msasss fit`"),
    cohort: Path = typer.Option(..., "--cohort", help="Cohort folder or cohort.toml"),
    out: Path = typer.Option(..., "--out", help="Per-corner CSV to write: patient_id, visit_id, joint, "
                             "p_scorable, p0..p3, expected, sd, grade"),
    totals_out: Optional[Path] = typer.Option(None, "--totals-out", help="Also write visit totals "
                                              "(patient_id, visit_id, msasss)"),
    landmarks: Optional[Path] = typer.Option(None, "--landmarks", help="Landmarks table to use instead of the "
                                             "cohort's (e.g. from `raoutcome landmarks detect`)"),
) -> None:
    """Read every corner of every lateral spine image: grade probabilities, expected grade, scorability."""
    import numpy as np

    from raoutcome.cohort import load
    from raoutcome.evaluation.msasss import visit_totals
    from raoutcome.imaging.corner_patches import cohort_corner_patches
    from raoutcome.io_utils import atomic_path
    from raoutcome.training.corner_train import load_corner_reader, predict_corners

    try:
        if not reader.is_file():
            raise InputError(f"--reader {reader}: no such file")
        model = load_corner_reader(reader)
        c = load(cohort, images=True)
        pred = predict_corners(model, cohort_corner_patches(c, landmarks=_landmarks(landmarks)))
        with atomic_path(out) as tmp:
            pred.to_csv(tmp, index=False)
        if totals_out is not None:
            value = pred.assign(value=np.where(pred["p_scorable"] >= 0.5, pred["expected"], np.nan))
            with atomic_path(totals_out) as tmp:
                visit_totals(value, "value").to_csv(tmp, index=False)
    except (InputError, ValueError, OSError, KeyError, RuntimeError) as err:
        _fail(err)
    typer.echo(f"{len(pred)} corners written to {out}")


@app.command()
def corners(
    images: Path = typer.Option(..., "--images", help="Folder of lateral spine films (DICOM, PNG, TIFF, JPEG; "
                                "searched recursively)"),
    detector: Path = typer.Option(..., "--detector", help="Spine landmark detector (.safetensors from `raoutcome "
                                  "landmarks fit --parts spine_cervical,spine_lumbar`)"),
    view: str = typer.Option(..., "--view", help="spine_cervical or spine_lumbar"),
    out: Path = typer.Option(..., "--out", help="Folder for landmarks.csv, qc.csv and overlays/*.png"),
) -> None:
    """Detect, QC and draw the corners and vertebral centres of every film in a folder (no manifest needed)."""
    from raoutcome.workflows.spine_films import detect_film_corners

    try:
        run = detect_film_corners(images, detector, view, out)
    except (InputError, ValueError, OSError) as err:
        _fail(err)
    flagged = int((run.qc["flags"] != "ok").sum())
    typer.echo(f"{len(run.landmarks)} landmarks on {len(run.qc)} films written to {out} "
               f"(landmarks.csv, qc.csv, overlays/); {flagged} films with a QC flag")


@app.command()
def study(
    reader: Path = typer.Option(..., "--reader", help="Reader file from `raoutcome msasss fit`"),
    cohort: Path = typer.Option(..., "--cohort", help="AS cohort folder or cohort.toml"),
    out: Path = typer.Option(..., "--out", help="Folder for corners.csv, totals.csv, endpoints.csv, power.csv, "
                             "report.html"),
    landmarks: Optional[Path] = typer.Option(None, "--landmarks", help="Landmarks table to use instead of the "
                                             "cohort's"),
    detector: Optional[Path] = typer.Option(None, "--detector", help="Spine landmark detector (`raoutcome "
                                            "landmarks fit`): detect the corners of every film, re-imaged ones too"),
    years: float = typer.Option(2.0, "--years", help="Change from the first visit to the visit nearest this"),
    trial_n: int = typer.Option(100, "--trial-n", help="Patients per arm of the simulated trials"),
    effect: float = typer.Option(0.5, "--effect", help="Share of progression the treatment prevents"),
) -> None:
    """An AS study: read every corner, learned and human mSASSS change, SRM, SDC, power, report.html."""
    from raoutcome.workflows.spine_study import run_spine_study

    try:
        if detector is not None and not detector.is_file():
            raise InputError(f"--detector {detector}: no such file")
        folder = run_spine_study(cohort, reader, out, landmarks=_landmarks(landmarks), detector=detector,
                                 years=years, trial_n=trial_n, effect=effect)
    except (InputError, ValueError, OSError, KeyError, RuntimeError) as err:
        _fail(err)
    from raoutcome.workflows.spine_outcomes import outcome_summary

    for line in outcome_summary(folder):
        typer.echo(line)
    typer.echo(f"AS study written to {folder} (report: {folder / 'report.html'})")


@app.command()
def demo(
    out: Path = typer.Option(Path("spine_demo"), "--out", help="Folder for the cohorts, the reader and study/"),
    config: Optional[Path] = typer.Option(None, "--config", help="AS cohort TOML (default: the built-in "
                                          "defaults, as cohorts/as_spine.toml)"),
    train_patients: int = typer.Option(40, "--train-patients", help="Patients of the training cohort"),
    study_patients: int = typer.Option(40, "--study-patients", help="Patients of the study cohort (each visit "
                                       "imaged twice)"),
    epochs: int = typer.Option(10, "--epochs", help="Reader training passes (10: the setting chosen on the tuning seed)"),
    seed: int = typer.Option(24101, "--seed", help="Training cohort seed (study cohort: seed + 1)"),
    trial_n: int = typer.Option(100, "--trial-n", help="Patients per arm of the trial whose power is reported"),
    force: bool = typer.Option(False, "--force", help="Re-run finished stages"),
) -> None:
    """The AS study end to end on simulated cohorts: simulate, train the reader, read, SRM/SDC/power, report."""
    from raoutcome.workflows.spine_demo import run_spine_demo

    try:
        report = run_spine_demo(out, config=config, train_patients=train_patients, study_patients=study_patients,
                                epochs=epochs, seed=seed, trial_n=trial_n, force=force, log=typer.echo)
    except (InputError, ValueError, OSError, KeyError, RuntimeError) as err:
        _fail(err)
    typer.echo(f"report: {report}")
