"""The HTML report in a real browser: headless Chromium loads a real study's report.html, every figure
decodes, the page raises no console error. The driver itself is checked on a page with a broken image and
a console error, so that "no error" means something. Skips with the reason when Chromium is absent
(`apt-get install -y chromium`; .ci/run installs it)."""
from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
from PIL import Image

from chromium_cdp import INSTALL_HINT, Chromium, find_chromium

pytest.importorskip("websocket", reason="websocket-client (in the test extra) is not installed")
if find_chromium() is None:
    pytest.skip(f"no headless Chromium on this machine: {INSTALL_HINT}", allow_module_level=True)

REPO = __import__("pathlib").Path(__file__).resolve().parents[1]
SAVE_SCREENSHOTS = os.environ.get("RAOUTCOME_SAVE_SCREENSHOTS") == "1"  # also write them to docs/img/

PIXEL = ("data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGA"
         "hKmMIQAAAABJRU5ErkJggg==")


def test_driver_sees_broken_images_and_console_errors(tmp_path):
    page_file = tmp_path / "bad.html"
    page_file.write_text(f'<!DOCTYPE html><html><head><title>t</title></head><body>'
                         f'<img src="{PIXEL}"><img src="missing.png">'
                         f'<script>console.error("boom"); undefined_function();</script></body></html>')
    with Chromium() as browser:
        page = browser.open(page_file.as_uri())
    assert [img["ok"] for img in page.images] == [True, False]
    text = "\n".join(page.errors)
    assert "boom" in text and "undefined_function" in text and ("missing.png" in text or "ERR_FILE" in text), text


def test_real_report_renders_with_every_figure_and_no_console_error(tmp_path, small_study):
    from raoutcome.workflows import study

    out = tmp_path / "study"
    shutil.copytree(small_study["out_dir"], out, ignore=shutil.ignore_patterns("notebook_*"))
    report = study.run_demo(out, sim_config=out / "configs" / "sim.toml", train_config=out / "configs" / "train.toml",
                            max_images=4)
    html = report.read_text()
    n_img = html.count("<img")
    assert n_img >= 5
    with Chromium(timeout=120) as browser:
        page = browser.open(report.as_uri(), width=1400, height=1800)
        shot = browser.screenshot(tmp_path / "report_browser.png")
    assert page.errors == []
    assert len(page.images) == n_img
    bad = [img["src"][:60] for img in page.images if not img["ok"]]
    assert bad == []
    image = Image.open(shot)
    assert image.size == (1400, 1800) and np.asarray(image.convert("L")).std() > 10
    if SAVE_SCREENSHOTS:
        shutil.copy(shot, REPO / "docs" / "img" / "report_browser.png")
