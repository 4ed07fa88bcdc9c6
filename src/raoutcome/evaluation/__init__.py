"""Metrics, bootstrap confidence intervals and the bootstrap Bayes-factor comparison.

No model fitting and no torch here: every function takes arrays (one row per
visit or per patient) or a Predictions dataset (see :mod:`.align`).

- :mod:`.regression` RMSE, MAE, bias, Pearson / Spearman
- :mod:`.agreement` ICC (six forms), Bland–Altman, weighted kappa
- :mod:`.dream` the RA2-DREAM weighted RMSE and its absolute-error variant
- :mod:`.classification` accuracy / sensitivity / specificity / PPV / NPV / AUROC at a horizon; severity classes
- :mod:`.survival_metrics` Harrell / Uno C, time-dependent AUC, Brier / IBS, calibration at a horizon
- :mod:`.bootstrap` patient-level bootstrap CIs, Bayes factor of two prediction sets
- :mod:`.ensembles` averaged prediction sets and the top-k ensemble curve
- :mod:`.reports` ``regression_report`` / ``survival_report`` tables with CIs
"""
from raoutcome.evaluation.agreement import (BlandAltman, ICCResult, bland_altman, icc, icc_table, ratings_table,
                                            weighted_kappa)
from raoutcome.evaluation.align import event_pairs, visit_pairs
from raoutcome.evaluation.bootstrap import (BayesFactor, BootstrapResult, bayes_factor, bootstrap_ci,
                                            bootstrap_metrics, with_batched)
from raoutcome.evaluation.classification import (BinaryMetrics, SeverityMetrics, binary_metrics, horizon_labels,
                                                 horizon_metrics, severity_class, severity_metrics)
from raoutcome.evaluation.dream import dream_bin, dream_weighted_mae, dream_weighted_rmse, dream_weights
from raoutcome.evaluation.ensembles import average_predictions, ensemble_curve
from raoutcome.evaluation.regression import (Correlation, bias, mae, pearson, pearson_r, r2, rmse, spearman,
                                             spearman_rho)
from raoutcome.evaluation.reports import regression_report, survival_report
from raoutcome.evaluation.survival_metrics import (Calibration, Concordance, TimeDependentAUC, brier_scores,
                                                   calibration_at_horizon, concordance, harrell_c,
                                                   integrated_brier, mean_time_dependent_auc, survival_at,
                                                   time_dependent_auc, uno_c)

__all__ = [
    "BayesFactor", "BinaryMetrics", "BlandAltman", "BootstrapResult", "Calibration", "Concordance", "Correlation",
    "ICCResult", "SeverityMetrics", "TimeDependentAUC", "average_predictions", "bayes_factor",
    "bias", "binary_metrics", "bland_altman", "bootstrap_ci", "bootstrap_metrics", "brier_scores",
    "calibration_at_horizon", "concordance", "dream_bin", "dream_weighted_mae", "dream_weighted_rmse",
    "dream_weights", "ensemble_curve", "event_pairs", "harrell_c", "horizon_labels", "horizon_metrics", "icc",
    "icc_table", "integrated_brier", "mae", "mean_time_dependent_auc", "pearson", "pearson_r", "r2", "ratings_table",
    "regression_report", "rmse", "severity_class", "severity_metrics", "spearman", "spearman_rho",
    "survival_at", "survival_report", "time_dependent_auc", "uno_c", "visit_pairs", "weighted_kappa",
    "with_batched",
]
