"""Model-based imputation of visit-found event times (``raoutcome.analysis.interval_imputation``).

The data: a Weibull proportional-hazards event (shape 1.3, log HR 1.0 for x), a competing death
(exponential, independent), censoring at 8 years, visits every year; the event is seen at the first
visit after it, a death is recorded exactly, and an event between the last visit and death is never
seen (recorded as a death). The exact times are known, so each imputation can be checked against them.
"""
from __future__ import annotations

import numpy as np
import pytest

from raoutcome.analysis.fine_gray import fit_fine_gray, fit_fine_gray_imputed
from raoutcome.analysis.interval_imputation import fit_weibull_intervals, weibull_interval_imputer
from raoutcome.errors import InputError


def _visits(seed: int, n: int):
    rng = np.random.default_rng(seed)
    x = np.column_stack([rng.normal(size=n), rng.random(n) < 0.5]).astype(float)
    t1 = (rng.exponential(size=n) / np.exp(1.0 * x[:, 0] + 0.5 * x[:, 1])) ** (1 / 1.3) / 0.3
    death = rng.exponential(15.0, n)
    cens = np.minimum(rng.exponential(25.0, n), 8.0)
    last = np.floor(np.minimum.reduce([death, cens, t1])) * 1.0          # last visit without the event
    found = (t1 <= cens) & (np.ceil(t1) <= np.minimum(death, cens)) & (t1 < death)
    died = ~found & (death <= cens)
    status = np.where(found, 1, np.where(died, 2, 0))
    time = np.where(found, np.ceil(t1), np.where(died, death, last))
    lower = np.where(found, np.ceil(t1) - 1, last)
    upper = np.where(found, np.ceil(t1), np.nan)
    end = np.minimum(death, cens)
    ex_status = np.where(t1 <= end, 1, np.where(death <= cens, 2, 0))
    return x, time, status, lower, upper, np.minimum(t1, end), ex_status, t1


def test_weibull_interval_fit_equals_lifelines():
    """Same model, same estimates and covariance as lifelines' WeibullAFTFitter.fit_interval_censoring
    (intervals, right-censored rows and a few exact times)."""
    import pandas as pd
    from lifelines import WeibullAFTFitter

    x, t, s, lo, hi, *_ = _visits(6, 400)
    fit_lo = np.maximum(np.where(s == 1, lo, t), 1e-3)
    fit_hi = np.where(s == 1, hi, np.inf)
    fit_hi[:5] = fit_lo[:5] = np.where(s[:5] == 1, hi[:5], fit_lo[:5])   # exact times
    fit_hi[:5] = np.where(s[:5] == 1, fit_hi[:5], np.inf)
    theta, cov = fit_weibull_intervals(x, fit_lo, fit_hi)
    frame = pd.DataFrame(x, columns=["a", "b"]).assign(L=fit_lo, U=fit_hi, E=(fit_lo == fit_hi).astype(int))
    ref = WeibullAFTFitter().fit_interval_censoring(frame, "L", "U", event_col="E")
    keys = [("lambda_", "a"), ("lambda_", "b"), ("lambda_", "Intercept"), ("rho_", "Intercept")]
    np.testing.assert_allclose(theta, ref.params_.loc[keys].to_numpy(), atol=1e-4)
    np.testing.assert_allclose(cov, ref.variance_matrix_.loc[keys, keys].to_numpy(), rtol=1e-3, atol=1e-7)
    with pytest.raises(InputError, match="lower <= upper"):
        fit_weibull_intervals(x, fit_lo - 1, fit_hi)


def test_draws_stay_in_their_intervals_follow_the_risk_and_are_reproducible():
    x, t, s, lo, hi, _, _, t1 = _visits(1, 1500)
    draw = weibull_interval_imputer(t, s, x, lo, hi, seed=4, reclassify=False)
    tt, ss = draw()
    assert np.array_equal(ss, s) and np.array_equal(tt[s != 1], t[s != 1])
    ev = s == 1
    assert np.all((tt[ev] > lo[ev]) & (tt[ev] <= hi[ev]))
    # where in its year the event falls: high-risk patients earlier than low-risk ones, as in the truth
    pos, true_pos = tt - lo, t1 - lo
    high, low = ev & (x[:, 0] > 1), ev & (x[:, 0] < -0.5)
    assert pos[high].mean() < pos[low].mean() - 0.05
    assert pos[high].mean() == pytest.approx(true_pos[high].mean(), abs=0.04)
    assert pos[low].mean() == pytest.approx(true_pos[low].mean(), abs=0.04)
    again = weibull_interval_imputer(t, s, x, lo, hi, seed=4, reclassify=False)
    np.testing.assert_array_equal(again()[0], tt)
    assert not np.array_equal(draw()[0], tt)


def test_deaths_after_the_last_visit_hide_about_as_many_events_as_the_truth():
    x, t, s, lo, hi, _, _, t1 = _visits(2, 1500)
    hidden_true = ((s == 2) & (t1 < t)).sum()
    draw = weibull_interval_imputer(t, s, x, lo, hi, seed=5)
    counts = []
    for _ in range(20):
        tt, ss = draw()
        moved = (s == 2) & (ss == 1)
        assert np.all((tt[moved] > lo[moved]) & (tt[moved] <= t[moved]))
        counts.append(moved.sum())
    assert hidden_true > 5
    assert abs(np.mean(counts) - hidden_true) < 3 * np.sqrt(hidden_true)


def test_fine_gray_on_weibull_imputed_times_recovers_the_exact_fit_where_uniform_draws_attenuate():
    # margins: on seeds 1-5 exact - uniform was 0.08-0.14 and |weibull - exact| <= 0.03 (docs/survival.md)
    x, t, s, lo, hi, ex_t, ex_s, _ = _visits(3, 3000)
    exact = fit_fine_gray(ex_t, ex_s, x).coef[0]
    uniform = fit_fine_gray_imputed(t, s, x, np.where(s == 1, lo, np.nan), hi, seed=1, imputer="uniform").coef[0]
    weibull = fit_fine_gray_imputed(t, s, x, lo, hi, seed=1, imputer="weibull")
    assert exact - uniform > 0.05
    assert abs(weibull.coef[0] - exact) < (exact - uniform) / 2
    assert np.all(np.diag(weibull.between) > 0)


def test_bad_intervals_are_named():
    x, t, s, lo, hi, *_ = _visits(4, 50)
    with pytest.raises(InputError, match="outside its interval"):
        weibull_interval_imputer(t, s, x, lo + 2, hi + 2)
    with pytest.raises(InputError, match="lengths differ"):
        weibull_interval_imputer(t[:-1], s, x, lo, hi)
    with pytest.raises(InputError, match="imputer"):
        fit_fine_gray_imputed(t, s, x, lo, hi, imputer="midpoint")


def test_analyze_passes_the_last_event_free_visit_of_every_patient():
    """``observed_survival`` gives the imputation each patient's last deformity-free visit: the interval
    of a found deformity, the last visit before a death (where a deformity may hide), the last visit of
    a censored patient; the interval's end only where the deformity was found."""
    import pandas as pd

    from raoutcome.analysis.observed_survival import _competing_data

    events = pd.DataFrame({
        "patient_id": ["a", "b", "c", "b"], "event": ["deformity", "deformity", "deformity", "death"],
        "time_years": [2.0, 3.0, 5.0, 3.6], "observed": [1, 0, 0, 1],
        "time_lower": [1.0, 3.0, 5.0, np.nan], "time_upper": [2.0, np.nan, np.nan, np.nan]})
    data = _competing_data(pd.DataFrame({"patient_id": ["a", "b", "c"]}), events, "deformity").set_index("patient_id")
    assert data["cr_status"].to_dict() == {"a": 1, "b": 2, "c": 0}
    assert data["cr_lower"].to_dict() == {"a": 1.0, "b": 3.0, "c": 5.0}
    assert data["cr_upper"].iloc[0] == 2.0 and data["cr_upper"].iloc[1:].isna().all()
