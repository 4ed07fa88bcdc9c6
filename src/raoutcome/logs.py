"""Logging set-up for the command line (the library itself only logs, never configures or prints).

Every module logs through ``logging.getLogger(__name__)`` (names under ``raoutcome.``), so a
notebook user captures or silences the library with the standard :mod:`logging` machinery, e.g.
``logging.getLogger("raoutcome").setLevel(logging.WARNING)``. :func:`configure` is what the CLI's
``--verbose`` / ``--quiet`` call; it also routes :mod:`warnings` into the log.
"""
from __future__ import annotations

__all__ = ["configure", "log_message", "LOGGER_NAME"]

import logging
import sys

from raoutcome.progress import set_progress

LOGGER_NAME = "raoutcome"
_HANDLER_FLAG = "_raoutcome_cli_handler"


class _StderrHandler(logging.StreamHandler):
    """A stream handler writing to whatever ``sys.stderr`` is at emit time (test runners swap it)."""

    @property  # type: ignore[override, unused-ignore]  # an override for some typeshed versions only
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


def configure(verbosity: int = 0, stream=None) -> logging.Logger:
    """Attach one stderr handler to the ``raoutcome`` logger and set its level.

    Parameters
    ----------
    verbosity
        ``-1`` quiet (warnings and errors only, no progress bars), ``0`` normal (info), ``1``
        verbose (debug, with logger names and times).
    stream
        Where to write (default ``sys.stderr``).

    Returns
    -------
    logging.Logger
        The ``raoutcome`` logger. Calling again replaces the handler, never duplicates it.
    """
    logger = logging.getLogger(LOGGER_NAME)
    warn_logger = logging.getLogger("py.warnings")
    for owner in (logger, warn_logger):
        for old in list(owner.handlers):
            if getattr(old, _HANDLER_FLAG, False):
                owner.removeHandler(old)
    handler: logging.StreamHandler = logging.StreamHandler(stream) if stream is not None else _StderrHandler()
    setattr(handler, _HANDLER_FLAG, True)
    fmt = "%(asctime)s %(levelname)s %(name)s: %(message)s" if verbosity > 0 else "%(message)s"
    handler.setFormatter(logging.Formatter(fmt, datefmt="%H:%M:%S"))
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if verbosity > 0 else logging.WARNING if verbosity < 0 else logging.INFO)
    if verbosity < 0:
        set_progress(False)
    logging.captureWarnings(True)
    warn_logger.addHandler(handler)
    return logger


def log_message(message: str) -> None:
    """The default ``log`` callback of the training loops: to the ``raoutcome.training`` logger, at
    WARNING when the message starts with "WARNING" (a model that did not learn), else at INFO."""
    level = logging.WARNING if message.lstrip().upper().startswith("WARNING") else logging.INFO
    logging.getLogger(f"{LOGGER_NAME}.training").log(level, message)
