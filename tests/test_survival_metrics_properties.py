"""Property-based checks of the survival metrics against hand formulas and the reference libraries.

Random cohorts (hypothesis) with distinct follow-up times, so the censoring
Kaplan–Meier G has no tie convention to argue about:

* Harrell's C = sum over comparable pairs (T_i < T_j, event i) of
  1[r_i > r_j] + 1/2 1[r_i = r_j], over the number of such pairs;
* Uno's C weights each comparable pair by G(T_i)^-2 (Uno et al., Stat Med 2011);
* the cumulative/dynamic AUC at t weights each case (event by t) by 1/G(T_i)
  against the controls still event-free after t (Uno et al., JASA 2007;
  Hung & Chiang 2010);
* the IPCW Brier score at t is mean_i[1[T_i <= t, event] S_i(t)^2 / G(T_i)
  + 1[T_i > t] (1 - S_i(t))^2 / G(t)] (Graf et al., Stat Med 1999).

And two invariances the metrics owe their users: a positive rescaling of the
risk (by any power of two, exact in floating point, down to 2^-60) leaves every
concordance-type metric unchanged, and evaluation times given in any order give
the same value at each time.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lifelines.utils import concordance_index

from raoutcome.errors import InputError
from raoutcome.evaluation import (brier_scores, concordance, harrell_c, integrated_brier, time_dependent_auc,
                                  uno_c)

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def cohorts(draw, min_n: int = 6, max_n: int = 25):
    """Distinct times (multiples of 0.1), events with at least one event, tied-prone integer risks."""
    n = draw(st.integers(min_n, max_n))
    ticks = draw(st.lists(st.integers(1, 500), min_size=n, max_size=n, unique=True))
    time = np.asarray(ticks, float) / 10
    event = np.asarray(draw(st.lists(st.booleans(), min_size=n, max_size=n)), float)
    event[int(np.argmin(time))] = 1.0  # an event at the first time: every metric has a comparable pair
    risk = np.asarray(draw(st.lists(st.integers(-4, 4), min_size=n, max_size=n)), float)
    return time, event, risk


def censoring_survival(time: np.ndarray, event: np.ndarray, at: np.ndarray, inclusive: bool) -> np.ndarray:
    """Kaplan–Meier of the censoring times, G(at) (``inclusive``: censorings at ``at`` count)."""
    out = np.ones(len(at))
    for k, a in enumerate(at):
        g = 1.0
        for c in np.sort(time[event == 0]):
            if c < a or (inclusive and c == a):
                g *= 1 - 1 / np.sum(time >= c)
        out[k] = g
    return out


def hand_c(time, event, risk, weights=None):
    num = den = 0.0
    w = np.ones(len(time)) if weights is None else weights
    for i in range(len(time)):
        if not event[i]:
            continue
        for j in range(len(time)):
            if time[i] < time[j]:
                den += w[i]
                num += w[i] * (1.0 if risk[i] > risk[j] else 0.5 if risk[i] == risk[j] else 0.0)
    return num / den


def hand_auc(time, event, risk, t, g_at_time):
    cases = (time <= t) & (event == 1)
    controls = time > t
    num = den = 0.0
    for i in np.flatnonzero(cases):
        w = 1 / g_at_time[i]
        for j in np.flatnonzero(controls):
            den += w
            num += w * (1.0 if risk[i] > risk[j] else 0.5 if risk[i] == risk[j] else 0.0)
    return num / den


def grid_from(draw, time, k_max=4):
    """Evaluation times strictly inside the follow-up, never equal to a follow-up time, in random order."""
    inner = np.sort(time)[:-1] + 0.05
    k = draw(st.integers(1, min(k_max, len(inner))))
    idx = draw(st.lists(st.integers(0, len(inner) - 1), min_size=k, max_size=k, unique=True))
    return inner[idx]


@SETTINGS
@given(cohorts())
def test_harrell_c_equals_the_pair_formula_and_lifelines(data):
    time, event, risk = data
    expected = hand_c(time, event, risk)
    assert harrell_c(time, event, risk) == pytest.approx(expected)
    assert concordance(time, event, risk).c_index == pytest.approx(expected)
    assert concordance_index(time, -risk, event) == pytest.approx(expected)


@SETTINGS
@given(cohorts())
def test_uno_c_equals_the_ipcw_pair_formula(data):
    time, event, risk = data
    g = censoring_survival(time, event, time, inclusive=False)  # G(T_i-) = G(T_i): T_i is an event
    assert uno_c(time, event, risk) == pytest.approx(hand_c(time, event, risk, weights=g ** -2.0))


@SETTINGS
@given(st.data())
def test_time_dependent_auc_equals_the_ipcw_formula_in_any_time_order(data):
    time, event, risk = data.draw(cohorts())
    grid = grid_from(data.draw, time)
    g = censoring_survival(time, event, time, inclusive=False)
    expected = []
    for t in grid:
        cases, controls = ((time <= t) & (event == 1)).any(), (time > t).any()
        expected.append(hand_auc(time, event, risk, t, g) if cases and controls else np.nan)
    got = time_dependent_auc(time, event, risk, grid)
    np.testing.assert_array_equal(got.times, grid)
    np.testing.assert_allclose(got.auc, expected, rtol=1e-9, equal_nan=True)


@SETTINGS
@given(st.data())
def test_brier_equals_the_ipcw_formula_and_follows_its_times(data):
    time, event, _ = data.draw(cohorts())
    grid = grid_from(data.draw, time)
    n = len(time)
    surv = np.asarray(data.draw(st.lists(st.floats(0, 1), min_size=n * len(grid), max_size=n * len(grid))),
                      float).reshape(n, len(grid))
    g_time = censoring_survival(time, event, time, inclusive=False)
    g_grid = censoring_survival(time, event, grid, inclusive=True)
    expected = [np.mean(np.where((time <= t) & (event == 1), surv[:, k] ** 2 / g_time, 0.0)
                        + np.where(time > t, (1 - surv[:, k]) ** 2 / g_grid[k], 0.0))
                for k, t in enumerate(grid)]
    got = brier_scores(time, event, surv, grid)
    np.testing.assert_array_equal(got.index.to_numpy(), grid)
    np.testing.assert_allclose(got.to_numpy(), expected, rtol=1e-9)
    if len(grid) >= 2:
        order = np.argsort(grid)
        ibs_sorted = integrated_brier(time, event, surv[:, order], grid[order])
        assert integrated_brier(time, event, surv, grid) == pytest.approx(ibs_sorted)
        # trapezoid over the sorted times, divided by their range (Graf et al.)
        by_hand = np.trapezoid(np.asarray(expected)[order], grid[order]) / (grid[order][-1] - grid[order][0])
        assert ibs_sorted == pytest.approx(by_hand)


@SETTINGS
@given(cohorts(), st.integers(-60, 60), st.data())
def test_concordance_metrics_are_invariant_to_rescaling_the_risk(data, power, draw):
    time, event, risk = data
    scaled = risk * 2.0 ** power
    assert harrell_c(time, event, scaled) == harrell_c(time, event, risk)
    assert concordance(time, event, scaled) == concordance(time, event, risk)
    assert uno_c(time, event, scaled) == pytest.approx(uno_c(time, event, risk), abs=1e-12)
    grid = grid_from(draw.draw, time)
    np.testing.assert_allclose(time_dependent_auc(time, event, scaled, grid).auc,
                               time_dependent_auc(time, event, risk, grid).auc, equal_nan=True, atol=1e-12)
    # A time-specific risk matrix is ranked column by column.
    matrix = np.column_stack([risk * 2.0 ** (power - k) for k in range(len(grid))])
    np.testing.assert_allclose(time_dependent_auc(time, event, matrix, grid).auc,
                               time_dependent_auc(time, event, risk, grid).auc, equal_nan=True, atol=1e-12)


def test_issue_examples():
    # Issue #26 item 0, the reported cases.
    t, e, r = [1, 2, 3, 4, 5], [1, 1, 0, 1, 0], [5, 1, 3, 2, 4]
    np.testing.assert_allclose(time_dependent_auc(t, e, r, [3.5, 1.5]).auc, [0.5, 1.0])
    np.testing.assert_allclose(time_dependent_auc(t, e, r, [1.5, 3.5]).auc, [1.0, 0.5])
    tiny = [3e-9, 2e-9, 1e-9]
    assert concordance([1, 2, 3], [1, 1, 1], tiny).c_index == 1.0
    assert uno_c([1, 2, 3], [1, 1, 1], tiny) == 1.0
    assert harrell_c([1, 2, 3], [1, 1, 1], tiny) == 1.0
    with pytest.raises(InputError, match="more than once"):
        time_dependent_auc(t, e, r, [1.5, 1.5])
