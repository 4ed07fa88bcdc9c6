"""The public API: light import, version from metadata, the five calls end to end, logging instead of
printing, one progress switch, filterable warning categories."""
from __future__ import annotations

import ast
import importlib
import logging
import subprocess
import sys
import warnings
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest

import raoutcome as ro
from conftest import write_tiny_cohort

SRC = Path(__file__).resolve().parents[1] / "src" / "raoutcome"

TINY = {"model": {"encoder": "test_efficientnet", "image_size": 32, "d_model": 16, "attention_heads": 2,
                  "layers": 1},
        "train": {"epochs": 1, "batch_patients": 2, "num_workers": 0, "val_fraction": 0.25},
        "cv": {"folds": 2}, "readout": {"heads": []}, "predict": {"num_workers": 0}}


def test_import_is_light_and_torch_free():
    code = ("import sys, raoutcome as ro; heavy = [m for m in ('torch', 'pandas', 'xarray', 'lifelines') "
            "if m in sys.modules]; print(heavy, ro.__version__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.startswith("[] ")


def test_version_comes_from_package_metadata():
    assert ro.__version__ == metadata.version("raoutcome")


def test_every_public_name_resolves_and_unknown_names_fail():
    for name in ro.__all__:
        assert getattr(ro, name) is not None
    assert set(ro.__all__) <= set(dir(ro))
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        ro.nope  # noqa: B018


def _public_modules():
    for path in sorted(SRC.rglob("*.py")):
        if path.name.startswith("_") and path.name != "__init__.py":
            continue
        if any(part.startswith("_") and part != "__init__.py" for part in path.relative_to(SRC).parts):
            continue
        yield path


def test_public_modules_declare_all_and_every_listed_name_exists():
    """``__all__`` in the modules that have one names only things the module defines or imports."""
    for path in _public_modules():
        tree = ast.parse(path.read_text())
        declared = [n for n in tree.body if isinstance(n, (ast.Assign, ast.AnnAssign))
                    and any(getattr(t, "id", None) == "__all__" for t in
                            (n.targets if isinstance(n, ast.Assign) else [n.target]))]
        if not declared:
            continue
        mod = ".".join(("raoutcome",) + path.relative_to(SRC).with_suffix("").parts).removesuffix(".__init__")
        module = importlib.import_module(mod)
        for name in module.__all__:
            assert hasattr(module, name), f"{mod}.__all__ lists {name!r}, which it does not define"


def test_the_library_never_prints():
    """Only the CLI writes to the terminal; the library logs (``print(`` calls found by the AST)."""
    offenders = []
    for path in SRC.rglob("*.py"):
        if path.name == "cli.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "print":
                offenders.append(f"{path.relative_to(SRC)}:{node.lineno}")
    assert offenders == []


def test_five_calls_end_to_end(tmp_path, caplog):
    import torch
    torch.set_num_threads(1)
    root = write_tiny_cohort(tmp_path / "cohort", n_patients=8, n_visits=3)
    cohort = ro.load_cohort(root)
    assert len(cohort.patients) == 8
    with caplog.at_level(logging.INFO, logger="raoutcome"):
        run = ro.train(cohort, {**TINY, "data": {"cache_dir": str(tmp_path / "cache")}}, out=tmp_path / "run")
    assert (run / "cv_predictions.nc").exists()
    # training reported its epochs through logging, by member, under the raoutcome logger
    epochs = [r for r in caplog.records if r.name == "raoutcome.training.trainer" and "epoch 1/1" in r.message]
    assert {r.message.split()[0] for r in epochs} == {"fold_0", "fold_1"}
    preds = ro.predict(run, cohort, out=tmp_path / "preds.nc")
    assert set(preds["patient_id"].values) == set(cohort.patient_ids)
    assert np.isfinite(preds["svdh"].values).all()
    result = ro.analyze(cohort, preds, out=tmp_path / "analysis", n_boot=20)
    assert result.path == tmp_path / "analysis" and (result.path / "summary.json").exists()
    assert result.tables and result.table(result.tables[0]).shape[0] > 0
    with pytest.raises(KeyError, match="no table"):
        result.table("nope")


def test_train_refuses_a_bad_mapping_key(tmp_path):
    with pytest.raises(ro.InputError, match="nope"):
        ro.train(None, {"train": {"nope": 1}}, out=tmp_path / "run")


@pytest.fixture
def restore_logging():
    """The CLI configures process-wide logging: put it back for the tests that follow."""
    logger, warn_logger = logging.getLogger("raoutcome"), logging.getLogger("py.warnings")
    saved = (logger.level, list(logger.handlers), list(warn_logger.handlers))
    yield
    from raoutcome.progress import set_progress

    logger.setLevel(saved[0])
    logger.handlers[:] = saved[1]
    warn_logger.handlers[:] = saved[2]
    logging.captureWarnings(False)
    set_progress(None)


@pytest.mark.usefixtures("restore_logging")
def test_cli_quiet_and_verbose_configure_the_raoutcome_logger(tiny_cohort):
    from typer.testing import CliRunner

    from raoutcome.cli import app

    runner = CliRunner()
    assert runner.invoke(app, ["--quiet", "validate", str(tiny_cohort)]).exit_code == 0
    assert logging.getLogger("raoutcome").level == logging.WARNING
    from raoutcome.progress import progress_enabled, set_progress
    assert progress_enabled() is False
    set_progress(None)
    assert runner.invoke(app, ["--verbose", "validate", str(tiny_cohort)]).exit_code == 0
    assert logging.getLogger("raoutcome").level == logging.DEBUG
    assert runner.invoke(app, ["validate", str(tiny_cohort)]).exit_code == 0
    assert logging.getLogger("raoutcome").level == logging.INFO
    handlers = [h for h in logging.getLogger("raoutcome").handlers if getattr(h, "_raoutcome_cli_handler", False)]
    assert len(handlers) == 1  # configured three times, one handler
    version = runner.invoke(app, ["--version"])
    assert version.exit_code == 0 and ro.__version__ in version.output


def test_progress_is_off_off_a_terminal_and_switchable(monkeypatch):
    from raoutcome.progress import progress_enabled, set_progress, tqdm

    monkeypatch.delenv("RAOUTCOME_PROGRESS", raising=False)
    set_progress(None)
    assert progress_enabled() is False  # pytest captures stderr: not a TTY
    assert tqdm(range(3)).disable is True
    monkeypatch.setenv("RAOUTCOME_PROGRESS", "1")
    assert progress_enabled() is True and tqdm(range(3), disable=True).disable is True
    set_progress(False)
    try:
        assert tqdm(range(3)).disable is True
    finally:
        set_progress(None)


def test_warnings_have_filterable_categories():
    from raoutcome.attribution.regions import fallback_regions
    from raoutcome.errors import NotCrossFittedWarning, RaoutcomeWarning, RegionFallbackWarning

    image = np.zeros((32, 32), np.float32)
    image[8:24, 8:24] = 1
    with pytest.warns(RegionFallbackWarning):
        fallback_regions(image)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.simplefilter("ignore", RaoutcomeWarning)  # the base class silences every library warning
        fallback_regions(image)
    assert issubclass(NotCrossFittedWarning, RaoutcomeWarning) and issubclass(RaoutcomeWarning, UserWarning)
