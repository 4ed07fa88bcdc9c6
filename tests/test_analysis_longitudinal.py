"""Mixed models and GEE: statsmodels' documented MixedLM example, and recovery of known effects."""
from __future__ import annotations

from importlib import resources

import numpy as np
import pandas as pd
import pytest

from raoutcome.analysis.longitudinal import GEEModel, MixedModel
from raoutcome.errors import InputError


@pytest.fixture(scope="module")
def dietox() -> pd.DataFrame:
    # The pig-weight data of the statsmodels MixedLM example (R package geepack); statsmodels ships
    # the same file with its own tests, so no download is needed.
    path = resources.files("statsmodels") / "regression/tests/results/dietox.csv"
    return pd.read_csv(path)


def test_random_intercept_model_matches_statsmodels_docs(dietox):
    # statsmodels docs, "Linear Mixed Effects Models" example
    # (https://www.statsmodels.org/stable/examples/notebooks/generated/mixed_lm_example.html):
    # Weight ~ Time, groups=Pig: Intercept 15.724 (SE 0.788), Time 6.943 (SE 0.033),
    # Group Var 40.394, Scale 11.3669, log-likelihood -2404.7753 (REML).
    m = MixedModel("Weight", [], time_col="Time", group_col="Pig", random_slope=False).fit(dietox)
    fe = m.summary.set_index("term")
    assert fe.loc["Intercept", "estimate"] == pytest.approx(15.724, abs=1e-3)
    assert fe.loc["Time", "estimate"] == pytest.approx(6.943, abs=1e-3)
    assert fe.loc["Intercept", "se"] == pytest.approx(0.788, abs=1e-3)
    assert fe.loc["Time", "se"] == pytest.approx(0.033, abs=1e-3)
    re = m.random_effects.set_index("component")["value"]
    assert re["var(intercept)"] == pytest.approx(40.394, abs=1e-2)
    assert re["var(residual)"] == pytest.approx(11.3669, abs=1e-3)
    assert m.log_likelihood_ == pytest.approx(-2404.7753, abs=1e-3)
    assert (m.n_obs_, m.n_groups_) == (861, 72)


def test_random_slope_model_matches_statsmodels_docs(dietox):
    # same page, re_formula="~Time": Intercept 15.739, Time 6.939 (SE 0.080), Group Var 19.503,
    # Group x Time Cov 0.294, Time Var 0.416, log-likelihood -2217.0475.
    m = MixedModel("Weight", [], time_col="Time", group_col="Pig", random_slope=True).fit(dietox)
    fe = m.summary.set_index("term")
    assert fe.loc["Intercept", "estimate"] == pytest.approx(15.739, abs=1e-3)
    assert fe.loc["Time", "estimate"] == pytest.approx(6.939, abs=1e-3)
    assert fe.loc["Time", "se"] == pytest.approx(0.080, abs=1e-3)
    re = m.random_effects.set_index("component")["value"]
    assert re["var(intercept)"] == pytest.approx(19.503, abs=1e-2)
    assert re["cov(intercept, Time)"] == pytest.approx(0.294, abs=1e-3)
    assert re["var(Time)"] == pytest.approx(0.416, abs=1e-3)
    assert m.log_likelihood_ == pytest.approx(-2217.0475, abs=1e-3)
    # tidy CIs are the Wald intervals estimate -+ 1.96 SE
    assert fe.loc["Time", "ci_lower"] == pytest.approx(6.939 - 1.959964 * fe.loc["Time", "se"], abs=1e-3)


def _panel(n=120, visits=4, beta_image=0.3, beta_sharp=0.02, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        u0, u1 = rng.normal(0, 0.4), rng.normal(0, 0.1)
        z = rng.normal()
        for t in range(visits):
            sharp = 10 + 3 * t + rng.normal(0, 4)
            image = z + rng.normal(0, 0.3)
            y = 0.5 + u0 + (0.05 + u1) * t + beta_sharp * sharp + beta_image * image + rng.normal(0, 0.2)
            rows.append({"patient_id": f"p{i}", "time_years": float(t), "sharp": sharp, "image": image, "haq": y})
    return pd.DataFrame(rows)


def test_mixed_model_and_gee_recover_known_effects():
    df = _panel()
    mm = MixedModel("haq", ["image", "sharp"]).fit(df).summary.set_index("term")
    gee = GEEModel("haq", ["image", "sharp"]).fit(df).summary.set_index("term")
    for table in (mm, gee):
        assert table.loc["image", "ci_lower"] < 0.3 < table.loc["image", "ci_upper"]
        assert table.loc["sharp", "ci_lower"] < 0.02 < table.loc["sharp", "ci_upper"]
        assert table.loc["time_years", "ci_lower"] < 0.05 < table.loc["time_years", "ci_upper"]


def test_gee_reports_the_exchangeable_correlation():
    gm = GEEModel("haq", ["image", "sharp"]).fit(_panel())
    assert 0.2 < gm.correlation_ < 0.95  # random intercepts make visits of a patient correlated


def test_missing_values_drop_visits_not_patients():
    df = _panel(n=40)
    df.loc[[0, 5, 9], "haq"] = np.nan
    m = MixedModel("haq", ["image"], random_slope=False).fit(df)
    assert m.n_obs_ == len(df) - 3 and m.n_groups_ == 40


def test_bad_inputs_are_reported():
    df = _panel(n=10)
    with pytest.raises(InputError, match="lacks column"):
        MixedModel("haq", ["nope"]).fit(df)
    with pytest.raises(InputError, match="fewer than 3 patients"):
        MixedModel("haq", ["image"]).fit(df[df["patient_id"].isin(["p0", "p1"])])
    with pytest.raises(InputError, match="identifier"):
        MixedModel("haq", ["bad name"]).fit(df.assign(**{"bad name": 1.0}))
