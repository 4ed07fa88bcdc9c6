"""``raoutcome pacs pull`` and ``raoutcome pacs score``: parse, call :mod:`raoutcome.interop`, print.

Credentials are never options (see :mod:`raoutcome.interop.credentials`): only the path of a 0600
credentials file may be given. Errors become one line on stderr and exit code 2.
"""
from __future__ import annotations

__all__ = ["pacs_app"]

import datetime as dt
from pathlib import Path
from typing import List, Optional

import typer

from raoutcome.errors import InputError

pacs_app = typer.Typer(add_completion=False, no_args_is_help=True,
                       help="Pull radiographs from a PACS; score them and store DICOM SR results back.")


def _fail(err: Exception) -> None:
    typer.echo(f"error: {err}", err=True)
    raise typer.Exit(code=2)


def _date(value: Optional[str]) -> Optional[dt.date]:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise InputError(f"--since: not an ISO date YYYY-MM-DD (value: {value!r})") from None


def _spec(server: str, credentials: Optional[Path], ca_bundle: Optional[Path], insecure: bool, timeout: float,
          max_mb: float):
    from raoutcome.interop.credentials import server_spec

    return server_spec(server, credentials=credentials, ca_bundle=ca_bundle, insecure=insecure, timeout_s=timeout,
                       max_bytes=int(max_mb * 2**20))


_SERVER = typer.Option(..., "--server", help="http(s)://host/dicom-web (DICOMweb) or "
                                             "dicom://AET@host:port?calling=ME&retrieve=get|move&move_port=N (DIMSE)")
_CRED = typer.Option(None, "--credentials", help="TOML file (mode 0600) with username/password or token; "
                                                 "default: RAOUTCOME_PACS_* environment variables")
_CA = typer.Option(None, "--ca-bundle", help="PEM file of CAs trusted for https")
_INSECURE = typer.Option(False, "--insecure", help="do not verify the server's TLS certificate")
_TIMEOUT = typer.Option(60.0, "--timeout", help="seconds per request")
_MAXMB = typer.Option(512.0, "--max-mb", help="largest answer accepted from the server, MiB")
_MODALITY = typer.Option(None, "--modality", help="modalities searched (repeat); default DX, CR, MR for pull, "
                                                  "DX, CR for score")
_BODY = typer.Option(None, "--body-part", help="BodyPartExamined values kept (repeat), e.g. HAND, FOOT")


@pacs_app.command()
def pull(
    server: str = _SERVER,
    out: Path = typer.Option(..., "--out", help="cohort folder to write (resumed if it holds a previous pull)"),
    since: Optional[str] = typer.Option(None, "--since", help="only studies on or after this date (YYYY-MM-DD)"),
    private: Optional[Path] = typer.Option(None, "--private", help="folder for the pseudonym key and mapping "
                                                                   "(default: OUT.private, never inside OUT)"),
    modality: Optional[List[str]] = _MODALITY,
    body_part: Optional[List[str]] = _BODY,
    credentials: Optional[Path] = _CRED, ca_bundle: Optional[Path] = _CA, insecure: bool = _INSECURE,
    timeout: float = _TIMEOUT, max_mb: float = _MAXMB,
) -> None:
    """Pull studies into a pseudonymised cohort (manifest from the headers, unusable.csv with reasons)."""
    from raoutcome.interop.pull import DEFAULT_MODALITIES, pull as run_pull

    try:
        summary = run_pull(_spec(server, credentials, ca_bundle, insecure, timeout, max_mb), out, since=_date(since),
                           private=private, modalities=tuple(modality or DEFAULT_MODALITIES),
                           body_parts=tuple(body_part or ()))
    except InputError as err:
        _fail(err)
    typer.echo(f"cohort written to {summary.cohort}: {summary.studies} studies, {summary.images} images, "
               f"{summary.unusable} unusable instances (unusable.csv); mapping kept in {summary.private}")


@pacs_app.command()
def score(
    run: Path = typer.Option(..., "--run", "--run-dir", help="run folder written by `raoutcome train` (under torchrun "
                                                           "write --run-dir: torchrun takes --run as its --run-path)"),
    server: str = _SERVER,
    since: Optional[str] = typer.Option(None, "--since", help="only studies on or after this date (YYYY-MM-DD)"),
    state: Optional[Path] = typer.Option(None, "--state", help="private ledger folder (default: RUN.pacs-private)"),
    chunk: int = typer.Option(16, "--chunk", min=1, help="studies retrieved and predicted together"),
    fhir: Optional[Path] = typer.Option(None, "--fhir", help="also write a FHIR Observation bundle per study here"),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="stop after this many studies"),
    keep_predictions: Optional[Path] = typer.Option(None, "--predictions-out",
                                                    help="keep each chunk's Predictions (.nc) in this folder"),
    history: bool = typer.Option(False, "--history", help="also retrieve each patient's earlier studies as "
                                                          "unscored context visits for the longitudinal model"),
    landmark_detector: Optional[Path] = typer.Option(
        None, "--landmark-detector", help="site-route runs: landmark detector (.safetensors) for the pulled "
                                          "images (default: RUN/landmark_detector.safetensors, else the shipped one)"),
    overlay: Optional[str] = typer.Option(None, "--overlay", help="also store an overlay of each scored image as "
                                                                   "a DICOM secondary capture: whole-image runs, the "
                                                                   "attribution map of this head (e.g. risk); "
                                                                   "site-route runs, the per-joint scores of this "
                                                                   "kind (erosion or jsn)"),
    modality: Optional[List[str]] = _MODALITY,
    body_part: Optional[List[str]] = _BODY,
    credentials: Optional[Path] = _CRED, ca_bundle: Optional[Path] = _CA, insecure: bool = _INSECURE,
    timeout: float = _TIMEOUT, max_mb: float = _MAXMB,
) -> None:
    """Score new studies and store one TID 1500 SR per study (resumable; shard with torchrun)."""
    from raoutcome.interop.score import score as run_score

    try:
        summary = run_score(run, _spec(server, credentials, ca_bundle, insecure, timeout, max_mb), state=state,
                            since=_date(since), modalities=tuple(modality or ("DX", "CR")),
                            body_parts=tuple(body_part or ()), chunk=chunk, fhir=fhir, limit=limit,
                            keep_predictions=keep_predictions, history=history, detector=landmark_detector, overlay=overlay,
                            progress=lambda line: typer.echo(line))
    except InputError as err:
        _fail(err)
    typer.echo(f"{summary.stored} SR stored, {summary.recovered} found already stored, {summary.skipped} done "
               f"before, {summary.unusable} without a usable image, {summary.failed} failed; "
               + (f"{summary.overlays} overlays stored; " if overlay else "") +
               f"{summary.images} images in {summary.seconds:.1f} s")
    for line in summary.errors[:20]:
        typer.echo(f"error: {line}", err=True)
    if summary.failed:
        raise typer.Exit(code=1)
