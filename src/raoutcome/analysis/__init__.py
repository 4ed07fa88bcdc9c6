"""Cohort statistics on image scores: survival, longitudinal, beyond-Sharp value, trial endpoints.

Everything reads plain pandas tables built from a Cohort and a Predictions
dataset (:func:`features.analysis_data`) and never imports torch.

- :mod:`.features` visit and patient tables, covariates, the cross-fitting check
- :mod:`.survival` Cox / CoxNet / random survival forest estimators, time-varying Cox, Kaplan–Meier + log-rank
- :mod:`.longitudinal` linear mixed models (random intercept + slope) and GEE
- :mod:`.incremental` value beyond SvdH: Cox and mixed-model LRTs, ΔC-index, continuous NRI, partial R²
- :mod:`.endpoints` change scores, SRM, SDC, progressors, sample size, simulated trial power
"""
from raoutcome.analysis.endpoints import (change_scores, endpoint_table, percent_progressors, retest_sdc,
                                          sample_size_per_arm, sdc, simulate_power, srm)
from raoutcome.analysis.features import (AnalysisData, NotCrossFittedWarning, analysis_data, check_cross_fitted,
                                         predictions_from_columns)
from raoutcome.analysis.incremental import (beyond_sharp, continuous_nri, cox_lrt, delta_c_index, mixed_lrt,
                                            partial_r2)
from raoutcome.analysis.longitudinal import GEEModel, MixedModel
from raoutcome.analysis.survival import (CoxModel, CoxNetModel, SurvivalForest, TimeVaryingCox, cross_val_risk,
                                         km_by_groups)

__all__ = [
    "AnalysisData", "CoxModel", "CoxNetModel", "GEEModel", "MixedModel", "NotCrossFittedWarning", "SurvivalForest",
    "TimeVaryingCox", "analysis_data", "beyond_sharp", "change_scores", "check_cross_fitted", "continuous_nri",
    "cox_lrt", "cross_val_risk", "delta_c_index", "endpoint_table", "km_by_groups", "mixed_lrt", "partial_r2",
    "percent_progressors", "predictions_from_columns", "retest_sdc", "sample_size_per_arm", "sdc", "simulate_power",
    "srm",
]
