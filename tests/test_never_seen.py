"""Accuracy on never-seen patients (raoutcome.workflows.never_seen) and the demo's test stage, on simulated
tables-only cohorts with predictions built from their recorded values (no training: the numbers are checked
by hand with numpy / lifelines)."""
from __future__ import annotations

import json
import types
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from lifelines.utils import concordance_index

from raoutcome.workflows.never_seen import never_seen_table
from raoutcome.predictions import from_frame, save_predictions
from raoutcome.synth import simulate

SIM = "seed = {seed}\nn_patients = {n}\nrender = false\nworkers = 1\n"


def _cohort(tmp: Path, name: str, seed: int, n: int) -> Path:
    cfg = tmp / f"{name}.toml"
    cfg.write_text(SIM.format(seed=seed, n=n))
    return simulate(cfg, tmp / name)


def _predictions(cohort: Path, out: Path, seed: int, folds: int = 0) -> Path:
    """Noisy copies of the recorded values; risk = the recorded SvdH (ranks deformity like the Sharp score)."""
    rng = np.random.default_rng(seed)
    v = pd.read_csv(cohort / "visits.csv")
    frame = pd.DataFrame({"patient_id": v["patient_id"], "visit_id": v["visit_id"], "time_years": v["time_years"],
                          "svdh": v["svdh_total"].fillna(0) + rng.normal(0, 3, len(v)),
                          "haq": v["haq"].fillna(1) + rng.normal(0, 0.3, len(v)),
                          "pain": v["pain"].fillna(40), "risk": np.log1p(v["svdh_total"].fillna(0))})
    pids = sorted(v["patient_id"].unique())
    fold_of = {p: i % folds for i, p in enumerate(pids)} if folds else None
    save_predictions(from_frame(frame, folds=fold_of), out)
    return out


def _by_hand(cohort: Path, predictions: Path) -> dict:
    from raoutcome.predictions import load_predictions, to_frame

    f = to_frame(load_predictions(predictions))
    v = pd.read_csv(cohort / "visits.csv")
    m = f.merge(v[["patient_id", "visit_id", "svdh_total", "haq"]], on=["patient_id", "visit_id"],
                suffixes=("", "_obs"))
    ok = m[["svdh", "svdh_total"]].dropna()
    h = m[["haq", "haq_obs"]].dropna()
    ev = pd.read_csv(cohort / "events.csv")
    ev = ev[ev["event"] == "deformity"].set_index("patient_id")
    first = f.sort_values(["patient_id", "time_years"]).groupby("patient_id").head(1).set_index("patient_id")
    e = ev.loc[first.index]
    return {"r": np.corrcoef(ok["svdh"], ok["svdh_total"])[0, 1],
            "r2": 1 - ((h["haq_obs"] - h["haq"]) ** 2).sum() / ((h["haq_obs"] - h["haq_obs"].mean()) ** 2).sum(),
            "c": concordance_index(e["time_years"], -first["risk"], e["observed"]), "events": int(e["observed"].sum())}


def test_table_pools_parts_and_splits_folds_with_hand_computed_figures(tmp_path):
    train = _cohort(tmp_path, "train", 5, 30)
    test = _cohort(tmp_path, "test", 7, 20)
    p_train = _predictions(train, tmp_path / "train.nc", 1, folds=2)
    p_test = _predictions(test, tmp_path / "test.nc", 2)
    table = never_seen_table([("train", p_train, train), ("test", p_test, test)]).set_index("patients")
    assert list(table.index) == ["all never seen", "train", "test", "train, fold 0", "train, fold 1"]
    assert {"svdh_pearson_r", "haq_r2", "pain_r2", "c_index_true_damage"} <= set(table.columns)
    for name, cohort, pred in (("train", train, p_train), ("test", test, p_test)):
        hand = _by_hand(cohort, pred)
        row = table.loc[name]
        assert row["svdh_pearson_r"] == pytest.approx(hand["r"], abs=1e-9)
        assert row["haq_r2"] == pytest.approx(hand["r2"], abs=1e-9)
        assert row["c_index"] == pytest.approx(hand["c"], abs=1e-9)
        assert row["n_events"] == hand["events"]
        oracle = json.loads((cohort / "truth" / "oracle.json").read_text())
        assert row["c_index_oracle"] == pytest.approx(oracle["deformity"]["c_index_oracle"], abs=1e-9)
    pooled = table.loc["all never seen"]
    assert pooled["n_patients"] == 50 and pooled["n_events"] == table.loc["train", "n_events"] + table.loc[
        "test", "n_events"]
    folds = table.loc[["train, fold 0", "train, fold 1"]]
    assert folds["n_patients"].sum() == 30 and folds["n_events"].sum() == table.loc["train", "n_events"]
    with pytest.raises(ValueError, match="risk_at"):
        never_seen_table([("test", p_test, test)], risk_at="middle")


def test_demo_test_stage_simulates_a_new_draw_predicts_it_and_writes_the_table(tmp_path, monkeypatch):
    import raoutcome.training as training
    from raoutcome.workflows import study

    train = _cohort(tmp_path, "train", 5, 24)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    _predictions(train, run_dir / "cv_predictions.nc", 1, folds=2)
    calls = []

    def fake_predict_run(run, cohort, out):  # the trained ensemble, stood in by noisy recorded values
        calls.append((Path(run), Path(cohort.root)))
        return _predictions(Path(cohort.root), Path(out), 3)

    monkeypatch.setattr(training, "predict_run", fake_predict_run)
    sim = tmp_path / "sim.toml"
    sim.write_text(SIM.format(seed=5, n=24))
    paths = {("train", "run"): run_dir, ("validate", "cohort"): train}
    stage_dir = tmp_path / "stage"
    stage_dir.mkdir()
    ctx = types.SimpleNamespace(stage_dir=stage_dir, path=lambda stage, key: paths[(stage, key)])
    out = study._stage_test(sim, 10)(ctx)
    assert out["seed"] == 5 + study.TEST_SEED_OFFSET and out["n_patients"] == 10
    stored = json.loads((stage_dir / "cohort" / "truth" / "simulation.json").read_text())["config"]
    assert stored["seed"] == 5 + study.TEST_SEED_OFFSET and stored["n_patients"] == 10
    assert calls == [(run_dir, stage_dir / "cohort")]
    table = pd.read_csv(out["never_seen"]).set_index("patients")
    assert table.loc["all never seen", "n_patients"] == 34 and table.loc["test", "n_patients"] == 10
    assert "train, fold 1" in table.index

    from raoutcome.reporting.study_report import _never_seen_section

    section = _never_seen_section(table.reset_index())
    assert section.missing is None and "independent test cohort" in str(section.blocks[0].frame["patients"].tolist())
