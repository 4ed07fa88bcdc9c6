"""The file names ``raoutcome analyze`` writes, shared by the analysis and the report that reads them.

One constant per file, so renaming an output cannot silently empty a report section: both sides change
together. :func:`scatter` names the per-head accuracy figures.
"""
from __future__ import annotations

__all__ = ["METRICS_CSV", "COX_HAZARD_RATIOS_CSV", "COX_FOREST_PNG", "COX_PH_TEST_CSV", "KM_GROUPS_CSV", "KM_TERTILES_PNG", "COX_TIME_VARYING_CSV", "SURVIVAL_MODELS_CSV", "MIXED_MODELS_CSV", "MIXED_RANDOM_EFFECTS_CSV", "GEE_MODELS_CSV", "MIXED_COEFFICIENTS_PNG", "INCREMENTAL_CSV", "ENDPOINTS_CSV", "CHANGE_SCORES_CSV", "CUMULATIVE_PROBABILITY_PNG", "POWER_CSV", "POWER_CURVES_PNG", "SUMMARY_JSON", "RETEST_CSV", "READER_AGREEMENT_CSV", "scatter"]

METRICS_CSV = "metrics.csv"
COX_HAZARD_RATIOS_CSV = "cox_hazard_ratios.csv"
COX_FOREST_PNG = "cox_forest.png"
COX_PH_TEST_CSV = "cox_ph_test.csv"
KM_GROUPS_CSV = "km_groups.csv"
KM_TERTILES_PNG = "km_tertiles.png"
COX_TIME_VARYING_CSV = "cox_time_varying.csv"
SURVIVAL_MODELS_CSV = "survival_models.csv"
MIXED_MODELS_CSV = "mixed_models.csv"
MIXED_RANDOM_EFFECTS_CSV = "mixed_random_effects.csv"
GEE_MODELS_CSV = "gee_models.csv"
MIXED_COEFFICIENTS_PNG = "mixed_coefficients.png"
INCREMENTAL_CSV = "incremental.csv"
ENDPOINTS_CSV = "endpoints.csv"
CHANGE_SCORES_CSV = "change_scores.csv"
CUMULATIVE_PROBABILITY_PNG = "cumulative_probability.png"
POWER_CSV = "power.csv"
POWER_CURVES_PNG = "power_curves.png"
SUMMARY_JSON = "summary.json"
READER_AGREEMENT_CSV = "reader_agreement.csv"
#: an input, not an output: repeat readings beside the cohort tables (the retest SDC)
RETEST_CSV = "retest.csv"


def scatter(head: str) -> str:
    """The predicted-vs-recorded figure of one head."""
    return f"scatter_{head}.png"
