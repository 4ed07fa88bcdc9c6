"""Captum attribution per head: shapes, sign conventions, IG completeness, Grad-CAM layer, planted signal."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from raoutcome.attribution.methods import (AttributionSettings, attribute_images, find_gradcam_layer,
                                           integrated_gradients, make_baseline, model_heads, occlusion_window)
from test_attribution_standin import Planted, StandIn

SIZE = 32


@pytest.fixture(scope="module")
def model():
    return StandIn().eval()


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(1)
    return rng.random((3, SIZE, SIZE)).astype(np.float32)


@pytest.mark.parametrize("method", ["integrated_gradients", "gradcam", "occlusion"])
def test_every_method_gives_one_non_negative_map_per_image_and_head(model, images, method):
    s = AttributionSettings(method=method, n_steps=8, window=8, stride=4)
    maps = attribute_images(model, images, ["hand_left", "hand_right", "hand_left"], ["svdh", "haq"], s, device="cpu",
                            batch_size=2)
    assert set(maps) == {"svdh", "haq"}
    for m in maps.values():
        assert m.shape == (3, SIZE, SIZE) and m.dtype == np.float32
        assert np.isfinite(m).all() and (m >= 0).all()
        if method != "gradcam":  # ReLU-ed Grad-CAM may be all zero for a random model (only evidence against)
            assert m.reshape(3, -1).max(axis=1).min() > 0  # every image got some attribution
    if method == "gradcam":
        signed = attribute_images(model, images, "hand_left", ["haq"], AttributionSettings(method=method, signed=True))
        assert np.abs(signed["haq"]).reshape(3, -1).max(axis=1).min() > 0


def test_signed_maps_keep_both_signs(model, images):
    m = attribute_images(model, images, "hand_left", ["haq"], AttributionSettings(n_steps=8, signed=True))["haq"]
    assert (m < 0).any() and (m > 0).any()
    mag = attribute_images(model, images, "hand_left", ["haq"], AttributionSettings(n_steps=8))["haq"]
    np.testing.assert_allclose(mag, np.abs(m), rtol=1e-4, atol=1e-8)


@pytest.mark.parametrize("baseline", ["black", "blur"])
def test_integrated_gradients_completeness(model, images, baseline):
    s = AttributionSettings(baseline=baseline, n_steps=32, signed=True)
    attr, delta = integrated_gradients(model, images, "hand_left", "haq", s, device="cpu", return_delta=True)
    x = torch.as_tensor(images)[:, None]
    with torch.no_grad():
        fx = model.forward_single_image(x, "hand_left")["haq"]
        fb = model.forward_single_image(make_baseline(x, baseline), "hand_left")["haq"]
    expected = (fx - fb).numpy()
    assert np.abs(delta).max() < 1e-3 * max(1.0, np.abs(expected).max())
    np.testing.assert_allclose(attr.reshape(3, -1).sum(axis=1), expected, rtol=1e-3, atol=1e-4)


def test_blur_baseline_is_smooth_and_keeps_mean_intensity(images):
    x = torch.as_tensor(images)[:, None]
    b = make_baseline(x, "blur", blur_sigma=0.1)
    assert b.shape == x.shape
    assert b.std() < 0.5 * x.std()
    assert abs(float(b.mean() - x.mean())) < 0.02


def test_ensemble_average_of_identical_models_is_the_model(model, images):
    s = AttributionSettings(n_steps=8)
    one = attribute_images(model, images, "hand_left", ["svdh"], s)["svdh"]
    two = attribute_images([model, model], images, "hand_left", ["svdh"], s)["svdh"]
    np.testing.assert_allclose(two, one, rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize("arch, expected", [("resnet10t", "layer4"), ("efficientnet_lite0", "bn2")])
def test_gradcam_layer_is_the_last_conv_stage_before_pooling(arch, expected):
    # resnet: layer4 feeds global_pool; efficientnet: conv_head -> bn2 (+act) feeds global_pool.
    enc = StandIn(arch).encoder
    layer = find_gradcam_layer(enc)
    names = {id(m): n for n, m in enc.named_modules()}
    assert names[id(layer)] == expected


def test_gradcam_layer_of_a_plain_cnn_and_a_non_cnn():
    cnn = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Conv2d(4, 8, 3, stride=2), nn.ReLU(),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten())
    assert find_gradcam_layer(cnn) is cnn[3]  # the last 4-D output that is not the pooling
    with pytest.raises(ValueError, match="4-D"):
        find_gradcam_layer(nn.Sequential(nn.Flatten(), nn.Linear(128 * 128, 3)))


@pytest.mark.parametrize("method", ["integrated_gradients", "occlusion"])
def test_planted_region_draws_the_attribution(method):
    mask = torch.zeros(SIZE, SIZE)
    mask[8:16, 20:28] = 1  # the only pixels the 'haq' head reads
    planted = Planted(mask)
    rng = np.random.default_rng(2)
    x = (0.2 + 0.6 * rng.random((4, SIZE, SIZE))).astype(np.float32)
    s = AttributionSettings(method=method, n_steps=16, window=4, stride=2)
    maps = attribute_images(planted, x, "hand_left", ["haq", "svdh"], s)
    inside = mask.numpy().astype(bool)
    haq_in, haq_out = maps["haq"][:, inside].mean(), maps["haq"][:, ~inside].mean()
    assert haq_in > 20 * max(haq_out, 1e-12)
    svdh_in, svdh_out = maps["svdh"][:, inside].mean(), maps["svdh"][:, ~inside].mean()
    assert svdh_out > 3 * max(svdh_in, 1e-12)  # occlusion windows straddling the border blur it a little


def test_smoothgrad_runs_and_is_documented_for_ig_and_gradcam_only(model, images):
    for method in ("integrated_gradients", "gradcam"):
        s = AttributionSettings(method=method, n_steps=4, smoothgrad_samples=2)
        assert attribute_images(model, images[:1], "hand_left", ["haq"], s)["haq"].shape == (1, SIZE, SIZE)
    with pytest.raises(ValueError, match="SmoothGrad"):
        AttributionSettings(method="occlusion", smoothgrad_samples=2)


def test_bad_settings_are_rejected():
    with pytest.raises(ValueError, match="unknown attribution method"):
        AttributionSettings(method="lime")
    with pytest.raises(ValueError, match="unknown baseline"):
        AttributionSettings(baseline="white")
    assert occlusion_window(256) == (32, 16)


def test_model_heads(model):
    assert model_heads(model, "hand_left") == ["svdh", "haq"]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_gpu_matches_cpu(images):
    s = AttributionSettings(n_steps=16)
    cpu = attribute_images(StandIn(), images, "hand_left", ["haq"], s, device="cpu")["haq"]
    gpu = attribute_images(StandIn(), images, "hand_left", ["haq"], s, device="cuda")["haq"]
    np.testing.assert_allclose(gpu, cpu, rtol=1e-2, atol=1e-5 * float(cpu.max()))
