"""Lay out a finished study (the stage folders of :mod:`raoutcome.workflows.study`) as one HTML report.

Reads what the stages wrote — the cohort summary and figures (``validate/``), the analysis folder
(``analyze/analysis/``: the CSV tables, PNG figures and ``summary.json`` of
:mod:`raoutcome.workflows.analyze`), the headline accuracy table (``analyze/accuracy_vs_ceiling.csv``),
the attribution folder (``attribute/attribution/``: ``summary.csv``, overlays), the simulator's
``truth/oracle.json`` for the demo and the run record — and arranges it into sections for a clinical
reader, each with a short plain-language caption. Tables are only selected, renamed and reshaped here;
every number was computed upstream.

Any file of the analysis folder that no section uses is still shown, under "Other analyses", so nothing
computed is silently dropped (per-patient listings named in :data:`LISTINGS` stay in the folder).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from raoutcome.reporting.html import (Figure, Gallery, KeyNumbers, Preformatted, Section, Table, Text,
                                      format_number, write_report)
from raoutcome import outcomes
from raoutcome.analysis import outputs as files
from raoutcome.analysis.truth import ORACLE_FILE, flatten, read_truth
from raoutcome.reporting.labels import head_label, label, label_list, years

#: Per-patient listings the analysis writes: too long for the report, linked by name instead.
LISTINGS = {files.CHANGE_SCORES_CSV}

INTROS: dict[str, tuple[str, str]] = {
    "accuracy": (
        "How accurate is the model? (per outcome, next to the best achievable)",
        "Each outcome the model predicts from the radiographs alone is compared with what was recorded at the "
        "same visit. Every prediction comes from a model that never saw that patient during training "
        "(cross-fitting), so these are honest out-of-sample numbers. Ranges are 95 % confidence intervals from "
        "resampling patients.",
    ),
    "never_seen": (
        "On patients no model saw: the cohort's out-of-fold patients and an independent test cohort",
        "The accuracy above is judged on the study cohort's own patients, each predicted by the fold model that "
        "did not train on them. Here the trained models also predict a second, independently simulated cohort "
        "(same settings, another seed) that played no part in training or in any choice of settings: the fold "
        "models are averaged for it. Both groups are patients no model saw; pooled, they give the steadiest "
        "figure. A fold that did not learn shows as a row of its own. 'Best achievable' is the simulator's "
        "ceiling for the same patients.",
    ),
    "dream": (
        "RA2-DREAM weighted error of the Sharp score",
        "The RA2-DREAM challenge scored automatic Sharp–van der Heijde (SvdH) readers with an error on the log "
        "scale, log(score + 1), weighted so that patients with more damage count more: a reader cannot do well "
        "by calling every radiograph 'no damage'. Lower is better. For orientation, the challenge winners "
        "reached 0.44 (total score) on real radiographs, and the baseline model 4.65.",
    ),
    "observed": (
        "Deformity as it is observed: intervals, competing death, risk now, calibration",
        "A deformity is found at a visit, so it is only known to have happened since the previous one; RA "
        "patients also die earlier than their peers, and a death before deformity is not a censoring. The "
        "models below are chosen by what the events table records, and say so. Landmark models predict a "
        "patient's risk from the history up to now only; calibration asks whether predicted risks match "
        "what happened.",
    ),
    "survival": (
        "Time to deformity by image-risk group (Kaplan–Meier)",
        "Patients are split into three equal groups by the model's image-based risk score at their first "
        "visit, and the proportion still free of deformity is followed over time. Curves that separate mean "
        "the first radiographs already carry prognostic information; the log-rank test asks whether the "
        "separation could be chance.",
    ),
    "beyond": (
        "Does the image add information beyond the Sharp score — and beyond joint damage?",
        "Two questions are asked, and each table says which. First: does the image add to the Sharp score as "
        "the reader scored it? Second, the biomarker question: does it carry something other than joint damage, "
        "once the reader's scoring error is corrected? For each, two Cox models of time to deformity are compared: one with the SvdH score and the usual covariates, "
        "and the same model plus the image risk score. The likelihood-ratio test (LRT) asks whether adding "
        "the image improves the fit more than chance would (beyond damage, the robust score test asks the same "
        "without trusting the model's own variance, which the reader-error correction makes optimistic); the change in C-index (ΔC) says how much better "
        "patients are ranked by risk (0.5 = coin toss, 1 = perfect). A small p-value and a ΔC interval above "
        "zero mean the radiograph knows something the Sharp score does not. The same question is asked for "
        "HAQ and pain (mixed-model LRT, partial R²).",
    ),
    "longitudinal": (
        "Disability and pain over time (mixed models)",
        "Linear mixed models follow each patient's HAQ and pain over the visits, giving every patient their "
        "own starting level and slope. The coefficients say how much HAQ or pain changes per standard "
        "deviation of the SvdH score and of the image score, each adjusted for time and for the other.",
    ),
    "endpoints": (
        "Trial endpoints: which change score detects progression best?",
        "A good trial endpoint changes a lot relative to its spread between patients. The standardized "
        "response mean (SRM = mean change / SD of change) measures that; the smallest detectable change (SDC) "
        "is the change that exceeds measurement error (it needs repeat readings). The sample size is the "
        "number of patients per arm needed to detect a treatment that halves progression with 80 % power. "
        "The power curves come from simulated two-arm trials: a higher curve means fewer patients are needed.",
    ),
    "anomaly": (
        "A damage measure without any human score (joint anomaly)",
        "For every joint the cohort's landmarks locate, a patch around it is compared with the same joint in "
        "other patients' radiographs: how much of its shape a typical joint cannot explain. Brightness and "
        "contrast are removed first, so bone density does not count. Every patient is scored by a reference "
        "fitted without them. An image's score gathers the joints the Sharp score reads for erosions, with the "
        "most unusual weighing most (a soft maximum). "
        "No score of any kind was used. If it agrees with the Sharp score, it sees "
        "damage; if its first-visit value ranks time to deformity, it carries prognosis.",
    ),
    "attribution": (
        "Where the model looks (attribution)",
        "Attribution asks which pixels changed each prediction most (integrated gradients). The heat maps are "
        "overlaid on the radiograph, one panel per outcome. The region tables sum the attribution over "
        "anatomical regions: the joint sites the Sharp score reads ('svdh site') and the areas it ignores "
        "(periarticular bone next to the finger joints, soft tissue, carpus, bone shafts). A relative density "
        "above 1 means the model looks at that region more than its share of the image.",
    ),
}



def _head_name(head: str) -> str:
    """A head's registered label, capitalised (table rows)."""
    name = head_label(head)
    return name[0].upper() + name[1:]


METRIC_NAMES = {
    "rmse": "RMSE", "mae": "mean absolute error", "bias": "bias (predicted − recorded)", "r2": "R²",
    "pearson_r": "Pearson r",
    "spearman_rho": "Spearman ρ", "dream_weighted_rmse": "RA2-DREAM weighted RMSE",
    "dream_weighted_mae": "RA2-DREAM weighted MAE", "harrell_c": "Harrell C-index", "uno_c": "Uno C-index",
    "mean_auc": "mean time-dependent AUC", "auroc_at_horizon": "AUROC at the horizon",
}
TEST_NAMES = {
    "cox_lrt": "Cox likelihood-ratio test (χ²)", "cox_robust_score": "Cox robust score test (Lin–Wei, χ²)",
    "cox_score": "Cox score test (χ²)", "cox_wald": "Cox Wald test (χ²)", "cox_robust_wald": "Cox robust Wald test (χ²)",
    "delta_c": "ΔC-index, out-of-fold (Harrell)",
    "continuous_nri": "continuous net reclassification improvement", "mixed_lrt": "mixed-model LRT (χ², ML fits)",
    "partial_r2_f": "partial R² (F-test, last visit per patient)",
}
REGION_NAMES = {"svdh_site": "SvdH sites", "periarticular": "periarticular bone", "soft_tissue": "soft tissue",
                "carpus": "carpus", "shaft": "bone shafts", "background": "background"}


# --------------------------------------------------------------------------------------------- helpers
def _read_json(path: Path | None) -> Any:
    if path is None:
        return None
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def _ci(est, lo, hi, digits: int = 3) -> str:
    """'0.812 (0.760 to 0.851)', or the estimate alone without an interval."""
    if est is None or (isinstance(est, float) and np.isnan(est)):
        return "–"
    if lo is None or hi is None or (isinstance(lo, float) and np.isnan(lo)) or (isinstance(hi, float) and np.isnan(hi)):
        return format_number(float(est), digits)
    return f"{format_number(float(est), digits)} ({format_number(float(lo), digits)} to {format_number(float(hi), digits)})"


def _metric_name(metric: str) -> str:
    if metric.startswith("auc_t"):
        try:
            return f"AUC at {years(float(metric[5:]))}"
        except ValueError:
            return metric.replace("_", " ")
    return METRIC_NAMES.get(metric, metric.replace("_", " "))


def _relative(path: Path, start: Path) -> str:
    """``path`` as the reader of a report in ``start`` finds it: relative, with '/' separators."""
    try:
        rel = os.path.relpath(Path(path).resolve(), Path(start).resolve())
    except ValueError:  # another drive (Windows): nothing relative to say
        return Path(path).name
    return Path(rel).as_posix()


def _p(p) -> str:
    if p is None or (isinstance(p, float) and np.isnan(p)):
        return "–"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


class _Folder:
    """The analysis folder: tables and figures by name, remembering which ones the report used."""

    def __init__(self, folder: Path | None):
        self.folder = folder if folder is not None and folder.is_dir() else None
        self.used: set[str] = set()
        summary = _read_json(self.folder / files.SUMMARY_JSON) if self.folder else None
        self.summary: dict = summary if isinstance(summary, dict) else {}
        self.describe: dict = dict(self.summary.get("files", {}))

    def csv(self, name: str) -> pd.DataFrame | None:
        if self.folder is None or not (self.folder / name).is_file():
            return None
        self.used.add(name)
        try:
            return pd.read_csv(self.folder / name)
        except Exception:  # noqa: BLE001 - an unreadable table is skipped, not fatal
            return None

    def png(self, name: str) -> Path | None:
        if self.folder is None or not (self.folder / name).is_file():
            return None
        self.used.add(name)
        return self.folder / name

    def leftovers(self) -> list[Path]:
        if self.folder is None:
            return []
        return sorted(p for p in self.folder.iterdir() if p.is_file() and p.suffix in (".csv", ".png")
                      and p.name not in self.used and p.name not in LISTINGS and not p.name.startswith("."))


def _section(key: str, blocks: list, missing: str = "The analysis produced no results for this section.") -> Section:
    title, intro = INTROS[key]
    return Section(key, title, intro, blocks, missing=None if blocks else missing)


# --------------------------------------------------------------------------------------------- the report
def build_report(ctx, *, settings, demo: bool, record: Mapping[str, Any], target: Path) -> Path:
    """Write ``target`` (HTML) from the outputs of the stages that ran before ``report``."""
    up = ctx.upstream_outputs

    def path_of(stage: str, key: str) -> Path | None:
        value = up.get(stage, {}).get(key)
        return ctx.out_dir / value if isinstance(value, str) and value else None

    cohort_dir = path_of("validate", "cohort")
    analysis = _Folder(path_of("analyze", "analysis"))
    accuracy = path_of("analyze", "accuracy")
    accuracy = pd.read_csv(accuracy) if accuracy is not None and accuracy.exists() else None
    truth = read_truth(cohort_dir, visits=False) if (demo and cohort_dir) else None
    oracle = truth.oracle if truth is not None and truth.oracle else None
    cross_fitted = bool(up.get("predict", {}).get("cross_fitted", False))

    never_seen = path_of("test", "never_seen")
    never_seen = pd.read_csv(never_seen) if never_seen is not None and never_seen.exists() else None
    sections = [
        _intro_section(demo, accuracy, analysis, cross_fitted, never_seen),
        _cohort_section(path_of("validate", "table"), path_of("validate", "overview"), path_of("validate", "summary")),
        _examples_section(path_of("validate", "examples"), up.get("validate", {}).get("example_patient"),
                          settings, demo),
        _accuracy_section(analysis, accuracy, demo),
    ]
    if never_seen is not None:
        sections.append(_never_seen_section(never_seen))
    sections += [
        _dream_section(analysis),
        _survival_section(analysis),
        _observed_section(analysis),
        _beyond_section(analysis),
        _longitudinal_section(analysis),
        _endpoints_section(analysis),
        _anomaly_section(path_of("anomaly", "summary"), path_of("anomaly", "figure"), path_of("anomaly", "scores"),
                         up.get("anomaly", {}).get("skipped")),
        _attribution_section(path_of("attribute", "attribution"), settings, ctx.stage_dir, Path(target).parent),
    ]
    other = _other_section(analysis)
    if other is not None:
        sections.append(other)
    if oracle:
        sections.append(_truth_section(oracle, _relative(truth.folder / ORACLE_FILE, Path(target).parent)))
    sections.append(_methods_section(record, up, analysis))
    subtitle = [
        ("Synthetic demonstration cohort with known ground truth — no real patients." if demo
         else f"Cohort: {cohort_dir}"),
        ("Every number below comes from out-of-fold predictions (cross-fitting)." if cross_fitted else
         "Warning: predictions are NOT cross-fitted; accuracy figures are optimistic."),
    ]
    study_dir = _relative(ctx.out_dir, Path(target).parent)
    where = "the folder of this report" if study_dir == "." else study_dir
    return write_report(target, settings.title, sections, subtitle=subtitle,
                        footer=f"raoutcome {record.get('packages', {}).get('raoutcome', '')} · study folder: {where}")


def _intro_section(demo: bool, accuracy: pd.DataFrame | None, analysis: _Folder, cross_fitted: bool,
                   never_seen: pd.DataFrame | None = None) -> Section:
    text = (
        "This report follows one study from start to end: patients with hand radiographs taken at several "
        "visits; a neural network that reads the radiographs and predicts the Sharp–van der Heijde (SvdH) damage "
        "score, disability (HAQ), pain and the risk of joint deformity; and the statistics that test whether the "
        "images tell us more than the Sharp score alone. Each section starts with what to look for.")
    if demo:
        text += ("\n\nThe patients are simulated. The simulator knows the truth — including features the Sharp "
                 "score ignores (bone loss next to the joints, soft-tissue swelling, carpal collapse) — so results "
                 "can be checked against the best achievable value.")
    items: list[tuple[str, str, str]] = []
    if accuracy is not None:
        headline = [(o.name, "Pearson r", f"{o.short_label}: Pearson r") if o.kind == "count" else
                    (o.name, "Harrell C-index", f"{outcomes.DEFAULT_EVENT.capitalize()}: C-index")
                    if o.kind == "time_to_event" else (o.name, "R²", f"{_head_name(o.name)}: R²")
                    for o in outcomes.outcomes()]
        for head, metric, label in headline:
            row = accuracy[(accuracy["head"] == head) & (accuracy["metric"] == metric)]
            if len(row):
                r = row.iloc[0]
                best = (f"best achievable {format_number(float(r['best_achievable']))}"
                        if demo and pd.notna(r.get("best_achievable")) else "out-of-fold")
                items.append((label, format_number(float(r["estimate"])), best))
    pooled = never_seen[never_seen["patients"] == "all never seen"] if never_seen is not None else None
    if pooled is not None and len(pooled):
        r = pooled.iloc[0]
        for o in outcomes.outcomes():
            if f"{o.name}_pearson_r" in r:
                items.append((f"Never seen: {o.short_label} r", format_number(float(r[f"{o.name}_pearson_r"])),
                              f"{int(r['n_patients'])} never-seen patients"))
        first = next((o for o in outcomes.outcomes() if f"{o.name}_r2" in r), None)
        if first is not None:
            items.append((f"Never seen: {_head_name(first.name)} R²", format_number(float(r[f"{first.name}_r2"])),
                          f"best achievable {format_number(float(r[f'{first.name}_r2_noise_free']))}"))
        items.append((f"Never seen: {outcomes.DEFAULT_EVENT} C", format_number(float(r["c_index"])),
                      f"best achievable {format_number(float(r['c_index_oracle']))}"))
    inc = analysis.csv(files.INCREMENTAL_CSV)
    if inc is not None and len(inc):
        words = inc["question"].astype(str) if "question" in inc else pd.Series("", index=inc.index)
        damage = inc[words.str.startswith("Does the image carry")]
        row = damage[damage["test"].astype(str).str.startswith("cox_")]
        if len(row):
            items.append(("Image beyond damage: Cox p", _p(float(row.iloc[0]["p_value"])),
                          f"{TEST_NAMES.get(row.iloc[0]['test'], row.iloc[0]['test'])}, reader error corrected"))
        inc = inc[~words.str.startswith("Does the image carry")]
        for test, label in (("cox_lrt", "Image beyond SvdH: LRT p"), ("delta_c", "ΔC-index (image added)")):
            row = inc[inc["test"] == test]
            if len(row):
                r = row.iloc[0]
                if test == "cox_lrt":
                    items.append((label, _p(float(r["p_value"])), "Cox model of deformity"))
                else:
                    items.append((label, format_number(float(r["estimate"])),
                                  f"95 % CI {format_number(float(r['ci_lower']))} to {format_number(float(r['ci_upper']))}"))
    blocks: list = [KeyNumbers(items)] if items else []
    if not cross_fitted:
        blocks.append(Text("The predictions used below were made by models that had seen the same patients in "
                           "training; treat accuracy and incremental-value results as optimistic.", "warning"))
    return Section("overview", "What this report shows", text, blocks)


def _cohort_section(table: Path | None, overview: Path | None, summary: Path | None) -> Section:
    blocks: list = []
    if table is not None and table.exists():
        blocks.append(Table(pd.read_csv(table), caption="Who is in the cohort."))
    if overview is not None and overview.exists():
        blocks.append(Figure(overview, caption=(
            "Left: SvdH damage score over time, one thin line per patient (the scale is stretched near zero), the "
            "dashed line the median; the red line is the example patient of the next section. Middle: HAQ "
            "disability over time. Right: how long patients were followed.")))
    return Section("cohort", "The cohort", "Every table, column, value and image file was checked before any work "
                   "started (`raoutcome validate`; its full summary is in validate/summary.txt).", blocks,
                   missing=None if blocks else "No cohort summary was produced.")


def _examples_section(examples: Path | None, patient: str | None, settings, demo: bool) -> Section:
    intro = ("What progression looks like: the radiographs of the patient whose SvdH score rose fastest, at the "
             "first and at the last visit. Look at the finger joints (MCP, PIP) and the wrist: joint spaces narrow "
             "and the bone surface develops erosions.")
    if demo:
        intro += " In the simulated cohort the bone next to the joints may also thin (periarticular osteopenia)."
    if examples is None or not examples.exists():
        return Section("examples", "Example radiographs across visits", intro,
                       missing="No patient had scored first and last visits with all example views.")
    views = " and ".join(v.replace("_", " ") for v in settings.example_views)
    return Section("examples", "Example radiographs across visits", intro, [
        Figure(examples, caption=f"Patient {patient}: first visit (top) and last visit (bottom), {views}.",
               width="820px")])


def _accuracy_section(analysis: _Folder, accuracy: pd.DataFrame | None, demo: bool) -> Section:
    blocks: list = []
    if accuracy is not None and len(accuracy):
        shown = pd.DataFrame({
            "outcome": accuracy["outcome"], "metric": accuracy["metric"],
            "estimate (95 % CI)": [_ci(e, lo, hi) for e, lo, hi in
                                   zip(accuracy["estimate"], accuracy["ci_low"], accuracy["ci_high"])],
        })
        if demo:
            shown["best achievable"] = accuracy["best_achievable"].astype(float)
        shown["n"] = accuracy["n"]
        blocks.append(Table(shown, caption=(
            "Headline accuracy per outcome (n = visits; patients for deformity). "
            + ("'Best achievable' comes from the simulator: for HAQ and pain the R² of the noise-free value, for "
               "the Sharp scores the correlation of the true score with the reader's noisy score, for deformity the "
               "C-index of the true hazard. " if demo else "")
            + "R² is 1 − SSE/SST of the predictions as they are (no refitting; it can be negative).")))
    event = outcomes.DEFAULT_EVENT
    figs = [Figure(p, caption=f"{_head_name(o.name)}: predicted vs recorded, one dot per visit; the diagonal "
                              "is perfect agreement." if o.per_visit else
                   f"{_head_name(o.name)} at the first visit vs time to {event} or censoring.", width="480px")
            for o in outcomes.outcomes() if (p := analysis.png(files.scatter(o.name))) is not None]
    if figs:
        blocks.append(Gallery(figs))
    for h in [p.name for o in outcomes.outcomes() for p in o.parts]:
        analysis.png(files.scatter(h))  # subscores: in the table below, figures stay in the folder
    metrics = analysis.csv(files.METRICS_CSV)
    if metrics is not None and len(metrics):
        cells = metrics.assign(
            cell=[_ci(e, lo, hi) for e, lo, hi in zip(metrics["estimate"], metrics["ci_low"], metrics["ci_high"])],
            outcome=metrics["head"].map(_head_name))
        timed = cells["head"].isin([o.name for o in outcomes.outcomes() if not o.per_visit])
        plain = cells[~timed & ~cells["metric"].astype(str).str.startswith("dream")]
        for rows, caption in ((plain, "Every accuracy metric per outcome, estimate (95 % CI) (metrics.csv). RMSE, MAE "
                                      "and bias are in the outcome's own units; the RA2-DREAM scores follow below."),
                              (cells[timed], f"Discrimination of the {event} risk score at the "
                               "first visit: C-indices and time-dependent AUCs (metrics.csv).")):
            if len(rows):
                wide = rows.pivot_table(index="outcome", columns="metric", values="cell", aggfunc="first", sort=False)
                wide = wide[[m for m in dict.fromkeys(rows["metric"]) if m in wide.columns]]
                wide.columns = [_metric_name(m) for m in wide.columns]
                blocks.append(Table(wide.reset_index(), caption=caption))
    return _section("accuracy", blocks, "The analysis produced no accuracy results.")


def _never_seen_section(table: pd.DataFrame) -> Section:
    """The never-seen accuracy table of the demo's ``test`` stage
    (:func:`raoutcome.workflows.never_seen.never_seen_table`; its columns follow the outcome registry)."""
    names = {"all never seen": "all never seen (pooled)", "train": "study cohort, out of fold",
             "test": "independent test cohort"}
    shown = pd.DataFrame({"patients": [names.get(p, p.replace("train, fold", "study cohort, fold"))
                                       for p in table["patients"]],
                          "n patients": table["n_patients"], "events": table["n_events"]})
    for o in outcomes.outcomes():
        if f"{o.name}_pearson_r" in table:
            shown[f"{_head_name(o.name)} r"] = table[f"{o.name}_pearson_r"].astype(float)
        if f"{o.name}_r2" in table:
            shown[f"{_head_name(o.name)} R²"] = table[f"{o.name}_r2"].astype(float)
            shown[f"{_head_name(o.name)} R² best achievable"] = table[f"{o.name}_r2_noise_free"].astype(float)
    event = outcomes.DEFAULT_EVENT
    shown[f"{event} C"] = table["c_index"].astype(float)
    shown["C best achievable"] = table["c_index_oracle"].astype(float)
    shown["C of the true damage"] = table["c_index_true_damage"].astype(float)
    return _section("never_seen", [Table(shown, caption=(
        "r: Pearson r of the predicted with the recorded score (visits). R²: 1 − SSE/SST of the predicted against "
        f"the recorded value. C: Harrell's C of the first-visit risk for time to {event}. 'C of the true damage' "
        "ranks patients by their true baseline Sharp score: a model above it sees more than the damage the Sharp "
        "score counts."))])


def _dream_section(analysis: _Folder) -> Section:
    metrics = analysis.csv(files.METRICS_CSV)
    blocks: list = []
    if metrics is not None:
        rows = metrics[metrics["metric"].astype(str).str.startswith("dream")]
        if len(rows):
            blocks.append(Table(pd.DataFrame({
                "score": rows["head"].map(lambda h: _head_name(h)),
                "metric": rows["metric"].map(_metric_name),
                "estimate (95 % CI)": [_ci(e, lo, hi) for e, lo, hi in
                                       zip(rows["estimate"], rows["ci_low"], rows["ci_high"])],
                "visits": rows["n"]}), caption="The paper's formula √(Σ wᵢ (log(yᵢ+1) − log(ŷᵢ+1))² / Σ wᵢ) with "
                                               "weights 2^threshold by bin of the true score; the MAE variant uses "
                                               "absolute instead of squared errors."))
    return _section("dream", blocks, "No SvdH head, or no recorded SvdH scores: nothing to score.")


def _survival_section(analysis: _Folder) -> Section:
    blocks: list = []
    km = analysis.png(files.KM_TERTILES_PNG)
    if km is not None:
        blocks.append(Figure(km, caption="Share of patients free of deformity over time, by tertile of the image risk "
                                         "score at the first visit (shaded: 95 % confidence bands); numbers at risk "
                                         "below.", width="760px"))
    groups = analysis.csv(files.KM_GROUPS_CSV)
    if groups is not None and len(groups):
        shown = pd.DataFrame({"image-risk group": groups["group"], "patients": groups["n"],
                              "deformity events": groups["events"],
                              "risk score range": [f"{format_number(a)} to {format_number(b)}"
                                                   for a, b in zip(groups["score_min"], groups["score_max"])],
                              "median time to deformity (years)": groups["median_survival"].map(
                                  lambda v: "not reached" if not np.isfinite(v) else format_number(float(v), 2))})
        p = float(groups["logrank_p"].iloc[0]) if "logrank_p" in groups else np.nan
        blocks.append(Table(shown, caption=f"Groups of the Kaplan–Meier plot. Log-rank test across the three groups: "
                                           f"p = {_p(p)}."))
    return _section("survival", blocks, "No deformity events or no risk head: no survival analysis.")


def _observed_section(analysis: _Folder) -> Section:
    """Models chosen by how events were observed, dynamic prediction and calibration (issue #26)."""
    blocks: list = []
    used = analysis.summary.get("survival_models_used", {})
    if used.get("statement"):
        blocks.append(Text(used["statement"]))
    for name, caption in (
            ("calibration.png", "Calibration of the survival models at each horizon (cross-validated predicted "
                                "probability of deformity against the smoothed observed probability; dashed: perfect)."),
            ("cif_groups.png", "Cumulative incidence of deformity by image-risk tertile with death as a competing "
                               "event (Aalen–Johansen; shaded: 95 % CI)."),
            ("cif_calibration.png", "Calibration of the cross-validated Fine–Gray cumulative incidence of deformity "
                                    "(death competing) at each horizon: smoothed observed curve with ICI, and "
                                    "Aalen–Johansen per risk group with 95 % CI; dashed: perfect.")):
        fig = analysis.png(name)
        if fig is not None:
            blocks.append(Figure(fig, caption=caption, width="900px"))
    captions = {
        "calibration.csv": "Calibration at each horizon: ICI (mean absolute predicted-minus-observed), E50, E90; "
                           "D-calibration χ² and p (a small p: predicted survival curves not calibrated).",
        "landmark_lookahead.csv": "Look-ahead check: every visit after each landmark was changed (scores redrawn, "
                                  "times moved, a visit added); the largest change of any landmark prediction "
                                  "must be 0.",
        "landmark_auc.csv": "Dynamic prediction from the history up to each landmark: cross-validated AUC for "
                            "deformity within the window after it (landmark Cox, time-varying Cox).",
        "interval_hazard_ratios.csv": "Interval-censored Weibull models (events known between two visits): hazard "
                                      "ratios per SD for scores.",
        "interval_beyond_sharp.csv": "Image score beyond SvdH + covariates on interval-censored events "
                                     "(likelihood-ratio χ², 1 df).",
        "interval_c_index.csv": "C-index for interval-censored events.",
        "competing_hazard_ratios.csv": "Death as a competing event: cause-specific Cox and Fine–Gray "
                                       "(subdistribution) hazard ratios.",
        "competing_discrimination.csv": "Discrimination with death competing: Wolbers' C and cause-specific AUC(t).",
        "cif_calibration.csv": "Calibration of the cross-validated Fine–Gray cumulative incidence of deformity "
                               "(death competing): ICI, E50, E90, mean predicted and Aalen–Johansen observed.",
    }
    for name, caption in captions.items():
        table = analysis.csv(name)
        if table is not None and len(table):
            blocks.append(Table(table.round(4), caption=caption))
    analysis.csv("cif_groups.csv")  # the curves of the figure: in the folder
    analysis.csv("cif_calibration_groups.csv")
    analysis.csv("landmark_models.csv")
    return _section("observed", blocks, "No survival analysis of how events were observed.")


def _beyond_section(analysis: _Folder) -> Section:
    blocks: list = []
    hr = analysis.csv(files.COX_HAZARD_RATIOS_CSV)
    if hr is not None and len(hr) and "model" in hr:
        models = list(dict.fromkeys(hr["model"]))
        names = list(dict.fromkeys(hr["covariate"]))
        image_first = [c for c in names if c.startswith("pred_")] + [c for c in names if not c.startswith("pred_")]
        wide = pd.DataFrame({"covariate": image_first})
        for model in models:
            sub = hr[hr["model"] == model].set_index("covariate")
            wide[f"{model}: HR (95 % CI)"] = [
                _ci(sub.at[c, "hr"], sub.at[c, "hr_lower"], sub.at[c, "hr_upper"], 2) if c in sub.index else ""
                for c in wide["covariate"]]
            wide[f"{model}: p"] = [_p(float(sub.at[c, "p"])) if c in sub.index else "" for c in wide["covariate"]]
        per = hr.drop_duplicates("covariate").set_index("covariate")["per"] if "per" in hr else None
        if per is not None:
            wide.insert(1, "per", wide["covariate"].map(per).fillna(""))
        wide["covariate"] = wide["covariate"].map(label)
        counts = hr.drop_duplicates("model")[["model", "n", "events"]] if {"n", "events"} <= set(hr) else None
        note = ("" if counts is None else " " + "; ".join(f"{m}: {int(n)} patients, {int(e)} events"
                                                        for m, n, e in counts.itertuples(index=False)) + ".")
        blocks.append(Table(wide, caption="Cox models of time to deformity, without and with the image risk score. "
                                          "Hazard ratios per standard deviation (SD) for scores, per unit for "
                                          "covariates." + note))
    blocks.extend(_incremental_tables(analysis.csv(files.INCREMENTAL_CSV)))
    analysis.png(files.COX_FOREST_PNG)  # the same hazard ratios as a forest plot: in the folder
    models = analysis.csv(files.SURVIVAL_MODELS_CSV)
    if models is not None and len(models):
        blocks.append(Table(models.rename(columns={"c_index_cv": "C-index (cross-validated)"}),
                            caption="Cross-validated C-index of survival models with and without image information "
                                    "(CoxNet uses principal components of the image embeddings)."))
    tv = analysis.csv(files.COX_TIME_VARYING_CSV)
    if tv is not None and len(tv):
        blocks.append(Table(pd.DataFrame({"covariate": tv["covariate"].map(label), "per": tv.get("per", ""),
                                          "HR (95 % CI)": [_ci(h, lo, hi, 2) for h, lo, hi in
                                                           zip(tv["hr"], tv["hr_lower"], tv["hr_upper"])],
                                          "p": tv["p"].map(lambda v: _p(float(v)))}),
                            caption="Time-varying Cox model: scores updated at every visit."))
    ph = analysis.csv(files.COX_PH_TEST_CSV)
    if ph is not None and len(ph):
        blocks.append(Table(pd.DataFrame({"covariate": ph["covariate"].map(label), "statistic": ph["statistic"],
                                          "p": ph["p"].map(lambda v: _p(float(v)))}),
                            caption="Proportional-hazards check (Schoenfeld residuals vs rank of time): a small p "
                                    "flags a hazard ratio that changes over time."))
    return _section("beyond", blocks, "No incremental-value analysis could run (no events or no image score).")


#: The two questions of incremental.csv in a clinician's words (column ``question`` names the first word).
QUESTION_WORDS = {
    "Does the image add to the human Sharp reading?": (
        "Question 1 — does the radiograph add to the Sharp score as the reader scored it? A yes can simply mean "
        "that the model reads joint damage more precisely than a human reader does (useful for trials, but not "
        "a new biomarker)."),
    "Does the image carry something other than joint damage?": (
        "Question 2 — does the radiograph carry something other than joint damage? Here the damage score is "
        "first corrected for the reader's scoring error (from the second reading of the same radiographs, or a "
        "published reliability), so a yes means the image sees something the damage itself does not explain: "
        "the biomarker question."),
}
SHARP_ONLY_WARNING = (
    "Only question 1 could be answered for this cohort. A small p-value there may mean no more than that the "
    "image reads joint damage more precisely than the human reader; it does not show that the image sees "
    "anything other than damage.")


def _incremental_tables(inc: pd.DataFrame | None) -> list:
    """One table per question of ``incremental.csv``, each captioned with its question in plain words."""
    if inc is None or not len(inc):
        return []
    if "question" not in inc:
        inc = inc.assign(question=next(iter(QUESTION_WORDS)))
    blocks: list = []
    for question, rows in inc.groupby("question", sort=False):
        shown = pd.DataFrame({
            "test": rows["test"].map(lambda t: TEST_NAMES.get(t, t)), "outcome": rows["outcome"].map(label),
            "image score added": rows["added"].map(label),
            "estimate (95 % CI)": [_ci(e, lo, hi) for e, lo, hi in zip(rows["estimate"], rows.get("ci_lower"),
                                                                       rows.get("ci_upper"))],
            "p-value": rows["p_value"].map(lambda v: _p(float(v)) if pd.notna(v) else "–"),
            "n": rows["n"],
        })
        words = next((w for q, w in QUESTION_WORDS.items() if str(question).startswith(q)), str(question))
        base = str(rows["base"].iloc[0]) if "base" in rows else ""
        source = ""
        if "reliability_source" in rows and rows["reliability_source"].notna().any():
            source = f" Reader error from: {rows['reliability_source'].dropna().iloc[0]}."
        blocks.append(Table(shown, caption=f"{words} Adjusted for: {label_list(base)}.{source} χ² for the LRTs and score tests; ΔC and NRI "
                                           "with bootstrap intervals; partial R² is the share of the remaining "
                                           "variance the image explains."))
        if source and not rows["reliability_source"].dropna().iloc[0].startswith("retest"):
            from raoutcome.analysis.incremental import PUBLISHED_CAVEAT  # corrected without a second reading
            blocks.append(Text(PUBLISHED_CAVEAT, "warning"))
    if not any(str(q).startswith("Does the image carry") for q in inc["question"]):
        blocks.append(Text(SHARP_ONLY_WARNING, "warning"))
    return blocks


def _longitudinal_section(analysis: _Folder) -> Section:
    blocks: list = []
    fig = analysis.png(files.MIXED_COEFFICIENTS_PNG)
    if fig is not None:
        blocks.append(Figure(fig, caption="Mixed-model coefficients with 95 % confidence intervals (per SD of each "
                                          "score).", width="100%"))
    mixed = analysis.csv(files.MIXED_MODELS_CSV)
    if mixed is not None and len(mixed):
        rows = mixed[mixed["term"] != "Intercept"]
        if "predictors" in rows and "model" in rows:  # the joint model; the time, SvdH and image terms
            joint = rows[rows["predictors"] == rows["predictors"].iloc[-1]]
            damage = outcomes.damage_outcome()
            rows = joint[joint["term"].isin(["time_years", damage.column if damage else ""])
                         | joint["term"].str.startswith("pred_")]
        blocks.append(Table(pd.DataFrame({
            "outcome": rows["outcome"].map(label), "model": rows.get("predictors", ""), "term": rows["term"].map(label),
            "estimate (95 % CI)": [_ci(e, lo, hi) for e, lo, hi in zip(rows["estimate"], rows["ci_lower"],
                                                                       rows["ci_upper"])],
            "p": rows["p"].map(lambda v: _p(float(v))), "visits": rows.get("n_obs", ""),
            "patients": rows.get("n_patients", "")}), caption="Linear mixed models (random intercept and time slope "
                                                             "per patient) with SvdH and the image score together; "
                                                             "the terms for time, SvdH and the image score (per SD; "
                                                             "covariates and the models with one score each are in "
                                                             "mixed_models.csv)."))
    for name in (files.GEE_MODELS_CSV, files.MIXED_RANDOM_EFFECTS_CSV):
        analysis.csv(name)  # population-average (GEE) and variance components: in the folder
    return _section("longitudinal", blocks, "No HAQ or pain recorded: no longitudinal models.")


def _endpoints_section(analysis: _Folder) -> Section:
    blocks: list = []
    ep = analysis.csv(files.ENDPOINTS_CSV)
    if ep is not None and len(ep):
        cols = {"endpoint": "endpoint", "n": "patients", "mean_change": "mean change", "sd_change": "SD of change",
                "srm": "SRM", "sdc": "SDC", "pct_progressors_sdc": "% progressors (> SDC)",
                "pct_change_gt0": "% with any increase", "n_per_arm": "patients per arm (50 % effect)",
                "relative_efficiency": "relative efficiency"}
        blocks.append(Table(ep[[c for c in cols if c in ep]].rename(columns=cols), caption=(
            "Change from the first to the last visit per endpoint. Relative efficiency = (SRM / SRM of the first "
            "endpoint)²: how many patients on the first endpoint one patient on this endpoint is worth. The SDC "
            "needs repeat readings of the same radiographs (a retest.csv beside the cohort); without them it is "
            "left empty."), digits=2))
    # One figure per row: the cumulative-probability panels (one per endpoint) need the page's width to be
    # readable; squeezed into a gallery cell their labels shrank to a few pixels.
    for p, c, width in (
        (analysis.png(files.CUMULATIVE_PROBABILITY_PNG), "Cumulative probability plot: every patient's change, sorted; "
                                                     "the share above zero (or above the SDC) are the progressors.",
         "100%"),
        (analysis.png(files.POWER_CURVES_PNG), "Simulated two-arm trials: power by treatment effect (the fraction of "
                                           "progression prevented), one line per endpoint; dashed: 80 % power.",
         "800px"),
    ):
        if p is not None:
            blocks.append(Figure(p, caption=c, width=width))
    analysis.csv(files.POWER_CSV)  # the numbers behind the power curves: in the folder
    return _section("endpoints", blocks, "Too few patients with two visits: no endpoint analysis.")


ANOMALY_REFERENCES = {"true_damage": "true damage (simulator)",
                      "osteopenia": "bone density loss (simulator)", "carpal_collapse": "carpal collapse (simulator)",
                      "swelling": "soft-tissue swelling (simulator)"}


def _anomaly_section(summary: Path | None, figure: Path | None, scores: Path | None,
                     skipped: str | None = None) -> Section:
    data = _read_json(summary)
    if not data:
        why = f" ({skipped})" if skipped else ""
        return _section("anomaly", [], f"No joint anomaly score was computed{why}. It needs a landmarks table "
                                       "(landmarks.csv) locating the joints in enough images.")
    blocks: list = []
    rows = [{"compared with": ANOMALY_REFERENCES.get(k) or (f"log(1 + {head_label(k[4:])}), recorded"
                                                           if k.startswith("log_") else k), "Pearson r": round(v["r"], 3), "visits": v["n"]}
            for k, v in data.get("pearson_r", {}).items()]
    if rows:
        blocks.append(Table(pd.DataFrame(rows), caption="Agreement of the visit's joint anomaly score (mean over "
                                                        "its views) with the Sharp score and, on a simulated "
                                                        "cohort, with the truth."))
    surv = data.get("survival") or {}
    if surv:
        blocks.append(Text(f"The first-visit score ranks time to {surv['event']} with Harrell's C "
                           f"{surv['c_index_first_visit']:.3f} ({surv['n_patients']} patients, {surv['n_events']} "
                           f"events; 0.5 = coin toss)."))
    if figure is not None and figure.exists():
        blocks.append(Figure(figure, caption="Each dot is a visit; held-out joint anomaly score against the "
                                             "recorded Sharp score."))
    if scores is not None and scores.exists():
        blocks.append(Text(f"Visit scores: anomaly/{scores.name} (patient_id, visit_id, anomaly).", "note"))
    return _section("anomaly", blocks, "The joint anomaly stage produced no results.")


def _attribution_section(folder: Path | None, settings, report_dir: Path, report_root: Path | None = None
                         ) -> Section:
    """``report_dir``: where the section's own figure is written; ``report_root``: the report's folder (paths shown
    to the reader are relative to it)."""
    if not settings.attribution:
        return _section("attribution", [], "Attribution was switched off in the study config.")
    if folder is None or not folder.is_dir():
        return _section("attribution", [], "The attribution stage produced no output.")
    blocks: list = []
    meta = _read_json(folder / "attribution.json") or {}
    if meta.get("route") == "sites":  # a site-route run: the joint atlas
        from raoutcome.reporting.site_section import site_attribution_blocks

        return _section("attribution", site_attribution_blocks(folder), "The joint atlas holds no figures or tables.")
    summary = pd.read_csv(folder / "summary.csv") if (folder / "summary.csv").exists() else None
    if summary is not None and len(summary):
        peri = summary[summary["region"] == "periarticular"].dropna(subset=["ratio_to_svdh_site"])
        if len(peri):
            from raoutcome.reporting.attribution_figures import density_ratio_figure
            from raoutcome.reporting.cohort_figures import save_figure

            table = pd.DataFrame({"label": peri["head"].map(lambda h: f"{_head_name(h)} head"),
                                  "ratio": peri["ratio_to_svdh_site"], "ci_low": peri["ci_low"],
                                  "ci_high": peri["ci_high"]})
            fig = save_figure(density_ratio_figure(table, "Periarticular bone vs SvdH sites, per outcome head"),
                              report_dir / "attribution_density_ratio.png")
            blocks.append(Figure(fig, caption=(
                "Attribution density in the periarticular bone relative to the SvdH joint sites, per outcome head, "
                "with 95 % patient-bootstrap intervals. Right of 1: the head looks at the bone next to the joints "
                "more than at the sites the Sharp score reads."), width="640px"))
        dens = summary.pivot_table(index="region", columns="head", values="relative_density", sort=False)
        dens.index = [REGION_NAMES.get(r, r) for r in dens.index]
        dens.columns = [_head_name(h) for h in dens.columns]
        blocks.append(Table(dens.reset_index().rename(columns={"index": "region"}), digits=2, caption=(
            "Relative attribution density (share of attribution / share of image area) per region and head.")))
        outside = summary.drop_duplicates("head")[["head", "mass_outside_svdh", "area_outside_svdh"]]
        blocks.append(Table(pd.DataFrame({
            "head": outside["head"].map(lambda h: _head_name(h)),
            "attribution outside SvdH sites": outside["mass_outside_svdh"].map(lambda v: f"{v:.0%}"),
            "image area outside SvdH sites": outside["area_outside_svdh"].map(lambda v: f"{v:.0%}")}),
            caption="How much of each head's attribution falls outside the joint sites the Sharp score reads."))
    overlays = sorted((folder / "overlays").glob("*.png")) if (folder / "overlays").is_dir() else []
    for p in overlays[:3]:
        blocks.append(Figure(p, caption="Left: the radiograph as the model sees it, SvdH sites outlined; then one heat "
                                        "map per outcome head (brighter = more influence on that prediction).",
                             width="100%"))
    if len(overlays) > 3:
        more = len(overlays) - 3
        where = _relative(folder / "overlays", report_root if report_root is not None else report_dir)
        blocks.append(Text(f"{more} more overlay{'s are' if more > 1 else ' is'} in {where} (next to this report).",
                           "note"))
    if meta:
        blocks.append(Text(f"Method: {meta.get('method', '?').replace('_', ' ')}; {meta.get('n_images', '?')} "
                           f"radiographs; regions from {', '.join(f'{k} ({v})' for k, v in (meta.get('region_sources') or {}).items())}; "
                           "each patient attributed by the cross-fitting model that never saw them.", "note"))
    return _section("attribution", blocks, "The attribution folder holds no figures or tables.")


def _other_section(analysis: _Folder) -> Section | None:
    blocks: list = []
    for path in analysis.leftovers():
        what = analysis.describe.get(path.name, path.stem.replace("_", " "))
        if path.suffix == ".png":
            blocks.append(Figure(path, caption=f"{what} ({path.name})."))
        else:
            try:
                blocks.append(Table(pd.read_csv(path), caption=f"{what} ({path.name})."))
            except Exception:  # noqa: BLE001
                continue
    if not blocks:
        return None
    return Section("other", "Other analyses", "Further tables and figures written by the analysis stage, shown as "
                   "they are.", blocks)


TRUTH_COLUMNS = {
    "c_index_oracle": "best C-index (true hazard)", "r2_noise_free": "best R² (noise-free value)",
    "r2_svdh": "R² explained by true SvdH", "r2_svdh_plus_nonsharp": "… plus non-Sharp features",
    "incremental_r2_nonsharp": "share added by non-Sharp features", "event_rate": "event rate", "n_events": "events",
    "n": "visits",
}


def _truth_section(oracle: Mapping[str, Any], source: str = "truth/oracle.json") -> Section:
    per_outcome = {k: v for k, v in oracle.items() if isinstance(v, Mapping)}
    rows = []
    for outcome, values in per_outcome.items():
        row = {"outcome": label(outcome)}
        row.update({label: values[key] for key, label in TRUTH_COLUMNS.items() if key in values})
        rows.append(row)
    frame = pd.DataFrame(rows)
    frame = frame[["outcome", *[c for c in TRUTH_COLUMNS.values() if c in frame]]]
    counts = [f"{oracle[k]} {what}" for k, what in (("n_patients", "patients"), ("n_visits", "visits")) if k in oracle]
    if "null" in oracle:
        counts.append("null mode: the non-Sharp features have no effect" if oracle["null"] else
                      "the non-Sharp features have their planted effects")
    scalars = "; ".join(counts)
    return Section("truth", "Ground truth of the simulation", (
        "The simulator's own numbers: the best possible C-index (ranking patients by the true hazard), the R² of the "
        "noise-free HAQ and pain against the recorded values, and how much of each outcome's variance the true SvdH "
        "explains alone and together with the features the Sharp score ignores (osteopenia, swelling, carpal "
        "collapse). For deformity the variance shares refer to the true log-hazard."),
        [Table(frame, caption=f"From {source} ({scalars}). The file also gives the same variance shares "
                              "for the noise-free HAQ and pain (without measurement noise).")])


def _methods_section(record: Mapping[str, Any], up, analysis: _Folder) -> Section:
    blocks: list = []
    stages = record.get("stages", [])
    if stages:
        frame = pd.DataFrame([{"stage": s["name"], "status": s["status"], "wall seconds": s["seconds"],
                               "CPU seconds": s.get("cpu_seconds", np.nan)} for s in stages])
        blocks.append(Table(frame, digits=1, caption="Stage timings. A 'skipped' stage was finished by an earlier run "
                                                     "(its original time is shown). CPU seconds add up all cores."))
    run = up.get("train", {}).get("run")
    if run and record.get("out_dir"):  # did every model learn? (stalls and restarts, from the run's metrics.json)
        from raoutcome.reporting.learning_section import learning_blocks

        blocks += learning_blocks(Path(record["out_dir"]) / run)
    hw = record.get("hardware", {})
    pk = record.get("packages", {})
    lines = [f"{k}: {v}" for k, v in hw.items() if k != "python_executable"]
    lines += ["", "packages: " + ", ".join(f"{k} {v}" for k, v in pk.items())]
    if record.get("seeds"):
        lines += ["seeds: " + ", ".join(f"{k} = {v}" for k, v in record["seeds"].items())]
    blocks.append(Preformatted("\n".join(lines), caption="Hardware, package versions and seeds (full record, with the "
                                                         "resolved configuration: run_record.json)."))
    notes = analysis.summary.get("notes") or []
    if notes:
        blocks.append(Preformatted("\n".join(f"- {n}" for n in notes),
                                   caption="Notes from the analysis (analyses skipped or warned about, with the reason)."))
    pred = up.get("predict", {})
    text = (f"Predictions are out-of-fold from {pred.get('n_folds')}-fold patient-grouped cross-fitting: each "
            "patient was scored by the model trained without them." if pred.get("cross_fitted") else
            "Predictions were not cross-fitted.")
    refitted = _readout_heads(record, up)
    if refitted:
        text += (f" After training, each model refitted its {', '.join(refitted)} head(s) in closed form on its own "
                 "training patients (HAQ and pain: ridge regression on the frozen visit features; risk: a Cox model "
                 "on the first visit's outputs); penalties and coefficients are in each model's done.json.")
    return Section("methods", "Methods and reproducibility", text, blocks)


def _readout_heads(record: Mapping[str, Any], up) -> list[str]:
    """Heads refitted as closed-form readouts by any model of the run (from its ``done.json`` files)."""
    import json
    from pathlib import Path

    run = up.get("train", {}).get("run")
    if not run or not record.get("out_dir"):
        return []
    heads: set[str] = set()
    for done in sorted((Path(record["out_dir"]) / run).glob("fold_*/done.json")):
        try:
            readouts = json.loads(done.read_text()).get("readouts") or {}
        except (OSError, ValueError):
            continue
        heads |= {h for h, r in readouts.items() if "kept_trained_head" not in r}
    order = {h: i for i, h in enumerate(outcomes.readout_outcomes())}
    return sorted(heads, key=lambda h: order.get(h, len(order)))


__all__ = ["build_report", "flatten", "LISTINGS"]
