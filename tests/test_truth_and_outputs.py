"""The torch-free reader of a simulation's truth/ folder and the analysis output names shared with the report."""
from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd

from raoutcome.analysis import outputs
from raoutcome.analysis.truth import read_truth


def test_read_truth_reads_oracle_visits_and_region_maps(tmp_path):
    (tmp_path / "truth" / "regions").mkdir(parents=True)
    (tmp_path / "truth" / "oracle.json").write_text(json.dumps({"haq": {"r2_noise_free": 0.62}}))
    pd.DataFrame({"patient_id": ["1"], "visit_id": ["007"], "damage": [0.5]}).to_csv(
        tmp_path / "truth" / "visits.csv", index=False)
    (tmp_path / "truth" / "regions" / "p1_v0_hand_left.png").write_bytes(b"png")
    truth = read_truth(tmp_path)
    assert truth.exists and truth.oracle_value("haq.r2_noise_free") == 0.62
    assert truth.visits["visit_id"].tolist() == ["007"]  # ids stay strings
    assert truth.region_map("images/p1_v0_hand_left.dcm").name == "p1_v0_hand_left.png"
    assert truth.region_map("images/p2_v0_hand_left.png") is None
    real = read_truth(tmp_path / "elsewhere")
    assert not real.exists and real.oracle == {} and real.visits is None


def test_statistics_readers_do_not_import_torch():
    code = ("import sys, raoutcome.analysis.truth, raoutcome.analysis.outputs, raoutcome.grid, raoutcome.outcomes, "
            "raoutcome.anatomy; assert 'torch' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_analyze_and_the_report_use_the_shared_file_names():
    from pathlib import Path

    import raoutcome.reporting.study_report as report
    import raoutcome.workflows.analyze as analyze

    for module in (analyze, report):
        text = Path(module.__file__).read_text()
        for name in outputs.__all__:
            value = getattr(outputs, name)
            if isinstance(value, str) and value != outputs.RETEST_CSV:
                assert f'"{value}"' not in text, f"{module.__name__} spells {value} instead of outputs.{name}"
    assert outputs.scatter("haq") == "scatter_haq.png"


def test_models_statistics_and_metrics_never_import_the_simulator():
    """ARCHITECTURE.md: ``synth`` is not imported by the model or the analyses (they would see the truth). Checked
    on the import statements of every module under these packages (the workflows may orchestrate the simulator)."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "src" / "raoutcome"
    found = []
    for package in ("analysis", "evaluation", "models", "training", "attribution", "imaging"):
        for path in sorted((root / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                         [node.module or ""] + [f"{node.module}.{a.name}" for a in node.names]
                         if isinstance(node, ast.ImportFrom) else [])
                if any(n == "raoutcome.synth" or n.startswith("raoutcome.synth.") for n in names):
                    found.append(f"{path.relative_to(root)}:{node.lineno}")
    assert not found, "imports of raoutcome.synth: " + ", ".join(found)
