"""docs/render_report.py: HTML report -> PNG with headless Chromium (the end-to-end test needs Chromium)."""
from __future__ import annotations

import importlib.util
import io
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

SCRIPT = Path(__file__).resolve().parents[1] / "docs" / "render_report.py"


@pytest.fixture(scope="module")
def render():
    spec = importlib.util.spec_from_file_location("render_report", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["render_report"] = module
    spec.loader.exec_module(module)
    return module


def _has_chromium(render) -> bool:
    try:
        render.find_chromium()
        return True
    except render.RenderError:
        return False


def test_top_of_report_crops_and_scales_down(render):
    img = Image.new("RGB", (1400, 5000), "white")
    top = render.top_of_report(img, height=1800, width=1000)
    assert top.size == (1000, round(1800 * 1000 / 1400))
    small = Image.new("RGB", (800, 600), "white")
    assert render.top_of_report(small, height=1800, width=1000).size == (800, 600)  # never enlarged


def test_png_bytes_meets_the_size_limit_with_a_palette(render):
    rng = np.random.default_rng(0)
    noisy = Image.fromarray(rng.integers(0, 256, (600, 600, 3), dtype=np.uint8))
    plain = render.png_bytes(noisy)
    limited = render.png_bytes(noisy, max_kb=len(plain) / 1024 / 2)
    assert len(limited) < len(plain) / 2
    assert Image.open(io.BytesIO(limited)).size == (600, 600)


def test_missing_chromium_is_a_clear_error_and_exit_2(render, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("CHROMIUM", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(render.RenderError, match="apt-get install -y chromium"):
        render.find_chromium()
    report = tmp_path / "r.html"
    report.write_text("<html><body>x</body></html>")
    assert render.main([str(report), "--out", str(tmp_path / "r.png")]) == 2
    assert "no headless Chromium" in capsys.readouterr().err
    assert not (tmp_path / "r.png").exists()


def test_write_atomic_leaves_no_temporary_file(render, tmp_path):
    target = render.write_atomic(tmp_path / "sub" / "a.png", b"abc")
    assert target.read_bytes() == b"abc" and [p.name for p in target.parent.iterdir()] == ["a.png"]


def test_tall_page_is_stitched_from_tiles_in_order(render, tmp_path):
    if not _has_chromium(render):
        pytest.skip("no headless Chromium on this machine")
    # three coloured bands, the middle one straddling the first tile boundary
    band = render.TILE - 500
    colours = ["#ff0000", "#00ff00", "#0000ff"]
    body = "".join(f'<div style="height:{band}px;background:{c}"></div>' for c in colours)
    report = tmp_path / "report.html"
    report.write_text(f"<!DOCTYPE html><html><head><style>body{{margin:0}}</style></head><body>{body}</body></html>")
    out, top = tmp_path / "full.png", tmp_path / "top.png"
    assert render.main([str(report), "--out", str(out), "--width", "400", "--top", str(top),
                        "--top-height", "300", "--top-width", "200"]) == 0
    full = Image.open(out).convert("RGB")
    assert full.size == (400, 3 * band)
    for i, want in enumerate([(255, 0, 0), (0, 255, 0), (0, 0, 255)]):
        for y in (i * band + 5, i * band + band // 2, (i + 1) * band - 5):
            assert full.getpixel((200, y)) == want, (i, y)
    assert Image.open(top).size == (200, 150)
