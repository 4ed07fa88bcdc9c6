"""The one reader of a simulated cohort's ``truth/`` folder (what the simulator knows and a reader cannot).

A cohort written by :mod:`raoutcome.synth` keeps its ground truth beside the tables: ``truth/oracle.json``
(the best achievable accuracies: noise-free R², the oracle C-index, ...), ``truth/visits.csv`` (per visit:
the reader-free scores and the latent features the Sharp score ignores) and ``truth/regions/<image
stem>.png`` (anatomical label maps). Analysis, study, attribution and report read it through
:func:`read_truth`, so the layout is named once. A real cohort has no ``truth/``: every field is then empty.
Torch-free.
"""
from __future__ import annotations

__all__ = ["TRUTH_DIR", "ORACLE_FILE", "VISITS_FILE", "REGIONS_DIR", "Truth", "read_truth", "flatten"]

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import pandas as pd

TRUTH_DIR = "truth"
ORACLE_FILE = "oracle.json"
VISITS_FILE = "visits.csv"
REGIONS_DIR = "regions"


def flatten(mapping: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts as one level with dotted keys: ``{"a": {"b": 1}}`` -> ``{"a.b": 1}``."""
    out: dict[str, Any] = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


@dataclass(frozen=True)
class Truth:
    """A cohort's ground truth: ``oracle`` ({} when absent), ``visits`` (None when absent), the folder."""

    folder: Path
    oracle: dict = field(default_factory=dict)
    visits: pd.DataFrame | None = None

    @property
    def exists(self) -> bool:
        return bool(self.oracle) or self.visits is not None

    def oracle_value(self, key: str) -> Any:
        """An oracle number by dotted key (``"haq.r2_noise_free"``), or None."""
        return flatten(self.oracle).get(key)

    def region_map(self, image_path: str | Path) -> Path | None:
        """The label map of an image (``truth/regions/<stem>.png``), or None when there is none."""
        path = self.folder / REGIONS_DIR / f"{Path(image_path).stem}.png"
        return path if path.is_file() else None


def read_truth(cohort_root: str | Path, visits: bool = True) -> Truth:
    """Read ``<cohort_root>/truth/`` (``visits=False`` skips the visit table)."""
    folder = Path(cohort_root) / TRUTH_DIR
    oracle_path, visits_path = folder / ORACLE_FILE, folder / VISITS_FILE
    oracle = json.loads(oracle_path.read_text()) if oracle_path.is_file() else {}
    table = (pd.read_csv(visits_path, dtype={"patient_id": str, "visit_id": str})
             if visits and visits_path.is_file() else None)
    return Truth(folder, oracle if isinstance(oracle, dict) else {}, table)
