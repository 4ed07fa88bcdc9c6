"""The false-discovery harness (analyses/false_discovery.py) on a small grid: it runs end to end, its
binomial interval is Wilson's, and its worlds do what they claim (a pure damage reader fools the fixed
log(1 + SvdH) adjustment; reader-error correction takes most of that away; a planted feature is found)."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.proportion import proportion_confint

from conftest import load_analysis


@pytest.fixture(scope="module")
def fd():
    return load_analysis("false_discovery")


def test_wilson_interval_matches_statsmodels(fd):
    for k, n in ((0, 20), (5, 100), (37, 600), (20, 20)):
        lo, hi = fd.wilson(k, n)
        ref = proportion_confint(k, n, alpha=0.05, method="wilson")
        assert lo == pytest.approx(ref[0], abs=1e-6) and hi == pytest.approx(ref[1], abs=1e-6)


def test_clopper_pearson_is_the_beta_quantile_interval(fd):
    from scipy import stats

    for k, n in ((30, 600), (1, 200), (48, 600)):
        lo, hi = fd.clopper_pearson(k, n)
        assert lo == pytest.approx(stats.beta.ppf(0.025, k, n - k + 1), rel=1e-9)
        assert hi == pytest.approx(stats.beta.ppf(0.975, k + 1, n - k), rel=1e-9)
    assert fd.clopper_pearson(0, 600)[0] == 0.0
    assert fd.clopper_pearson(30, 600)[1] < 0.0711  # 5 % of 600: upper bound 7.1 %, below the 8 % target


def test_variant_options_are_parsed(fd):
    assert fd.parse_variant("damage_retest:raw_linear=0:cov_type=HC3") == (
        "damage_retest", {"raw_linear": 0, "cov_type": "HC3"})
    with pytest.raises(ValueError, match="unknown variant"):
        fd.parse_variant("damage_typo")
    assert fd.cox_row_name("damage_retest:cox_test=robust_score") == "cox_robust_score"
    assert fd.cox_row_name("damage_retest:cox_test=lrt") == "cox_lrt"
    assert fd.cox_row_name("sharp_spline") == "cox_lrt"  # beyond_sharp: always the LRT


def test_population_reads_damage_twice_with_the_simulators_error_model(fd):
    pop = fd.draw_population(150, np.random.SeedSequence([5, 0]))
    assert (pop["svdh_total"] == pop["svdh_jsn"] + pop["svdh_erosion"]).all()
    err = pop["svdh_total"] - pop["true_total"]
    again = pop["retest_total"] - pop["true_total"]
    assert abs(np.corrcoef(err, again)[0, 1]) < 0.1  # independent readings
    high = pop["true_total"] > pop["true_total"].quantile(0.75)
    assert err[high].var() > err[~high].var()  # reader error grows with damage


def test_a_pure_damage_reader_fools_the_fixed_transform_and_not_the_correction(fd):
    pop = fd.draw_population(1000, np.random.SeedSequence([7, 1]))
    data, retest = fd.world_data(pop, "curved", "exact", planted=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p = {v: float(fd.run_variant(data, retest, v, ("partial_r2_f",))["p_value"].iloc[0])
             for v in ("sharp_log1p", "damage_retest")}
    assert p["sharp_log1p"] < 1e-3  # "beyond Sharp", although the image reads nothing but damage
    assert p["damage_retest"] > 100 * p["sharp_log1p"]
    planted, retest = fd.world_data(pop.iloc[:1600], "curved", "exact", planted=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        found = fd.run_variant(planted, retest, "damage_retest", ("partial_r2_f",))
    assert found["p_value"].iloc[0] < 1e-3


def test_small_grid_end_to_end(fd, tmp_path, capsys):
    out = tmp_path / "fd.csv"
    code = fd.main(["--replicates", "2", "--sizes", "200", "--power-size", "200", "--links", "curved",
                    "--readers", "exact", "--tests", "partial_r2_f", "--variants", "sharp_spline", "damage_retest",
                    "--workers", "1", "--seed", "3", "--out", str(out)])
    assert code in (0, 1)
    rows = pd.read_csv(out)
    assert set(rows["variant"]) == {"sharp_spline", "damage_retest"} and set(rows["test"]) == {"partial_r2_f"}
    assert len(rows) == 2 * 2 * 2  # (null + planted) x 2 replicates x 2 variants
    assert rows["p_value"].between(0, 1).all()
    summary = pd.read_csv(out.with_name("fd_summary.csv"))
    assert {"rate", "ci_low", "ci_high", "tests"} <= set(summary.columns)
    printed = capsys.readouterr().out
    assert "null_world worlds" in printed and "planted worlds" in printed and "upper 95 % bound" in printed


def test_pooled_rate_is_the_mean_share_per_population_with_its_cluster_robust_se(fd):
    # two populations x two null worlds: shares 1/2 and 0 -> rate 1/4, SE = SD(0.5, 0) / √2 = 0.25
    rows = pd.DataFrame({"world": "null_world", "n": 200, "variant": "v", "test": "cox_lrt",
                         "replicate": [0, 0, 1, 1], "p_value": [0.01, 0.5, 0.2, 0.9]})
    out = fd.pooled(rows).iloc[0]
    assert out["rate"] == pytest.approx(0.25) and out["se"] == pytest.approx(0.25)
    assert out["populations"] == 2
    from scipy import stats
    assert out["mean_chi2"] == pytest.approx(stats.chi2.isf([0.01, 0.5, 0.2, 0.9], 1).mean())
