"""The preprocessed-image cache: decode once, invalidate on content or transform change."""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image

import raoutcome.imaging.cache as cache_mod
from raoutcome.errors import ImageReadError
from raoutcome.imaging import ImageCache, read_image
from raoutcome.imaging.transforms import preprocess


@pytest.fixture
def counted_reads(monkeypatch):
    calls = []

    def counting_read(path):
        calls.append(str(path))
        return read_image(path)

    monkeypatch.setattr(cache_mod, "read_image", counting_read)
    return calls


def _png(path, seed=0, shape=(60, 40)):
    raw = np.random.default_rng(seed).integers(0, 255, size=shape, endpoint=True).astype(np.uint8)
    Image.fromarray(raw).save(path)
    return raw


def test_second_get_does_not_decode_even_from_a_new_instance(tmp_path, counted_reads):
    _png(tmp_path / "a.png")
    cache = ImageCache(tmp_path / "cache", 32)
    first = cache.get(tmp_path / "a.png", "hand_right")
    assert first.shape == (1, 32, 32) and first.dtype == np.float32
    expected = preprocess(read_image(tmp_path / "a.png").pixels, "hand_right", 32)
    np.testing.assert_allclose(first[0], expected, atol=1e-3)  # float16 storage
    assert len(counted_reads) == 1
    np.testing.assert_array_equal(cache.get(tmp_path / "a.png", "hand_right"), first)
    again = ImageCache(tmp_path / "cache", 32)  # e.g. the next epoch's worker process
    np.testing.assert_array_equal(again.get(tmp_path / "a.png", "hand_right"), first)
    assert len(counted_reads) == 1


def test_changed_content_invalidates(tmp_path, counted_reads):
    path = tmp_path / "a.png"
    _png(path, seed=1)
    cache = ImageCache(tmp_path / "cache", 16)
    before = cache.get(path, None)
    _png(path, seed=2)  # same size, new pixels
    after = cache.get(path, None)
    assert len(counted_reads) == 2
    assert not np.allclose(before, after)
    np.testing.assert_allclose(after[0], preprocess(read_image(path).pixels, None, 16), atol=1e-3)


def test_content_mode_catches_a_change_that_keeps_the_stat(tmp_path, counted_reads):
    path = tmp_path / "a.png"
    _png(path, seed=1)
    st = os.stat(path)
    cache = ImageCache(tmp_path / "cache", 16, validate="content")
    before = cache.get(path, None)
    _png(path, seed=2)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # same size and mtime as before
    assert not np.allclose(before, cache.get(path, None))
    assert len(counted_reads) == 2


def test_transform_parameters_are_part_of_the_key(tmp_path, counted_reads):
    _png(tmp_path / "a.png", shape=(40, 40))
    root = tmp_path / "cache"
    left = ImageCache(root, 16).get(tmp_path / "a.png", "hand_left")
    right = ImageCache(root, 16).get(tmp_path / "a.png", "hand_right")
    np.testing.assert_array_equal(right[0], left[0][:, ::-1])  # square input: mirror commutes
    ImageCache(root, 16).get(tmp_path / "a.png", "foot_left")  # same transform as hand_left
    assert len(counted_reads) == 2
    ImageCache(root, 24).get(tmp_path / "a.png", "hand_left")
    ImageCache(root, 16, contrast=(1, 99)).get(tmp_path / "a.png", "hand_left")
    assert len(counted_reads) == 4


def test_concurrent_writers_leave_one_complete_entry(tmp_path):
    _png(tmp_path / "a.png")
    caches = [ImageCache(tmp_path / "cache", 32) for _ in range(8)]
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda c: c.get(tmp_path / "a.png", None), caches))
    for r in results[1:]:
        np.testing.assert_array_equal(r, results[0])
    leftovers = [p for p in (tmp_path / "cache").rglob("*") if p.name.endswith(".tmp")]
    assert leftovers == []
    assert len(list((tmp_path / "cache" / "arrays").rglob("*.npy"))) == 1


def test_unreadable_image_is_not_cached(tmp_path):
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    cache = ImageCache(tmp_path / "cache", 16)
    with pytest.raises(ImageReadError, match=r"bad\.png"):
        cache.get(tmp_path / "bad.png", None)
    assert list((tmp_path / "cache" / "arrays").rglob("*.npy")) == []
