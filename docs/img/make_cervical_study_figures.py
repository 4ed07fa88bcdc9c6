"""Draw docs/img/cervical_measurement.png and docs/img/cervical_prediction.png from a finished cervical study.

Run (after `raoutcome cervical study --config cohorts/ra_cervical.toml --out cervical_study`):
    PYTHONPATH=src python docs/img/make_cervical_study_figures.py cervical_study
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd

from raoutcome.io_utils import atomic_write
from raoutcome.reporting.cervical_report import measurement_figure, prediction_figure

HERE = Path(__file__).parent


def main(study: Path) -> int:
    results = json.loads((study / "results.json").read_text())
    agree = pd.DataFrame(results["measurement_agreement"])
    png = measurement_figure(pd.read_csv(study / "measured_test.csv"),
                             pd.read_csv(study / "test" / "truth" / "measurements.csv"), agree)
    with atomic_write(HERE / "cervical_measurement.png", mode="wb") as fh:
        fh.write(png)
    with atomic_write(HERE / "cervical_prediction.png", mode="wb") as fh:
        fh.write(prediction_figure(pd.DataFrame(results["prediction"])))
    print("wrote", HERE / "cervical_measurement.png", HERE / "cervical_prediction.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(Path(sys.argv[1] if len(sys.argv) > 1 else "cervical_study")))
