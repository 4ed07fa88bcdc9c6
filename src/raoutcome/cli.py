"""The ``raoutcome`` command line: parse arguments, call the library, print.

No logic lives here. Library errors caused by user input derive from
:class:`raoutcome.errors.InputError` and become a message on stderr and exit
code 2. Heavy imports (torch) happen inside the commands so ``--help`` is fast.
"""
from __future__ import annotations

import errno
import sys
from pathlib import Path
from typing import Optional

import typer

from raoutcome.errors import InputError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Outcome prediction from longitudinal rheumatology radiographs, beyond the Sharp score.",
)


def _show_version(value: bool) -> None:
    if value:
        from raoutcome import __version__

        typer.echo(f"raoutcome {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug log with logger names and times"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Warnings and errors only; no progress bars"),
    version: bool = typer.Option(False, "--version", help="Print the version and exit", is_eager=True,
                                 callback=_show_version),
) -> None:
    """Outcome prediction from longitudinal rheumatology radiographs, beyond the Sharp score."""
    from raoutcome.logs import configure

    configure(1 if verbose else -1 if quiet else 0)


# Where the output cannot be written (full disk, read-only folder, no permission, file size
# limit): a clear message naming the file instead of a traceback. Writers use temp names and
# rename, so nothing half-written is left under a final name.
_OUTPUT_ERRNOS = {errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, errno.EDQUOT, errno.EFBIG}


def _fail(err: Exception) -> None:
    if isinstance(err, ValueError) and not isinstance(err, InputError):
        if "null byte" not in str(err):  # a path argument holding NUL: the user's input; anything else: a bug
            raise err
        typer.echo(f"error: a path argument holds a NUL character: {err}", err=True)
        raise typer.Exit(code=2)
    if isinstance(err, OSError) and not isinstance(err, InputError):
        if err.errno not in _OUTPUT_ERRNOS:
            raise err
        where = f" {err.filename}" if err.filename else ""
        typer.echo(f"error: cannot write{where}: {err.strerror or err}", err=True)
    else:
        typer.echo(f"error: {err}", err=True)
    raise typer.Exit(code=2)


@app.command()
def validate(path: Path = typer.Argument(..., help="Cohort folder or cohort.toml"),
             images: bool = typer.Option(False, "--images", help="Also decode every image (header and pixels), "
                                                                 "in parallel; results are cached per file")) -> None:
    """Check a cohort manifest; print a summary, or every problem found (exit 2)."""
    from raoutcome.cohort import load

    try:
        cohort = load(path, images=images)
    except (InputError, OSError, ValueError) as err:
        _fail(err)
    typer.echo(cohort.summary())


@app.command()
def simulate(
    config: Path = typer.Option(..., "--config", help="Simulator TOML, e.g. cohorts/demo.toml"),
    out: Path = typer.Option(..., "--out", help="Folder to write the cohort into"),
    seed: Optional[int] = typer.Option(None, "--seed", help="Overrides the config's seed"),
    format: Optional[str] = typer.Option(None, "--format", help="dicom (default) or png"),
) -> None:
    """Simulate a synthetic longitudinal RA cohort (or, with ``cohort = "as_spine"``, an AS spine cohort)."""
    from raoutcome.synth import simulate as run_simulation
    from raoutcome.synth.spine_course import is_spine_config

    try:
        if is_spine_config(config):  # the AS spine simulator (16-bit PNG only)
            from raoutcome.synth.spine_cohort import simulate_spine

            path = simulate_spine(config, out, seed=seed)
        else:
            path = run_simulation(config, out, seed=seed, image_format=format)
    except (InputError, OSError, ValueError) as err:
        _fail(err)
    typer.echo(f"cohort written to {path}")


def _ra_cohort(path: Path, command: str):
    """The cohort at ``path`` with its images, refused (exit 2 via the caller) when it holds only spine films:
    those go through ``raoutcome msasss``. Checked before any model module is imported."""
    from raoutcome.cohort import load
    from raoutcome.workflows.spine_route import refuse_spine_cohort

    data = load(path, images=True)
    refuse_spine_cohort(data, command)
    return data


@app.command()
def train(
    cohort: Path = typer.Option(..., "--cohort", help="Cohort folder or cohort.toml"),
    config: Path = typer.Option(..., "--config", help="Training TOML"),
    out: Path = typer.Option(..., "--out", help="Run folder (resumed if it holds checkpoints)"),
) -> None:
    """Train the longitudinal multitask model (cross-fitted folds if configured)."""
    try:
        data = _ra_cohort(cohort, "train")
        from raoutcome.training import train_run  # after the AS check: no model imports for a refusal

        run = train_run(data, config, out)
    except (InputError, OSError, ValueError) as err:
        _fail(err)
    typer.echo(f"run written to {run}")


@app.command()
def predict(
    run: Path = typer.Option(..., "--run", help="Run folder written by `raoutcome train`"),
    cohort: Path = typer.Option(..., "--cohort", help="Cohort folder or cohort.toml"),
    out: Path = typer.Option(..., "--out", help="Predictions file (.nc or .zarr)"),
    joints_out: Optional[Path] = typer.Option(None, "--joints-out", help="Also write per-joint predictions as CSV "
                                              "(site-level runs: patient_id, visit_id, joint, kind, score, sd, p0..pK)"),
) -> None:
    """Write a Predictions dataset (patient_id x visit_id) for every visit of a cohort."""
    try:
        data = _ra_cohort(cohort, "predict")
        from raoutcome.training import predict_run  # after the AS check: no model imports for a refusal

        path = predict_run(run, data, out, joints_out=joints_out)
    except (InputError, OSError, ValueError) as err:
        _fail(err)
    typer.echo(f"predictions written to {path}")


@app.command()
def analyze(
    cohort: Path = typer.Option(..., "--cohort", help="Cohort folder or cohort.toml"),
    predictions: Path = typer.Option(..., "--predictions", help="Predictions file (.nc or .zarr)"),
    out: Path = typer.Option(..., "--out", help="Folder for tables (CSV) and figures (PNG)"),
) -> None:
    """Metrics, survival, longitudinal, incremental-value and endpoint analyses."""
    from raoutcome.cohort import load
    from raoutcome.workflows.analyze import analyze as run_analysis

    try:
        path = run_analysis(load(cohort), predictions, out)
    except (InputError, OSError, ValueError) as err:
        _fail(err)
    typer.echo(f"analysis written to {path}")


@app.command()
def attribute(
    run: Path = typer.Option(..., "--run", help="Run folder written by `raoutcome train`"),
    cohort: Path = typer.Option(..., "--cohort", help="Cohort folder or cohort.toml"),
    out: Path = typer.Option(..., "--out", help="Folder for overlays, region table and maps"),
    method: str = typer.Option("integrated_gradients", "--method", help="integrated_gradients | gradcam | occlusion"),
    max_images: int = typer.Option(64, "--max-images", help="Attribute at most this many images"),
) -> None:
    """Captum attribution per head, summarised over anatomical regions."""
    try:
        data = _ra_cohort(cohort, "attribute")
        from raoutcome.workflows.attribute import attribute as run_attribution  # after the AS check

        path = run_attribution(run, data, out, method=method, max_images=max_images)
    except (InputError, OSError, ValueError) as err:
        _fail(err)
    typer.echo(f"attribution written to {path}")


@app.command("joint-anomaly")
def joint_anomaly(
    cohort: Path = typer.Option(..., "--cohort", help="Cohort folder or cohort.toml (needs landmarks.csv)"),
    out: Path = typer.Option(..., "--out", help="CSV file to write"),
    folds: int = typer.Option(3, "--folds", help="score each patient by a PCA fitted on the other folds; "
                                                "0 = one PCA fitted on every patient"),
    level: str = typer.Option("visit", "--level", help="visit (mean over views) | image (every landmark)"),
    components: int = typer.Option(5, "--components", help="principal components per landmark"),
    seed: int = typer.Option(0, "--seed", help="fold assignment"),
) -> None:
    """Label-free joint damage score from landmarked radiographs (no human score needed)."""
    from raoutcome.cohort import load
    from raoutcome.workflows.anomaly import export_scores

    try:
        table = export_scores(load(cohort, images=True), out, folds=folds, level=level, n_components=components, seed=seed)
    except (InputError, OSError, ValueError) as err:
        _fail(err)
    typer.echo(f"joint anomaly scores ({len(table)} {level}s) written to {out}")


@app.command()
def demo(
    out: Path = typer.Option(Path("demo_out"), "--out", help="Folder for the whole demo study"),
    force: bool = typer.Option(False, "--force", help="Re-run finished stages"),
    cohort: str = typer.Option("ra", "--cohort", help="'ra' (hands and feet, SvdH) or 'spine' (ankylosing "
                               "spondylitis, mSASSS: `raoutcome msasss demo` with its defaults)"),
    test_patients: int = typer.Option(360, "--test-patients", min=0, help="Patients of the independent test "
                                      "cohort the trained fold ensemble predicts (0: none; 'ra' only)"),
) -> None:
    """The whole study on the embedded synthetic cohort, as one HTML report."""
    from raoutcome.workflows.study import run_demo

    try:
        if cohort not in ("ra", "spine"):
            raise InputError(f"--cohort {cohort!r}: expected 'ra' or 'spine'")
        if cohort == "spine":
            from raoutcome.workflows.spine_demo import run_spine_demo

            report = run_spine_demo(out, force=force, log=typer.echo)
        else:
            report = run_demo(out, force=force, test_patients=test_patients)
    except (InputError, OSError, ValueError) as err:
        _fail(err)
    typer.echo(f"report: {report}")


@app.command()
def study(
    cohort: Path = typer.Option(..., "--cohort", help="Cohort folder or cohort.toml"),
    config: Path = typer.Option(..., "--config", help="Study TOML (training + analysis settings)"),
    out: Path = typer.Option(..., "--out", help="Folder for the whole study"),
    force: bool = typer.Option(False, "--force", help="Re-run finished stages"),
) -> None:
    """The demo pipeline on a user's own cohort (no simulator, no truth section)."""
    from raoutcome.workflows.study import run_study

    try:
        report = run_study(cohort, config, out, force=force)
    except (InputError, OSError, ValueError) as err:
        _fail(err)
    typer.echo(f"report: {report}")


from raoutcome.cli_landmarks import app as landmarks_app  # noqa: E402 - `landmarks fit/detect` (lazy imports)
from raoutcome.cli_msasss import app as msasss_app  # noqa: E402 - `msasss fit/read` (lazy imports)
from raoutcome.interop.cli import pacs_app  # noqa: E402 - the `pacs` sub-commands (thin, lazy imports)
from raoutcome.cli_cervical import app as cervical_app  # noqa: E402 - `cervical simulate/study` (issue 30)

app.add_typer(pacs_app, name="pacs")
app.add_typer(landmarks_app, name="landmarks")
app.add_typer(msasss_app, name="msasss")
app.add_typer(cervical_app, name="cervical")


def main() -> None:  # pragma: no cover - console entry
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
