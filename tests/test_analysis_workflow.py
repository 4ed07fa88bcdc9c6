"""``analyze`` end to end on a small cohort with stand-in Predictions (true latents as image scores)."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from raoutcome.analysis.features import analysis_data, covariate_table, predictions_from_columns
from raoutcome.cli import app
from raoutcome.cohort import load
from raoutcome.errors import InputError
from raoutcome.predictions import save_predictions
from raoutcome.workflows import analyze as wf
from test_analysis_support import write_analysis_cohort

EXPECTED = {
    "summary.json", "metrics.csv", "scatter_svdh.png", "scatter_haq.png", "scatter_risk.png",
    "cox_hazard_ratios.csv", "cox_forest.png", "cox_ph_test.csv", "km_groups.csv", "km_tertiles.png",
    "cox_time_varying.csv", "survival_models.csv", "mixed_models.csv", "mixed_random_effects.csv",
    "gee_models.csv", "mixed_coefficients.png", "incremental.csv", "endpoints.csv", "change_scores.csv",
    "cumulative_probability.png", "power.csv", "power_curves.png", "reader_agreement.csv",
    "calibration.csv", "calibration.png", "landmark_models.csv", "landmark_lookahead.csv", "landmark_auc.csv",
}
FAST = dict(n_boot=20, n_sim=60, progress=False)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root, truth = write_analysis_cohort(tmp_path_factory.mktemp("analysis") / "cohort", n_patients=90, seed=4)
    rng = np.random.default_rng(0)
    truth = truth.assign(**{f"e{i}": truth["latent"] * (i == 0) + rng.normal(0, 0.5, len(truth)) for i in range(4)})
    # a second reading of every visit's SvdH: the cohort's test-retest set
    visits = pd.read_csv(root / "visits.csv")
    visits.assign(svdh_total=(visits["svdh_total"] + rng.normal(0, 1.0, len(visits))).clip(lower=0))[
        ["patient_id", "visit_id", "svdh_total"]].to_csv(root / "retest.csv", index=False)
    ds = predictions_from_columns(truth, {"risk": "latent", "svdh": "svdh_learned", "haq": "latent"},
                                  embedding=[f"e{i}" for i in range(4)], run="stand-in")
    pred = save_predictions(ds, root.parent / "pred.nc")
    return load(root), pred


def test_analyze_writes_every_table_and_figure(study, tmp_path):
    cohort, pred = study
    out = wf.analyze(cohort, pred, tmp_path / "out", **FAST)
    written = {p.name for p in out.iterdir()}
    assert EXPECTED <= written
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp folder left behind
    for png in out.glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_patients"] == 90 and summary["cross_fitted"] is True
    assert set(summary["files"]) == written - {"summary.json"}
    # the true latent drives hazard, HAQ and pain in this cohort: every test sees it
    both = pd.read_csv(out / "incremental.csv")
    from raoutcome.analysis.incremental import QUESTIONS
    assert set(both["question"]) == set(QUESTIONS.values())  # both questions, each row naming its own
    damage = both[both["question"] == QUESTIONS["beyond_damage"]]
    assert damage["reliability_source"].str.startswith("retest").all()
    # beyond damage, the Cox model's test is the robust score test (beyond_damage's default)
    assert set(damage["test"]) == {"cox_robust_score", "delta_c", "continuous_nri", "mixed_lrt", "partial_r2_f"}
    assert (damage.loc[damage["test"].isin(["cox_robust_score", "mixed_lrt", "partial_r2_f"]), "p_value"] < 0.01).all()
    assert "beyond_damage" in summary and "beyond_damage_warning" not in summary
    inc = both[both["question"] == QUESTIONS["beyond_sharp"]]
    assert set(inc["test"]) == {"cox_lrt", "delta_c", "continuous_nri", "mixed_lrt", "partial_r2_f"}
    likelihood_tests = inc[inc["test"].isin(["cox_lrt", "mixed_lrt", "partial_r2_f"])]
    assert len(likelihood_tests) == 5 and (likelihood_tests["p_value"] < 0.01).all()
    assert (inc.loc[inc["test"] == "delta_c", "estimate"] > 0).all()
    agreement = pd.read_csv(out / "reader_agreement.csv").set_index("score")
    # the retest adds N(0, 1) to the first reading: SD of the difference 1, per-reading error SD 1 / sqrt(2)
    assert agreement.loc["svdh_total", "error_sd"] == pytest.approx(1 / np.sqrt(2), abs=0.1)
    assert agreement.loc["svdh_total", "sdc"] == pytest.approx(1.96, abs=0.25)
    assert agreement.loc["svdh_total", "icc"] > 0.9
    hr = summary["cox_image_hr_per_sd"]
    assert hr["hr"] > 1 and hr["ci"][0] > 1
    models = pd.read_csv(out / "survival_models.csv")
    assert any(models["model"].str.startswith("CoxNet: embedding PCs"))
    endpoints = pd.read_csv(out / "endpoints.csv").set_index("endpoint")
    sdc = endpoints.loc["SvdH change (observed)", "sdc"]
    assert 1.96 * 1.0 * 0.6 < sdc < 1.96 * 1.0 * 1.5  # retest noise SD 1 per reading -> SD of change diff ~ sqrt(2)
    assert np.isnan(endpoints.loc["learned progression score", "sdc"])
    power = pd.read_csv(out / "power.csv")
    assert set(power["endpoint"]) == set(endpoints.index)
    # exact event times and no death: the observed-event stage says it used right-censored models only
    assert summary["survival_models_used"]["interval_censored"] is False
    assert summary["landmark_no_look_ahead"] is True


def test_failed_run_leaves_previous_output_untouched(study, tmp_path, monkeypatch):
    cohort, pred = study
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("previous run")

    def boom(run):
        raise RuntimeError("stage failed")

    monkeypatch.setattr(wf, "_survival", boom)
    with pytest.raises(RuntimeError):
        wf.analyze(cohort, pred, out, **FAST)
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_not_cross_fitted_predictions_are_noted_or_refused(study, tmp_path, monkeypatch):
    cohort, _ = study
    for stage in ("_metrics", "_survival", "_longitudinal", "_incremental", "_endpoints"):
        monkeypatch.setattr(wf, stage, lambda run: None)  # only the up-front check matters here
    truth = pd.read_csv(cohort.root / "visits.csv").assign(score=lambda f: f["svdh_total"])
    ds = predictions_from_columns(truth, {"risk": "score"}, folds={})  # fold -1 everywhere
    pred = save_predictions(ds, tmp_path / "p.nc")
    with pytest.raises(InputError, match="not cross-fitted"):
        wf.analyze(cohort, pred, tmp_path / "refused", require_cross_fitted=True, **FAST)
    assert not (tmp_path / "refused").exists()
    out = wf.analyze(cohort, pred, tmp_path / "warned", **FAST)
    notes = json.loads((out / "summary.json").read_text())["notes"]
    assert any("not cross-fitted" in n for n in notes)


def test_cli_analyze_good_and_bad_input(study, tmp_path, monkeypatch):
    cohort, pred = study
    runner = CliRunner()
    for stage in ("_metrics", "_survival", "_longitudinal", "_incremental"):
        monkeypatch.setattr(wf, stage, lambda run: None)  # the CLI wiring, not the statistics, is tested here
    good = runner.invoke(app, ["analyze", "--cohort", str(cohort.root), "--predictions", str(pred),
                               "--out", str(tmp_path / "good")])
    assert good.exit_code == 0, good.output
    assert "analysis written to" in good.output
    assert {"summary.json", "endpoints.csv", "power_curves.png"} <= {p.name for p in (tmp_path / "good").iterdir()}
    bad = runner.invoke(app, ["analyze", "--cohort", str(cohort.root), "--predictions", str(tmp_path / "none.nc"),
                              "--out", str(tmp_path / "bad")])
    assert bad.exit_code == 2 and "not found" in bad.output
    assert not (tmp_path / "bad").exists()


def test_unknown_setting_is_rejected(study, tmp_path):
    cohort, pred = study
    with pytest.raises(InputError, match="unknown setting"):
        wf.analyze(cohort, pred, tmp_path / "x", n_bootstraps=3)


def test_covariates_are_numeric_or_one_hot():
    n = 10
    patients = pd.DataFrame({"patient_id": [f"p{i}" for i in range(n)],
                             "sex": ["F", "M", "F", None, "F", "M", "F", "F", "M", "F"],
                             "age": [50.0, 60.0, np.nan, 40.0, 45, 50, 55, 60, 65, 70],
                             "site": [f"x{i}" for i in range(n)],            # identifier-like text
                             "constant": 1,                                   # never varies
                             "smoker": [True, False] * 5,
                             "bmi": [np.nan] * 3 + [25.0] * 7})               # 30 % missing
    table, names = covariate_table(patients)
    assert names == ["sex_m", "age", "smoker"]
    assert table["sex_m"].tolist()[:3] == [0.0, 1.0, 0.0] and np.isnan(table["sex_m"].iloc[3])


def test_analysis_tables_line_up_with_the_cohort(study):
    cohort, pred = study
    from raoutcome.predictions import load_predictions

    data = analysis_data(cohort, load_predictions(pred))
    assert len(data.visits) == len(cohort.visits)
    assert set(data.heads) == {"svdh", "haq", "risk"}
    assert data.embedding_cols == ["emb_0", "emb_1", "emb_2", "emb_3"]
    assert len(data.patients) == cohort.patients.shape[0]
    first = cohort.visits.sort_values("time_years").groupby("patient_id").head(1).set_index("patient_id")
    merged = data.patients.set_index("patient_id")
    np.testing.assert_allclose(merged["svdh_total"], first.loc[merged.index, "svdh_total"])
    events = cohort.event_table().set_index("patient_id")
    np.testing.assert_allclose(merged["duration"], events.loc[merged.index, "time_years"])
