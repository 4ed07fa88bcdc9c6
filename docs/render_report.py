#!/usr/bin/env python3
"""Render a raoutcome HTML report to PNG with headless Chromium (to look at every figure, and for the README).

Usage (from the repository root, after ``make demo``)::

    .venv/bin/python docs/render_report.py demo_out/report.html --out demo_out/report_full.png \\
        --top docs/img/report.png

writes

* ``--out``: the whole page, ``--width`` CSS pixels wide (default 1400), as one PNG. Chromium's
  ``--screenshot`` only captures the window, and windows taller than a few thousand pixels are
  unreliable, so the page is taken in tiles (the page shifted up by each tile's offset) and stitched.
* ``--top`` (optional): the top of the report (first ``--top-height`` px, default 1800) scaled down to
  ``--top-width`` px wide (default 1000) and optimised (below ``--max-kb``, default 600 kB, by reducing to
  a 256-colour palette when needed) — the screenshot shown in the README.
* ``--pieces DIR`` (optional): the full page cut into ``--piece-height`` px high PNGs (default 1400), small
  enough to read one by one in an image viewer.

Chromium is looked for in ``$CHROMIUM``, then ``chromium``, ``chromium-browser``, ``google-chrome``,
``google-chrome-stable`` on the PATH; without one the script stops with exit code 2 and says how to install
it (Debian/Ubuntu: ``apt-get install -y chromium``). Every file is written atomically (temporary file in
the same folder, then renamed). Nothing is fetched from the network: the report is self-contained, and
Chromium runs with networking features off and a throw-away profile.
"""
from __future__ import annotations

import argparse
import io
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-extensions", "--hide-scrollbars", "--mute-audio", "--force-device-scale-factor=1")
TILE = 3000          # CSS px per screenshot tile
MAX_HEIGHT = 200_000  # refuse absurd pages rather than take minutes


class RenderError(RuntimeError):
    pass


def find_chromium() -> str:
    """Path of a Chromium/Chrome binary, or :class:`RenderError` saying how to install one."""
    env = os.environ.get("CHROMIUM")
    if env:
        found = shutil.which(env)
        if not found:
            raise RenderError(f"$CHROMIUM={env!r} is not an executable")
        return found
    for name in CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    raise RenderError("no headless Chromium found (looked for $CHROMIUM, " + ", ".join(CANDIDATES)
                      + "); install it, e.g. `apt-get install -y chromium` on Debian/Ubuntu, "
                        "or set CHROMIUM=/path/to/chrome")


def _run_chromium(chromium: str, args: list[str], timeout: float) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="render_report_profile_") as profile:
        cmd = [chromium, *FLAGS, f"--user-data-dir={profile}", *args]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            raise RenderError(f"Chromium did not finish within {timeout:.0f} s: {' '.join(cmd)}") from exc
    if proc.returncode != 0:
        raise RenderError(f"Chromium failed (exit {proc.returncode}):\n{proc.stderr[-2000:]}")
    return proc


def _with_head(html: str, extra: str) -> str:
    """``html`` with ``extra`` inserted just before ``</head>`` (or at the start when there is none)."""
    match = re.search(r"</head\s*>", html, flags=re.IGNORECASE)
    return html[:match.start()] + extra + html[match.start():] if match else extra + html


_MEASURE = """<script>
window.addEventListener('load', function () {
  var h = Math.ceil(Math.max(document.documentElement.scrollHeight, document.body ? document.body.scrollHeight : 0));
  var m = document.createElement('meta'); m.name = 'render-report-height'; m.content = String(h);
  document.head.appendChild(m);
});
</script>"""


def page_height(chromium: str, html: str, width: int, workdir: Path, timeout: float = 120) -> int:
    """Height in CSS px of the page laid out ``width`` px wide (measured by Chromium after load)."""
    probe = workdir / "measure.html"
    probe.write_text(_with_head(html, _MEASURE), encoding="utf-8")
    proc = _run_chromium(chromium, ["--dump-dom", "--virtual-time-budget=10000",
                                    f"--window-size={width},1000", probe.as_uri()], timeout)
    match = re.search(r'name="render-report-height" content="(\d+)"', proc.stdout)
    if not match:
        raise RenderError("could not measure the page height (no load event in Chromium's DOM dump)")
    return int(match.group(1))


def render_full(html_path: Path, width: int = 1400, timeout: float = 120) -> Image.Image:
    """The whole page at ``width`` CSS px as one RGB image (taken in tiles and stitched)."""
    chromium = find_chromium()
    html = Path(html_path).read_text(encoding="utf-8")
    with tempfile.TemporaryDirectory(prefix="render_report_") as tmp:
        work = Path(tmp)
        height = page_height(chromium, html, width, work, timeout)
        if height <= 0 or height > MAX_HEIGHT:
            raise RenderError(f"implausible page height {height} px")
        canvas = Image.new("RGB", (width, height), "white")
        for top in range(0, height, TILE):
            tile_h = min(TILE, height - top)
            # shift the page up by `top` px; the window shows the next tile_h px
            shift = f"<style>html{{overflow:hidden}} body{{transform:translateY(-{top}px)}}</style>"
            page = work / f"tile_{top}.html"
            page.write_text(_with_head(html, shift), encoding="utf-8")
            shot = work / f"tile_{top}.png"
            _run_chromium(chromium, [f"--screenshot={shot}", f"--window-size={width},{tile_h}",
                                     "--virtual-time-budget=10000", page.as_uri()], timeout)
            if not shot.exists():
                raise RenderError(f"Chromium wrote no screenshot for the tile at {top} px")
            with Image.open(shot) as im:
                canvas.paste(im.convert("RGB").crop((0, 0, width, tile_h)), (0, top))
    return canvas


def top_of_report(image: Image.Image, height: int = 1800, width: int = 1000) -> Image.Image:
    """The first ``height`` px of ``image``, scaled to ``width`` px wide (never enlarged)."""
    top = image.crop((0, 0, image.width, min(height, image.height)))
    if top.width > width:
        top = top.resize((width, round(top.height * width / top.width)), Image.LANCZOS)
    return top


def png_bytes(image: Image.Image, max_kb: float | None = None) -> bytes:
    """Optimised PNG; when over ``max_kb``, a 256-colour (then 128, 64) palette version."""
    buf = io.BytesIO()
    image.save(buf, format="PNG", optimize=True)
    data = buf.getvalue()
    for colours in (256, 128, 64):
        if max_kb is None or len(data) <= max_kb * 1024:
            break
        buf = io.BytesIO()
        image.convert("RGB").quantize(colors=colours, method=Image.Quantize.MEDIANCUT,
                                      dither=Image.Dither.NONE).save(buf, format="PNG", optimize=True)
        data = min(data, buf.getvalue(), key=len)
    return data


def write_atomic(path: Path, data: bytes) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 epilog="Example: docs/render_report.py demo_out/report.html --out "
                                        "demo_out/report_full.png --top docs/img/report.png")
    ap.add_argument("report", type=Path, help="the report HTML (e.g. demo_out/report.html)")
    ap.add_argument("--out", type=Path, help="full-page PNG (default: REPORT with .png)")
    ap.add_argument("--width", type=int, default=1400, help="page width in CSS px (default 1400)")
    ap.add_argument("--top", type=Path, help="also write the README screenshot (top of the report) here")
    ap.add_argument("--top-height", type=int, default=1800, help="px of the page kept for --top (default 1800)")
    ap.add_argument("--top-width", type=int, default=1000, help="width of --top in px (default 1000)")
    ap.add_argument("--max-kb", type=float, default=600, help="size limit of --top in kB (default 600)")
    ap.add_argument("--pieces", type=Path, help="also cut the full page into PNGs in this folder")
    ap.add_argument("--piece-height", type=int, default=1400, help="height of each piece (default 1400)")
    ap.add_argument("--timeout", type=float, default=120, help="seconds allowed per Chromium call")
    args = ap.parse_args(argv)

    if not args.report.is_file():
        print(f"error: {args.report}: no such file", file=sys.stderr)
        return 2
    try:
        full = render_full(args.report, width=args.width, timeout=args.timeout)
    except RenderError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = args.out or args.report.with_suffix(".png")
    write_atomic(out, png_bytes(full))
    print(f"{out}: {full.width} x {full.height} px")
    if args.pieces:
        for i, top in enumerate(range(0, full.height, args.piece_height), 1):
            piece = full.crop((0, top, full.width, min(full.height, top + args.piece_height)))
            write_atomic(args.pieces / f"page_{i:02d}.png", png_bytes(piece))
        print(f"{args.pieces}: {i} pieces of {args.piece_height} px")
    if args.top:
        data = png_bytes(top_of_report(full, args.top_height, args.top_width), args.max_kb)
        write_atomic(args.top, data)
        size_kb = len(data) / 1024
        print(f"{args.top}: {size_kb:.0f} kB" + (f" (over the {args.max_kb:.0f} kB asked for)"
                                                  if size_kb > args.max_kb else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
