"""Readable names for what the report and its figures show: column, head, covariate and model-term names.

The analysis tables keep their machine names (``svdh_total``, ``sex_m``, ``pred_risk``,
``time_years``); only what a reader sees goes through :func:`label`::

    label("svdh_total")              -> "SvdH total"
    label("pred_risk")               -> "image risk score"
    label("log1p_svdh_total")        -> "log(SvdH total + 1)"
    label("svdh_total:time_years")   -> "SvdH total × time (years)"
    label("smoker")                  -> "smoker"          (unknown names: underscores become spaces)
"""
from __future__ import annotations

#: Model heads (the Predictions variables) as a reader knows them.
HEAD_LABELS: dict[str, str] = {
    "svdh": "SvdH total", "jsn": "SvdH narrowing", "erosion": "SvdH erosion", "haq": "HAQ", "pain": "pain",
    "risk": "deformity risk",
}

#: Cohort columns, derived covariates and model terms.
LABELS: dict[str, str] = {
    "svdh_total": "SvdH total", "svdh_jsn": "SvdH narrowing", "svdh_erosion": "SvdH erosion",
    "haq": "HAQ", "pain": "pain", "das28": "DAS28", "msasss": "mSASSS",
    "time_years": "time (years)", "sex_m": "male sex", "age": "age (years)", "rf": "rheumatoid factor",
    "acpa": "ACPA", "disease_duration_years": "disease duration (years)", "deformity": "deformity",
    "Intercept": "intercept",
}

#: Heads whose image score reads "image <name> score" (risk stays lower case: "image risk score").
_SCORE_NAMES = {"svdh": "SvdH", "jsn": "SvdH narrowing", "erosion": "SvdH erosion", "haq": "HAQ", "pain": "pain",
                "risk": "risk"}


def label(name: object) -> str:
    """The reader's name for a column, head, covariate or model term (see the module docstring)."""
    text = str(name)
    if text in LABELS:
        return LABELS[text]
    if ":" in text:  # an interaction term
        return " × ".join(label(part) for part in text.split(":"))
    if text.startswith("pred_"):
        head = text[len("pred_"):]
        return f"image {_SCORE_NAMES.get(head, label(head))} score"
    if text.startswith("log1p_"):
        return f"log({label(text[len('log1p_'):])} + 1)"
    if text.startswith("spline(") and text.endswith(")"):  # a natural-spline adjustment
        return f"spline of {label(text[len('spline('):-1])}"
    if text.startswith("calibrated_"):  # corrected for reader error (beyond_damage)
        return f"{label(text[len('calibrated_'):])} corrected for reader error"
    if text in HEAD_LABELS:
        return HEAD_LABELS[text]
    return text.replace("_", " ")


def label_list(names: object, sep: str = ",") -> str:
    """A comma list of names (``"log1p_svdh_total,sex_m"``) as readable text."""
    return ", ".join(label(n.strip()) for n in str(names).split(sep) if n.strip())


def years(value: float) -> str:
    """A time in years for text: two significant digits ("1.5 years", "1 year", "0.93 years")."""
    v = float(value)
    text = f"{v:.2g}" if abs(v) < 10 else f"{round(v):d}"
    return f"{text} year" if text == "1" else f"{text} years"


__all__ = ["HEAD_LABELS", "LABELS", "label", "label_list", "years"]
