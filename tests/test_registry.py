"""The outcome and view registries: a new outcome or view registered in one place (here, in the test) trains,
predicts, reaches Predictions, ``analyze``'s metrics and the report, with no other source file edited."""
from __future__ import annotations

import ast
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import TINY_MODEL_TOML, write_tiny_cohort
from raoutcome import anatomy, outcomes
from raoutcome.cohort import load
from raoutcome.outcomes import Outcome, registered
from raoutcome.predictions import load_predictions, to_frame
from raoutcome.training import predict_run, train_run

torch.set_num_threads(1)

DAS28 = Outcome("das28", kind="bounded", column="das28", upper=10.0, label="DAS28", unit="0–10", scale=1.2)

TINY = TINY_MODEL_TOML + """[heads]
das28 = true
[train]
epochs = 1
batch_patients = 4
num_workers = 0
val_fraction = 0.25
[cv]
folds = 2
[predict]
num_workers = 0
"""


def test_builtin_registry_is_consistent():
    assert outcomes.outcome_names()[:4] == outcomes.LEGACY_OUTCOMES
    assert outcomes.score_variables() == ("svdh", "jsn", "erosion", "haq", "pain", "risk")
    assert outcomes.output_columns() == {"svdh": "svdh_total", "jsn": "svdh_jsn", "erosion": "svdh_erosion",
                                         "haq": "haq", "pain": "pain"}
    assert outcomes.risk_inputs_for(("svdh", "haq", "pain", "risk"), True) == (
        "log_jsn", "log_erosion", "haq", "pain", "joint_anomaly")
    assert outcomes.visit_columns() == anatomy.OUTCOMES
    with pytest.raises(ValueError, match="kind"):
        Outcome("x", kind="nominal", column="x")
    with pytest.raises(ValueError, match="already registered"):
        outcomes.register_outcome(Outcome("haq", kind="bounded", column="haq", upper=4.0))


SRC = Path(__file__).resolve().parents[1] / "src" / "raoutcome"
#: modules allowed to spell an outcome's name: the registry itself and the simulator (it writes the cohort)
NAMING_ALLOWED = ("outcomes.py", "synth/")
#: (module, string) pairs where the string is not the outcome, with the reason
NOT_AN_OUTCOME: dict[tuple[str, str], str] = {}


def _code_strings(tree: ast.AST):
    """String constants of a module that are not docstrings: (line, value)."""
    docs = {id(n.body[0].value) for n in ast.walk(tree)
            if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and n.body
            and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
    return [(n.lineno, n.value) for n in ast.walk(tree)
            if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docs]


def test_no_module_restates_an_outcome_name_outside_the_registry():
    """Issue #21: outside the registry (and the simulator) no code under src/raoutcome names an outcome by its
    string; every module loops over ``raoutcome.outcomes`` or reads a spec's fields instead."""
    # the built-in outcomes (registered by raoutcome.outcomes at import; outcomes registered on demand elsewhere,
    # such as the AS outcomes of raoutcome.msasss, are spelled in their own registry module)
    names = set(outcomes.LEGACY_OUTCOMES)
    assert names == {"svdh", "haq", "pain", "risk"}
    found = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC).as_posix()
        if rel.startswith(NAMING_ALLOWED):
            continue
        for line, value in _code_strings(ast.parse(path.read_text(encoding="utf-8"))):
            if value in names and (rel, value) not in NOT_AN_OUTCOME:
                found.append(f"src/raoutcome/{rel}:{line}: {value!r}")
    assert not found, "outcome names restated outside raoutcome.outcomes:\n" + "\n".join(found)


def test_the_restated_name_check_sees_code_but_not_docstrings():
    tree = ast.parse('"""The haq model."""\ndef f():\n    """haq"""\n    return x["haq"], f"{y}pain"\n')
    assert [v for _, v in _code_strings(tree)] == ["haq", "pain"]


def test_units_come_from_the_outcome_specs():
    from raoutcome.interop.results import outcome_label

    assert [outcome_label(n)[1] for n in ("svdh", "jsn", "haq", "pain", "risk")] == ["{score}"] * 3 + ["mm", "1"]
    with registered(Outcome("grip", kind="bounded", column="grip", upper=80.0, ucum="kg", title="Grip strength")):
        assert outcome_label("grip") == ("Predicted grip strength", "kg")
    assert outcome_label("unknown")[1] == "1"


def test_registered_outcome_is_gone_after_the_block():
    with registered(DAS28):
        assert "das28" in outcomes.score_variables()
    assert "das28" not in outcomes.score_variables()


@pytest.fixture(scope="module")
def das28_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("das28")
    with registered(DAS28):
        cohort = load(write_tiny_cohort(tmp / "cohort", n_patients=8, n_visits=3))
        (tmp / "train.toml").write_text(TINY)
        run = train_run(cohort, tmp / "train.toml", tmp / "run")
        pred = predict_run(run, cohort, tmp / "pred.nc")
        yield cohort, run, pred, tmp


def test_a_registered_outcome_trains_predicts_and_reaches_predictions(das28_run):
    cohort, run, pred, _ = das28_run
    best = torch.load(run / "fold_0" / "best.pt", weights_only=True)
    assert "das28" in best["spec"]["heads"]
    assert any(k.startswith("heads.das28.") for k in best["model"])
    frame = to_frame(load_predictions(pred))
    assert frame["das28"].notna().all()
    assert ((frame["das28"] >= 0) & (frame["das28"] <= 10)).all()
    oof = to_frame(load_predictions(run / "cv_predictions.nc"))
    assert oof["das28"].notna().all()
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["out_of_fold"]["das28"]["n"] == len(cohort.visits)
    history = metrics["members"][0]["history"][0]
    assert math.isfinite(history["train"]["das28"])  # its loss was part of training


def test_a_registered_outcome_reaches_analyze_metrics(das28_run):
    from raoutcome.workflows.analyze import analyze

    cohort, _, pred, tmp = das28_run
    with registered(DAS28):
        out = analyze(cohort, pred, tmp / "analysis", n_boot=5, n_sim=10, progress=False)
    table = pd.read_csv(out / "metrics.csv")
    das = table[table["head"] == "das28"]
    assert set(das["outcome"]) == {"das28"}
    assert np.isfinite(das.set_index("metric").loc["rmse", "estimate"])
    assert (out / "scatter_das28.png").exists()


def test_a_registered_outcome_reaches_the_report(das28_run):
    from raoutcome.reporting.html import render_report
    from raoutcome.reporting.study_report import _accuracy_section, _Folder
    from raoutcome.workflows.analyze import analyze
    from raoutcome.workflows.study import accuracy_vs_ceiling

    cohort, _, pred, tmp = das28_run
    with registered(DAS28):
        out = analyze(cohort, pred, tmp / "analysis_report", n_boot=5, n_sim=10, progress=False)
        accuracy = accuracy_vs_ceiling(cohort, pred, out / "metrics.csv", n_boot=5)
        assert {"R²", "Pearson r"} <= set(accuracy.loc[accuracy["head"] == "das28", "metric"])
        assert set(accuracy.loc[accuracy["head"] == "das28", "outcome"]) == {"DAS28"}
        html = render_report("t", [_accuracy_section(_Folder(out), accuracy, demo=False)])
    assert html.count("DAS28") >= 3  # headline table, the metrics table's row, the scatter caption


VIEW = anatomy.View("wrist_pa", "wrist")


def test_a_registered_view_trains_and_predicts_and_old_models_keep_their_embedding(tmp_path):
    from raoutcome.models.multitask import LongitudinalOutcomeModel, ModelSpec

    old = LongitudinalOutcomeModel(ModelSpec(encoder="test_efficientnet", d_model=16, attention_heads=2, layers=1),
                                   load_pretrained=False)
    n_old = old.fusion.view_embedding.weight.shape[0]
    with anatomy.views_registered(VIEW):
        assert anatomy.view_names()[-1] == "wrist_pa"
        root = write_tiny_cohort(tmp_path / "cohort", n_patients=6, n_visits=2)
        images = pd.read_csv(root / "images.csv")
        images.loc[images["view"] == "hand_right", "view"] = "wrist_pa"  # the cohort now has wrist images
        images.to_csv(root / "images.csv", index=False)
        cohort = load(root)
        assert "wrist_pa" in set(cohort.images["view"])
        (tmp_path / "train.toml").write_text(TINY.replace("das28 = true", "").replace("folds = 2", "folds = 1")
                                             .replace("val_fraction = 0.25", "val_fraction = 0.0"))
        run = train_run(cohort, tmp_path / "train.toml", tmp_path / "run")
        best = torch.load(run / "fold_0" / "best.pt", weights_only=True)
        assert best["spec"]["views"][-1] == "wrist_pa"
        assert best["model"]["fusion.view_embedding.weight"].shape[0] == n_old + 1
        frame = to_frame(load_predictions(predict_run(run, cohort, tmp_path / "pred.nc")))
        assert frame["svdh"].notna().all()
        # a model built before the view was registered keeps its embedding and still runs on its views
        assert old.fusion.view_embedding.weight.shape[0] == n_old
        x = torch.rand(2, 1, 32, 32)
        assert set(old.eval().forward_single_image(x, "hand_left")) >= {"svdh", "haq", "pain", "risk"}
        with pytest.raises(ValueError, match="trained with"):
            old.forward_single_image(x, "wrist_pa")
    assert "wrist_pa" not in anatomy.view_names()


def test_registering_a_view_changes_no_initial_weight_of_a_new_model():
    """The view embedding's rows are drawn per view name off the global RNG: with the same seed, a model built
    after another view is registered has the same initial weights (and one more embedding row)."""
    from raoutcome.models.multitask import LongitudinalOutcomeModel, ModelSpec

    def build():
        torch.manual_seed(123)
        return LongitudinalOutcomeModel(ModelSpec(encoder="test_efficientnet", d_model=16, attention_heads=2,
                                                  layers=1), load_pretrained=False).state_dict()

    before = build()
    with anatomy.views_registered(VIEW):
        after = build()
    assert before.keys() == after.keys()
    for key, value in before.items():
        if key == "fusion.view_embedding.weight":
            assert after[key].shape[0] == value.shape[0] + 1
            assert torch.equal(after[key][:-1], value)  # the old views' rows are unchanged
        else:
            assert torch.equal(after[key], value), key
    torch.manual_seed(124)
    other = LongitudinalOutcomeModel(ModelSpec(encoder="test_efficientnet", d_model=16, attention_heads=2,
                                               layers=1), load_pretrained=False).state_dict()
    assert not torch.equal(other["fusion.view_embedding.weight"], before["fusion.view_embedding.weight"])
