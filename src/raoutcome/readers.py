"""One reader per kind of user file: tables (CSV, Parquet) and TOML configs.

Every table a user hands over (patients, visits, images, events, joints,
landmarks, and any table added later) goes through :func:`read_table_file`, so
the same rules hold everywhere:

- **Text, no guessing.** Every CSV cell is read as text; only an empty cell is
  missing. ``NA``, ``None``, ``nan``, ``null`` and ``N/A`` are values (some
  registries use them as ids), never silently turned into missing.
- **Encodings.** UTF-8 with or without a byte-order mark, UTF-16 with a
  byte-order mark (Excel's "Unicode text" export), and, failing UTF-8, Windows
  cp1252 / Latin-1 (Excel's legacy "CSV" export). CRLF, LF and CR line ends.
  The delimiter is ``,`` unless the header holds none and holds ``;`` or a tab
  (European Excel exports), or an Excel ``sep=`` first line names it.
- **Refused, with their position.** NUL and other control characters (C0 except
  tab/LF/CR, DEL, C1) in any cell or header: pandas' C parser silently cuts a
  cell at a NUL, and ids holding control characters break key joins and file
  names. Duplicate column names (pandas would silently rename the second
  ``haq.1``) and empty column names over cells that hold values. Parquet
  columns holding lists, maps or structs (one value per cell is expected).
- **Nothing raised.** Every problem becomes a :class:`~raoutcome.errors.Problem`
  naming file, row (1-based data row), column and value.

:func:`read_toml` is the one TOML reader (:func:`raoutcome.config.read_toml`: BOM tolerated,
errors become :class:`~raoutcome.errors.ConfigError` naming the file).
"""
from __future__ import annotations

__all__ = ["read_table_file", "read_toml", "CONTROL_RE", "control_problems", "NA_LIKE"]

import codecs
import csv
import io
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from raoutcome.errors import Problem

#: Control characters refused in any cell: C0 except TAB, LF and CR; DEL; C1.
CONTROL_RE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_CONTROL_PATTERN = "[\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f-\\x9f]"
#: Strings pandas would read as missing by default; here they are values.
NA_LIKE: frozenset[str] = frozenset({"NA", "N/A", "n/a", "NaN", "nan", "-nan", "None", "null", "NULL", "<NA>",
                                     "#N/A", "#NA", "-NaN", "NAN", "1.#IND", "1.#QNAN", "-1.#IND", "-1.#QNAN"})
MAX_LISTED = 50


def _char_name(ch: str) -> str:
    return f"U+{ord(ch):04X}"


def _decode(raw: bytes, file: str) -> tuple[str | None, str | None, list[Problem]]:
    """(text, encoding used, problems)."""
    if raw.startswith(codecs.BOM_UTF8):
        enc, body = "utf-8", raw[len(codecs.BOM_UTF8):]
    elif raw.startswith(codecs.BOM_UTF16_LE) or raw.startswith(codecs.BOM_UTF16_BE):
        enc, body = "utf-16", raw
    elif raw.startswith(codecs.BOM_UTF32_LE) or raw.startswith(codecs.BOM_UTF32_BE):
        enc, body = "utf-32", raw
    else:
        enc, body = "utf-8", raw
        # UTF-16 without a byte-order mark shows as NUL bytes every other byte (and is valid UTF-8).
        sample = raw[:4096]
        if len(sample) >= 4 and sample.count(0) > len(sample) // 4:
            return None, None, [Problem(file, "the file looks like UTF-16 text without a byte-order mark; "
                                              "save it as UTF-8 CSV")]
    try:
        return body.decode(enc), enc, []
    except UnicodeDecodeError as err:
        if enc != "utf-8":
            return None, None, [Problem(file, f"cannot decode the file as {enc.upper()} (byte {err.start}): "
                                              f"save it as UTF-8 CSV")]
    try:  # not UTF-8: Excel's legacy export
        return raw.decode("cp1252"), "cp1252", []
    except UnicodeDecodeError:
        return raw.decode("latin-1"), "latin-1", []


def _delimiter(first_line: str) -> str:
    counts = {d: first_line.count(d) for d in (",", ";", "\t")}
    if counts[","] == 0 and max(counts.values()) > 0:
        return max(counts, key=counts.get)
    return ","


def control_problems(file: str, records: list[list[str]], header: list[str], row_offset: int = 0,
                     cap: int = MAX_LISTED) -> list[Problem]:
    """Problems for every cell holding a control character (rows 1-based after the header)."""
    problems: list[Problem] = []
    found = 0
    for col, name in enumerate(header):
        m = CONTROL_RE.search(name)
        if m:
            problems.append(Problem(file, f"column {col + 1}'s name holds the control character "
                                          f"{_char_name(m.group())} at position {m.start() + 1}",
                                    value=name))
    for r, record in enumerate(records):
        for c, cell in enumerate(record):
            m = CONTROL_RE.search(cell)
            if m is None:
                continue
            found += 1
            if found <= cap:
                column = header[c] if c < len(header) else f"#{c + 1}"
                problems.append(Problem(file, f"cell holds the control character {_char_name(m.group())} at "
                                              f"position {m.start() + 1} (control characters are refused: they "
                                              f"cut or merge ids and paths)",
                                        row=r + 1 + row_offset, column=column, value=cell))
    if found > cap:
        problems.append(Problem(file, f"... and {found - cap} more cell(s) holding control characters"))
    return problems


def _header_problems(file: str, header: list[str], frame: pd.DataFrame | None) -> tuple[list[Problem], list[int]]:
    """Duplicate names, and empty names over data; returns (problems, positions of empty unused columns)."""
    problems: list[Problem] = []
    drop: list[int] = []
    seen: dict[str, int] = {}
    for i, name in enumerate(header):
        if name == "":
            holds = False
            if frame is not None:
                col = frame.iloc[:, i]
                holds = bool(col.astype(str).str.strip().ne("").any()) if col.dtype == object else bool(
                    col.notna().any())
            if holds:
                problems.append(Problem(file, f"column {i + 1} has no name in the header row but holds values; "
                                              f"name it or remove it", column=f"#{i + 1}"))
            else:
                drop.append(i)
            continue
        if name in seen:
            problems.append(Problem(file, f"duplicate column name: columns {seen[name] + 1} and {i + 1} are "
                                          f"both named '{name}' (rename or remove one)", column=name))
        else:
            seen[name] = i
    return problems, drop


def _clean_name(name: object) -> str:
    return str(name).replace("\ufeff", "").strip()


def _long_rows(file: str, text: str, delim: str, width: int) -> list[Problem]:
    """Rows holding more cells than the header names (rare path: the csv module finds them)."""
    try:
        records = csv.reader(io.StringIO(text, newline=""), delimiter=delim)
        long = [(r, rec) for r, rec in enumerate(records) if r > 0 and len(rec) > width]
    except csv.Error:
        return []
    return [Problem(file, f"row has {len(rec)} cells but the header names {width} columns", row=r,
                    value=delim.join(rec)) for r, rec in long[:MAX_LISTED]]


def _read_csv(path: Path, file: str, what: str) -> tuple[pd.DataFrame | None, list[Problem]]:
    try:
        raw = path.read_bytes()
    except OSError as err:
        return None, [Problem(file, f"cannot read {what}: {err.strerror or err}")]
    text, _, problems = _decode(raw, file)
    if text is None:
        return None, problems
    if not text.strip():
        return None, [Problem(file, f"{what} is empty (no header row)")]
    line = re.compile(r"([^\r\n]*)(\r\n|\r|\n|$)")
    head = line.match(text)
    first = head.group(1)
    m = re.fullmatch(r"\ufeff?sep=(.)", first)
    if m:  # Excel's "sep=;" directive line
        delim = m.group(1)
        text = text[head.end():]
        first = line.match(text).group(1)
    else:
        delim = _delimiter(first)
    if CONTROL_RE.search(text):
        # Rare path: parse with the csv module (keeps NUL) only to locate every offending cell.
        try:
            records = list(csv.reader(io.StringIO(text, newline=""), delimiter=delim))
        except csv.Error as err:
            return None, [Problem(file, f"cannot read {what}: {err}")]
        if not records:
            return None, [Problem(file, f"{what} is empty (no header row)")]
        header = [_clean_name(h) for h in records[0]]
        return None, control_problems(file, records[1:], header)
    try:
        header = [_clean_name(h) for h in next(csv.reader([first], delimiter=delim))]
    except (csv.Error, StopIteration) as err:
        return None, [Problem(file, f"cannot read the header row of {what}: {err}")]
    dup = [Problem(file, f"duplicate column name: columns {header.index(n) + 1} and {i + 1} are both named "
                         f"'{n}' (rename or remove one)", column=n)
           for i, n in enumerate(header) if n and n in header[:i]]
    if dup:  # pandas cannot even be handed duplicate names
        return None, dup
    try:
        names = [h or f"#{i + 1}" for i, h in enumerate(header)]  # placeholders for empty names
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            frame = pd.read_csv(io.StringIO(text), sep=delim, header=0, names=names,
                                dtype=str, keep_default_na=False, na_filter=False, quotechar='"',
                                skip_blank_lines=True, engine="c", index_col=False)
    except Exception as err:  # noqa: BLE001 - any parser failure is the user's file
        long = _long_rows(file, text, delim, len(header))
        return None, long or [Problem(file, f"cannot read {what}: {type(err).__name__}: {err}".strip())]
    if any(issubclass(w.category, pd.errors.ParserWarning) for w in caught):
        # pandas dropped cells of rows longer than the header: name them.
        return None, _long_rows(file, text, delim, len(header)) or [
            Problem(file, f"cannot read {what}: rows do not match the header")]
    problems, drop = _header_problems(file, header, frame)
    if problems:
        return None, problems
    if drop:
        frame = frame.drop(columns=[frame.columns[i] for i in drop])
    # Short rows leave NaN in the trailing cells: missing, the same as empty.
    frame = frame.fillna("")
    return frame.reset_index(drop=True), []


_NESTED = ("list", "large_list", "fixed_size_list", "list_view", "large_list_view", "map", "struct",
           "dense_union", "sparse_union")


def _arrow_kind(typ) -> str | None:
    """'lists'/'maps'/'structs' when ``typ`` holds more than one value per cell, else None."""
    import pyarrow as pa

    if pa.types.is_dictionary(typ):
        typ = typ.value_type
    if pa.types.is_map(typ):
        return "maps"
    if pa.types.is_struct(typ):
        return "structs"
    if pa.types.is_union(typ):
        return "unions"
    if pa.types.is_list(typ) or pa.types.is_large_list(typ) or pa.types.is_fixed_size_list(typ) or (
            getattr(pa.types, "is_list_view", lambda t: False)(typ)):
        return "lists"
    return None


def _read_parquet(path: Path, file: str, what: str) -> tuple[pd.DataFrame | None, list[Problem]]:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as err:  # noqa: BLE001 - corrupt or foreign file
        return None, [Problem(file, f"cannot read {what}: {type(err).__name__}: {err}")]
    names = [_clean_name(n) for n in table.column_names]
    problems, drop = _header_problems(file, names, None)
    for i, field in enumerate(table.schema):
        kind = _arrow_kind(field.type)
        if kind is not None:
            problems.append(Problem(file, f"column holds {kind} ({field.type}); give one plain value per cell",
                                    column=names[i] or f"#{i + 1}"))
        elif pa.types.is_binary(field.type) or pa.types.is_large_binary(field.type):
            problems.append(Problem(file, "column holds raw bytes; give text or numbers",
                                    column=names[i] or f"#{i + 1}"))
    if problems:
        return None, problems
    # Control characters in text columns (vectorised in Arrow).
    for i, col in enumerate(table.columns):
        typ = col.type.value_type if pa.types.is_dictionary(col.type) else col.type
        if not (pa.types.is_string(typ) or pa.types.is_large_string(typ)):
            continue
        arr = col.cast(typ) if pa.types.is_dictionary(col.type) else col
        hit = pc.match_substring_regex(arr, _CONTROL_PATTERN).fill_null(False).to_numpy(zero_copy_only=False)
        if hit.any():
            values = arr.to_pylist()
            rows = np.flatnonzero(hit)
            for r in rows[:MAX_LISTED]:
                m = CONTROL_RE.search(values[r])
                problems.append(Problem(file, f"cell holds the control character {_char_name(m.group())} at "
                                              f"position {m.start() + 1} (control characters are refused)",
                                        row=int(r) + 1, column=names[i], value=values[r]))
            if len(rows) > MAX_LISTED:
                problems.append(Problem(file, f"... and {len(rows) - MAX_LISTED} more cell(s) holding control "
                                              f"characters", column=names[i]))
    if problems:
        return None, problems
    try:
        frame = table.to_pandas()
    except Exception as err:  # noqa: BLE001 - e.g. an out-of-range timestamp
        return None, [Problem(file, f"cannot convert {what} to a table: {type(err).__name__}: {err}")]
    frame.columns = names
    if drop:
        frame = frame.drop(columns=[names[i] for i in drop])
    for col in frame.columns:
        if isinstance(frame[col].dtype, pd.CategoricalDtype):
            frame[col] = frame[col].astype(object)
    return frame.reset_index(drop=True), []


def read_table_file(path: str | Path, file: str | None = None, what: str = "table") -> tuple[
        pd.DataFrame | None, list[Problem]]:
    """Read a CSV or Parquet table by the rules in the module docs.

    Parameters
    ----------
    path : the file (``.parquet`` is read as Parquet, anything else as CSV).
    file : the name used in problems (default: the file's name).
    what : what the file is, for messages (e.g. ``"table 'visits'"``).

    Returns
    -------
    (frame, problems): ``frame`` (CSV: every cell a ``str``, ``""`` when empty;
    Parquet: the file's types) and no problems, or ``None`` and the problems.
    """
    path = Path(path)
    file = file or path.name
    if path.suffix.lower() == ".parquet":
        return _read_parquet(path, file, what)
    return _read_csv(path, file, what)


def read_toml(path: str | Path, what: str = "config") -> dict:
    """The one TOML reader, :func:`raoutcome.config.read_toml` (BOM tolerated; bad files raise
    :class:`ConfigError` naming the file); here so every kind of user file has its reader in one place."""
    from raoutcome.config import read_toml as _read

    return _read(path, what)
