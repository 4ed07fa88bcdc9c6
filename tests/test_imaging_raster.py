"""PNG, TIFF and JPEG reading: 8 and 16 bit, colour, inversion, truncation."""
from __future__ import annotations

import io

import numpy as np
import pytest
import tifffile
from PIL import Image

from raoutcome.errors import ImageReadError
from raoutcome.imaging import META_KEYS, read_image

RNG = np.random.default_rng(11)


def test_png_8bit_grey(tmp_path):
    raw = RNG.integers(0, 255, size=(17, 23), endpoint=True).astype(np.uint8)
    Image.fromarray(raw).save(tmp_path / "a.png")
    img = read_image(tmp_path / "a.png")
    assert img.pixels.dtype == np.float32 and img.pixels.shape == raw.shape
    np.testing.assert_allclose(img.pixels, raw / 255.0, atol=1e-6)
    assert img.meta["bits_stored"] == 8 and img.meta["format"] == "png"
    assert set(img.meta) <= META_KEYS


def test_png_16bit_grey(tmp_path):
    raw = RNG.integers(0, 65535, size=(19, 21), endpoint=True).astype(np.uint16)
    Image.fromarray(raw).save(tmp_path / "b.png")
    assert Image.open(tmp_path / "b.png").mode.startswith("I")  # really written as 16-bit
    img = read_image(tmp_path / "b.png")
    np.testing.assert_allclose(img.pixels, raw / 65535.0, atol=1e-6)
    assert img.meta["bits_stored"] == 16


def test_png_rgb_becomes_luminance(tmp_path):
    rgb = RNG.integers(0, 255, size=(9, 11, 3), endpoint=True).astype(np.uint8)
    Image.fromarray(rgb).save(tmp_path / "c.png")
    expected = (0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]) / 255.0
    np.testing.assert_allclose(read_image(tmp_path / "c.png").pixels, expected, atol=1e-6)


def test_format_is_sniffed_not_taken_from_suffix(tmp_path):
    raw = RNG.integers(0, 255, size=(5, 6), endpoint=True).astype(np.uint8)
    Image.fromarray(raw).save(tmp_path / "really_png.tif", format="PNG")
    img = read_image(tmp_path / "really_png.tif")
    assert img.meta["format"] == "png"
    np.testing.assert_allclose(img.pixels, raw / 255.0, atol=1e-6)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_tiff_unsigned(tmp_path, dtype):
    raw = RNG.integers(0, np.iinfo(dtype).max, size=(13, 14), endpoint=True).astype(dtype)
    tifffile.imwrite(tmp_path / "t.tif", raw, photometric="minisblack")
    img = read_image(tmp_path / "t.tif")
    np.testing.assert_allclose(img.pixels, raw / float(np.iinfo(dtype).max), atol=1e-6)
    assert img.meta["bits_stored"] == np.dtype(dtype).itemsize * 8


def test_tiff_signed_16bit(tmp_path):
    raw = RNG.integers(-32768, 32767, size=(8, 9), endpoint=True).astype(np.int16)
    tifffile.imwrite(tmp_path / "s.tif", raw, photometric="minisblack")
    img = read_image(tmp_path / "s.tif")
    np.testing.assert_allclose(img.pixels, (raw.astype(float) + 32768) / 65535.0, atol=1e-6)
    assert img.meta["signed"] is True


def test_tiff_miniswhite_is_inverted(tmp_path):
    raw = RNG.integers(0, 65535, size=(8, 9), endpoint=True).astype(np.uint16)
    tifffile.imwrite(tmp_path / "w.tif", raw, photometric="miniswhite")
    np.testing.assert_allclose(read_image(tmp_path / "w.tif").pixels, 1.0 - raw / 65535.0, atol=1e-6)


def test_tiff_float_in_unit_range_and_outside(tmp_path):
    raw = RNG.random((6, 7)).astype(np.float32)
    tifffile.imwrite(tmp_path / "f.tif", raw)
    np.testing.assert_allclose(read_image(tmp_path / "f.tif").pixels, raw, atol=1e-7)
    tifffile.imwrite(tmp_path / "hu.tif", raw * 3000 - 1000)
    with pytest.raises(ImageReadError, match=r"hu\.tif.*\[0, 1\]"):
        read_image(tmp_path / "hu.tif")


def test_multipage_tiff_first_page(tmp_path):
    stack = RNG.integers(0, 255, size=(3, 5, 5), endpoint=True).astype(np.uint8)
    with tifffile.TiffWriter(tmp_path / "m.tif") as tw:
        for page in stack:
            tw.write(page, photometric="minisblack")
    img = read_image(tmp_path / "m.tif")
    np.testing.assert_allclose(img.pixels, stack[0] / 255.0, atol=1e-6)
    assert img.meta["n_frames"] == 3


def test_jpeg_8bit(tmp_path):
    yy, xx = np.mgrid[0:40, 0:30]
    grey = (120 + 90 * np.sin(xx / 5.0) * np.cos(yy / 6.0)).astype(np.uint8)
    Image.fromarray(grey).save(tmp_path / "j.jpg", quality=95)
    reference = np.asarray(Image.open(tmp_path / "j.jpg")) / 255.0  # lossy: compare to the decoded JPEG
    img = read_image(tmp_path / "j.jpg")
    np.testing.assert_allclose(img.pixels, reference, atol=1e-6)
    assert np.abs(img.pixels - grey / 255.0).mean() < 0.02
    assert img.meta["format"] == "jpeg"


def _encoded(kind: str) -> bytes:
    raw = RNG.integers(0, 255, size=(64, 64), endpoint=True).astype(np.uint8)
    buf = io.BytesIO()
    if kind == "tiff":
        tifffile.imwrite(buf, raw, compression="zlib")
    else:
        Image.fromarray(raw).save(buf, format=kind.upper())
    return buf.getvalue()


@pytest.mark.parametrize("kind,suffix", [("png", ".png"), ("jpeg", ".jpg"), ("tiff", ".tif")])
def test_truncated_raster_names_the_file(tmp_path, kind, suffix):
    data = _encoded(kind)
    path = tmp_path / f"truncated_visit3{suffix}"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageReadError, match=f"truncated_visit3{suffix}"):
        read_image(path)


def test_unknown_format_and_missing_file(tmp_path):
    (tmp_path / "notes.png").write_text("this is not an image")
    with pytest.raises(ImageReadError, match=r"notes\.png.*unrecognised"):
        read_image(tmp_path / "notes.png")
    with pytest.raises(ImageReadError, match=r"absent\.png"):
        read_image(tmp_path / "absent.png")
