"""Finding and reading the manifest tables, and applying a ``cohort.toml`` mapping.

A cohort is a folder holding ``patients``, ``visits``, ``images``, ``events`` and
optionally ``joints`` and ``landmarks`` as ``<name>.csv`` or ``<name>.parquet``.
An optional ``cohort.toml`` (in the folder, or passed directly) names other
files and maps the user's own column and label names onto ours, so nobody has
to edit their spreadsheets::

    root = "."                      # folder image paths are relative to (default: the toml's folder)
    [tables]
    visits = "exports/visit_scores.csv"
    [columns.visits]
    mtss = "svdh_total"             # your column name = our column name
    [views]
    "LH" = "hand_left"              # your view label = our view name
    [events]
    "AAS" = "deformity"             # your event label = our event name

Reading never raises for bad input: every problem is collected as a
:class:`~raoutcome.errors.Problem` so the user sees them all at once.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from raoutcome.cohort import schema
from raoutcome.config import read_toml
from raoutcome.errors import ConfigError, Problem
from raoutcome.readers import read_table_file

TOML_NAME = "cohort.toml"
_TOP_KEYS = {"root", "tables", "columns", "views", "events"}


@dataclass
class Spec:
    """Where a cohort's files are and how to rename its columns and labels."""

    source: Path                     # the folder or cohort.toml the user named
    root: Path                       # image paths are relative to this folder
    table_dir: Path                  # table file names are relative to this folder
    files: dict[str, Path | None] = field(default_factory=dict)
    columns: dict[str, dict[str, str]] = field(default_factory=dict)  # table -> {user: ours}
    views: dict[str, str] = field(default_factory=dict)               # user label -> view name
    events: dict[str, str] = field(default_factory=dict)              # user label -> event name
    toml: Path | None = None


@dataclass
class Table:
    """One table as read: values as in the file (CSV: strings), columns renamed to ours."""

    name: str
    file: str                        # display name used in problems (relative to table_dir)
    frame: pd.DataFrame              # index 0..n-1 = data row - 1
    user_names: dict[str, str] = field(default_factory=dict)  # our column -> the file's column
    text_cache: dict[str, pd.Series] = field(default_factory=dict, repr=False)

    def column_label(self, column: str) -> str:
        """The column as the user knows it (their own name when cohort.toml renamed it)."""
        return self.user_names.get(column, column)


def _str_map(value: object, where: str, toml_name: str, problems: list[Problem]) -> dict[str, str]:
    if not isinstance(value, dict):
        problems.append(Problem(toml_name, f"[{where}] must be a table of  your_name = \"our_name\"  entries",
                                value=value))
        return {}
    out: dict[str, str] = {}
    for key, val in value.items():
        if not isinstance(val, str) or not val.strip():
            problems.append(Problem(toml_name, f"[{where}] entry {key!r} must map to a non-empty string", value=val))
            continue
        out[str(key).strip()] = val.strip()
    return out


def resolve_spec(path: str | Path) -> tuple[Spec, list[Problem]]:
    """Turn a folder or cohort.toml path into a :class:`Spec` (plus any problems with the toml)."""
    path = Path(path).expanduser()
    problems: list[Problem] = []
    if path.is_dir():
        toml_path = path / TOML_NAME if (path / TOML_NAME).is_file() else None
        base = path
    elif path.is_file():
        if path.suffix.lower() != ".toml":
            problems.append(Problem(str(path), "expected a cohort folder or a cohort.toml file"))
            return Spec(path, path.parent, path.parent), problems
        toml_path, base = path, path.parent
    else:
        problems.append(Problem(str(path), "no such cohort folder or cohort.toml"))
        return Spec(path, path, path), problems

    spec = Spec(source=path, root=base, table_dir=base, toml=toml_path)
    if toml_path is not None:
        toml_name = toml_path.name
        try:
            doc = read_toml(toml_path, "cohort spec")
        except ConfigError as err:
            problems.append(Problem(toml_name, f"cannot read the cohort spec: {err}"))
            doc = {}
        for key in sorted(set(doc) - _TOP_KEYS):
            problems.append(Problem(toml_name, f"unknown key (expected one of {sorted(_TOP_KEYS)})", column=key))
        if "root" in doc:
            if isinstance(doc["root"], str) and doc["root"].strip():
                root = Path(doc["root"]).expanduser()
                spec.root = root if root.is_absolute() else base / root
                if not spec.root.is_dir():
                    problems.append(Problem(toml_name, "root folder does not exist", column="root",
                                            value=doc["root"]))
            else:
                problems.append(Problem(toml_name, "root must be a folder path (string)", column="root",
                                        value=doc["root"]))
        tables = _str_map(doc.get("tables", {}), "tables", toml_name, problems)
        for name, file in tables.items():
            if name not in schema.TABLES:
                problems.append(Problem(toml_name, f"[tables] names an unknown table (expected one of "
                                        f"{list(schema.TABLES)})", column=name, value=file))
                continue
            file_path = Path(file).expanduser()
            file_path = file_path if file_path.is_absolute() else base / file_path
            if file_path.suffix.lower() not in schema.SUFFIXES:
                problems.append(Problem(toml_name, "table files must be .csv or .parquet",
                                        column=f"tables.{name}", value=file))
            elif not file_path.is_file():
                problems.append(Problem(toml_name, "table file does not exist", column=f"tables.{name}",
                                        value=file))
            spec.files[name] = file_path
        columns = doc.get("columns", {})
        if not isinstance(columns, dict):
            problems.append(Problem(toml_name, "[columns] must hold one [columns.<table>] section per table",
                                    value=columns))
            columns = {}
        for name, mapping in columns.items():
            if name not in schema.TABLES:
                problems.append(Problem(toml_name, f"[columns.{name}] names an unknown table (expected one of "
                                        f"{list(schema.TABLES)})", column=f"columns.{name}"))
                continue
            spec.columns[name] = _str_map(mapping, f"columns.{name}", toml_name, problems)
        spec.views = _str_map(doc.get("views", {}), "views", toml_name, problems)
        spec.events = _str_map(doc.get("events", {}), "events", toml_name, problems)
        # A view mapped onto a name we do not know is a toml problem, not a per-row one.
        from raoutcome.anatomy import view_names

        for user, ours in spec.views.items():
            if ours not in view_names():
                problems.append(Problem(toml_name, f"[views] maps onto an unknown view (expected one of "
                                        f"{list(view_names())})", column=f"views.{user}", value=ours))

    for name in schema.TABLES:
        if name in spec.files:
            continue
        found = [spec.table_dir / f"{name}{sfx}" for sfx in schema.SUFFIXES
                 if (spec.table_dir / f"{name}{sfx}").is_file()]
        if len(found) > 1:
            problems.append(Problem(f"{name}.csv", f"both {name}.csv and {name}.parquet exist; keep one, "
                                    f"or name the one to use in {TOML_NAME} [tables]"))
            spec.files[name] = None
        else:
            spec.files[name] = found[0] if found else None
    return spec, problems


def _display(path: Path, base: Path) -> str:
    try:
        return path.relative_to(base).as_posix()
    except ValueError:
        return str(path)


def read_table(spec: Spec, name: str, problems: list[Problem]) -> Table | None:
    """Read one table (None if absent or unreadable; problems are appended)."""
    path = spec.files.get(name)
    if path is None:
        if name in schema.REQUIRED_TABLES:
            problems.append(Problem(f"{name}.csv", f"required table '{name}' is missing (expected {name}.csv "
                                    f"or {name}.parquet in {spec.table_dir})"))
        return None
    file = _display(path, spec.table_dir)
    if not path.is_file():  # named in the toml but absent: already reported there
        return None
    frame, found = read_table_file(path, file, what=f"table '{name}'")
    if frame is None:
        problems.extend(found)
        return None
    frame = frame.reset_index(drop=True)
    frame.columns = [str(c).strip() for c in frame.columns]
    table = Table(name=name, file=file, frame=frame)
    mapping = spec.columns.get(name, {})
    if mapping:
        toml_name = spec.toml.name if spec.toml else TOML_NAME
        present = set(frame.columns)
        rename: dict[str, str] = {}
        for user, ours in mapping.items():
            if user not in present:
                problems.append(Problem(toml_name, f"[columns.{name}] renames a column that {file} does not have "
                                        f"(its columns: {list(frame.columns)})", column=user, value=ours))
                continue
            if ours in present and ours != user and ours not in mapping:
                problems.append(Problem(file, f"column '{user}' is renamed to '{ours}' by {toml_name}, but the "
                                        f"file already has a '{ours}' column", column=user))
                continue
            rename[user] = ours
        targets = pd.Series(list(rename.values()))
        for ours in targets[targets.duplicated()].unique():
            problems.append(Problem(toml_name, f"[columns.{name}] maps several columns onto '{ours}'",
                                    column=ours))
        frame = frame.rename(columns=rename)
        table.frame = frame
        table.user_names = {ours: user for user, ours in rename.items()}
    return table
