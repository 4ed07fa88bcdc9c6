"""A real package: `python -m build` makes a wheel and an sdist; the wheel carries every module and data
file of src/raoutcome; installed (not editable) into a fresh virtual environment it imports from there,
finds its packaged demo configs and runs `raoutcome --version` and `raoutcome demo --help` outside the
repository. The fresh environment gets the wheel alone; the third-party dependencies already installed
here are made visible to it through a .pth file (so the test needs no network)."""
from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import tarfile
import venv
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow
pytest.importorskip("build", reason="`build` (in the test extra) is not installed")


def _tracked_package_files() -> set[str]:
    out = subprocess.run(["git", "ls-files", "src/raoutcome"], cwd=REPO, capture_output=True, text=True)
    if out.returncode != 0:
        pytest.skip("not a git checkout")
    return {p.removeprefix("src/") for p in out.stdout.split() if "__pycache__" not in p}


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    proc = subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(REPO)],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out


def test_wheel_and_sdist_carry_every_file(dist):
    wheel = next(dist.glob("raoutcome-*.whl"))
    sdist = next(dist.glob("raoutcome-*.tar.gz"))
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = sorted(_tracked_package_files() - names)
    assert missing == [], f"the wheel lacks {missing}"
    assert any(n.endswith("entry_points.txt") for n in names)
    with tarfile.open(sdist) as tar:
        members = {m.split("/", 1)[1] for m in tar.getnames() if "/" in m}
    for needed in ("pyproject.toml", "README.md", "src/raoutcome/data/demo.toml", "src/raoutcome/py.typed"):
        assert needed in members, needed


def test_wheel_installs_into_a_fresh_venv_and_runs(dist, tmp_path):
    wheel = next(dist.glob("raoutcome-*.whl"))
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    py = env_dir / "bin" / "python"
    site = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PIP_USER", "VIRTUAL_ENV")}
    proc = subprocess.run([str(py), "-m", "pip", "install", "--no-deps", "--no-index", "--quiet", str(wheel)],
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    # dependencies: the ones installed here, after the wheel (a directory appended to sys.path; its own
    # .pth files, such as an editable raoutcome, are not processed: only the wheel's raoutcome imports)
    Path(site, "zz_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    check = ("import raoutcome, importlib.resources as r, pathlib; "
             "from raoutcome.workflows.study import demo_config_paths; "
             "print(raoutcome.__file__); print(raoutcome.__version__); "
             "print(*demo_config_paths(), sep='\\n'); "
             "print((r.files('raoutcome') / 'py.typed').is_file())")
    out = subprocess.run([str(py), "-c", check], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    file, version, sim, train, typed = out.stdout.split()
    assert file.startswith(str(env_dir)), file  # the installed copy, not the source tree
    assert version == wheel.name.split("-")[1]
    assert sim.startswith(str(env_dir)) and sim.endswith("data/demo.toml") and train.endswith("train_demo.toml")
    assert typed == "True"
    for args in (["--version"], ["demo", "--help"]):
        cli = subprocess.run([str(env_dir / "bin" / "raoutcome"), *args], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=600)
        assert cli.returncode == 0, cli.stderr
    assert "--out" in cli.stdout
