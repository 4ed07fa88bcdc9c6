"""Trial endpoints on hand-computed values, and simulated power against the sample-size formula."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from raoutcome.analysis import endpoints as ep
from raoutcome.errors import InputError


def test_change_scores_first_to_last_and_to_a_time():
    visits = pd.DataFrame({
        "patient_id": ["a", "a", "a", "b", "b", "c"],
        "time_years": [0.0, 1.02, 2.1, 0.0, 0.9, 0.0],
        "svdh": [2.0, 5.0, np.nan, 10.0, 13.0, 4.0],
    })
    last = ep.change_scores(visits, "svdh").set_index("patient_id")
    assert last.loc["a", "change"] == 3.0  # the 2.1-year visit has no reading: last reading is at 1.02
    assert last.loc["b", "change"] == 3.0
    assert "c" not in last.index  # one reading only
    at1 = ep.change_scores(visits, "svdh", end=1.0, tolerance=0.05).set_index("patient_id")
    assert list(at1.index) == ["a"]  # b's 0.9-year visit is outside the tolerance
    assert at1.loc["a", "t_end"] == 1.02


def test_srm_by_hand():
    change = [1.0, 2.0, 3.0, 6.0]  # mean 3, SD (n-1) sqrt(14/3)
    assert ep.srm(change) == pytest.approx(3 / math.sqrt(14 / 3))


def test_sdc_by_hand_single_and_k_readers():
    a = np.array([10.0, 12.0, 8.0, 15.0, 7.0])
    b = np.array([11.0, 11.0, 9.0, 14.0, 7.0])  # differences -1, 1, -1, 1, 0: mean 0, SD (n-1) exactly 1
    assert ep.sdc(a, b) == pytest.approx(1.959964 / math.sqrt(2), rel=1e-6)  # 1.3859
    assert ep.sdc(a, b, k=4) == pytest.approx(1.959964 / (math.sqrt(2) * 2), rel=1e-6)  # 0.6930
    with pytest.raises(InputError):
        ep.sdc(a, b[:3])


def test_percent_progressors_and_cumulative_probability():
    change = [-1.0, 0.0, 0.5, 3.0, 4.0]
    assert ep.percent_progressors(change, 0.5) == 40.0  # strictly above the threshold
    cp = ep.cumulative_probability([3.0, -1.0, 0.0])
    assert cp["change"].tolist() == [-1.0, 0.0, 3.0]
    assert cp["cumulative_probability"].tolist() == pytest.approx([1 / 3, 2 / 3, 1.0])


def test_sample_size_formula_by_hand_and_against_ttest_power():
    # d = 0.5, alpha 0.05, power 0.8: 2 (1.959964 + 0.841621)^2 / 0.25 = 62.79 -> 63 per arm;
    # the t-test version (statsmodels TTestIndPower) needs about 63.77.
    ss = ep.sample_size_per_arm(0.5)
    assert ss.n_formula_exact == pytest.approx(2 * (1.959964 + 0.841621) ** 2 / 0.25, rel=1e-5)
    assert ss.n_formula == 63
    assert ss.n_ttest == pytest.approx(63.77, abs=0.01)
    assert ep.sample_size_per_arm(-0.5).n_formula == 63  # direction does not matter
    with pytest.raises(InputError):
        ep.sample_size_per_arm(0.0)


def test_shrink_effect_size_accounts_for_the_smaller_treated_sd():
    x = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    f = 0.4
    expected = f * 3.0 / math.sqrt((1 + 0.6 ** 2) / 2 * x.var(ddof=1))
    assert ep.shrink_effect_size(x, f) == pytest.approx(expected)


def test_simulated_power_is_about_80_percent_at_the_formula_sample_size():
    rng = np.random.default_rng(0)
    change = rng.normal(4.0, 4.0, 20_000)  # a large pool: resampling ~ drawing from N(4, 4^2)
    effect = 0.5
    d = ep.shrink_effect_size(change, effect)
    n = ep.sample_size_per_arm(d).n_formula
    power = ep.simulate_power({"svdh": change}, [effect], n_per_arm=n, n_sim=2000, seed=1)
    assert power["power"].item() == pytest.approx(0.80, abs=0.03)
    # no effect: the rejection rate is the test's size
    null = ep.simulate_power({"svdh": change}, [0.0], n_per_arm=n, n_sim=2000, seed=2)
    assert null["power"].item() == pytest.approx(0.05, abs=0.015)


def test_power_is_seeded_and_mann_whitney_works():
    change = np.random.default_rng(1).gamma(1.0, 3.0, 400)
    a = ep.simulate_power({"x": change}, [0.3, 0.6], n_per_arm=30, n_sim=200, seed=5)
    b = ep.simulate_power({"x": change}, [0.3, 0.6], n_per_arm=30, n_sim=200, seed=5)
    pd.testing.assert_frame_equal(a, b)
    assert a["power"].iloc[1] > a["power"].iloc[0]  # larger effect, more power (same draws)
    mw = ep.simulate_power({"x": change}, [0.6], n_per_arm=30, n_sim=200, seed=5, test="mannwhitney")
    assert 0 < mw["power"].item() <= 1
    with pytest.raises(InputError):
        ep.simulate_power({"x": change}, [0.5], n_per_arm=30, test="anova")


def test_endpoint_table_ranks_endpoints_by_responsiveness():
    rng = np.random.default_rng(2)
    changes = {"sharp": rng.normal(2, 4, 200), "learned": rng.normal(2, 2, 200)}
    table = ep.endpoint_table(changes, {"sharp": 3.0}).set_index("endpoint")
    assert table.loc["learned", "srm"] > table.loc["sharp", "srm"]
    assert table.loc["learned", "n_per_arm"] < table.loc["sharp", "n_per_arm"]
    assert table.loc["learned", "relative_efficiency"] == pytest.approx(
        (table.loc["learned", "srm"] / table.loc["sharp", "srm"]) ** 2)
    assert table.loc["sharp", "pct_progressors_sdc"] == pytest.approx(100 * np.mean(changes["sharp"] > 3.0))
    assert np.isnan(table.loc["learned", "sdc"])


def test_retest_sdc_pairs_each_patients_change_from_both_readings():
    visits = pd.DataFrame({"patient_id": ["a", "a", "b", "b", "c", "c", "d", "d"],
                           "visit_id": ["v0", "v1"] * 4, "time_years": [0.0, 2.0] * 4,
                           "svdh_total": [1.0, 5.0, 2.0, 2.0, 0.0, 3.0, 4.0, 9.0]})
    retest = visits.assign(svdh_total=visits["svdh_total"] + [0.0, 1.0, 0.0, -1.0, 1.0, 1.0, 0.0, 2.0])
    # changes: first reading 4, 0, 3, 5; second 5, -1, 3, 7 -> differences -1, 1, 0, -2
    diff = np.array([-1.0, 1.0, 0.0, -2.0])
    expected = 1.959963984540054 * diff.std(ddof=1) / math.sqrt(2)
    assert ep.retest_sdc(visits, retest, "svdh_total") == pytest.approx(expected)
    # a retest of another end visit does not pair; fewer than 3 pairs: no SDC
    assert ep.retest_sdc(visits, retest[retest["patient_id"].isin(["a", "b"])], "svdh_total") is None
