"""The clinician notebook of the RA cervical study (notebooks/cervical_patient.ipynb).

Fast: the committed notebook is what notebooks/build_cervical_notebook.py writes, without outputs.
Slow: it runs top to bottom on a small study and shows its conclusions.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parents[1]


def _builder():
    spec = importlib.util.spec_from_file_location("build_cervical_notebook",
                                                  REPO / "notebooks" / "build_cervical_notebook.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_committed_notebook_is_built_without_outputs(tmp_path):
    built = _builder().build(tmp_path)
    committed = REPO / "notebooks" / built.name
    assert committed.read_text() == built.read_text(), "run `python notebooks/build_cervical_notebook.py`"
    nb = nbformat.read(committed, as_version=4)
    assert all(c.outputs == [] for c in nb.cells if c.cell_type == "code")


@pytest.mark.slow
def test_notebook_runs_on_a_small_study(tmp_path, monkeypatch):
    pytest.importorskip("SimpleITK")
    from nbclient import NotebookClient

    monkeypatch.setenv("RAOUTCOME_CERVICAL_STUDY", str(tmp_path / "study"))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(REPO / "notebooks" / "cervical_patient.ipynb", as_version=4)
    NotebookClient(nb, timeout=1800, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    text = "\n".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs
                     if o.output_type == "stream")
    for needle in ("predicted P(deformity by", "adi_mm", "risk percentile among", "baseline pannus"):
        assert needle in text, needle
