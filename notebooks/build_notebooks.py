"""Build the three example notebooks from the cells below (run: ``python notebooks/build_notebooks.py``).

The notebooks are committed without outputs; ``tests/test_notebooks.py`` executes them on a tiny
simulated study so they never rot. Each starts from :func:`raoutcome.workflows.study.example_study`,
which simulates a small cohort and trains a small cross-fitted model the first time (a few minutes on
a laptop CPU) and reuses them afterwards. Set ``RAOUTCOME_NB_STUDY`` to a study folder to reuse one,
e.g. the output of ``raoutcome demo`` (its ``simulate/``, ``train/`` and ``predict/`` stages are found
and skipped) — or point the first cell at your own cohort, run folder and predictions.
"""
from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent

SETUP = '''\
import os
from pathlib import Path

import matplotlib
matplotlib.use("Agg")  # figures render inline in Jupyter as well
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from raoutcome.cohort import load
from raoutcome.predictions import load_predictions
from raoutcome.workflows.study import example_study

# A study folder: simulated cohort + cross-fitted model + out-of-fold predictions.
# Created on first use (a few minutes on a CPU), reused afterwards.
STUDY = Path(os.environ.get("RAOUTCOME_NB_STUDY", "example_study"))
paths = example_study(STUDY)
cohort = load(paths["cohort"])
predictions = load_predictions(paths["predictions"])
print(cohort)
print("cross-fitted:", bool(predictions.attrs.get("cross_fitted")), "| heads:", predictions.attrs.get("heads"))'''


def biomarker_discovery() -> list:
    return [
        new_markdown_cell(
            "# Biomarker discovery: what does the HAQ head see that the Sharp score does not?\n\n"
            "For a **biomarker researcher** with a trained model and a cohort. We\n\n"
            "1. attribute every outcome head of the model on held-out radiographs (integrated gradients),\n"
            "2. sum the attribution over anatomical regions — the joint sites the Sharp–van der Heijde (SvdH)\n"
            "   score reads (`svdh_site`) and the regions it ignores (periarticular bone, soft tissue, carpus,\n"
            "   shafts),\n"
            "3. find the region where the HAQ (disability) head looks more than the SvdH head does, and\n"
            "4. test whether the image signal in that region predicts HAQ **beyond SvdH** (partial R², F-test).\n\n"
            "On the synthetic cohort the answer is known: HAQ depends on periarticular osteopenia, which the\n"
            "Sharp score does not score. (`analyses/attribution_beyond_sharp.py` asks the same question at full\n"
            "size on a cohort where osteopenia is the main driver of HAQ, against a null twin: see the README.)"),
        new_code_cell(SETUP),
        new_markdown_cell(
            "## 1. Attribution per head\n\n"
            "`attribute` scores each patient's images with the fold model that never saw that patient "
            "(as the out-of-fold predictions). Regions come from the simulator's truth maps here; for a real "
            "cohort they come from a `landmarks` table (joint centres)."),
        new_code_cell('''\
from raoutcome.workflows.attribute import attribute

MAX_IMAGES = int(os.environ.get("RAOUTCOME_NB_MAX_IMAGES", "48"))
ATTR = STUDY / "notebook_attribution"
if not (ATTR / "summary.csv").exists():  # the HAQ and SvdH heads are the ones compared below
    attribute(paths["run"], cohort, ATTR, method="integrated_gradients", max_images=MAX_IMAGES,
              heads=["svdh", "haq"], settings={"n_steps": 8}, n_boot=300, progress=False)
regions = pd.read_csv(ATTR / "regions.csv")      # image x head x region
summary = pd.read_csv(ATTR / "summary.csv")      # head x region, pooled, with bootstrap CIs
summary.round(3)'''),
        new_markdown_cell(
            "## 2. Where does each head look?\n\n"
            "`relative_density` = share of the head's attribution in a region / share of the image area it "
            "covers. Above 1: the head looks there more than a uniform map would."),
        new_code_cell('''\
density = summary.pivot(index="region", columns="head", values="relative_density")
ax = density.plot.bar(figsize=(8, 3.5), rot=0)
ax.axhline(1, color="grey", lw=1, ls="--")
ax.set_ylabel("relative attribution density")
ax.set_title("Attribution density per anatomical region and head")
plt.tight_layout()
density.round(2)'''),
        new_markdown_cell(
            "## 3. The region where HAQ looks beyond the Sharp score\n\n"
            "Compare the HAQ head with the SvdH head: the ratio of their densities per region, excluding the "
            "SvdH sites themselves and the background."),
        new_code_cell('''\
heads = set(density.columns)
candidates = density.drop(index=[r for r in ("svdh_site", "background") if r in density.index])
if {"haq", "svdh"} <= heads:
    excess = (candidates["haq"] / candidates["svdh"]).sort_values(ascending=False)
else:  # a run without one of the heads: rank by the HAQ head alone
    excess = candidates[sorted(heads)[0] if "haq" not in heads else "haq"].sort_values(ascending=False)
REGION = str(excess.index[0])
print("HAQ / SvdH attribution density by region:")
print(excess.round(2).to_string())
print("\\nCandidate region:", REGION)
summary[(summary["region"] == REGION)][["head", "relative_density", "ratio_to_svdh_site", "ci_low", "ci_high"]].round(3)'''),
        new_markdown_cell(
            "## 4. Does that region predict HAQ beyond SvdH?\n\n"
            "Attribution says where the model looks, not whether that is informative. So we measure the image "
            "itself in the region — the mean pixel brightness (bone density) of each attributed radiograph — and "
            "ask whether it explains HAQ after SvdH: nested OLS on one visit per patient, partial R² and F-test. "
            "A darker periarticular region with higher HAQ at equal SvdH is the signature of periarticular "
            "osteopenia."),
        new_code_cell('''\
import xarray as xr
from raoutcome.analysis import partial_r2
from raoutcome.anatomy import REGIONS

with xr.open_dataset(ATTR / "maps.nc", engine="h5netcdf") as maps:
    pixels, labels = maps["radiograph"].values, maps["region"].values
    ids = pd.DataFrame({"patient_id": maps["patient_id"].values.astype(str),
                        "visit_id": maps["visit_id"].values.astype(str)})

def region_mean(code):
    inside = labels == code
    return np.where(inside.any(axis=(1, 2)),
                    (pixels * inside).sum(axis=(1, 2)) / np.maximum(inside.sum(axis=(1, 2)), 1), np.nan)

features = ids.assign(**{f"bright_{name}": region_mean(code) for name, code in REGIONS.items() if name != "background"})
per_visit = features.groupby(["patient_id", "visit_id"], as_index=False).mean(numeric_only=True)
table = per_visit.merge(cohort.visits[["patient_id", "visit_id", "time_years", "svdh_total", "haq"]],
                        on=["patient_id", "visit_id"])
table = table.dropna(subset=["haq", "svdh_total"]).sort_values("time_years").groupby("patient_id").tail(1)
rows = []
for col in [c for c in table if c.startswith("bright_")]:
    data = table.dropna(subset=[col])
    if len(data) >= 8:
        res = partial_r2(data, "haq", ["svdh_total"], [col])
        rows.append({"region": col.removeprefix("bright_"), "partial_r2": res.estimate, "p_value": res.p_value,
                     "n_patients": len(data)})
tests = pd.DataFrame(rows).sort_values("p_value")
tests.round(4)'''),
        new_code_cell('''\
row = tests.set_index("region").loc[REGION] if REGION in set(tests["region"]) else None
if row is not None:
    print(f"{REGION}: partial R² of HAQ beyond SvdH = {row.partial_r2:.3f} (F-test p = {row.p_value:.3g}, "
          f"{int(row.n_patients)} patients)")
print("Strongest region by the F-test:", tests.iloc[0]["region"])'''),
        new_markdown_cell(
            "**Reading the result.** On the demo-sized cohort the HAQ head's attribution leans towards the "
            "periarticular bone and the periarticular brightness predicts HAQ beyond SvdH. With the tiny study "
            "used in the test suite the numbers are noisy; re-run with `RAOUTCOME_NB_STUDY` pointing at a "
            "`raoutcome demo` folder and `RAOUTCOME_NB_MAX_IMAGES=200` for a stable answer. The images seen by "
            "the test here are few and the models are small, so treat any single p-value with care — and on "
            "real data confirm a candidate region in an independent cohort."),
        new_markdown_cell(
            "## 5. Two questions: beyond the human reading, and beyond damage\n\n"
            "A model trained on radiographs is first of all a damage reader, and usually a more precise one than a "
            "human scorer. So *\"does the image add to the Sharp score?\"* can be answered yes although the image "
            "sees nothing but damage — a real finding for trialists, but not a biomarker. The biomarker question "
            "is *\"does the image carry something other than joint damage?\"*: `beyond_damage` corrects the "
            "damage term for reader error before asking it: with the second reading in `retest.csv`, the damage "
            "adjustment is the regression-calibrated spline basis E[B(true damage) | everything measured]; without "
            "one, an approximate correction from a published SDC (the output then says so). Each row below states "
            "its question."),
        new_code_cell('''\
import warnings
from raoutcome.analysis.features import analysis_data
from raoutcome.analysis.incremental import beyond_damage, beyond_sharp

data = analysis_data(cohort, predictions)
image = data.pred("risk")
outcome_images = {"haq": data.pred("haq") if "haq" in data.heads else image}
kw = dict(outcome_images=outcome_images, tests=("cox_lrt", "partial_r2_f"))
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    sharp = beyond_sharp(data, image, **kw)
    try:
        damage = beyond_damage(data, image, retest=cohort.retest, **kw)
    except Exception as err:  # e.g. too few patients for the calibration
        damage = pd.DataFrame()
        print("beyond_damage could not run:", err)
if damage.empty:
    print("WARNING: only 'beyond the human reading' could be answered; a small p-value there may only mean "
          "that the image reads damage more precisely than the reader.")
else:
    print("damage corrected with:", damage["reliability_source"].iloc[0])
    if not damage["reliability_source"].iloc[0].startswith("retest"):
        from raoutcome.analysis.incremental import PUBLISHED_CAVEAT
        print("CAVEAT:", PUBLISHED_CAVEAT)
for _, row in pd.concat([sharp, damage]).iterrows():
    print(f"{row.question}\\n    {row.test} for {row.outcome}: estimate {row.estimate:.3g}, p = {row.p_value:.3g}")'''),
        new_markdown_cell(
            "**Reading the two answers.** A small p-value on the first question with a large one on the second "
            "says: the image reads joint damage better than the reader, and nothing more. Small on both: the "
            "image sees something the damage score does not — the candidate biomarker. How often each test "
            "calls a pure damage reader a discovery is measured by `analyses/false_discovery.py` (see "
            "docs/beyond_damage.md)."),
    ]


def cohort_models() -> list:
    return [
        new_markdown_cell(
            "# Cohort models with image scores (for epidemiologists)\n\n"
            "Per-visit image scores come out of the model as a table, like any other covariate. Here we put them "
            "into the models an epidemiologist already uses:\n\n"
            "* **Cox** models for time to deformity — SvdH only vs SvdH + image risk; hazard ratios with CIs, "
            "likelihood-ratio test, ΔC-index, Kaplan–Meier by image-risk tertile;\n"
            "* **linear mixed models** for HAQ over time (random intercept and slope per patient) with the image "
            "score next to SvdH.\n\n"
            "All image scores are **out-of-fold** (cross-fitted): the model that scored a patient never saw them."),
        new_code_cell(SETUP),
        new_code_cell('''\
from raoutcome.analysis import analysis_data

data = analysis_data(cohort, predictions)
print("covariates:", data.covariates, "| image heads:", data.heads)
data.visits.head()'''),
        new_markdown_cell("## Cox proportional hazards: SvdH alone vs SvdH + image risk"),
        new_code_cell('''\
from raoutcome.analysis import CoxModel, cox_lrt, delta_c_index

pts = data.patients.dropna(subset=["svdh_total", "pred_risk", "duration", "observed"])
print(f"{len(pts)} patients, {int(pts['observed'].sum())} deformity events")
base = CoxModel(["svdh_total"], standardize=True).fit(pts)
full = CoxModel(["svdh_total", "pred_risk"], standardize=True).fit(pts)
full.summary'''),
        new_code_cell('''\
lrt = cox_lrt(pts, ["svdh_total"], ["pred_risk"])
dc = delta_c_index(pts, ["svdh_total"], ["pred_risk"], k=3, n_boot=100)
pd.DataFrame([lrt.to_row(), dc.to_row()])'''),
        new_markdown_cell("## Kaplan–Meier by image-risk tertile"),
        new_code_cell('''\
from raoutcome.analysis import km_by_groups

km = km_by_groups(pts, "pred_risk")
fig, ax = plt.subplots(figsize=(6, 3.5))
for group, curve in km.curves.groupby("group", sort=False):
    ax.step(curve["time"], curve["survival"], where="post", label=f"{group} image risk")
ax.set_xlabel("years since first visit"); ax.set_ylabel("free of deformity")
ax.set_title(f"log-rank p = {km.p_value:.3g}"); ax.legend()
print(f"log-rank test across image-risk tertiles: p = {km.p_value:.3g}")
km.groups'''),
        new_markdown_cell(
            "## Deformity as it is observed: intervals, competing death, risk now, calibration\n\n"
            "A deformity is found at a visit (known only between two visits) and RA patients die earlier than "
            "their peers. `observed_survival` reads the events table and uses interval-censored models when it "
            "has `time_lower`/`time_upper`, competing-risk models when `death` is recorded, and says which; it "
            "also fits landmark models (risk from the history up to 1 and 2 years, with a look-ahead check) and "
            "checks calibration at 1/2/5 years (those inside the follow-up)."),
        new_code_cell('''\
from raoutcome.analysis.observed_survival import observed_survival

obs = observed_survival(data.patients, data.visits, cohort.events, "pred_risk", ["svdh_total"],
                        scaled=["pred_risk", "svdh_total"], k=3)
print(obs.summary["survival_models_used"]["statement"])
print("look-ahead check passed:", obs.summary.get("landmark_no_look_ahead"))
for name in ("calibration.csv", "landmark_auc.csv", "interval_hazard_ratios.csv", "competing_hazard_ratios.csv"):
    if name in obs.tables:
        display(obs.tables[name].round(3))'''),
        new_markdown_cell("## HAQ over time: linear mixed model with SvdH and the image HAQ score"),
        new_code_cell('''\
from raoutcome.analysis import MixedModel, mixed_lrt

image_haq = "pred_haq" if "pred_haq" in data.visits else "pred_risk"
visits = data.visits.dropna(subset=["haq", "svdh_total", image_haq])
mm = MixedModel("haq", ["svdh_total", image_haq]).fit(visits)
mm.summary'''),
        new_code_cell('''\
lrt_haq = mixed_lrt(visits, "haq", ["svdh_total"], [image_haq])
pd.DataFrame([lrt_haq.to_row()])'''),
        new_markdown_cell(
            "**Reading the result.** A hazard ratio for `pred_risk` above 1 with SvdH in the model, a small LRT "
            "p-value and a ΔC-index whose interval lies above 0 say the radiograph carries prognostic "
            "information the Sharp score misses. The same logic applies to the mixed model for HAQ. On the tiny "
            "study of the test suite these numbers are noisy; use a `raoutcome demo` folder for stable ones."),
    ]


def trial_endpoints() -> list:
    return [
        new_markdown_cell(
            "# Trial endpoints: SvdH change vs the learned progression score (for trialists)\n\n"
            "Which endpoint would detect a structure-modifying treatment with fewer patients? For each candidate "
            "endpoint we compute each patient's change from the first to the last visit, then\n\n"
            "* the **standardized response mean** (SRM = mean change / SD of change),\n"
            "* the **smallest detectable change** (SDC) where repeat readings exist, and % progressors,\n"
            "* the **sample size per arm** for a treatment that halves progression, and\n"
            "* **simulated power** of two-arm trials over a range of effect sizes."),
        new_code_cell(SETUP),
        new_code_cell('''\
from raoutcome.analysis import analysis_data, change_scores

data = analysis_data(cohort, predictions, embedding=False)
endpoints = {"SvdH change": "svdh_total", "learned progression score": "pred_svdh", "HAQ change": "haq"}
changes = {name: change_scores(data.visits, col)["change"].to_numpy()
           for name, col in endpoints.items() if col in data.visits}
{name: len(v) for name, v in changes.items()}'''),
        new_code_cell('''\
from raoutcome.analysis import endpoint_table, sdc

# The SDC needs repeated readings of the same radiographs (a reader retest set: sdc(reading_a, reading_b)).
# Without one it stays empty here; pass sdcs={"SvdH change": value, ...} when you have them.
table = endpoint_table(changes, effect=0.5)
table.round(3)'''),
        new_code_cell('''\
from raoutcome.analysis import sample_size_per_arm

for name, row in table.set_index("endpoint").iterrows():
    if np.isfinite(row["effect_size_d"]) and row["effect_size_d"] != 0:
        n = sample_size_per_arm(abs(row["effect_size_d"]))
        print(f"{name:28s} d = {row['effect_size_d']:+.2f} -> {n.n_formula} patients per arm (80 % power)")'''),
        new_markdown_cell("## Simulated two-arm trials"),
        new_code_cell('''\
from raoutcome.analysis import simulate_power

N_PER_ARM = int(os.environ.get("RAOUTCOME_NB_N_PER_ARM", "40"))
N_SIM = int(os.environ.get("RAOUTCOME_NB_N_SIM", "200"))
power = simulate_power(changes, effects=[0.2, 0.4, 0.6, 0.8], n_per_arm=N_PER_ARM, n_sim=N_SIM, seed=0)
fig, ax = plt.subplots(figsize=(6, 3.5))
for name, grp in power.groupby("endpoint", sort=False):
    ax.plot(grp["effect"], grp["power"], marker="o", label=name)
ax.axhline(0.8, color="grey", ls="--", lw=1)
ax.set_xlabel("treatment effect (fraction of progression prevented)"); ax.set_ylabel("power")
ax.set_title(f"{N_PER_ARM} patients per arm, {N_SIM} simulated trials"); ax.legend()
power.pivot(index="effect", columns="endpoint", values="power")'''),
        new_markdown_cell(
            "**Reading the result.** The endpoint with the higher SRM needs fewer patients; the relative "
            "efficiency column ((SRM / SRM of SvdH)²) says how many SvdH-endpoint patients one patient on the "
            "other endpoint is worth. HAQ change is typically the least responsive. The tiny study of the test "
            "suite gives noisy numbers; use a `raoutcome demo` folder for stable ones."),
    ]


NOTEBOOKS = {
    "biomarker_discovery.ipynb": biomarker_discovery,
    "cohort_models.ipynb": cohort_models,
    "trial_endpoints.ipynb": trial_endpoints,
}


def build(folder: Path = HERE) -> list[Path]:
    written = []
    for name, cells in NOTEBOOKS.items():
        nb = new_notebook(cells=cells())
        for i, cell in enumerate(nb.cells):
            cell.id = f"{Path(name).stem[:12]}-{i:02d}"  # stable ids: rebuilding changes nothing
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nb.metadata["language_info"] = {"name": "python"}
        path = folder / name
        nbformat.validate(nb)
        nbformat.write(nb, path)
        written.append(path)
    return written


if __name__ == "__main__":
    for p in build(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE):
        print(f"wrote {p}")
