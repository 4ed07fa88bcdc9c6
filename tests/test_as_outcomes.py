"""AS outcome statistics: BASFI / BASDAI / time to a new bridge against mSASSS, and learned beyond human (#24)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from raoutcome.analysis import as_outcomes as ao
from raoutcome.analysis.features import DURATION, OBSERVED


def _balanced(n: int = 30, visits: int = 3, seed: int = 0) -> pd.DataFrame:
    """A score constant within each patient, the same number of visits each, a patient random intercept."""
    rng = np.random.default_rng(seed)
    score = rng.gamma(1.5, 6.0, n)
    u = rng.normal(0, 1.0, n)
    rows = [{"patient_id": f"P{i:03d}", "visit_id": f"v{j}", "time_years": 2.0 * j, "score": score[i],
             "y": 2.0 + 0.05 * score[i] + u[i] + rng.normal(0, 0.8)} for i in range(n) for j in range(visits)]
    return pd.DataFrame(rows)


def test_lmm_slope_and_cross_fitted_r2_by_hand():
    """Balanced visits and a score constant within patient: the random-intercept GLS slope is the OLS slope
    (V⁻¹ maps the patient's constant column onto itself), so the coefficient and every fold's fixed effects
    can be checked with np.polyfit; the folds keep patients whole; R² is 1 − SSE/SST(training mean)."""
    rows = _balanced()
    res = ao.mixed_association(rows, "y", "score", k=4, seed=1)
    slope, intercept = np.polyfit(rows["score"], rows["y"], 1)
    assert res["coef_per_10"] == pytest.approx(10 * slope, rel=1e-4)
    assert res["ci_lower"] < res["coef_per_10"] < res["ci_upper"]
    folds = ao.patient_folds(rows["patient_id"], 4, seed=1)
    assert (pd.Series(folds).groupby(rows["patient_id"].to_numpy()).nunique() == 1).all()
    assert len(np.unique(folds)) == 4
    sse = sst = 0.0
    for f in range(4):
        test = folds == f
        b, a = np.polyfit(rows.loc[~test, "score"], rows.loc[~test, "y"], 1)
        y = rows.loc[test, "y"].to_numpy()
        sse += np.sum((y - (a + b * rows.loc[test, "score"].to_numpy())) ** 2)
        sst += np.sum((y - rows.loc[~test, "y"].mean()) ** 2)
    assert res["r2_cv"] == pytest.approx(1 - sse / sst, rel=1e-4)
    noise = rows.assign(score=np.random.default_rng(9).normal(size=len(rows)))  # unrelated: no gain out of fold
    assert ao.mixed_association(noise, "y", "score", k=4, seed=1)["r2_cv"] < 0.02


def test_change_rows_take_each_patients_first_and_last_visit_with_everything_read():
    visits = pd.DataFrame({"patient_id": ["A", "A", "A", "B", "B", "C"], "visit_id": ["v0", "v1", "v2", "v0", "v1", "v0"],
                           "time_years": [0.0, 2.0, 4.0, 0.0, 2.0, 0.0], "basfi": [1.0, 2.0, np.nan, 3.0, 2.5, 1.0],
                           "msasss": [4.0, 6.0, 9.0, 10.0, 12.0, 0.0], "msasss_learned": [4.5, 6.5, 9.0, 10.0, np.nan, 0.0]})
    d = ao.change_rows(visits, "basfi", ["msasss", "msasss_learned"]).set_index("patient_id")
    assert list(d.index) == ["A"]  # B lacks a learned score at v1, C has one visit
    assert d.loc["A"].to_dict() == {"d_years": 2.0, "d_basfi": 1.0, "d_msasss": 2.0, "d_msasss_learned": 2.0}


def test_change_ols_is_statsmodels_hc3_and_a_precise_reading_explains_more_change():
    """The coefficient, HC3 CI, p and partial R² against statsmodels directly; a reading with less error in its
    change explains more of the outcome's change than a noisy one, and its change has the larger SRM."""
    import statsmodels.api as sm

    rng = np.random.default_rng(4)
    n = 200
    years = rng.uniform(1.5, 2.5, n)
    true = rng.gamma(2.0, 1.5, n) * years
    rows = pd.DataFrame({"patient_id": [f"P{i}" for i in range(n)], "d_years": years,
                         "d_basfi": 0.15 * true + rng.normal(0, 0.8, n),
                         "d_msasss": true + rng.normal(0, 4.0, n), "d_msasss_learned": true + rng.normal(0, 1.0, n)})
    res = ao.change_ols(rows, "basfi", "msasss_learned")
    fit = sm.OLS(rows["d_basfi"], sm.add_constant(rows[["d_msasss_learned", "d_years"]])).fit(cov_type="HC3")
    assert res["coef_per_10"] == pytest.approx(10 * fit.params["d_msasss_learned"])
    lo, hi = fit.conf_int().loc["d_msasss_learned"]
    assert (res["ci_lower"], res["ci_upper"]) == (pytest.approx(10 * lo), pytest.approx(10 * hi))
    assert res["p"] == pytest.approx(fit.pvalues["d_msasss_learned"])
    base = sm.OLS(rows["d_basfi"], sm.add_constant(rows[["d_years"]])).fit()
    assert res["partial_r2"] == pytest.approx(1 - fit.ssr / base.ssr)
    human = ao.change_ols(rows, "basfi", "msasss")
    assert res["partial_r2"] > human["partial_r2"] + 0.1 and res["score_srm"] > human["score_srm"]
    with pytest.raises(ao.InputError, match="needs >= 5 patients"):
        ao.change_ols(rows.head(4), "basfi", "msasss")


def test_baseline_table_times_from_the_first_visit():
    visits = pd.DataFrame({"patient_id": ["A", "A", "B", "B", "C"], "visit_id": ["v0", "v1", "v0", "v1", "v0"],
                           "time_years": [0.5, 2.5, 0.0, 2.0, 0.0], "msasss": [3.0, 5.0, 1.0, 1.0, 0.0]})
    events = pd.DataFrame({"patient_id": ["A", "B", "B"], "event": ["new_bridge", "new_bridge", "other"],
                           "time_years": [2.5, 2.0, 1.0], "observed": [1, 0, 1]})
    pts = ao.baseline_table(visits, events, "new_bridge").set_index("patient_id")
    assert list(pts.index) == ["A", "B"]  # C has no events row for the event
    assert pts.loc["A", DURATION] == pytest.approx(2.0) and pts.loc["A", OBSERVED] == 1
    assert pts.loc["B", DURATION] == pytest.approx(2.0) and pts.loc["B", OBSERVED] == 0
    assert pts.loc["A", "msasss"] == 3.0  # the first visit's score


def _survival(n: int = 150, seed: int = 2) -> pd.DataFrame:
    """Baseline true damage drives the hazard of a new bridge; the human reading is noisy, the learned one close
    (no censoring before 2 years: about 40 % of the patients have the event)."""
    rng = np.random.default_rng(seed)
    true = rng.gamma(1.2, 8.0, n)
    t = rng.exponential(1.0 / (0.05 * np.exp(0.08 * true)))
    c = rng.uniform(2, 6, n)
    return pd.DataFrame({"patient_id": [f"P{i}" for i in range(n)], DURATION: np.minimum(t, c),
                         OBSERVED: (t <= c).astype(int), "msasss_true": true,
                         "msasss": np.clip(true + rng.normal(0, 6.0, n), 0, 72),
                         "msasss_learned": true + rng.normal(0, 0.5, n)})


def test_bridge_cox_is_lifelines_and_harrell():
    """HR per 10 units = exp(10 β) of lifelines' CoxPHFitter; C of one covariate with β > 0 is the score's C."""
    from lifelines import CoxPHFitter

    from raoutcome.evaluation import harrell_c

    pts = _survival()
    table = ao.bridge_table(pts, scores=("msasss", "msasss_true")).set_index("score")
    assert list(table.index) == ["msasss", "msasss_true"]
    assert (table["patients"] == len(pts)).all() and (table["events"] == pts[OBSERVED].sum()).all()
    cph = CoxPHFitter().fit(pts[[DURATION, OBSERVED, "msasss"]], DURATION, OBSERVED)
    assert table.loc["msasss", "hr_per_10"] == pytest.approx(np.exp(10 * cph.params_["msasss"]), rel=1e-4)
    assert table.loc["msasss", "p"] == pytest.approx(cph.summary.loc["msasss", "p"], rel=1e-3)
    assert table.loc["msasss", "c_index"] == pytest.approx(harrell_c(pts[DURATION], pts[OBSERVED], pts["msasss"]))
    # the true hazard ratio per 10 units is exp(0.8) = 2.23; the precise reading finds it, the noisy one less so
    assert table.loc["msasss_true", "hr_lower"] < 2.23 < table.loc["msasss_true", "hr_upper"]
    assert table.loc["msasss_true", "c_index_cv"] > table.loc["msasss", "c_index_cv"]


def test_beyond_msasss_says_which_question_and_finds_a_more_precise_reading():
    """A learned reading closer to the true damage adds to a noisy human reading (Cox LRT, mixed LRT, F-test);
    a learned reading that is the human one plus noise does not."""
    rng = np.random.default_rng(4)
    pts = _survival(seed=4)
    visits = pd.concat([pts.assign(visit_id=f"v{j}", time_years=2.0 * j) for j in range(2)], ignore_index=True)
    patient = np.tile(rng.normal(0, 0.4, len(pts)), 2)  # a random intercept (visits are stacked v0, v1)
    visits["basfi"] = 1.5 + 0.06 * visits["msasss_true"] + patient + rng.normal(0, 0.5, len(visits))
    res = ao.beyond_msasss(visits, pts, outcomes=("basfi",), n_boot=20, tests=("cox_lrt", "mixed_lrt",
                                                                                 "partial_r2_f"))
    assert (res["question"] == ao.QUESTION).all() and "human mSASSS" in ao.QUESTION
    p = res.set_index(["test", "outcome"])["p_value"]
    assert p[("cox_lrt", "new_bridge")] < 0.01
    assert p[("mixed_lrt", "basfi")] < 1e-4 and p[("partial_r2_f", "basfi")] < 1e-3
    assert res.set_index("test").loc["cox_lrt", "base"] == "spline(msasss, df=3)"  # 10 events per term
    null_pts = pts.assign(msasss_learned=pts["msasss"] + rng.normal(0, 1.0, len(pts)))
    null_vis = visits.assign(msasss_learned=visits["msasss"] + rng.normal(0, 1.0, len(visits)))
    null = ao.beyond_msasss(null_vis, null_pts, outcomes=("basfi",), n_boot=20,
                            tests=("cox_lrt", "partial_r2_f")).set_index("test")["p_value"]
    assert (null > 0.01).all()  # independent of the outcome given the human reading
    few = pts.assign(**{OBSERVED: np.where(np.arange(len(pts)) < 12, pts[OBSERVED], 0)})
    assert ao.beyond_msasss(visits, few, outcomes=(), tests=("cox_lrt",))["base"].iloc[0] == "msasss"
    with pytest.raises(Exception, match="lacks column"):
        ao.beyond_msasss(visits.drop(columns="msasss_learned"), pts)
    from raoutcome.analysis.features import NotCrossFittedWarning

    with pytest.warns(NotCrossFittedWarning, match="trained on these patients"):
        ao.beyond_msasss(visits, pts, outcomes=("basfi",), tests=("partial_r2_f",), cross_fitted=False)


def test_study_outcome_tables_and_report_sections(tmp_path):
    """The study's outcome tables from a simulated AS cohort (tables only), written atomically, rendered as
    report sections with the question in words; too few patients: nothing written, a note in the report."""
    from types import SimpleNamespace

    from raoutcome.errors import AnalysisSkippedWarning
    from raoutcome.reporting.html import render_report
    from raoutcome.reporting.spine_outcomes_section import outcome_sections
    from raoutcome.synth.spine_cohort import simulate_spine
    from raoutcome.synth.spine_course import SpineCohortConfig
    from raoutcome.workflows.spine_outcomes import OUTCOME_FILES, outcome_summary, write_outcome_tables

    root = simulate_spine(out_dir=tmp_path / "as", config=SpineCohortConfig(n_patients=30, seed=8, render=False))
    read = lambda name: pd.read_csv(root / name, dtype={"patient_id": str, "visit_id": str})  # noqa: E731
    visits, truth = read("visits.csv"), read("truth/visits.csv")
    cohort = SimpleNamespace(root=root, visits=visits.drop(columns="basdai"), events=read("events.csv"))  # brief
    totals = visits[["patient_id", "visit_id", "time_years", "msasss"]].merge(
        truth[["patient_id", "visit_id", "msasss_true"]])
    totals = totals.assign(msasss_learned=totals.pop("msasss_true") + 0.3).iloc[:-1]  # a visit without a reading
    out = tmp_path / "study"
    out.mkdir()
    tables = write_outcome_tables(out, cohort, totals, n_boot=10, folds=2)
    assoc = pd.read_csv(out / OUTCOME_FILES["associations"])
    assert set(assoc["score"]) == {"msasss_learned", "msasss", "msasss_true"}
    assert assoc.groupby("outcome")["visits"].nunique().eq(1).all()  # the same visits for every score
    assert len(assoc) == len(tables["associations"]) == 3 and not list(out.glob(".*"))  # no temp file left
    assert (assoc["folds"] == 2).all() and pd.read_csv(out / OUTCOME_FILES["bridge"])["events"].iloc[0] >= 2
    change = pd.read_csv(out / OUTCOME_FILES["change"])
    assert set(change["score"]) == {"msasss_learned", "msasss", "msasss_true"} and set(change["outcome"]) == {"basfi"}
    assert change["patients"].nunique() == 1  # the same patients for every score
    html = render_report("t", outcome_sections(out))
    assert "Does the learned mSASSS add to the human mSASSS?" in html and "BASFI" in html
    assert any(line.startswith("BASFI per 10") for line in outcome_summary(out))
    assert any(line.startswith("BASFI change per 10") for line in outcome_summary(out)) and "Change against" in html
    with pytest.warns(AnalysisSkippedWarning, match="need 10"):
        assert write_outcome_tables(out, cohort, totals[totals["patient_id"].isin(["P0001", "P0002"])]) == {}
    assert not any((out / f).exists() for f in OUTCOME_FILES.values())  # no stale table of the earlier run
    assert "not computed" in render_report("t", outcome_sections(out))


def test_a_model_that_cannot_be_fitted_is_left_out_with_a_warning():
    from raoutcome.errors import AnalysisSkippedWarning

    pts = _survival(n=40).assign(msasss_learned=5.0)  # a constant score: no Cox model
    with pytest.warns(AnalysisSkippedWarning, match="msasss_learned skipped"):
        table = ao.bridge_table(pts, scores=("msasss_learned", "msasss"), k=2)
    assert list(table["score"]) == ["msasss"]
