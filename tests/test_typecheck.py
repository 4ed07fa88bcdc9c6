"""mypy passes on the public API (the files listed in pyproject's [tool.mypy]; `make typecheck`)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_public_api_type_checks():
    api = pytest.importorskip("mypy.api", reason="mypy (in the test extra) is not installed")
    cwd = os.getcwd()
    os.chdir(REPO)  # mypy reads [tool.mypy] from ./pyproject.toml
    try:
        stdout, stderr, status = api.run(["--config-file", str(REPO / "pyproject.toml")])
    finally:
        os.chdir(cwd)
    assert status == 0, stdout + stderr
    assert "Success" in stdout
