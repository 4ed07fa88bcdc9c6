"""``raoutcome cervical ...``: the RA cervical spine study (issue 30).

Registered on the main app in :mod:`raoutcome.cli` (one line). Thin: parse, call
:mod:`raoutcome.synth.cervical` / :mod:`raoutcome.workflows.cervical_study`, print; user errors exit with
code 2 and one message.
"""
from __future__ import annotations

__all__ = ["app"]

from pathlib import Path
from typing import Optional

import typer

from raoutcome.errors import InputError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="RA cervical spine: craniocervical phantom cohorts, ADI/SAC measurement, deformity prediction.")


def _fail(err: Exception) -> None:
    typer.echo(f"error: {err}", err=True)
    raise typer.Exit(code=2)


@app.command()
def simulate(
    out: Path = typer.Option(..., "--out", help="Cohort folder to write"),
    config: Optional[Path] = typer.Option(None, "--config", help="Study TOML (its [simulation] table), "
                                          "e.g. cohorts/ra_cervical.toml"),
    seed: Optional[int] = typer.Option(None, "--seed", help="Override simulation.seed"),
    n_patients: Optional[int] = typer.Option(None, "--n-patients", help="Override simulation.n_patients"),
) -> None:
    """Simulate an RA cervical cohort: lateral radiographs, sagittal T1/T2 MR, interval-censored deformity."""
    from raoutcome.synth.cervical import load_cervical_config, simulate_cervical

    try:
        cfg = load_cervical_config(config, seed=seed, n_patients=n_patients)
        path = simulate_cervical(cfg, out)
    except (InputError, ValueError, OSError) as err:
        _fail(err)
    typer.echo(f"cohort written to {path} ({cfg.n_patients} patients, seed {cfg.seed})")


@app.command()
def study(
    out: Path = typer.Option(..., "--out", help="Study folder (cohorts, detector, tables, report.html)"),
    config: Optional[Path] = typer.Option(None, "--config", help="Study TOML, e.g. cohorts/ra_cervical.toml"),
    force: bool = typer.Option(False, "--force", help="Redo every stage"),
) -> None:
    """Simulate training and held-out cohorts, train the detector, measure ADI/SAC, predict deformity, report."""
    from raoutcome.workflows.cervical_study import run_study

    try:
        run_study(config, out, force=force, log=typer.echo)
    except (InputError, ValueError, OSError) as err:
        _fail(err)
