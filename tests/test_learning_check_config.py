"""analyses/learning_check.py derives its training configs from the demo config."""
from __future__ import annotations

from pathlib import Path

from conftest import load_analysis

from raoutcome.training.config import load_config

REPO = Path(__file__).resolve().parents[1]


def _module():
    return load_analysis("learning_check")


def test_derived_configs_switch_the_svdh_head_and_the_epochs(tmp_path):
    lc = _module()
    demo = REPO / "cohorts" / "train_image.toml"
    longer = load_config(lc.derived_config(demo, tmp_path / "full.toml", "longer", epochs=11, folds=3))
    assert longer.train["epochs"] == 11 and longer.train["patience"] == 11 and longer.heads["svdh"]
    assert longer.cv["folds"] == 3
    no_svdh = load_config(lc.no_svdh_config(tmp_path / "full.toml", tmp_path / "no_svdh.toml"))
    assert not no_svdh.heads["svdh"] and no_svdh.train["epochs"] == 11
    assert no_svdh.readout["joint_anomaly"] and no_svdh.readout["risk_inputs"] == ["joint_anomaly"]
    base = load_config(demo)
    expected = {f"train.epochs: {base.train['epochs']} -> 11", f"train.patience: {base.train['patience']} -> 11",
                "heads.svdh: True -> False", "readout.joint_anomaly: False -> True",
                "readout.risk_inputs: [] -> ['joint_anomaly']"}
    if base.cv["folds"] != 3:
        expected.add(f"cv.folds: {base.cv['folds']} -> 3")
    assert set(no_svdh.differences(base)) == expected


def test_full_config_reads_log_erosion_and_the_joint_anomaly_in_its_risk_readout(tmp_path):
    lc = _module()
    demo = REPO / "cohorts" / "train_image.toml"
    full = load_config(lc.full_config(demo, tmp_path / "full.toml", epochs=9, folds=3))
    assert full.heads["svdh"] and full.train["epochs"] == 9 and full.cv["folds"] == 3
    assert full.readout["joint_anomaly"] and full.readout["risk_inputs"] == ["log_erosion", "joint_anomaly"]
    kept = load_config(lc.full_config(demo, tmp_path / "kept.toml", readout={}))  # no readout override
    assert kept.readout == load_config(demo).readout and kept.train == load_config(demo).train


def test_label_free_reference_scores_the_cohort_or_stays_empty_without_landmarks(small_study):
    from dataclasses import replace

    from raoutcome.cohort import load

    lc = _module()
    cohort = load(small_study["cohort"])
    ref = lc.label_free_reference(cohort, folds=2)
    assert 0.0 <= ref["c_index_baseline"] <= 1.0 and ref["r_log_svdh"] > 0.4 and ref["folds"] == 2
    assert lc.label_free_reference(replace(cohort, landmarks=None)) == {}


def test_never_seen_pools_cohorts_under_distinct_ids_and_recomputes_the_ceilings(small_study):
    import numpy as np
    from lifelines.utils import concordance_index

    from raoutcome.synth.oracle import compute_oracle

    lc = _module()
    part = (small_study["predictions"], small_study["cohort"])
    one = lc.never_seen([("train", *part)])
    assert one["oracle"] == compute_oracle(small_study["cohort"], null=False)
    assert one["frame"]["patient_id"].str.startswith("train/").all()

    res = lc.evaluate(one["frame"], one["visits"], one["events"], "baseline")
    first = one["frame"].sort_values(["patient_id", "time_years"]).groupby("patient_id").head(1)
    ev = one["events"].set_index("patient_id").loc[first["patient_id"]]
    assert np.isclose(res["c_index"], concordance_index(ev["time_years"], -first["risk"].to_numpy(), ev["observed"]))
    assert res["n_events"] == int(one["events"]["observed"].sum())

    both = lc.never_seen([("train", *part), ("test", *part)])  # the same patients twice, under two prefixes
    assert both["frame"]["patient_id"].nunique() == 2 * one["frame"]["patient_id"].nunique()
    assert len(both["events"]) == 2 * len(one["events"])
    pooled = lc.evaluate(both["frame"], both["visits"], both["events"], "baseline")
    assert pooled["n_patients"] == 2 * res["n_patients"] and pooled["n_events"] == 2 * res["n_events"]
    assert np.isclose(pooled["haq_r2"], res["haq_r2"])  # duplicating every row leaves R^2 as it was
    assert np.isclose(both["oracle"]["haq"]["r2_noise_free"], one["oracle"]["haq"]["r2_noise_free"])

    targets = lc.targets_of(one["oracle"])
    assert np.isclose(targets["c_index"], one["oracle"]["deformity"]["c_index_oracle"] - lc.C_MARGIN)
    rows = lc.judge({"m": {"c_index": targets["c_index"] + 0.01, "haq_r2": targets["haq_r2"] - 0.01}}, targets)
    assert {(r["metric"], r["pass"]) for r in rows} == {("c_index", True), ("haq_r2", False)}


def test_the_test_cohort_is_a_new_draw_that_a_run_predicts_and_that_pools_with_the_out_of_fold_part(small_study, tmp_path):
    import json

    import pandas as pd
    import pytest

    from raoutcome.synth.config import load_config as load_sim_config

    lc = _module()
    sim = small_study["out_dir"] / "configs" / "sim.toml"
    test_dir = lc.simulate_test_cohort(sim, tmp_path / "test_cohort", 6)
    assert len(pd.read_csv(test_dir / "truth" / "patients.csv")) == 6
    stored = json.loads((test_dir / "truth" / "simulation.json").read_text())["config"]
    assert stored["seed"] == load_sim_config(sim).seed + lc.TEST_SEED_OFFSET and stored["n_patients"] == 6

    out = tmp_path / "test_predictions.nc"
    timings = lc.side_by_side({"predict_test": ["predict", "--run", str(small_study["run"]), "--cohort",
                                                str(test_dir), "--out", str(out)]}, tmp_path, 1)
    assert out.exists() and timings["predict_test"] > 0 and (tmp_path / "predict_test.log").exists()
    pooled = lc.never_seen([("train", small_study["predictions"], small_study["cohort"]), ("test", out, test_dir)])
    ids = pooled["frame"]["patient_id"]
    assert ids.str.startswith("test/").any() and ids.str.startswith("train/").any()
    assert pooled["oracle"]["n_patients"] == 6 + len(pd.read_csv(small_study["cohort"] / "patients.csv"))
    res = lc.evaluate(pooled["frame"], pooled["visits"], pooled["events"], "baseline")
    assert res["n_patients"] == ids.nunique() and 0.0 <= res["c_index"] <= 1.0

    with pytest.raises(SystemExit, match="predict_bad failed"):  # a failing command names itself and its log
        lc.side_by_side({"predict_bad": ["predict", "--run", str(tmp_path / "no_run"), "--cohort", str(test_dir),
                                         "--out", str(tmp_path / "x.nc")]}, tmp_path, 1)


def test_the_site_route_keeps_its_own_readouts_and_trains_the_site_route_twice(tmp_path):
    """A site-route config: both derived models stay on the site route, the full one keeps its config's readouts,
    the no-human-score one its risk inputs less the counts, the joint anomaly kept where the config reads it."""
    from raoutcome.training.config import write_config_variant

    lc = _module()
    sites = REPO / "cohorts" / "train_sites.toml"
    base = load_config(sites)
    full_ro, no_svdh_ro = lc.route_readouts(sites)
    full = load_config(lc.full_config(sites, tmp_path / "full.toml", folds=3, readout=full_ro))
    no_svdh = load_config(lc.no_svdh_config(tmp_path / "full.toml", tmp_path / "no_svdh.toml", readout=no_svdh_ro))
    assert full.model["route"] == no_svdh.model["route"] == "sites"
    assert full.heads["svdh"] and not no_svdh.heads["svdh"] and full.sites == no_svdh.sites == base.sites
    assert full.readout == base.readout
    assert no_svdh.readout["risk_inputs"] == ["joint_anomaly"] and no_svdh.readout["joint_anomaly"]
    assert lc.route_readouts(REPO / "cohorts" / "train_image.toml") == (lc.FULL_READOUT, lc.NO_SVDH_READOUT)
    anomaly = write_config_variant(sites, {"readout": {"joint_anomaly": True, "risk_inputs": [
        "log_erosion", "haq", "joint_anomaly"]}}, tmp_path / "anomaly.toml")
    assert lc.route_readouts(anomaly) == ({}, lc.NO_SVDH_READOUT)


def test_per_fold_judges_each_folds_patients_alone():
    import numpy as np
    import pandas as pd

    lc = _module()
    rng = np.random.default_rng(3)
    pids = [f"P{i}" for i in range(12)]
    frame = pd.DataFrame({"patient_id": np.repeat(pids, 2), "visit_id": ["V0", "V1"] * 12,
                          "time_years": [0.0, 1.0] * 12, "fold": np.repeat([0, 1, 0, 1] * 3, 2)})
    truth = rng.normal(10, 3, len(frame))
    frame["svdh"] = truth + np.where(frame["fold"] == 0, 0.1, 5.0) * rng.normal(size=len(frame))  # fold 1 noisier
    frame["haq"] = rng.uniform(0, 3, len(frame))
    frame["risk"] = rng.normal(size=len(frame))
    visits = frame[["patient_id", "visit_id"]].assign(svdh_total=truth, haq=frame["haq"] + 0.1)
    events = pd.DataFrame({"patient_id": pids, "time_years": rng.uniform(1, 5, 12), "observed": [1, 1, 0, 0] * 3})
    rows = lc.per_fold(frame, visits, events, "baseline")
    assert [r["fold"] for r in rows] == [0, 1] and all(r["n_patients"] == 6 for r in rows)
    assert rows[0]["svdh_pearson_r"] > 0.99 > rows[1]["svdh_pearson_r"]
    one = frame[frame["fold"] == 1]
    alone = lc.evaluate(one, visits[visits["patient_id"].isin(set(one["patient_id"]))],
                        events[events["patient_id"].isin(set(one["patient_id"]))], "baseline")
    assert rows[1] == {"fold": 1, **alone}
    assert lc.per_fold(frame.drop(columns="fold"), visits, events, "baseline") == []


def test_model_configs_set_each_routes_epochs_and_take_the_no_human_model_from_another_recipe(tmp_path):
    lc = _module()
    sites, image = REPO / "cohorts" / "train_sites.toml", REPO / "cohorts" / "train_image.toml"
    full, no_svdh = (load_config(p) for p in lc.model_configs(sites, image, tmp_path, epochs=4, folds=3))
    assert full.model["route"] == "sites" and full.heads["svdh"] and full.sites["epochs"] == 4
    assert full.train["epochs"] == load_config(sites).train["epochs"]  # the site route's epochs are [sites] epochs
    assert no_svdh.model["route"] == "image" and not no_svdh.heads["svdh"] and no_svdh.cv["folds"] == 3
    assert no_svdh.train["epochs"] == no_svdh.train["patience"] == 4
    assert no_svdh.readout["risk_inputs"] == lc.NO_SVDH_READOUT["risk_inputs"]  # the image route's readouts
    same, same_no = (load_config(p) for p in lc.model_configs(sites, None, tmp_path / "b", epochs=None, folds=3))
    assert same_no.model["route"] == "sites" and not same_no.heads["svdh"] and same.sites == load_config(sites).sites
