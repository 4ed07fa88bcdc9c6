"""The landmark refiner (second pass on crops): crop geometry, the working image, files with and without a
refiner, when detection refines, and that training the refiner makes it find a blob better than where
the crop was centred."""
import numpy as np
import pytest
import torch

from raoutcome.errors import ConfigError
from raoutcome.models.landmark_refine import (RefineSpec, attach_refiner, crop_matrices, crop_patches,
                                              working_image)
from raoutcome.models.landmarks import DetectorSpec, LandmarkNet, load_detector, save_detector

TINY = dict(backbone="mobilenetv3_small_050", size=64, out_indices=(1, 2, 3), decoder=8)
TINY_REF = RefineSpec(patch=32, window=16, reference=64, backbone="mobilenetv3_small_050", out_indices=(1, 2),
                      decoder=8)


def _blob(shape, x, y, r=1.5):
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    return np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * r * r)).astype(np.float32)


def test_spec_checks_and_round_trip():
    with pytest.raises(ConfigError):
        RefineSpec(patch=50)
    with pytest.raises(ConfigError):
        RefineSpec(window=0)
    assert RefineSpec.from_json(TINY_REF.to_json()) == TINY_REF
    assert RefineSpec().zoom == 2.0


@pytest.mark.parametrize("angle,scale", [(0.0, 1.0), (0.4, 1.0), (-0.3, 0.7), (0.2, 1.6)])
def test_crop_maps_pixels_and_points_with_one_matrix(angle, scale):
    img = _blob((120, 90), 41.3, 63.8)
    centre = np.array([[43.0, 62.0]])
    a = crop_matrices(0.5, 1, np.array([angle]), np.array([scale]))
    patch = crop_patches(img, centre, a, 32)[0, 0].numpy()
    expect = np.linalg.solve(a[0], np.array([41.3, 63.8]) - centre[0]) + 15.5
    iy, ix = np.unravel_index(np.argmax(patch), patch.shape)
    assert abs(ix - expect[0]) <= 1.0 and abs(iy - expect[1]) <= 1.0


def test_working_image_downsamples_large_images_and_keeps_coordinates():
    img = _blob((400, 300), 250.0, 100.0, r=3.0)
    rs = RefineSpec(patch=64, window=32, reference=64)      # long side at most 2 x 64 = 128 px
    work, d = working_image(img, "hand_left", rs, None)
    assert max(work.shape) == 128 and np.allclose(d, [300 / work.shape[1], 400 / work.shape[0]])
    iy, ix = np.unravel_index(np.argmax(work), work.shape)
    assert abs(ix - ((250.5) / d[0] - 0.5)) <= 1 and abs(iy - ((100.5) / d[1] - 0.5)) <= 1
    right, _ = working_image(img, "hand_right", rs, None)   # right views are mirrored like the coarse input
    assert np.allclose(right, work[:, ::-1], atol=1e-5)
    small, d1 = working_image(img[:100, :80], "hand_left", rs, None)
    assert small.shape == (100, 80) and np.allclose(d1, 1.0)


def test_file_with_refiner_round_trips_and_file_without_loads_as_before(tmp_path):
    torch.manual_seed(0)
    plain = LandmarkNet(DetectorSpec(**TINY)).eval()
    save_detector(plain, tmp_path / "plain.safetensors", half=False)
    assert load_detector(tmp_path / "plain.safetensors").refiner is None
    attach_refiner(plain, TINY_REF)
    plain.eval()
    save_detector(plain, tmp_path / "ref.safetensors", half=False)
    back = load_detector(tmp_path / "ref.safetensors")
    assert back.refiner is not None and back.refiner.rspec == TINY_REF
    x = torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        assert torch.allclose(back.refiner(x), plain.refiner(x), atol=1e-6)
    # the refiner's backbone stops at its last feature level: fewer blocks than the full network
    assert len(back.refiner.net.backbone.blocks) < len(back.backbone.blocks)


def test_detection_refines_only_large_images_unless_told():
    from raoutcome.workflows.landmarks import detect_images

    torch.manual_seed(0)
    model = LandmarkNet(DetectorSpec(**TINY)).eval()
    ref = attach_refiner(model, TINY_REF)
    ref.eval()
    with torch.no_grad():   # a refiner whose heatmaps are confident everywhere and peak at the patch corner
        ref.net.head.weight.zero_()
        ref.net.head.bias.fill_(5.0)
    rng = np.random.default_rng(0)
    small, big = rng.random((60, 40)).astype(np.float32), rng.random((240, 160)).astype(np.float32)
    coarse = detect_images(model, [(small, "hand_left"), (big, "hand_left")], refine=False)
    auto = detect_images(model, [(small, "hand_left"), (big, "hand_left")])
    forced = detect_images(model, [(small, "hand_left")], refine=True)
    assert auto[0].points == coarse[0].points          # 60 px < reference 64: not refined
    assert auto[1].points != coarse[1].points          # 240 px: refined
    assert forced[0].points != coarse[0].points
    assert auto[1].confidence == coarse[1].confidence  # confidence (and QC inputs) from the coarse pass


def test_training_the_refiner_brings_crops_onto_the_landmark():
    from raoutcome.training.landmark_refine import evaluate_refiner, fit_refiner, refine_sample

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    model = LandmarkNet(DetectorSpec(**TINY)).eval()
    samples = []
    for i in range(24):   # one bright joint-like blob per image, annotated as MCP3
        x, y = rng.uniform(30, 98, 2)
        img = np.clip(_blob((128, 128), x, y, 2.0) + rng.normal(0, 0.05, (128, 128)), 0, 1)
        samples.append(refine_sample(f"i{i}", f"g{i}", img, "hand_left", {"MCP3": (x, y)}, model.spec.channels,
                                     TINY_REF, None))
    res = fit_refiner(model, samples, TINY_REF, steps=120, batch=16, seed=0, val_groups={"g0", "g1", "g2", "g3"},
                      eval_every=60, offset_sd=2.0, log=None)
    after = evaluate_refiner(model.refiner, samples[:4], offset_sd=2.0, seed=1)
    assert after["mre_px"] < 0.6 * after["start_px"]
    assert res.best is not None
