"""Lay out a finished study (the stage folders of :mod:`raoutcome.workflows.study`) as one HTML report.

Reads what the stages wrote — cohort summary and figures, the analysis folder (CSV tables, PNG figures,
``summary.json``), the attribution folder (overlays, region table), the simulator's
``truth/oracle.json`` for the demo, ``run_record.json`` — and arranges it into sections for a clinical
reader, each with a short plain-language caption. No statistics are computed here.

Files are matched to sections by name (see :data:`SECTION_RULES`); anything the analysis wrote that no
rule claims still appears, under "Other analyses", so nothing computed is silently dropped.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

import pandas as pd

from raoutcome.reporting.html import (Figure, KeyNumbers, Preformatted, Section, Table, Text, format_number,
                                      write_report)

# ----------------------------------------------------------------------------------- file -> section rules
# (section id, regex on the file stem). First match wins, in this order.
SECTION_RULES: list[tuple[str, str]] = [
    ("dream", r"dream"),
    ("accuracy", r"metric|accuracy|scatter|pred.*obs|obs.*pred|calibration|regression_report|head"),
    ("survival", r"km|kaplan|logrank|log_rank|tertile|survival|cindex|c_index|td_auc|brier|hazard_ratio|forest"),
    ("beyond", r"incremental|beyond|lrt|delta_c|nri|partial_r2|cox"),
    ("longitudinal", r"mixed|gee|longitudinal|lmm"),
    ("endpoints", r"endpoint|srm|sdc|power|progressor|cumulative|sample_size|change"),
]

SECTIONS: dict[str, tuple[str, str]] = {
    "accuracy": (
        "How accurate is the model? (per outcome, with the best achievable)",
        "Each outcome the model predicts from the radiographs alone is compared with what was actually "
        "recorded at the same visit. Every prediction shown here comes from a model that never saw that "
        "patient during training (cross-fitting), so these are honest out-of-sample numbers. Ranges in "
        "brackets are 95 % confidence intervals from resampling patients. For the synthetic demo, the "
        "column 'best achievable' is the ceiling set by the simulator's own noise: no model can beat it.",
    ),
    "dream": (
        "RA2-DREAM weighted error of the Sharp score",
        "The RA2-DREAM challenge scored automatic Sharp–van der Heijde (SvdH) readers with a weighted error on "
        "the log scale that gives more weight to patients with more damage, so that a reader cannot do well by "
        "predicting 'no damage' for everyone. Lower is better; the challenge winners reached about 0.44 "
        "(overall score) on real radiographs.",
    ),
    "survival": (
        "Time to deformity by image-risk group (Kaplan–Meier)",
        "Patients are split into three equal groups by the model's image-based risk score, and the "
        "proportion still free of deformity is followed over time. Curves that separate widely mean the "
        "radiographs carry prognostic information; the log-rank test asks whether the separation could be "
        "chance.",
    ),
    "beyond": (
        "Does the image add information beyond the Sharp score?",
        "Two models of the same outcome are compared: one using the SvdH score (plus covariates) only, and "
        "one that also uses the image score. The likelihood-ratio test (LRT) asks whether adding the image "
        "improves the fit more than chance would; the change in C-index (ΔC) says how much better patients "
        "are ranked by risk (0.5 = coin toss, 1 = perfect). A small p-value and a ΔC interval above zero "
        "mean the radiograph knows something the Sharp score does not.",
    ),
    "longitudinal": (
        "Function and pain over time (mixed models)",
        "Linear mixed models follow each patient's HAQ and pain over the visits, allowing every patient their "
        "own starting level and slope. The table shows how much HAQ or pain changes per unit of the SvdH "
        "score and of the image score, each adjusted for the other.",
    ),
    "endpoints": (
        "Trial endpoints: which change score detects progression best?",
        "For a trial, an endpoint should change a lot relative to its noise. The standardized response mean "
        "(SRM = mean change / SD of change) measures that; the smallest detectable change (SDC) is the "
        "change that exceeds measurement error. The power curves show, for simulated two-arm trials, how "
        "often each endpoint detects a treatment that slows progression by a given fraction — a higher "
        "curve means fewer patients are needed.",
    ),
}

CAPTION_HINTS: list[tuple[str, str]] = [
    (r"km|kaplan", "Kaplan–Meier curves: the share of patients still free of deformity over time, by tertile of "
                   "the image risk score (low / middle / high). Shaded bands are 95 % confidence intervals."),
    (r"forest|hazard_ratio", "Hazard ratios with 95 % confidence intervals: values right of 1 mean a higher risk "
                             "of deformity per unit (or per SD) of that variable."),
    (r"scatter|pred.*obs|obs.*pred", "Predicted (from the radiographs alone) versus recorded value, one dot per "
                                     "visit; the diagonal marks perfect agreement."),
    (r"power", "Simulated power of a two-arm trial by effect size (the fraction by which treatment slows "
               "progression), one line per endpoint. The dashed line marks 80 % power."),
    (r"cumulative|progressor", "Cumulative probability plot: each patient's change score, sorted. The share of "
                               "patients above the smallest detectable change are the 'progressors'."),
    (r"calibration", "Calibration: predicted versus observed risk; points on the diagonal mean the predicted "
                     "risks can be taken at face value."),
    (r"mixed|gee|longitudinal", "Coefficients of the longitudinal models with 95 % confidence intervals."),
    (r"overlay|attribution", "Where the model looks: the heat map shows which pixels moved each outcome's "
                             "prediction most (integrated gradients), over the radiograph."),
]


def _caption_for(stem: str) -> str:
    s = stem.lower()
    for pattern, caption in CAPTION_HINTS:
        if re.search(pattern, s):
            return caption
    return ""


def _classify(stem: str) -> str:
    s = stem.lower()
    for section, pattern in SECTION_RULES:
        if re.search(pattern, s):
            return section
    return "other"


def _read_csv(path: Path) -> pd.DataFrame | None:
    try:
        return pd.read_csv(path)
    except Exception:  # noqa: BLE001 - an unreadable table is reported, not fatal
        return None


def _read_json(path: Path) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def _pretty(stem: str) -> str:
    return stem.replace("_", " ").strip().capitalize()


@dataclass
class _Files:
    tables: dict[str, list[Path]]
    figures: dict[str, list[Path]]


def _collect(folder: Path | None) -> _Files:
    tables: dict[str, list[Path]] = {}
    figures: dict[str, list[Path]] = {}
    if folder is None or not folder.is_dir():
        return _Files(tables, figures)
    for path in sorted(folder.rglob("*")):
        if path.name.startswith(".") or not path.is_file():
            continue
        if path.suffix.lower() == ".csv":
            tables.setdefault(_classify(path.stem), []).append(path)
        elif path.suffix.lower() == ".png":
            figures.setdefault(_classify(path.stem), []).append(path)
    return _Files(tables, figures)


def _file_blocks(section: str, files: _Files, skip: Iterable[Path] = ()) -> list:
    skip = {Path(p).resolve() for p in skip}
    blocks: list = []
    for path in files.figures.get(section, []):
        if path.resolve() not in skip:
            blocks.append(Figure(path, caption=_caption_for(path.stem) or _pretty(path.stem), alt=_pretty(path.stem)))
    for path in files.tables.get(section, []):
        if path.resolve() in skip:
            continue
        frame = _read_csv(path)
        if frame is not None and len(frame.columns):
            blocks.append(Table(frame, caption=f"{_pretty(path.stem)} ({path.name})"))
    return blocks


def flatten(mapping: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in mapping.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping):
            out.update(flatten(value, name))
        else:
            out[name] = value
    return out


# --------------------------------------------------------------------------------------------- the report
def build_report(ctx, *, settings, demo: bool, record: Mapping[str, Any], target: Path) -> Path:
    """Write ``target`` (HTML) from the outputs of the stages that ran before ``report``."""
    up = ctx.upstream_outputs

    def path_of(stage: str, key: str) -> Path | None:
        value = up.get(stage, {}).get(key)
        return ctx.out_dir / value if isinstance(value, str) and value else None

    cohort_dir = Path(up["validate"]["cohort"]) if "validate" in up else None
    analysis_dir = path_of("analyze", "analysis")
    attribution_dir = path_of("attribute", "attribution")
    summary = _read_json(analysis_dir / "summary.json") if analysis_dir else None
    oracle = _read_json(cohort_dir / "truth" / "oracle.json") if (demo and cohort_dir) else None
    files = _collect(analysis_dir)
    cross_fitted = bool(up.get("predict", {}).get("cross_fitted", False))

    sections: list[Section] = [_intro_section(settings, demo, summary, oracle, cross_fitted, up)]
    sections.append(_cohort_section(path_of("validate", "table"), path_of("validate", "overview"),
                                    path_of("validate", "summary"), demo))
    sections.append(_examples_section(path_of("validate", "examples"), up.get("validate", {}).get("example_patient"),
                                      settings, demo))
    sections.append(_accuracy_section(files, path_of("analyze", "accuracy"), demo))
    for key in ("dream", "survival", "beyond", "longitudinal", "endpoints"):
        title, intro = SECTIONS[key]
        blocks = _file_blocks(key, files)
        sections.append(Section(key, title, intro, blocks,
                                missing=None if blocks else "The analysis produced no results for this section."))
    sections.append(_attribution_section(attribution_dir, settings))
    other = _file_blocks("other", files)
    if other:
        sections.append(Section("other", "Other analyses", "Further tables and figures written by the analysis "
                                "stage, shown as they are.", other))
    if oracle:
        sections.append(_truth_section(oracle))
    sections.append(_methods_section(record, up, settings, demo))
    subtitle = [
        ("Synthetic demonstration cohort with known ground truth — no real patients."
         if demo else f"Cohort: {cohort_dir}"),
        "Every number below comes from out-of-fold predictions (cross-fitting)." if cross_fitted else
        "Warning: predictions are NOT cross-fitted; accuracy figures are optimistic.",
    ]
    return write_report(target, settings.title, sections, subtitle=subtitle,
                        footer=f"raoutcome {record.get('packages', {}).get('raoutcome', '')} · study folder "
                               f"{ctx.out_dir.resolve()}")


def _intro_section(settings, demo, summary, oracle, cross_fitted, up) -> Section:
    text = (
        "This report follows one study from start to end: a cohort of patients with hand radiographs taken at "
        "several visits; a neural network that reads the radiographs and predicts the Sharp–van der Heijde "
        "(SvdH) damage score, disability (HAQ), pain and the risk of joint deformity; and the statistics that "
        "test whether the images tell us more than the Sharp score alone."
    )
    if demo:
        text += ("\n\nThe patients here are simulated. The simulator knows the truth — including features the "
                 "Sharp score ignores, such as bone loss next to the joints, soft-tissue swelling and carpal "
                 "collapse — so every result can be checked against the best achievable value.")
    blocks: list = []
    items = _headline_numbers(summary)
    if items:
        blocks.append(KeyNumbers(items))
    if not cross_fitted:
        blocks.append(Text("The predictions used below were made by models that had seen the same patients in "
                           "training; treat accuracy and incremental-value results as optimistic.", "warning"))
    return Section("overview", "What this report shows", text, blocks)


def _headline_numbers(summary: Any) -> list[tuple[str, str, str]]:
    """Up to six headline numbers from analysis/summary.json (whatever it holds, flattened)."""
    if not isinstance(summary, Mapping):
        return []
    flat = flatten(summary)
    wanted = [
        (r"svdh.*pearson|pearson.*svdh", "SvdH: Pearson r", "predicted vs recorded"),
        (r"haq.*r2|r2.*haq", "HAQ: R²", "from the images"),
        (r"c_index|cindex", "Deformity: C-index", "image risk"),
        (r"lrt.*p|p.*lrt", "Beyond Sharp: LRT p", "image added to SvdH"),
        (r"delta_c|dc_index", "ΔC-index", "SvdH + image vs SvdH"),
        (r"dream", "RA2-DREAM wRMSE", "lower is better"),
    ]
    out = []
    for pattern, label, detail in wanted:
        for key, value in flat.items():
            if re.search(pattern, key.lower()) and isinstance(value, (int, float)) and not isinstance(value, bool):
                out.append((label, format_number(float(value), 3), detail))
                break
    return out


def _cohort_section(table: Path | None, overview: Path | None, summary: Path | None, demo: bool) -> Section:
    blocks: list = []
    if table is not None and table.exists():
        blocks.append(Table(pd.read_csv(table), caption="Who is in the cohort."))
    if overview is not None and overview.exists():
        blocks.append(Figure(overview, caption=(
            "Left: SvdH damage score over time, one thin line per patient (log-like scale), the dashed line the "
            "median; the red line is the example patient shown in the next section. Middle: HAQ disability over "
            "time. Right: how long patients were followed.")))
    if summary is not None and summary.exists():
        blocks.append(Preformatted(summary.read_text(), caption="Validation summary (raoutcome validate)."))
    intro = ("The cohort passed validation: every table, column, value and image file was checked before any "
             "work started.")
    return Section("cohort", "The cohort", intro, blocks,
                   missing=None if blocks else "No cohort summary was produced.")


def _examples_section(examples: Path | None, patient: str | None, settings, demo: bool) -> Section:
    intro = ("What progression looks like: the radiographs of the patient whose SvdH score rose fastest, at the "
             "first and at the last visit. Look at the finger joints (MCP, PIP) and the wrist: joint spaces "
             "narrow and the bone surface develops erosions.")
    if demo:
        intro += " In the simulated cohort the bone next to the joints also becomes darker (osteopenia)."
    if examples is None or not examples.exists():
        return Section("examples", "Example radiographs across visits", intro,
                       missing="No patient had scored first and last visits with all example views.")
    return Section("examples", "Example radiographs across visits", intro, [
        Figure(examples, caption=f"Patient {patient}: first visit (top) and last visit (bottom), "
                                 f"{' and '.join(v.replace('_', ' ') for v in settings.example_views)}.",
               width="900px")])


def _accuracy_section(files: _Files, headline: Path | None, demo: bool) -> Section:
    title, intro = SECTIONS["accuracy"]
    blocks: list = []
    if headline is not None and headline.exists():
        frame = pd.read_csv(headline)
        shown = pd.DataFrame({
            "outcome": frame["outcome"], "metric": frame["metric"],
            "estimate (95 % CI)": [f"{format_number(e)} ({format_number(lo)} to {format_number(hi)})"
                                   if pd.notna(lo) else format_number(e)
                                   for e, lo, hi in zip(frame["estimate"], frame["ci_low"], frame["ci_high"])],
        })
        if demo:
            shown["best achievable"] = frame["best_achievable"].astype(float)
        shown["visits / patients"] = frame["n"]
        blocks.append(Table(shown, caption=(
            "Headline accuracy of each outcome head on out-of-fold predictions. "
            + ("'Best achievable' is set by the simulator's noise: for HAQ and pain the R² of the noise-free value, "
               "for the Sharp scores the correlation of the true score with the reader's noisy score, for deformity "
               "the C-index of the true hazard. " if demo else "")
            + "R² is 1 − SSE/SST of the predictions as they are (no refitting); the C-index is 0.5 for a coin toss.")))
    blocks.extend(_file_blocks("accuracy", files))
    return Section("accuracy", title, intro, blocks,
                   missing=None if blocks else "The analysis produced no accuracy table.")


def _attribution_section(folder: Path | None, settings) -> Section:
    title = "Where the model looks (attribution)"
    intro = ("Attribution asks which pixels changed each prediction most. The heat maps are overlaid on the "
             "radiograph, one panel per outcome. The region table sums the attribution over anatomical regions: "
             "the joint sites the Sharp score reads ('svdh_site') and the areas it ignores (bone next to the "
             "joints, soft tissue, carpus, shafts). A density above the region's share of the image means the "
             "model pays special attention there.")
    if not settings.attribution:
        return Section("attribution", title, intro, missing="Attribution was switched off in the study config.")
    if folder is None or not folder.is_dir():
        return Section("attribution", title, intro, missing="The attribution stage produced no output.")
    blocks: list = []
    pngs = sorted(p for p in folder.rglob("*.png") if not p.name.startswith("."))
    summary_figs = [p for p in pngs if not re.search(r"overlay", p.stem.lower())]
    overlays = [p for p in pngs if re.search(r"overlay", p.stem.lower())]
    for p in summary_figs[:4]:
        blocks.append(Figure(p, caption=_caption_for(p.stem) or _pretty(p.stem)))
    for p in overlays[:4]:
        blocks.append(Figure(p, caption=_caption_for("overlay") + f" ({p.stem})", width="1100px"))
    if len(overlays) > 4:
        blocks.append(Text(f"{len(overlays) - 4} more overlays are in {folder}.", "note"))
    for p in sorted(folder.rglob("*.csv")):
        frame = _read_csv(p)
        if frame is not None:
            blocks.append(Table(frame, caption=f"{_pretty(p.stem)} ({p.name}): attribution per anatomical region "
                                               "and outcome head."))
    return Section("attribution", title, intro, blocks,
                   missing=None if blocks else "The attribution folder holds no figures or tables.")


def _truth_section(oracle: Mapping[str, Any]) -> Section:
    flat = flatten(oracle)
    frame = pd.DataFrame({"quantity": list(flat), "value": list(flat.values())})
    return Section("truth", "Ground truth of the simulation", (
        "The simulator's own numbers: the best possible C-index (ranking patients by the true hazard), the R² of "
        "the noise-free HAQ and pain, and how much of each outcome's variance is explained by the true SvdH alone "
        "versus by the features the Sharp score ignores."), [Table(frame, caption="truth/oracle.json")])


def _methods_section(record: Mapping[str, Any], up, settings, demo: bool) -> Section:
    blocks: list = []
    stages = record.get("stages", [])
    if stages:
        frame = pd.DataFrame([{"stage": s["name"], "status": s["status"], "seconds": s["seconds"]} for s in stages])
        blocks.append(Table(frame, caption="Stage timings (a 'skipped' stage was finished by an earlier run; its "
                                           "original duration is shown)."))
    hw = record.get("hardware", {})
    pk = record.get("packages", {})
    lines = [f"{k}: {v}" for k, v in hw.items() if k != "python_executable"]
    lines += [f"{k} {v}" for k, v in pk.items()]
    if record.get("seeds"):
        lines += [f"seed {k} = {v}" for k, v in record["seeds"].items()]
    blocks.append(Preformatted("\n".join(lines), caption="Hardware, package versions and seeds "
                                                         "(full record: run_record.json)."))
    pred = up.get("predict", {})
    folds = pred.get("n_folds")
    text = (f"Predictions are out-of-fold from {folds}-fold patient-grouped cross-fitting: each patient was scored "
            "by the model trained without them." if pred.get("cross_fitted") else
            "Predictions were not cross-fitted.")
    return Section("methods", "Methods and reproducibility", text, blocks)


__all__ = ["build_report", "SECTION_RULES", "flatten"]
