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

from raoutcome import outcomes

#: Derived covariates and model terms (cohort columns and model heads come from the outcome registry).
LABELS: dict[str, str] = {
    "time_years": "time (years)", "sex_m": "male sex", "age": "age (years)", "rf": "rheumatoid factor",
    "acpa": "ACPA", "disease_duration_years": "disease duration (years)", "deformity": "deformity",
    "Intercept": "intercept",
}



def head_label(head: str) -> str:
    """A model head (Predictions variable) as a reader knows it (its registered label)."""
    return outcomes.label(head)


def _score_name(head: str) -> str:
    """How an image score reads: "image <name> score" with the outcome's short name."""
    return outcomes.outcome(head).short_label if head in outcomes.outcome_names() else label(head)


def label(name: object) -> str:
    """The reader's name for a column, head, covariate or model term (see the module docstring)."""
    text = str(name)
    if text in LABELS:
        return LABELS[text]
    if text in outcomes.visit_columns():
        return outcomes.column(text).label
    if ":" in text:  # an interaction term
        return " × ".join(label(part) for part in text.split(":"))
    if text.startswith("pred_"):
        head = text[len("pred_"):]
        return f"image {_score_name(head)} score"
    if text.startswith("log1p_"):
        return f"log({label(text[len('log1p_'):])} + 1)"
    if text.startswith("spline(") and text.endswith(")"):  # a natural-spline adjustment
        return f"spline of {label(text[len('spline('):-1])}"
    if text.startswith("calibrated_"):  # corrected for reader error (beyond_damage)
        return f"{label(text[len('calibrated_'):])} corrected for reader error"
    if text in outcomes.score_variables():
        return head_label(text)
    return text.replace("_", " ")


def label_list(names: object, sep: str = ",") -> str:
    """A comma list of names (``"log1p_svdh_total,sex_m"``) as readable text."""
    return ", ".join(label(n.strip()) for n in str(names).split(sep) if n.strip())


def years(value: float) -> str:
    """A time in years for text: two significant digits ("1.5 years", "1 year", "0.93 years")."""
    v = float(value)
    text = f"{v:.2g}" if abs(v) < 10 else f"{round(v):d}"
    return f"{text} year" if text == "1" else f"{text} years"


__all__ = ["LABELS", "head_label", "label", "label_list", "years"]
