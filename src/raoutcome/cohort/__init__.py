"""Cohort manifest: loading, validation, the :class:`Cohort` object and patient-grouped splits.

A folder or ``cohort.toml`` is loaded (raising CohortValidationError with every problem), split by
patient into folds (``[(train_ids, test_ids), ...]``) and turned into a patient_id x visit_id Dataset,
the grid Predictions use:

>>> from raoutcome.cohort import load
>>> cohort = load("path/to/cohort")          # doctest: +SKIP
>>> folds = cohort.kfold(5, seed=0)          # doctest: +SKIP
>>> ds = cohort.to_xarray()                  # doctest: +SKIP

The manifest format is documented in docs/manifest.md.
"""
from __future__ import annotations

from raoutcome.cohort.model import Cohort, load
from raoutcome.cohort.splits import Split
from raoutcome.cohort.validation import validate

__all__ = ["Cohort", "Split", "load", "validate"]
