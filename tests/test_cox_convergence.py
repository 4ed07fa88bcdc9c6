"""Cox fits used by the likelihood-ratio tests must be at the maximum: lifelines reports a stalled
Newton-Raphson only by a warning, so ``_fit_with_smaller_steps`` retries with damped steps."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from lifelines.exceptions import ConvergenceWarning
from statsmodels.duration.hazard_regression import PHReg

from conftest import load_analysis
from raoutcome.analysis import incremental
from raoutcome.analysis.survival import CoxModel, _fit_with_smaller_steps
from raoutcome.errors import InputError


class _Stalls:
    """A fitter that stalls (warns, as lifelines does) unless given a step size of at most ``works_at``."""

    def __init__(self, works_at):
        self.works_at, self.steps = works_at, []

    def fit(self, frame, fit_options=None, **kwargs):
        step = (fit_options or {}).get("step_size")
        self.steps.append(step)
        if step is None or step > self.works_at:
            warnings.warn("Newton-Raphson failed to converge sufficiently. See ...", ConvergenceWarning, stacklevel=2)
        return self


def test_a_stalled_fit_is_retried_with_damped_steps_and_then_refused():
    fitter = _Stalls(works_at=0.5)
    assert _fit_with_smaller_steps(fitter, pd.DataFrame()) is fitter and fitter.steps == [None, 0.5]
    with pytest.raises(InputError, match="did not converge"):
        _fit_with_smaller_steps(_Stalls(works_at=0.0), pd.DataFrame())


def test_cox_lrt_likelihoods_are_maxima_where_lifelines_default_steps_stall(monkeypatch):
    """A harness cohort (seed 1) whose skewed damage terms stalled lifelines at -194 although the nested
    model with true damage alone reaches -183: every fit now matches statsmodels' PHReg (BFGS, Efron ties)."""
    fd = load_analysis("false_discovery")
    pop = fd.draw_population(200, np.random.SeedSequence([1, 7]))
    data, retest = fd.world_data(pop, "linear", "exact", planted=False)
    seen = {}
    original = incremental._run_tests

    def spy(data_, pts, visits, pts_base, *args, **kwargs):
        seen["pts"], seen["base"] = pts, pts_base
        return original(data_, pts, visits, pts_base, *args, **kwargs)

    monkeypatch.setattr(incremental, "_run_tests", spy)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = incremental.beyond_damage(data, "pred_risk", retest=retest, tests=("cox_lrt",), damage_basis="tensor",
                                           calibration_interactions=False)
    first = pop.groupby("patient_id", sort=False).head(1).set_index("patient_id")["true_total"]
    rows = seen["pts"].assign(true_total=lambda d: first.loc[d["patient_id"]].to_numpy())
    rows = rows.dropna(subset=[*seen["base"], "pred_risk", "duration", "observed"])
    for cols in (seen["base"], [*seen["base"], "pred_risk"], [*seen["base"], "true_total"]):
        ll = CoxModel(cols).fit(rows).log_likelihood_
        ref = PHReg(rows["duration"].to_numpy(float), rows[cols].to_numpy(float), status=rows["observed"].to_numpy(int),
                    ties="efron").fit(method="bfgs", maxiter=1000, disp=0).llf
        assert ll == pytest.approx(ref, abs=0.02)
    nested = CoxModel(["true_total", *data.covariates]).fit(rows).log_likelihood_
    assert CoxModel([*seen["base"], "true_total"]).fit(rows).log_likelihood_ >= nested - 1e-6
    assert table["ll_full"].iloc[0] >= table["ll_base"].iloc[0]
