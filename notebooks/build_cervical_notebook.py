"""Build notebooks/cervical_patient.ipynb (run: ``python notebooks/build_cervical_notebook.py``).

A clinician's walk through one held-out patient of the RA cervical study: the baseline radiographs with the
detected atlantoaxial landmarks, ADI / SAC with their 95 % intervals and the probability of AAS, the
deformity risk over time from MR + radiograph, where the patient stands among the others, and what then
happened. It reads a finished ``raoutcome cervical study`` folder (``RAOUTCOME_CERVICAL_STUDY``); without one
it runs a small study first (a few minutes on a CPU). Committed without outputs;
``tests/test_cervical_notebook.py`` checks it is what this script writes (and, marked slow, runs it).
"""
from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent
NAME = "cervical_patient.ipynb"

CELLS = [
    ("md", "# One patient's craniocervical risk (RA cervical spine)\n\n"
           "For a **clinician**. A held-out patient of the simulated RA cervical study (issue #30): what the\n"
           "baseline lateral radiographs measure (ADI, SAC, Ranawat with their uncertainty), what the baseline\n"
           "MRI and radiographs together say about the risk of craniocervical deformity (pannus and/or facet\n"
           "degeneration at C0–C1 / C1–C2) over the next years, and how that compares with the other patients.\n"
           "All images are simulated: the patient's truth is known, so the last cell shows what happened."),
    ("code", '''import json
import os
from pathlib import Path

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd

from raoutcome.workflows.cervical_study import run_study

STUDY = Path(os.environ.get("RAOUTCOME_CERVICAL_STUDY", "cervical_study"))
if not (STUDY / "results.json").exists():  # a small study (a few minutes on a CPU)
    small = STUDY.with_name(STUDY.name + ".toml")
    small.write_text("[study]\\nn_train = 150\\nn_test = 80\\ndetector_steps = 150\\nbootstrap = 100\\n")
    run_study(small, STUDY, log=print)
results = json.loads((STUDY / "results.json").read_text())
horizon = results["study"]["horizon_years"]
print("study:", STUDY, "| horizon:", horizon, "years")'''),
    ("md", "## 1. Choose a patient\n\nThe held-out patient with the highest predicted risk from MR + radiograph "
           "(change `PATIENT` to look at another)."),
    ("code", '''pred = pd.read_csv(STUDY / "predictions_test.csv")
both = pred[pred["features"] == "both"].set_index("patient_id")
PATIENT = both["prob"].idxmax()
print("patient:", PATIENT, f"| predicted P(deformity by {horizon} y) = {both.loc[PATIENT, 'prob']:.2f}")'''),
    ("md", "## 2. The baseline radiographs: atlantoaxial measurements\n\n"
           "ADI > 3 mm and SAC < 14 mm are the usual cut-offs for atlantoaxial subluxation (AAS). The interval is "
           "the measurement's 95 % interval (from the detector's errors on patients it was not trained on)."),
    ("code", '''from IPython.display import Image, display

from raoutcome.reporting.cervical_report import patient_figure

measured = pd.read_csv(STUDY / "measured_test_with_uncertainty.csv")
mine = measured[measured["patient_id"] == PATIENT]
cols = ["view", "adi_mm", "adi_mm_lo", "adi_mm_hi", "p_aas_adi", "sac_mm", "sac_mm_lo", "sac_mm_hi", "p_aas_sac",
        "ranawat_mm"]
print(mine[cols].round(2).to_string(index=False))
png = patient_figure(STUDY / "test", PATIENT, pd.read_csv(STUDY / "measured_test.csv"))
display(Image(png))'''),
    ("md", "## 3. The risk of deformity over time\n\n"
           "The interval-censored Weibull model on the MR + radiograph score: the probability that the deformity "
           "has appeared by each time (the deformity is only seen at a follow-up MRI, so its time is known to lie "
           "between two visits; the model uses exactly that). Grey: every other held-out patient."),
    ("code", '''curves = pd.read_csv(STUDY / "risk_curves_test.csv")
curves = curves[curves["features"] == "both"]
fig, ax = plt.subplots(figsize=(6, 4))
for pid, c in curves.groupby("patient_id"):
    ax.plot(c["time_years"], c["deformity_probability"], color="red" if pid == PATIENT else "0.8",
            lw=2 if pid == PATIENT else 0.5, zorder=3 if pid == PATIENT else 1)
ax.axvline(horizon, ls="--", color="k", lw=0.8)
ax.set_xlabel("years from baseline")
ax.set_ylabel("P(deformity by then)")
plt.show()
rank = (both["prob"] < both.loc[PATIENT, "prob"]).mean()
print(f"risk percentile among {len(both)} held-out patients: {100 * rank:.0f}")
metrics = pd.DataFrame(results["prediction"])
metrics = metrics[metrics["threshold_rule"] == "prevalence"].set_index("features")
print(metrics.loc[["mr", "radiograph", "both"], ["accuracy", "ppv", "npv", "c_interval", "td_auc"]].round(2))'''),
    ("md", "## 4. What happened (the simulator's truth)"),
    ("code", '''ev = pd.read_csv(STUDY / "test" / "events.csv")
truth = pd.read_csv(STUDY / "test" / "truth" / "patients.csv").set_index("patient_id")
d = ev[(ev["patient_id"] == PATIENT) & (ev["event"] == "deformity")].iloc[0]
if d["observed"] == 1:
    print(f"deformity found at the visit of year {d['time_upper']:.1f} "
          f"(absent at year {d['time_lower']:.1f}; true onset {truth.loc[PATIENT, 'event_time_true']:.1f})")
else:
    print(f"no deformity seen up to year {d['time_years']:.1f}")
print("baseline pannus (mm):", round(truth.loc[PATIENT, "pannus_v0"], 2),
      "| facet degeneration:", round(truth.loc[PATIENT, "facet_v0"], 2))'''),
]


def build(out_dir: Path = HERE) -> Path:
    nb = new_notebook()
    nb.cells = [new_markdown_cell(src) if kind == "md" else new_code_cell(src) for kind, src in CELLS]
    for i, cell in enumerate(nb.cells):
        cell.id = f"cervical-{i:02d}"  # stable ids: rebuilding changes nothing
    nb.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
    path = Path(out_dir) / NAME
    nbformat.write(nb, path)
    return path


if __name__ == "__main__":
    print(build(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE))
