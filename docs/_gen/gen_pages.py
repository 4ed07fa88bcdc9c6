"""Generate the parts of the docs site that must follow the code (run by mkdocs-gen-files at build time).

* ``reference/``: one API page per public module of ``src/raoutcome`` (mkdocstrings renders the
  docstrings); a new module appears without editing anything. Packages whose ``__init__`` only
  re-exports show their docstring and the list of their modules (each name is documented once, where
  it is defined, so that cross-references have one target).
* ``cli.md``: every ``raoutcome`` command with its usage, help and options, read from the typer app.
* ``changelog.md``: the repository's ``CHANGELOG.md``.
* ``SUMMARY.md``: the navigation. Known pages come in a fixed order; every other Markdown page under
  ``docs/`` (the analyses' pages that land over time) is added by folder, so no page is left out.
"""
from __future__ import annotations

import ast
import sys
from pathlib import Path

import mkdocs_gen_files

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"
SRC = REPO / "src"
sys.path.insert(0, str(SRC))

#: The fixed part of the navigation: (section, [(title, page)]). Pages that do not exist are skipped.
KNOWN: list[tuple[str, list[tuple[str, str]]]] = [
    ("", [("Home", "index.md"), ("Getting started", "getting-started.md")]),
    ("User guides", [("Epidemiologist: cohort models", "guides/epidemiologist.md"),
                     ("Trialist: endpoints and power", "guides/trialist.md"),
                     ("Biomarker researcher: attribution", "guides/biomarker.md"),
                     ("Hospital: PACS and DICOM SR", "guides/hospital.md"),
                     ("PACS", "pacs.md")]),
    ("Concepts", [("Outcomes", "concepts/outcomes.md"), ("Views and sites", "concepts/views-and-sites.md"),
                  ("The cohort manifest", "manifest.md"), ("Cross-fitting", "concepts/cross-fitting.md"),
                  ("What the simulator knows", "concepts/simulator.md")]),
    ("Results", [("The synthetic cohort", "results/synthetic-cohort.md"),
                 ("The demo report", "results/report.md"),
                 ("Learning check and benchmarks", "results/learning-check.md"),
                 ("The model, and why", "results/model.md"),
                 ("Joint anomaly", "results/joint-anomaly.md"),
                 ("Attribution beyond Sharp", "results/attribution.md"),
                 ("Statistics and test size", "results/statistics.md"),
                 ("Beyond damage", "beyond_damage.md"), ("Survival", "survival.md")]),
    ("Development notes", [("Internal contracts", "CONTRACTS.md")]),
]
LAST = ("Development notes",)  # sections put after the automatic ones
SECTION_OF_FOLDER = {"guides": "User guides", "concepts": "Concepts", "results": "Results", "": "Analyses",
                     "dev": "Development notes"}
SKIP = {"SUMMARY.md"}


def public_modules() -> list[tuple[str, Path]]:
    """(dotted name, file) of every module whose path has no ``_private`` part."""
    out = []
    for path in sorted((SRC / "raoutcome").rglob("*.py")):
        parts = path.relative_to(SRC).with_suffix("").parts
        if any(p.startswith("_") and p != "__init__" for p in parts):
            continue
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out.append((name, path))
    return out


def defines_names(path: Path) -> bool:
    """Whether a module itself defines a function, class or documented constant (not just imports)."""
    tree = ast.parse(path.read_text())
    return any(isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) for n in tree.body)


def reference_pages() -> list[tuple[str, str]]:
    """Write reference/<module>.md for every public module; return (module, page) in order."""
    pages = []
    modules = public_modules()
    packages = {name for name, path in modules if path.name == "__init__.py"}
    for name, path in modules:
        page = "reference/" + name.replace(".", "/") + ("/index.md" if name in packages else ".md")
        lines = [f"::: {name}"]
        if name == "raoutcome":  # lazy names (PEP 562): documented in raoutcome.api
            lines += ["    options:", "      members: false", "",
                      "The names above are defined in [raoutcome.api][] (the five calls), "
                      "[raoutcome.errors][] (errors and warning categories) and resolved on first use."]
        elif name in packages and not defines_names(path):
            lines += ["    options:", "      members: false"]
        if name in packages:
            children = [m for m, _ in modules if m.rsplit(".", 1)[0] == name and m != name]
            if children:
                lines += ["", "**Modules:** " + ", ".join(f"[{c}][]" for c in children)]
        with mkdocs_gen_files.open(page, "w") as fh:
            fh.write("\n".join(lines) + "\n")
        mkdocs_gen_files.set_edit_path(page, path.relative_to(REPO))
        pages.append((name, page))
    return pages


def cli_page() -> None:
    """cli.md from the typer app: usage, help text and a table of options per command."""
    import click
    import typer

    from raoutcome.cli import app

    group = typer.main.get_command(app)
    out = ["# Command line", "",
           "Generated from the `raoutcome` commands (`raoutcome --help`, `raoutcome COMMAND --help`). "
           "Every command reports bad input with file, row, column and value and exits with code 2.", ""]

    def section(cmd: click.Command, path: str, level: str) -> None:
        ctx = click.Context(cmd, info_name=path)
        out.extend([f"{level} `{path}`", "", (cmd.help or "").strip(), "", "```text",
                    cmd.get_usage(ctx).strip(), "```", ""])
        rows = []
        for p in cmd.params:
            if p.param_type_name == "option":
                names = ", ".join(f"`{o}`" for o in p.opts + p.secondary_opts)
                default = "" if p.required or p.default in (None, False) or callable(p.default) else f"`{p.default}`"
                rows.append(f"| {names} | {'yes' if p.required else ''} | {default} | {_cell(p.help)} |")
            elif p.param_type_name == "argument":
                help_text = getattr(p, "help", "") or ""
                required = "yes" if p.required else ""
                rows.append(f"| `{p.name.upper()}` (argument) | {required} |  | {_cell(help_text)} |")
        if rows:
            out.extend(["| option | required | default | what |", "|---|---|---|---|", *rows, ""])
        for name in sorted(getattr(cmd, "commands", {}) if cmd is not group else []):
            section(cmd.commands[name], f"{path} {name}", "###")

    section(group, "raoutcome", "##")
    for name in sorted(group.commands):
        section(group.commands[name], f"raoutcome {name}", "##")
    with mkdocs_gen_files.open("cli.md", "w") as fh:
        fh.write("\n".join(out) + "\n")
    mkdocs_gen_files.set_edit_path("cli.md", "src/raoutcome/cli.py")


def _cell(text: str | None) -> str:
    """Help text fit for one Markdown table cell (pipes escaped, one line)."""
    return " ".join((text or "").split()).replace("|", "\\|")


def changelog_page() -> str | None:
    source = REPO / "CHANGELOG.md"
    if not source.exists():
        return None
    with mkdocs_gen_files.open("changelog.md", "w") as fh:
        fh.write(source.read_text())
    return "changelog.md"


def summary(reference: list[tuple[str, str]], extra: list[tuple[str, str]]) -> str:
    listed: set[str] = set()
    lines: list[str] = []
    sections: dict[str, list[tuple[str, str]]] = {}
    for section, pages in KNOWN:
        present = [(t, p) for t, p in pages if (DOCS / p).exists()]
        sections.setdefault(section, []).extend(present)
        listed.update(p for _, p in present)
    # Every other page under docs/, by folder (the analyses' own pages land here as they are written).
    for path in sorted(DOCS.rglob("*.md")):
        rel = path.relative_to(DOCS).as_posix()
        if rel in listed or rel in SKIP or rel.startswith(("_gen/", "reference/")):
            continue
        folder = rel.split("/")[0] if "/" in rel else ""
        section = SECTION_OF_FOLDER.get(folder, folder.replace("_", " ").capitalize())
        sections.setdefault(section, []).append((_title(path), rel))
        listed.add(rel)
    order = [s for s in sections if s not in LAST] + [s for s in LAST if s in sections]
    for section in order:
        pages = sections[section]
        if not pages:
            continue
        if section:
            lines.append(f"- {section}")
        for title, page in pages:
            lines.append(f"{'    ' if section else ''}- [{title}]({page})")
    lines.append("- Reference")
    lines.append("    - [Command line](cli.md)")
    lines.append("    - API")
    for name, page in reference:
        depth = name.count(".")
        title = name if depth == 0 else name.rsplit(".", 1)[-1]
        lines.append("        " + "    " * depth + f"- [{title}]({page})")
    for title, page in extra:
        lines.append(f"- [{title}]({page})")
    return "\n".join(lines) + "\n"


def _title(path: Path) -> str:
    for line in path.read_text().splitlines():
        if line.startswith("# "):
            return line[2:].strip()
    return path.stem.replace("_", " ").replace("-", " ").capitalize()


reference = reference_pages()
cli_page()
extra = [("Changelog", page)] if (page := changelog_page()) else []
with mkdocs_gen_files.open("SUMMARY.md", "w") as fh:
    fh.write(summary(reference, extra))
