"""ICC on Shrout & Fleiss's own example, Bland–Altman and weighted kappa against hand computations."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from raoutcome.errors import InputError
from raoutcome.evaluation import bland_altman, icc, icc_table, ratings_table, weighted_kappa

# Shrout & Fleiss (1979), Psychological Bulletin 86:420, Table 2: 6 targets rated by 4 judges.
SF_RATINGS = [[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]]
# Their Table 4 gives the six ICCs to two decimals. The 95 % limits are R psych::ICC's printed
# output on the same table (the documented example of psych; F-based limits, Satterthwaite for ICC2).
SF_TABLE4 = {"ICC1": 0.17, "ICC2": 0.29, "ICC3": 0.71, "ICC1k": 0.44, "ICC2k": 0.62, "ICC3k": 0.91}
PSYCH_LIMITS = {"ICC1": (-0.133, 0.72), "ICC2": (0.019, 0.76), "ICC3": (0.342, 0.95),
                "ICC1k": (-0.884, 0.91), "ICC2k": (0.071, 0.93), "ICC3k": (0.676, 0.99)}


def test_icc_reproduces_shrout_fleiss_table_4_and_psych_limits():
    table = icc_table(SF_RATINGS)
    for form, expected in SF_TABLE4.items():
        assert round(table.loc[form, "icc"], 2) == expected, form
    for form, (low, high) in PSYCH_LIMITS.items():
        digits_low = len(str(low).split(".")[1])
        digits_high = len(str(high).split(".")[1])
        assert round(table.loc[form, "ci_low"], digits_low) == low, form
        assert round(table.loc[form, "ci_high"], digits_high) == high, form
    # F statistics printed by psych: 1.8 (one-way, df 5/18) and 11.0 (two-way, df 5/15)
    assert round(table.loc["ICC1", "f_stat"], 1) == 1.8 and tuple(table.loc["ICC1", ["df1", "df2"]]) == (5, 18)
    assert round(table.loc["ICC2", "f_stat"], 1) == 11.0 and tuple(table.loc["ICC3", ["df1", "df2"]]) == (5, 15)
    assert round(table.loc["ICC3", "p_value"], 5) == 0.00013


def test_icc_names_and_single_form_api():
    res = icc(SF_RATINGS, model="consistency", unit="average")
    assert (res.form, res.name) == ("ICC3k", "ICC(C,k)")
    assert res.n_targets == 6 and res.n_raters == 4
    assert icc(SF_RATINGS, "agreement", "single").name == "ICC(A,1)"
    with pytest.raises(InputError, match="unknown model/unit"):
        icc(SF_RATINGS, model="absolute")


def test_icc_drops_incomplete_targets_and_long_format_matches():
    with_gap = np.vstack([SF_RATINGS, [np.nan, 3, 4, 5]])
    assert icc(with_gap).icc == pytest.approx(icc(SF_RATINGS).icc)
    long = pd.DataFrame([(t, r, v) for t, row in enumerate(SF_RATINGS) for r, v in enumerate(row)],
                        columns=["target", "rater", "score"])
    assert icc(ratings_table(long, "target", "rater", "score")).icc == pytest.approx(icc(SF_RATINGS).icc)
    with pytest.raises(InputError, match="row 25 repeats"):
        ratings_table(pd.concat([long, long.iloc[[0]]]), "target", "rater", "score")


def test_icc_perfect_agreement_and_rater_offset():
    base = np.array([1.0, 4.0, 2.0, 8.0, 5.0])
    same = np.column_stack([base, base])
    shifted = np.column_stack([base, base + 3])
    assert icc(same, "agreement").icc == pytest.approx(1.0)
    # a constant offset between raters: consistency stays perfect, absolute agreement drops
    assert icc(shifted, "consistency").icc == pytest.approx(1.0)
    assert icc(shifted, "agreement").icc < 0.8


def test_bland_altman_hand_example():
    a = [10, 12, 14, 16, 18]
    b = [9, 13, 12, 15, 16]
    # d = 1, -1, 2, 1, 2 -> mean 1.0; squared deviations 0+4+1+0+1 = 6 -> SD = sqrt(6/4)
    sd = math.sqrt(1.5)
    res = bland_altman(a, b)
    assert res.bias == pytest.approx(1.0)
    assert res.sd == pytest.approx(sd)
    assert res.loa_low == pytest.approx(1 - 1.959964 * sd, abs=1e-5)   # -1.400456
    assert res.loa_high == pytest.approx(1 + 1.959964 * sd, abs=1e-5)  # 3.400456
    t4 = 2.776445  # t(0.975, 4)
    assert res.bias_ci == pytest.approx((1 - t4 * sd / math.sqrt(5), 1 + t4 * sd / math.sqrt(5)), abs=1e-5)
    se_loa = math.sqrt(3 * 1.5 / 5)
    assert res.loa_high_ci == pytest.approx((res.loa_high - t4 * se_loa, res.loa_high + t4 * se_loa), abs=1e-5)
    assert res.n == 5


def test_weighted_kappa_hand_example():
    a = [0, 0, 1, 1, 2, 2, 0, 2]
    b = [0, 1, 1, 2, 2, 2, 0, 1]
    # Observed table (rows a, cols b): [[2,1,0],[0,1,1],[0,1,2]]; margins a = 3,2,3; b = 2,3,3; n = 8.
    # Linear weights |i-j|: sum w*O = 3; sum w*E = (9 + 18 + 4 + 6 + 12 + 9) / 8 = 7.25 -> kappa = 1 - 3/7.25.
    assert weighted_kappa(a, b, "linear") == pytest.approx(1 - 3 / 7.25)
    # Quadratic weights (i-j)^2: sum w*O = 3; sum w*E = (9 + 36 + 4 + 6 + 24 + 9) / 8 = 11 -> kappa = 8/11.
    assert weighted_kappa(a, b, "quadratic") == pytest.approx(8 / 11)
    # Unweighted: p_o = 5/8, p_e = (3*2 + 2*3 + 3*3)/64 = 21/64.
    assert weighted_kappa(a, b, None) == pytest.approx((5 / 8 - 21 / 64) / (1 - 21 / 64))
    with pytest.raises(InputError, match="weights must be"):
        weighted_kappa(a, b, "cubic")
