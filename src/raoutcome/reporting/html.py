"""A self-contained HTML report: one file, figures embedded as base64 PNG, tables as HTML.

No statistics here: the report only lays out figures and tables that other modules computed, with
plain-language captions. Nothing is fetched from the network (no CDN, no web fonts), so the file opens
offline and can be mailed or archived as is.

Building blocks: :class:`Figure`, :class:`Table`, :class:`Text`, :class:`Preformatted` and
:class:`KeyNumbers` inside :class:`Section` objects; :func:`render_report` returns the HTML string and
:func:`write_report` writes it atomically.
"""
from __future__ import annotations

import base64
import html
import math
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable, Sequence, Union

import pandas as pd

from raoutcome.io_utils import atomic_write


@dataclass
class Figure:
    """A PNG (file path or bytes) with a caption saying in plain words what to look at."""

    source: Union[Path, bytes]
    caption: str = ""
    alt: str = ""
    width: str = "100%"  # CSS max-width of the image


@dataclass
class Table:
    """A pandas table; floats are rounded to ``digits`` significant decimals for reading."""

    frame: pd.DataFrame
    caption: str = ""
    digits: int = 3
    index: bool = False
    max_rows: int = 60


@dataclass
class Text:
    """A paragraph (plain text; escaped; `backticked` spans are set as code). Blank lines split paragraphs."""

    text: str
    kind: str = "p"  # "p" | "note" | "warning"


@dataclass
class Preformatted:
    text: str
    caption: str = ""


@dataclass
class KeyNumbers:
    """A row of headline numbers: [(label, value, detail), ...]."""

    items: Sequence[tuple[str, str, str]]


@dataclass
class Gallery:
    """Figures side by side (wrapping on narrow screens), e.g. one scatter plot per outcome."""

    figures: Sequence[Figure]
    caption: str = ""
    min_width: str = "420px"


Block = Union[Figure, Table, Text, Preformatted, KeyNumbers, Gallery]


@dataclass
class Section:
    id: str
    title: str
    intro: str = ""
    blocks: list[Block] = field(default_factory=list)
    missing: str | None = None  # shown instead of the blocks when the stage produced nothing


# ---------------------------------------------------------------------------------------------------

CSS = """
:root { --ink:#1d2733; --muted:#5b6878; --line:#d9dee5; --accent:#1f5f99; --bg:#ffffff; --soft:#f4f6f9;
        --warn:#8a4b00; --warnbg:#fff5e6; }
* { box-sizing: border-box; }
body { margin:0; font: 15px/1.55 -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
       color:var(--ink); background:var(--bg); }
header { background:#12324f; color:#fff; padding:28px 48px 22px; }
header h1 { margin:0 0 6px; font-size:26px; font-weight:600; }
header p { margin:2px 0; color:#c9d7e6; max-width:1100px; }
nav { background:var(--soft); border-bottom:1px solid var(--line); padding:10px 48px; font-size:13.5px; }
nav a { color:var(--accent); text-decoration:none; margin-right:16px; white-space:nowrap; line-height:1.9; }
main { padding:8px 48px 40px; max-width:1300px; }
section { border-bottom:1px solid var(--line); padding:18px 0 22px; }
h2 { font-size:20px; margin:8px 0 8px; color:#12324f; }
h2 .num { color:var(--muted); font-weight:400; margin-right:6px; }
p { margin:6px 0 10px; max-width:1050px; }
p.intro { color:var(--ink); }
p.note { color:var(--muted); font-size:13.5px; }
p.warning { background:var(--warnbg); color:var(--warn); padding:8px 12px; border-left:4px solid #e0a040; }
figure { margin:14px 0 18px; }
figure img { display:block; max-width:100%; height:auto; border:1px solid var(--line); background:#fff; }
figcaption, .tcaption { color:var(--muted); font-size:13.5px; margin-top:6px; max-width:1050px; }
.tcaption { margin:4px 0 6px; }
.tablewrap { overflow-x:auto; margin:10px 0 16px; }
table { border-collapse:collapse; font-size:13.5px; font-variant-numeric:tabular-nums; }
th, td { border-bottom:1px solid var(--line); padding:4px 10px; text-align:right; vertical-align:top; }
th { background:var(--soft); font-weight:600; }
td:first-child, th:first-child { text-align:left; }
td.txt, th.txt { text-align:left; }
code { font-family: ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size:.9em;
       background:var(--soft); padding:0 3px; border-radius:3px; }
pre { background:var(--soft); padding:10px 12px; font-size:12.5px; overflow-x:auto; border:1px solid var(--line);
      white-space:pre-wrap; }
.keynums { display:flex; flex-wrap:wrap; gap:12px; margin:10px 0 14px; }
.keynum { background:var(--soft); border:1px solid var(--line); border-radius:6px; padding:10px 14px; min-width:190px; }
.keynum .v { font-size:22px; font-weight:600; color:#12324f; }
.keynum .l { font-size:12.5px; color:var(--muted); text-transform:uppercase; letter-spacing:.03em; }
.keynum .d { font-size:12.5px; color:var(--muted); }
.gallery { display:flex; flex-wrap:wrap; gap:14px; align-items:flex-start; }
.gallery figure { margin:6px 0; }
footer { color:var(--muted); font-size:12.5px; padding:14px 48px 30px; }
"""


def _esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def _inline(text: str) -> str:
    """Escaped text with `backticked` spans (commands, file names) set as code."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", _esc(text))


def _paragraphs(text: str, cls: str) -> str:
    parts = [p.strip() for p in str(text).split("\n\n") if p.strip()]
    return "".join(f'<p class="{cls}">{_inline(" ".join(p.split()))}</p>' for p in parts)


def png_data_uri(source: Union[Path, bytes]) -> str:
    data = Path(source).read_bytes() if not isinstance(source, (bytes, bytearray)) else bytes(source)
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def format_number(value: object, digits: int = 3) -> str:
    """Readable number: integers as such, others with ``digits`` decimals, small p-values in e-notation."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if math.isnan(value):
            return "–"
        if math.isinf(value):
            return "∞" if value > 0 else "−∞"
        if value.is_integer() and abs(value) < 1e12:
            return f"{int(value):,}"
        if value != 0 and abs(value) < 10 ** (-digits):
            return f"{value:.1e}"
        return f"{value:,.{digits}f}"
    return str(value)


def _table_html(table: Table) -> str:
    frame = table.frame
    truncated = len(frame) > table.max_rows
    if truncated:
        frame = frame.head(table.max_rows)
    if table.index:
        frame = frame.reset_index()
    numeric = [pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c])
               for c in frame.columns]
    head = "".join(f"<th>{_esc(c)}</th>" if num else f'<th class="txt">{_esc(c)}</th>'
                   for c, num in zip(frame.columns, numeric))
    rows = []
    for rec in frame.itertuples(index=False):
        cells = []
        for value in rec:
            if isinstance(value, (float, int)) and not isinstance(value, bool):
                cells.append(f"<td>{_esc(format_number(value, table.digits))}</td>")
            elif hasattr(value, "item") and not isinstance(value, str):  # numpy scalar
                cells.append(f"<td>{_esc(format_number(value.item(), table.digits))}</td>")
            else:
                cells.append(f'<td class="txt">{_esc("" if value is None else value)}</td>')
        rows.append("<tr>" + "".join(cells) + "</tr>")
    cap = f'<div class="tcaption">{_esc(table.caption)}</div>' if table.caption else ""
    more = (f'<p class="note">First {table.max_rows} of {len(table.frame)} rows shown; '
            f"the full table is in the CSV beside this report.</p>" if truncated else "")
    return f'{cap}<div class="tablewrap"><table><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table></div>{more}'


def _block_html(block: Block) -> str:
    if isinstance(block, Figure):
        cap = f"<figcaption>{_esc(block.caption)}</figcaption>" if block.caption else ""
        alt = _esc(block.alt or block.caption[:120])
        return (f'<figure><img style="max-width:{_esc(block.width)}" alt="{alt}" '
                f'src="{png_data_uri(block.source)}">{cap}</figure>')
    if isinstance(block, Gallery):
        cells = "".join(f'<div style="flex:1 1 {_esc(block.min_width)};max-width:{_esc(f.width)}">{_block_html(f)}</div>'
                        for f in block.figures)
        cap = f'<div class="tcaption">{_esc(block.caption)}</div>' if block.caption else ""
        return f'<div class="gallery">{cells}</div>{cap}'
    if isinstance(block, Table):
        return _table_html(block)
    if isinstance(block, Text):
        return _paragraphs(block.text, block.kind)
    if isinstance(block, Preformatted):
        cap = f'<div class="tcaption">{_esc(block.caption)}</div>' if block.caption else ""
        return f"{cap}<pre>{_esc(block.text)}</pre>"
    if isinstance(block, KeyNumbers):
        cells = "".join(
            f'<div class="keynum"><div class="l">{_esc(key)}</div><div class="v">{_esc(v)}</div>'
            f'<div class="d">{_esc(d)}</div></div>' for key, v, d in block.items)
        return f'<div class="keynums">{cells}</div>'
    raise TypeError(f"unknown report block {type(block).__name__}")


def render_report(title: str, sections: Iterable[Section], subtitle: Sequence[str] = (), footer: str = "") -> str:
    sections = list(sections)
    nav = "\n".join(f'<a href="#{_esc(s.id)}">{i}. {_esc(s.title)}</a>' for i, s in enumerate(sections, 1))
    body = []
    for i, s in enumerate(sections, 1):
        parts = [f'<section id="{_esc(s.id)}"><h2><span class="num">{i}.</span>{_esc(s.title)}</h2>']
        if s.intro:
            parts.append(_paragraphs(s.intro, "intro"))
        if s.missing:
            parts.append(_paragraphs(s.missing, "warning"))
        parts.extend(_block_html(b) for b in s.blocks)
        parts.append("</section>")
        body.append("".join(parts))
    sub = "".join(f"<p>{_esc(line)}</p>" for line in subtitle)
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    foot = _esc(footer) + (" · " if footer else "") + f"Generated {stamp}."
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<title>{_esc(title)}</title><style>{CSS}</style></head><body>"
        f"<header><h1>{_esc(title)}</h1>{sub}</header><nav>{nav}</nav><main>{''.join(body)}</main>"
        f"<footer>{foot}</footer></body></html>\n"
    )


def write_report(path: str | Path, title: str, sections: Iterable[Section], subtitle: Sequence[str] = (),
                 footer: str = "") -> Path:
    path = Path(path)
    text = render_report(title, sections, subtitle=subtitle, footer=footer)
    with atomic_write(path, encoding="utf-8") as fh:
        fh.write(text)
    path.chmod(0o644)  # a report is meant to be shared (the atomic temp file is created private)
    return path


__all__ = ["Figure", "Gallery", "Table", "Text", "Preformatted", "KeyNumbers", "Section", "render_report",
           "write_report", "png_data_uri", "format_number"]
