"""The one config system (raoutcome.config): typed frozen dataclasses, one TOML reader and writer, unknown keys
named with the nearest valid one, documented key tables tested against the dataclasses, no torch."""
from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from raoutcome.config import check, dumps_toml, from_dict, key_table, read_toml, to_dict
from raoutcome.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Inner:
    rate: float = 0.5
    names: tuple[str, ...] = ("a",)


@dataclass(frozen=True)
class Outer:
    seed: int = field(default=0, metadata={"check": check(lambda v: v >= 0, "a non-negative integer"),
                                           "doc": "random seed"})
    inner: Inner = field(default_factory=Inner)
    weights: dict[str, float] = field(default_factory=lambda: {"x": 1.0})


def test_from_dict_converts_checks_and_round_trips(tmp_path):
    cfg = from_dict(Outer, {"seed": 3, "inner": {"rate": 1, "names": ["b", "c"]}}, "t.toml")
    assert cfg == Outer(3, Inner(1.0, ("b", "c")), {"x": 1.0}) and isinstance(cfg.inner.rate, float)
    path = tmp_path / "c.toml"
    path.write_text(dumps_toml(to_dict(cfg)))
    assert from_dict(Outer, read_toml(path), str(path)) == cfg
    assert key_table(Outer) == [("seed", 0, "random seed"), ("inner.rate", 0.5, ""), ("inner.names", ["a"], ""),
                                ("weights", {"x": 1.0}, "")]


@pytest.mark.parametrize("data, words", [
    ({"sed": 1}, ["t.toml", "'sed'", "did you mean 'seed'"]),
    ({"inner": {"rat": 1.0}}, ["'inner.rat'", "did you mean 'rate'"]),
    ({"seed": -1}, ["seed = -1", "non-negative"]),
    ({"seed": 1.5}, ["'seed'", "an integer", "1.5"]),
    ({"inner": 3}, ["[inner]", "3"]),
    ({"inner": {"names": "b"}}, ["'inner.names'", "a list"]),
])
def test_bad_keys_and_values_name_file_key_and_value(data, words):
    with pytest.raises(ConfigError) as err:
        from_dict(Outer, data, "t.toml")
    for word in words:
        assert word in str(err.value)


def test_read_toml_names_the_file(tmp_path):
    with pytest.raises(ConfigError, match="absent.toml"):
        read_toml(tmp_path / "absent.toml")
    (tmp_path / "bad.toml").write_text("[a\n")
    with pytest.raises(ConfigError, match="bad.toml: not valid TOML"):
        read_toml(tmp_path / "bad.toml")


def _documented_block(text: str) -> dict:
    return tomllib.loads(re.search(r"```toml\n(.*?)```", text, re.S).group(1))


def _flat(table: dict, prefix: str = "", inline: tuple[str, ...] = ()) -> dict:
    out = {}
    for k, v in table.items():
        if isinstance(v, dict) and prefix + k not in inline:
            out.update(_flat(v, f"{prefix}{k}.", inline))
        else:
            out[prefix + k] = v
    return out


def test_the_training_key_table_in_the_docs_is_the_dataclass():
    from raoutcome.training import config as training

    documented = _flat(_documented_block(training.__doc__), inline=("heads", "loss.weights"))
    actual = {k: v for k, v, _ in key_table(training.TrainingConfig)}
    assert documented == actual  # every key, and its default, as the code states it


def test_the_study_and_simulator_examples_name_only_real_keys_and_the_study_example_every_key():
    from raoutcome.synth.config import SimulationConfig
    from raoutcome.workflows.study import StudyConfig

    study = _flat(read_toml(REPO / "cohorts" / "study_example.toml"))
    assert set(study) == {k for k, _, _ in key_table(StudyConfig)}
    demo = _flat(read_toml(REPO / "cohorts" / "demo.toml"))
    assert set(demo) <= {k for k, _, _ in key_table(SimulationConfig)}


def test_validating_configs_does_not_import_torch():
    code = ("import sys\n"
            "from raoutcome.training.config import load_config\n"
            "from raoutcome.synth.config import load_config as sim\n"
            "from raoutcome.workflows.study import load_study_config\n"
            f"load_config({str(REPO / 'cohorts' / 'train_demo.toml')!r}); sim({str(REPO / 'cohorts' / 'demo.toml')!r})\n"
            f"load_study_config({str(REPO / 'cohorts' / 'study_example.toml')!r})\n"
            "assert 'torch' not in sys.modules, 'torch imported'\n")
    subprocess.run([sys.executable, "-c", code], check=True)
