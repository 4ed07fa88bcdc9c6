"""analyses/learning_check.py derives its training configs from the demo config."""
from __future__ import annotations

import importlib.util
from pathlib import Path

from raoutcome.training.config import load_config

REPO = Path(__file__).resolve().parents[1]


def _module():
    spec = importlib.util.spec_from_file_location("learning_check", REPO / "analyses" / "learning_check.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_derived_configs_switch_the_svdh_head_and_the_epochs(tmp_path):
    lc = _module()
    demo = REPO / "cohorts" / "train_demo.toml"
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


def test_label_free_reference_scores_the_cohort_or_stays_empty_without_landmarks(small_study):
    from dataclasses import replace

    from raoutcome.cohort import load

    lc = _module()
    cohort = load(small_study["cohort"])
    ref = lc.label_free_reference(cohort, folds=2)
    assert 0.0 <= ref["c_index_baseline"] <= 1.0 and ref["r_log_svdh"] > 0.4 and ref["folds"] == 2
    assert lc.label_free_reference(replace(cohort, landmarks=None)) == {}
