"""Deformity prediction and the cervical CLI (issue 30, items 4 and 6).

The prediction pipeline (score -> interval-censored Weibull -> threshold; held-out metrics with bootstrap
CIs) is run on table-only cohorts: with the simulator's baseline latents it must discriminate well, with
noise features it must not, and its accuracy / PPV / NPV must equal the confusion counts computed by hand.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from raoutcome.evaluation.classification import binary_metrics
from raoutcome.synth.cervical import load_cervical_config, simulate_cervical
from raoutcome.workflows import cervical_predict as cp

LATENTS = ["pannus_v0", "facet_v0", "erosion_v0", "laxity_v0", "activity"]


@pytest.fixture(scope="module")
def cohorts(tmp_path_factory):
    root = tmp_path_factory.mktemp("cervical")
    out = {}
    for name, seed, n in (("train", 31, 500), ("test", 32, 300)):
        cfg = load_cervical_config(n_patients=n, seed=seed, render="none")
        out[name] = simulate_cervical(cfg, root / name)
    return out


def _features(path, cols=LATENTS):
    return pd.read_csv(path / "truth" / "patients.csv").set_index("patient_id")[cols]


def test_event_table_and_horizon_status(cohorts):
    ev = cp.event_table(cohorts["test"])
    raw = pd.read_csv(cohorts["test"] / "events.csv")
    d = raw[raw["event"] == "deformity"].set_index("patient_id")
    e = ev.set_index("patient_id")
    seen = d["observed"] == 1
    assert (e.loc[seen[seen].index, "upper"] == d.loc[seen, "time_upper"]).all()
    assert np.isinf(e.loc[seen[~seen].index, "upper"]).all()
    assert set(e["status"]) <= {0, 1, 2} and (e["status"] == 1).sum() == seen.sum()
    label, known = cp.horizon_status(ev, 3.2)
    assert label.sum() == ((d["observed"] == 1) & (d["time_years"] <= 3.2)).sum()
    assert not known[(ev["observed"] == 0) & (ev["time"] <= 3.2)].any()


def test_latents_predict_and_noise_does_not(cohorts):
    ev = {k: cp.event_table(v) for k, v in cohorts.items()}
    xtr, xte = _features(cohorts["train"]), _features(cohorts["test"])
    fit = cp.fit_predict(xtr, ev["train"], xte, 3.2, seed=0)
    res = cp.evaluate(fit["test"], ev["test"], 3.2, fit["threshold"], n_boot=100)
    assert res["c_interval"]["estimate"] > 0.75 and res["td_auc"]["estimate"] > 0.75
    assert res["c_interval"]["ci_low"] <= res["c_interval"]["estimate"] <= res["c_interval"]["ci_high"]
    # the rates are the confusion counts of the thresholded probability among patients known at the horizon
    j = fit["test"].merge(ev["test"], on="patient_id")
    label, known = cp.horizon_status(j, 3.2)
    bm = binary_metrics(label[known], j["prob"].to_numpy()[known], fit["threshold"])
    for k in ("accuracy", "ppv", "npv", "sensitivity", "specificity"):
        assert res[k]["estimate"] == pytest.approx(getattr(bm, k)), k
    assert res["counts"]["events_by_horizon"] == label.sum()
    rng = np.random.default_rng(0)
    noise_tr = pd.DataFrame(rng.normal(size=(len(xtr), 4)), index=xtr.index)
    noise_te = pd.DataFrame(rng.normal(size=(len(xte), 4)), index=xte.index)
    fit0 = cp.fit_predict(noise_tr, ev["train"], noise_te, 3.2, seed=0)
    res0 = cp.evaluate(fit0["test"], ev["test"], 3.2, fit0["threshold"], n_boot=100)
    assert res0["c_interval"]["estimate"] < 0.62
    # cross-fitted training scores and held-out scores share one scale (one penalty for the folds and the
    # final model): the Weibull model and the thresholds fitted on the first apply to the second
    for f in (fit, fit0):
        ratio = f["test"]["score"].std() / f["train"]["score"].std()
        assert 0.5 < ratio < 2.0, ratio


def test_cli_simulate_and_bad_config(tmp_path):
    from raoutcome.cli import app

    runner = CliRunner()
    bad = tmp_path / "bad.toml"
    bad.write_text("[simulation]\nn_patients = 3\nrender = 'sometimes'\n")
    r = runner.invoke(app, ["cervical", "simulate", "--config", str(bad), "--out", str(tmp_path / "x")])
    assert r.exit_code == 2 and "render" in r.output and "Traceback" not in r.output
    good = tmp_path / "good.toml"
    good.write_text("[simulation]\nn_patients = 4\nrender = 'none'\n")
    r = runner.invoke(app, ["cervical", "simulate", "--config", str(good), "--out", str(tmp_path / "c"), "--seed", "9"])
    assert r.exit_code == 0, r.output
    assert len(pd.read_csv(tmp_path / "c" / "patients.csv")) == 4
    (tmp_path / "occupied").mkdir()
    (tmp_path / "occupied" / "keep.txt").write_text("mine")
    r = runner.invoke(app, ["cervical", "simulate", "--config", str(good), "--out", str(tmp_path / "occupied")])
    assert r.exit_code == 2 and "refusing" in r.output
    assert (tmp_path / "occupied" / "keep.txt").read_text() == "mine"


@pytest.mark.slow
def test_study_end_to_end_small(tmp_path):
    """The whole study on a tiny setting: cohorts, detector, measurement, prediction, report (minutes)."""
    pytest.importorskip("SimpleITK")
    import json

    from raoutcome.workflows.cervical_study import run_study

    cfg = tmp_path / "study.toml"
    cfg.write_text("[simulation]\nrate_log_mean = 0.3\nprior_years = [-1.5]\n\n[study]\nn_train = 80\nn_test = 60\n"
                   "detector_steps = 60\nbootstrap = 20\n")
    res = run_study(cfg, tmp_path / "out", log=lambda m: None)
    out = tmp_path / "out"
    assert (out / "report.html").stat().st_size > 10_000
    assert json.loads((out / "detector.validation.json").read_text())["validation_patients"]
    agree = pd.read_csv(out / "measurement_agreement.csv")
    assert set(agree["view"]) == {"cervical_neutral", "cervical_flexion"}
    assert {"mr", "radiograph", "both", "truth (ceiling)", "mr + prior", "radiograph + prior", "both + prior",
            "truth + prior (ceiling)"} == {r["features"] for r in res["prediction"]}
    # the longitudinal rows are on the same held-out patients as the baseline-only ones
    metrics = pd.DataFrame(res["prediction"]).set_index(["features", "threshold_rule"])
    assert metrics.loc[("radiograph + prior", "accuracy"), "n"] == metrics.loc[("radiograph", "accuracy"), "n"]
    assert len(pd.read_csv(out / "detected_prior_test.csv")) == 2 * 60
    assert "slopes per year" in (out / "report.html").read_text(encoding="utf-8")
    measured = pd.read_csv(out / "measured_test.csv")
    assert len(measured) == 2 * 60 and measured["adi_mm"].between(0, 30).all()
    # stages are skipped when their outputs exist
    before = (out / "detector.safetensors").stat().st_mtime_ns
    run_study(cfg, out, log=lambda m: None)
    assert (out / "detector.safetensors").stat().st_mtime_ns == before
