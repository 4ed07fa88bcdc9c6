"""raoutcome.io_utils: atomic writes leave files with the mode an ordinary open() would."""
from __future__ import annotations

import os
import stat

import pytest

from raoutcome.io_utils import atomic_path, atomic_write, current_umask


@pytest.fixture
def umask():
    def set_mask(mask: int) -> None:
        os.umask(mask)
    old = os.umask(0o022)
    yield set_mask
    os.umask(old)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("mask", [0o022, 0o002, 0o077])
def test_atomic_write_gives_a_new_file_the_umask_mode(tmp_path, umask, mask):
    umask(mask)
    assert current_umask() == mask
    with atomic_write(tmp_path / "out.txt") as fh:
        fh.write("hello")
    with open(tmp_path / "plain.txt", "w") as fh:
        fh.write("hello")
    assert (tmp_path / "out.txt").read_text() == "hello"
    assert _mode(tmp_path / "out.txt") == _mode(tmp_path / "plain.txt") == 0o666 & ~mask
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_atomic_write_keeps_an_existing_files_mode(tmp_path, umask):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    target.chmod(0o640)
    with atomic_write(target, "wb") as fh:
        fh.write(b"new")
    assert target.read_bytes() == b"new" and _mode(target) == 0o640


def test_atomic_write_failure_leaves_nothing(tmp_path, umask):
    with pytest.raises(RuntimeError):
        with atomic_write(tmp_path / "out.txt") as fh:
            fh.write("half")
            raise RuntimeError("stop")
    assert list(tmp_path.iterdir()) == []


def test_atomic_path_file_gets_the_umask_mode(tmp_path, umask):
    with atomic_path(tmp_path / "x.nc") as tmp:
        tmp.write_bytes(b"data")
    assert _mode(tmp_path / "x.nc") == 0o644
