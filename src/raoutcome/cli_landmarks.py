"""``raoutcome landmarks ...``: train a landmark detector, detect landmarks on a cohort.

Registered on the main app in :mod:`raoutcome.cli` (one line). Thin: parse, call
:mod:`raoutcome.workflows.landmarks`, print; user errors exit with code 2 and one message.
"""
from __future__ import annotations

__all__ = ["app"]

from pathlib import Path
from typing import List, Optional

import typer

from raoutcome.errors import InputError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Landmark detection: joints of hands and feet for cohorts without landmarks.")


def _fail(err: Exception) -> None:
    typer.echo(f"error: {err}", err=True)
    raise typer.Exit(code=2)


@app.command()
def fit(
    cohort: List[Path] = typer.Option(..., "--cohort", help="Cohort with a landmarks table (repeatable)"),
    out: Path = typer.Option(..., "--out", help="Detector file to write (.safetensors)"),
    steps: int = typer.Option(1500, "--steps", help="Training steps (batches)"),
    batch: int = typer.Option(8, "--batch", help="Images per step"),
    size: int = typer.Option(192, "--size", help="Input side in pixels (multiple of 32)"),
    backbone: str = typer.Option("efficientnet_lite0", "--backbone", help="timm architecture"),
    init: Optional[Path] = typer.Option(None, "--init", help="Fine-tune this detector instead"),
    lr: float = typer.Option(1e-3, "--lr", help="AdamW learning rate"),
    seed: int = typer.Option(0, "--seed", help="Validation patients, batches, augmentation"),
    parts: str = typer.Option("hand,foot", "--parts", help="Body parts whose landmarks it detects, e.g. "
                              "spine_cervical,spine_lumbar"),
) -> None:
    """Train a heatmap landmark detector (patient-grouped validation, augmentation)."""
    from raoutcome.workflows.landmarks import fit_from_cohorts

    if out.suffix != ".safetensors":
        _fail(InputError(f"--out {out}: the detector is written as safetensors; use a .safetensors name"))
    try:
        result = fit_from_cohorts(cohort, out, steps=steps, batch=batch, seed=seed, size=size, backbone=backbone,
                                  init=init, lr=lr, parts=tuple(p.strip() for p in parts.split(",") if p.strip()),
                                  log=typer.echo)
    except (InputError, ValueError) as err:
        _fail(err)
    best = result.best or {}
    extra = f" (validation MRE {best['val_mre_px']:.2f} px at step {best['step']})" if best else ""
    typer.echo(f"detector written to {out}{extra}")


@app.command()
def detect(
    cohort: Path = typer.Option(..., "--cohort", help="Cohort folder or cohort.toml"),
    out: Path = typer.Option(..., "--out", help="landmarks CSV to write"),
    detector: Optional[Path] = typer.Option(None, "--detector", help="Detector file (default: the shipped one)"),
    batch: int = typer.Option(16, "--batch", help="Images per forward pass"),
    refine: Optional[bool] = typer.Option(None, "--refine/--no-refine",
                                          help="Local refinement pass (default: on images of at least 256 px, "
                                               "when the detector has one)"),
) -> None:
    """Detect the landmarks of every hand and foot image: path, landmark, x, y, confidence, qc."""
    from raoutcome.cohort import load
    from raoutcome.workflows.landmarks import detect_cohort, write_landmarks

    try:
        table = detect_cohort(load(cohort), detector, batch=batch, refine=refine)
    except InputError as err:
        _fail(err)
    write_landmarks(table, out)
    images = table.groupby("path")["qc"].agg(lambda q: (q != "ok").any())
    typer.echo(f"{len(table)} landmarks on {len(images)} images written to {out}; "
               f"{int(images.sum())} images with a QC flag")
