"""The one progress-bar factory of the library (tqdm), quiet when stderr is not a terminal.

Why one place: a notebook or a batch job must be able to silence every bar at once
(:func:`set_progress` ``(False)``, the CLI's ``--quiet``, or ``RAOUTCOME_PROGRESS=0``), and a log
file must not fill with carriage returns. A caller may always ask for *less* (``disable=True``);
it never gets a bar when progress is off or stderr is not a TTY (tqdm's ``disable=None`` rule).
"""
from __future__ import annotations

__all__ = ["tqdm", "set_progress", "progress_enabled"]

import os
import sys
from typing import Any

from tqdm.auto import tqdm as _tqdm

_ENABLED: bool | None = None  # None: decide from RAOUTCOME_PROGRESS and the terminal


def set_progress(enabled: bool | None) -> None:
    """Switch every progress bar on (``True``), off (``False``) or back to automatic (``None``)."""
    global _ENABLED
    _ENABLED = enabled


def progress_enabled() -> bool:
    """Whether bars are shown now: the switch, else ``RAOUTCOME_PROGRESS``, else ``stderr.isatty()``."""
    if _ENABLED is not None:
        return _ENABLED
    env = os.environ.get("RAOUTCOME_PROGRESS", "").strip().lower()
    if env in {"0", "false", "no", "off"}:
        return False
    if env in {"1", "true", "yes", "on"}:
        return True
    stream = sys.stderr
    return bool(getattr(stream, "isatty", lambda: False)())


def tqdm(*args: Any, **kwargs: Any) -> _tqdm:
    """:class:`tqdm.auto.tqdm` with ``disable`` forced on when progress is off (see module doc)."""
    kwargs["disable"] = bool(kwargs.get("disable", False)) or not progress_enabled()
    return _tqdm(*args, **kwargs)
