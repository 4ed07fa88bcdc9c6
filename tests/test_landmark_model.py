"""Landmark detector pieces: heatmap targets and sub-pixel decoding, loss masking, the input frame,
augmentation that moves pixels and landmarks together, and safetensors round trips."""
import numpy as np
import pytest
import torch

from raoutcome.errors import ConfigError
from raoutcome.imaging.landmark_augment import AugmentConfig, augment
from raoutcome.imaging.landmark_frame import to_input
from raoutcome.models.landmarks import (DetectorSpec, LandmarkNet, channel_names, decode_heatmaps,
                                        gaussian_targets, heatmap_loss, load_detector, save_detector)

TINY = dict(backbone="mobilenetv3_small_050", size=64, out_indices=(1, 2, 3), decoder=8)


def test_channels_cover_hand_and_foot_templates():
    ch = channel_names()
    assert "hand:MCP2" in ch and "hand:W3" in ch and "foot:MTP1" in ch
    spec = DetectorSpec(**TINY)
    assert spec.parts == ("hand", "foot")
    assert [spec.channels[i] for i in spec.part_channels("foot")][0].startswith("foot:")
    with pytest.raises(ConfigError):
        DetectorSpec(size=100)


@pytest.mark.parametrize("xy,tol", [((40.3, 17.8), 0.15), ((33.75, 33.25), 0.15), ((5.0, 60.2), 2.0)])
def test_decode_recovers_subpixel_peak(xy, tol):
    coords = torch.tensor([[xy]], dtype=torch.float64)
    g = gaussian_targets(coords, (16, 16), sigma=1.25).clamp(1e-6, 1 - 1e-6)
    logits = torch.log(g) - torch.log1p(-g)
    got, conf = decode_heatmaps(logits.float())
    assert np.allclose(got[0, 0].numpy(), xy, atol=tol)  # at the map's border: within half a cell
    assert conf.item() > 0.9


def test_nan_coordinates_give_empty_maps_and_mask_removes_channel_from_loss():
    coords = torch.tensor([[[20.0, 20.0], [float("nan"), float("nan")]]])
    tgt = gaussian_targets(coords, (16, 16), 1.25)
    assert tgt[0, 1].sum() == 0 and tgt[0, 0].max() > 0.9
    logits = torch.zeros(1, 2, 16, 16)
    bad = logits.clone()
    bad[0, 1] = 5.0  # confident wrong answer on channel 1
    on = torch.ones(1, 2)
    off = torch.tensor([[1.0, 0.0]])
    assert heatmap_loss(bad, tgt, on) > heatmap_loss(logits, tgt, on)
    assert heatmap_loss(bad, tgt, off) == pytest.approx(heatmap_loss(logits, tgt, off).item())


def test_input_frame_round_trip_and_mirroring():
    img = np.zeros((90, 60), np.float32)
    img[30, 10] = 1.0  # a bright dot at x=10, y=30 on a right hand
    x, frame = to_input(img, "hand_right", 64, contrast=None)
    assert frame.mirrored
    u, v = frame.to_input(10.0, 30.0)
    iy, ix = np.unravel_index(np.argmax(x), x.shape)
    assert abs(ix - u) <= 1.0 and abs(iy - v) <= 1.0
    back = frame.to_image(u, v)
    assert np.allclose(back, (10.0, 30.0))


def test_augment_moves_pixels_and_landmarks_together():
    rng = np.random.default_rng(1)
    size = 96
    pts = np.array([[30.0, 40.0], [60.0, 25.0], [50.0, 70.0]])
    img = np.zeros((size, size), np.float32)
    yy, xx = np.mgrid[:size, :size]
    for x, y in pts:
        img += np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / 4.0)
    geo = AugmentConfig(contrast=(1, 1), brightness=0, gamma=(1, 1), blur=0, noise=0, invert=0, band=0,
                        mirror=0.5, upside_down=0.3, rotation_deg=40, scale=(0.8, 1.2), translation=0.05)
    for _ in range(6):
        out, moved = augment(img, pts, rng, geo)
        for x, y in moved:
            if 3 <= x < size - 3 and 3 <= y < size - 3:
                win = out[int(round(y)) - 2:int(round(y)) + 3, int(round(x)) - 2:int(round(x)) + 3]
                assert win.max() > 0.5  # the bump followed its landmark


def test_augment_keeps_unknown_landmarks_unknown():
    rng = np.random.default_rng(0)
    pts = np.array([[10.0, 10.0], [np.nan, np.nan]])
    _, moved = augment(np.zeros((32, 32), np.float32), pts, rng)
    assert np.isnan(moved[1]).all() and np.isfinite(moved[0]).all()


def test_save_load_round_trip(tmp_path):
    torch.manual_seed(0)
    model = LandmarkNet(DetectorSpec(**TINY)).eval()
    path = save_detector(model, tmp_path / "d.safetensors")
    from raoutcome.io_utils import current_umask

    assert path.stat().st_mode & 0o777 == 0o666 & ~current_umask()
    again = load_detector(path)
    assert again.spec == model.spec
    x = torch.rand(2, 1, 64, 64)
    with torch.no_grad():
        a, b = model(x), again(x)
    assert a.shape == (2, len(model.spec.channels), 16, 16)
    assert torch.allclose(a, b, atol=0.05)  # float16 storage


def test_load_rejects_missing_and_foreign_files(tmp_path):
    from safetensors.torch import save_file

    with pytest.raises(ConfigError, match="not found"):
        load_detector(tmp_path / "nope.safetensors")
    save_file({"w": torch.zeros(2)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(ConfigError, match="not a raoutcome landmark detector"):
        load_detector(tmp_path / "other.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"garbage")
    with pytest.raises(ConfigError, match="cannot read"):
        load_detector(tmp_path / "junk.safetensors")
