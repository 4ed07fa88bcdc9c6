"""Cohort manifest: loading, validation, the :class:`Cohort` object and patient-grouped splits.

>>> from raoutcome.cohort import load
>>> cohort = load("path/to/cohort")          # folder or cohort.toml; raises CohortValidationError
>>> folds = cohort.kfold(5, seed=0)          # [(train_ids, test_ids), ...]
>>> ds = cohort.to_xarray()                  # patient_id x visit_id, the grid Predictions use

The manifest format is documented in docs/manifest.md.
"""
from __future__ import annotations

from raoutcome.cohort.model import Cohort, load
from raoutcome.cohort.splits import Split
from raoutcome.cohort.validation import validate

__all__ = ["Cohort", "Split", "load", "validate"]
