"""raoutcome: outcome prediction from longitudinal rheumatology radiographs, beyond the Sharp score.

The public API is five calls (:mod:`raoutcome.api`)::

    import raoutcome as ro
    cohort = ro.load_cohort("my_cohort")
    run = ro.train(cohort, "cohorts/train_demo.toml", out="run")
    preds = ro.predict(run, cohort)
    result = ro.analyze(cohort, preds, out="analysis")

Names are imported on first use (PEP 562), so ``import raoutcome`` loads neither torch nor the
statistics stack. The version comes from the installed package's metadata.
"""
from __future__ import annotations

__all__ = ["__version__", "Analysis", "load_cohort", "simulate", "train", "predict", "analyze",
           "InputError", "RaoutcomeWarning"]

import importlib
import logging
from importlib import metadata as _metadata
from typing import Any

try:
    __version__: str = _metadata.version("raoutcome")
except _metadata.PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0+unknown"

# A library never configures logging; it only makes sure nothing is printed unless asked
# ("lastResort" would print warnings to stderr otherwise). The CLI adds handlers.
logging.getLogger(__name__).addHandler(logging.NullHandler())

_LAZY = {
    "Analysis": "raoutcome.api", "load_cohort": "raoutcome.api", "simulate": "raoutcome.api",
    "train": "raoutcome.api", "predict": "raoutcome.api", "analyze": "raoutcome.api",
    "InputError": "raoutcome.errors", "RaoutcomeWarning": "raoutcome.errors",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'raoutcome' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
