"""Training config: documented defaults, the demo config, bad keys/values -> ConfigError."""
from __future__ import annotations

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib
from pathlib import Path

import pytest

from raoutcome.errors import ConfigError, InputError
from raoutcome.training.config import DEFAULTS, TrainConfig, dumps_toml, load_config

REPO = Path(__file__).resolve().parents[1]


def test_defaults_resolve_and_round_trip_through_toml(tmp_path):
    cfg = load_config(None)
    assert cfg.values == DEFAULTS
    assert cfg.heads_on == ("svdh", "haq", "pain", "risk")
    path = tmp_path / "c.toml"
    path.write_text(cfg.to_toml())
    assert load_config(path) == cfg


def test_partial_config_keeps_other_defaults(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[heads]\nsvdh = false\n[train]\nlr = 1\n[loss]\nweights = { risk = 2 }\n')
    cfg = load_config(path)
    assert cfg.heads_on == ("haq", "pain", "risk")
    assert cfg.train["lr"] == 1.0 and isinstance(cfg.train["lr"], float)
    assert cfg.loss["weights"] == {"svdh": 1.0, "haq": 1.0, "pain": 1.0, "risk": 2.0}
    assert cfg.train["epochs"] == DEFAULTS["train"]["epochs"]
    assert cfg.model_spec().heads == ("haq", "pain", "risk")


def test_demo_and_image_route_training_configs_are_valid():
    demo = load_config(REPO / "cohorts" / "train_demo.toml")  # the demo reads site by site (issue #23)
    assert demo.model["route"] == "sites" and demo.cv["folds"] >= 2
    image = load_config(REPO / "cohorts" / "train_image.toml")  # the whole-image baseline
    assert image.model["route"] == "image" and image.cv["folds"] >= 2 and image.model["image_size"] <= 160
    sites = load_config(REPO / "cohorts" / "train_sites.toml")  # the 3-fold site check: the demo's recipe
    assert {k: v for k, v in sites.to_dict().items() if k != "cv"} == {
        k: v for k, v in demo.to_dict().items() if k != "cv"}


@pytest.mark.parametrize("text, words", [
    ("[modle]\nencoder = 'x'\n", ["[modle]"]),
    ("[train]\nlearning_rate = 0.1\n", ["train.learning_rate", "0.1"]),
    ("[train]\nlr = 'fast'\n", ["train.lr", "'fast'"]),
    ("[train]\nlr = -1\n", ["train.lr", "-1"]),
    ("[train]\nepochs = 2.5\n", ["train.epochs", "2.5"]),
    ("[train]\nepochs = true\n", ["train.epochs", "True"]),
    ("[train]\namp = 'maybe'\n", ["train.amp", "'maybe'"]),
    ("[loss]\nweighting = 'magic'\n", ["loss.weighting", "'magic'"]),
    ("[loss]\nweights = { sharp = 1.0 }\n", ["loss.weights", "sharp"]),
    ("[model]\nviews = ['elbow']\n", ["model.views", "elbow"]),
    ("[model]\nd_model = 30\nattention_heads = 4\n", ["model.attention_heads", "4", "30"]),
    ("[heads]\nsvdh = false\nhaq = false\npain = false\nrisk = false\n", ["[heads]"]),
    ("[survival]\nrisk_visit = 'first'\n", ["survival.risk_visit", "'first'"]),
    ("[data]\ncontrast = [99, 1]\n", ["data.contrast", "[99, 1]"]),
    ("[cv]\nfolds = 0\n", ["cv.folds", "0"]),
    ("train = 3\n", ["[train]", "3"]),
])
def test_bad_config_names_key_and_value(tmp_path, text, words):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    message = str(err.value)
    assert str(path) in message
    for word in words:
        assert word in message
    assert isinstance(err.value, InputError)  # the CLI turns it into exit code 2


def test_unreadable_or_invalid_toml(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "absent.toml")
    bad = tmp_path / "broken.toml"
    bad.write_text("[train\nlr = 1")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)


def test_differences_lists_changed_keys():
    a = TrainConfig({"train": {"lr": 0.01}})
    b = TrainConfig({})
    assert a.differences(b) == ["train.lr: 0.001 -> 0.01"]


def test_dumps_toml_is_parseable():
    text = dumps_toml({"a": {"s": 'quote " and \\ slash', "l": [1, 2], "t": {"x": 1.5}, "b": False}})
    assert tomllib.loads(text) == {"a": {"s": 'quote " and \\ slash', "l": [1, 2], "t": {"x": 1.5}, "b": False}}


def test_write_config_variant_applies_validated_overrides(tmp_path):
    from raoutcome.training.config import write_config_variant

    demo = REPO / "cohorts" / "train_image.toml"
    out = write_config_variant(demo, {"cv": {"ensemble_seeds": 3}, "heads": {"svdh": False}}, tmp_path / "v.toml", "note")
    variant, base = load_config(out).to_dict(), load_config(demo).to_dict()
    assert variant["cv"]["ensemble_seeds"] == 3 and variant["heads"]["svdh"] is False
    variant["cv"]["ensemble_seeds"], variant["heads"]["svdh"] = base["cv"]["ensemble_seeds"], base["heads"]["svdh"]
    assert variant == base  # nothing else changed
    with pytest.raises(ConfigError, match="ensemble_seeds"):
        write_config_variant(demo, {"cv": {"ensemble_seeds": 0}}, tmp_path / "bad.toml")
    assert not (tmp_path / "bad.toml").exists()
