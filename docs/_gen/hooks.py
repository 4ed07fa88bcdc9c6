"""MkDocs hooks: let pages link to repository files, and clean Sphinx roles out of rendered docstrings.

* A Markdown link from a page to a file of the repository outside ``docs/`` (``../analyses/x.py``,
  ``../cohorts/README.md``) has no page on the site. It becomes the file's path in code type. A link
  to a file that exists nowhere is left alone, so the strict build still fails on it.
* Docstrings use Sphinx roles (``:func:`raoutcome.x```); rendered as Markdown they would read
  ``:func:x``. The role prefix is dropped and a leading ``~`` removed.
"""
from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LINK = re.compile(r"(?<!!)\[([^\]\n]+)\]\(([^)\s#]+)(#[^)\s]*)?\)")
ROLE = re.compile(r":(?:py:)?(?:func|class|mod|meth|attr|data|exc|obj|const|ref|doc|term):(?=<code>)")
TILDE = re.compile(r"<code>~")


def on_page_markdown(markdown: str, page, config, files) -> str:
    docs = Path(config["docs_dir"]).resolve()
    src = page.file.abs_src_path
    if not src:  # generated page: no file of its own; links are written by gen_pages.py
        return markdown
    here = Path(src).parent

    def rewrite(match: re.Match) -> str:
        text, target = match.group(1), match.group(2)
        if "://" in target or target.startswith(("mailto:", "/")):
            return match.group(0)
        path = (here / target).resolve()
        if path.is_relative_to(docs) or not path.exists() or not path.is_relative_to(REPO):
            return match.group(0)
        rel = path.relative_to(REPO).as_posix()
        plain = text.strip("`")
        return f"`{rel}`" if plain in (rel, target, path.name) else f"{text} (`{rel}`)"

    return LINK.sub(rewrite, markdown)


def on_page_content(html: str, page, config, files) -> str:
    return TILDE.sub("<code>", ROLE.sub("", html))
