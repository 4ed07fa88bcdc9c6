"""Validation of a cohort manifest: every problem at once, each located precisely.

Checks are vectorised pandas operations over whole columns; Python loops only
format the problems that were found (at most :data:`MAX_PER_RULE` per rule,
then one "... and N more" line) and stat the image files (one ``os.stat`` per
distinct path; pixels are never decoded).

:func:`check` turns the raw :class:`~raoutcome.cohort.tables.Table` objects into
clean, typed tables plus the list of problems; :func:`validate` is the public
entry point that returns the problems for a folder or cohort.toml.
"""
from __future__ import annotations

import os
import posixpath
import stat as stat_mod
from pathlib import Path
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from raoutcome import anatomy
from raoutcome.cohort import schema
from raoutcome.cohort.mr_rows import check_series, mr_rows, series_folders
from raoutcome.cohort.tables import Spec, Table, read_table, resolve_spec
from raoutcome.errors import Problem
from raoutcome.outcomes import visit_columns

MAX_PER_RULE = 50


class Collector:
    """Collects problems; each call of :meth:`rows` is one rule, capped at ``cap`` listed rows."""

    def __init__(self, cap: int = MAX_PER_RULE):
        self.cap = cap
        self.problems: list[Problem] = []

    def add(self, problem: Problem) -> None:
        self.problems.append(problem)

    def rows(
        self,
        table: Table,
        mask: pd.Series | np.ndarray,
        column: str | None,
        message: str,
        messages: pd.Series | np.ndarray | None = None,
        values: pd.Series | None = None,
    ) -> int:
        """Report every row where ``mask`` is true; return how many there were.

        ``column`` is our column name (shown as the user's own name); the value shown
        is the cell as written in the file unless ``values`` is given. ``messages``
        (aligned with the table) overrides ``message`` row by row.
        """
        positions = np.flatnonzero(np.asarray(mask, dtype=bool))
        if positions.size == 0:
            return 0
        label = table.column_label(column) if column else None
        if values is None and column is not None and column in table.frame:
            values = table.frame[column]
        shown = positions[: self.cap]
        vals = values.to_numpy(dtype=object)[shown] if values is not None else [None] * len(shown)
        msgs = np.asarray(messages, dtype=object)[shown] if messages is not None else [message] * len(shown)
        for pos, val, msg in zip(shown, vals, msgs):
            self.problems.append(Problem(table.file, str(msg), row=int(pos) + 1, column=label, value=_plain(val)))
        if positions.size > self.cap:
            more = positions.size - self.cap
            self.problems.append(Problem(table.file, f"... and {more} more row(s) with the same problem: {message}",
                                         column=label))
        return int(positions.size)


def _plain(value: object) -> object:
    """A cell value as the user would recognise it (numpy scalars -> Python, NaN -> None)."""
    if value is None:
        return None
    if isinstance(value, str) and value == "":  # an empty CSV cell: missing, shown as no value
        return None
    if isinstance(value, float) and np.isnan(value):
        return None
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return value


# ---------------------------------------------------------------- column helpers

def _arrow_text(series: pd.Series) -> pa.Array:
    """An Arrow string array of a column (numbers from Parquet become text; 12.0 -> "12")."""
    if pd.api.types.is_float_dtype(series.dtype):
        present = series.dropna()
        if len(present) and (present == np.round(present)).all():
            series = series.astype("Int64")
    values = series.to_numpy(dtype=object, na_value=None) if series.dtype != object else series.to_numpy()
    try:
        return pa.array(values, type=pa.string(), from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # mixed Python objects: stringify one by one
        return pa.array([None if pd.isna(v) else str(v) for v in values], type=pa.string())


def _strings(series: pd.Series) -> pd.Series:
    """Stripped text (object dtype), NaN for missing or blank cells. Vectorised in Arrow."""
    arr = pc.utf8_trim_whitespace(_arrow_text(series))
    arr = pc.if_else(pc.equal(arr, ""), pa.scalar(None, pa.string()), arr)
    out = pd.Series(arr.to_numpy(zero_copy_only=False), index=series.index, dtype=object)
    if arr.null_count:
        out[out.isna()] = np.nan
    return out


def _to_float(text: pd.Series) -> pd.Series:
    """Numbers from stripped text; NaN where the text is not a number."""
    try:
        arr = pc.cast(pa.array(text.to_numpy(), type=pa.string(), from_pandas=True), pa.float64())
        return pd.Series(arr.to_numpy(zero_copy_only=False), index=text.index, dtype=float)
    except pa.ArrowInvalid:  # some cell is not a number: let pandas find which
        return pd.to_numeric(text, errors="coerce").astype(float)


def _text(table: Table, column: str) -> pd.Series:
    """:func:`_strings` of one of the table's columns, computed once."""
    if column not in table.text_cache:
        table.text_cache[column] = _strings(table.frame[column])
    return table.text_cache[column]


def _present(table: Table, column: str) -> pd.Series:
    """Cells that hold something (not NaN, not blank text)."""
    series = table.frame[column]
    if series.dtype == object:
        return _text(table, column).notna()
    return series.notna()


def _numeric(table: Table, column: str, C: Collector, what: str = "a number",
             required: bool = False) -> pd.Series:
    """Float column; non-numeric or non-finite cells are reported and become NaN."""
    raw = table.frame[column]
    if pd.api.types.is_bool_dtype(raw.dtype):
        num = raw.astype(float)
    elif pd.api.types.is_numeric_dtype(raw.dtype):
        num = raw.astype(float)
    else:
        num = _to_float(_text(table, column))
    present = _present(table, column)
    bad = present & ~np.isfinite(num.fillna(np.inf))
    C.rows(table, bad, column, f"not {what}")
    if required:
        C.rows(table, ~present, column, "missing value in a required column")
    return num.where(~bad, np.nan)


def _dates(table: Table, column: str, C: Collector) -> pd.Series:
    """Datetime column from ISO dates (YYYY-MM-DD); unparseable cells are reported and become NaT."""
    raw = table.frame[column]
    if pd.api.types.is_datetime64_any_dtype(raw.dtype):
        parsed = pd.to_datetime(raw)
    else:
        text = _text(table, column)
        parsed = pd.to_datetime(text, format="ISO8601", errors="coerce")
        C.rows(table, text.notna() & parsed.isna(), column, "not an ISO date (expected YYYY-MM-DD)")
    if getattr(parsed.dt, "tz", None) is not None:
        parsed = parsed.dt.tz_localize(None)
    return parsed.astype("datetime64[ns]")


def _infer(table: Table, column: str) -> pd.Series:
    """Extra (covariate) columns: numeric when every present cell is a number, text otherwise."""
    series = table.frame[column]
    if series.dtype != object:
        return series
    text = _text(table, column)
    num = _to_float(text)
    if text.notna().any() and (num.notna() == text.notna()).all():
        return num
    return text


def _keys(frame: pd.DataFrame, columns: list[str]) -> pd.Series:
    """One hashable string key per row from several ID columns (NaN if any part is missing).

    Each part is prefixed with its length (``"2:p1" + "2:v0"``), so two different tuples can
    never give the same key, whatever characters the ids hold.
    """
    parts = []
    for col in columns:  # in Arrow (vectorised C): "<length>:<id>" per part, null if the id is missing
        arr = _arrow_text(frame[col].astype(object))
        length = pc.cast(pc.utf8_length(arr), pa.string())
        parts.append(pc.binary_join_element_wise(length, arr, ":"))
    key = parts[0] if len(parts) == 1 else pc.binary_join_element_wise(*parts, "")
    out = pd.Series(key.to_numpy(zero_copy_only=False), index=frame.index, dtype=object)
    if key.null_count:
        out[out.isna()] = np.nan
    return out


def _duplicates(table: Table, by: pd.DataFrame, column: str, C: Collector, what: str) -> None:
    """Report every row whose values in ``by`` repeat an earlier row (naming that row)."""
    complete = by.notna().all(axis=1)
    dup = complete & by.duplicated(keep="first")
    if dup.any():
        rows = pd.Series(np.arange(len(by)) + 1, index=by.index)
        first = rows.groupby([by[c] for c in by.columns], sort=False, dropna=False).transform("min")
        C.rows(table, dup, column, f"duplicate {what}",
               messages=f"duplicate {what} (first on row " + first.astype(str) + ")")


def _normalise_paths(text: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Posix-normalised relative paths, and a mask of paths that leave the cohort folder.

    String tests run in Arrow (vectorised C); only paths holding '.', '..' or '//'
    components are normalised one by one.
    """
    arr = pc.replace_substring(pa.array(text.to_numpy(dtype=object), type=pa.string(), from_pandas=True),
                               "\\", "/")

    def mask(values: pa.Array) -> np.ndarray:
        return values.fill_null(False).to_numpy(zero_copy_only=False)

    absolute = mask(pc.starts_with(arr, "/")) | mask(pc.match_substring_regex(arr, r"^[A-Za-z]:"))
    needs = mask(pc.match_substring_regex(arr, r"(?:^|/)\.{1,2}(?:/|$)|//|/$"))
    p = pd.Series(arr.to_numpy(zero_copy_only=False), index=text.index, dtype=object)
    if needs.any():
        p[needs] = [posixpath.normpath(x) for x in p[needs]]
        arr = pa.array(p.to_numpy(dtype=object), type=pa.string(), from_pandas=True)
    escapes = absolute | mask(pc.equal(arr, "..")) | mask(pc.starts_with(arr, "../"))
    return p.where(text.notna(), np.nan), pd.Series(escapes, index=text.index)


def _map_labels(clean: pd.DataFrame, column: str, mapping: dict[str, str]) -> None:
    if mapping:
        clean[column] = clean[column].map(lambda v: mapping.get(v, v), na_action="ignore")


# ---------------------------------------------------------------- per-table checks

def _check_columns(table: Table, C: Collector) -> bool:
    """Missing required columns (reported once each); True when the table is usable."""
    cols = set(table.frame.columns)
    ok = True
    for col in schema.REQUIRED_COLUMNS[table.name]:
        if col not in cols:
            C.add(Problem(table.file, f"missing required column '{col}' (columns found: "
                          f"{list(table.frame.columns)})", column=col))
            ok = False
    if table.name in schema.TIME_TABLES and "time_years" not in cols and "date" not in cols:
        C.add(Problem(table.file, "missing a time column: give 'time_years' or 'date' (YYYY-MM-DD)",
                      column="time_years"))
        ok = False
    # An empty images table is allowed: a tables-only cohort (the simulator's ``render = false``)
    # serves the statistics; training refuses it with its own message.
    if ok and len(table.frame) == 0 and table.name in ("patients", "visits"):
        C.add(Problem(table.file, f"table '{table.name}' has no rows"))
    return ok


def _base_clean(table: Table, C: Collector) -> pd.DataFrame:
    """ID/label columns as stripped text (blanks reported); extra columns typed by inference."""
    frame = table.frame
    strings = schema.STRING_COLUMNS[table.name]
    numeric = schema.numeric_columns(table.name)
    columns: dict[str, pd.Series] = {}
    for col in frame.columns:
        if col in schema.PATH_COLUMNS:
            columns[col] = _path_text(frame[col])
        elif col in strings:
            columns[col] = _text(table, col)
        elif col in numeric or col == "date":
            columns[col] = frame[col]  # converted by the table's own checks
        else:
            columns[col] = _infer(table, col)
    # Built at once: inserting hundreds of extra columns one by one fragments the frame
    # (and pandas warns about it).
    clean = pd.DataFrame(columns, index=frame.index)
    for col in strings:
        if col in schema.REQUIRED_COLUMNS[table.name]:
            C.rows(table, clean[col].isna(), col, "missing value in a required column")
        if col in clean and col not in schema.PATH_COLUMNS:
            long = clean[col].str.len() > schema.MAX_ID_LENGTH
            C.rows(table, long.fillna(False), col, f"longer than {schema.MAX_ID_LENGTH} characters "
                                                   f"(ids and labels end up in file names and tables)")
    _check_ranges(table, clean, C)
    return clean


def _path_text(series: pd.Series) -> pd.Series:
    """Paths as written (a file name may end in a space); NaN when blank."""
    arr = _arrow_text(series)
    blank = pc.equal(pc.utf8_trim_whitespace(arr), "").fill_null(True).to_numpy(zero_copy_only=False)
    text = pd.Series(arr.to_numpy(zero_copy_only=False), index=series.index, dtype=object)
    return text.where(~blank, np.nan)


def _check_ranges(table: Table, clean: pd.DataFrame, C: Collector) -> None:
    """Every numeric column with a registered range (outcomes, times, in any table) is checked against it.

    Runs on the raw column so it covers every table, including ones added later; the
    per-table checks convert the same cells and report non-numbers.
    """
    for col in table.frame.columns:
        bounds = schema.column_range(col)
        if bounds is None:
            continue
        raw = table.frame[col]
        if pd.api.types.is_numeric_dtype(raw.dtype) and not pd.api.types.is_bool_dtype(raw.dtype):
            values = raw.astype(float)
        else:
            values = _to_float(_text(table, col))
        lo, hi = bounds
        finite = np.isfinite(values.to_numpy(dtype=float, na_value=np.nan))
        what = (f"{col} is above its plausible maximum {hi:g}" if lo == -np.inf
                else f"{col} out of range [{lo:g}, {hi:g}]")
        C.rows(table, finite & ((values < lo) | (values > hi)).to_numpy(), col, what)


def _time_column(table: Table, clean: pd.DataFrame, C: Collector,
                 anchor: pd.Series | str | None) -> pd.Series:
    """``time_years`` from its column, else from ``date`` minus the patient's first visit date.

    ``anchor``: None for visits (each patient's first dated visit is time zero), a
    Series patient_id -> first visit date for events, or a string explaining why
    dates cannot be converted.
    """
    index = clean.index
    time = pd.Series(np.nan, index=index)
    unusable = pd.Series(False, index=index)  # rows already reported for their time cells
    if "time_years" in clean:
        time = _numeric(table, "time_years", C)
        unusable |= _present(table, "time_years") & time.isna()
    if "date" in clean:
        dates = _dates(table, "date", C)
        clean["date"] = dates
        unusable |= _present(table, "date") & dates.isna()
        fill = time.isna() & dates.notna()
        if fill.any():
            pid = clean["patient_id"]
            if anchor is None:
                first = dates.groupby(pid.to_numpy(), sort=False, dropna=False).transform("min")
            elif isinstance(anchor, str):
                C.add(Problem(table.file, anchor, column="date"))
                first = pd.Series(pd.NaT, index=index, dtype="datetime64[ns]")
                unusable |= fill
            else:
                first = pid.map(anchor).astype("datetime64[ns]")
                no_anchor = fill & first.isna() & pid.notna()
                C.rows(table, no_anchor, "date", "no dated visit for this patient to count years from")
                unusable |= no_anchor
            derived = (dates - first).dt.total_seconds() / 86400.0 / schema.DAYS_PER_YEAR
            time = time.where(~fill, derived)
    col = "time_years" if "time_years" in clean else "date"
    C.rows(table, time.isna() & ~unusable, col, "missing time (give time_years or date)")
    clean["time_years"] = time.astype(float)
    return clean["time_years"]


def _unknown(table: Table, clean: pd.DataFrame, C: Collector, patients: pd.Index | None,
             visit_keys: pd.Index | None = None) -> None:
    """Rows naming a patient not in patients, or a (patient, visit) not in visits."""
    pid = clean["patient_id"]
    unknown_patient = pd.Series(False, index=clean.index)
    if patients is not None:
        unknown_patient = pid.notna() & ~pid.isin(patients)
        C.rows(table, unknown_patient, "patient_id", "patient_id not found in patients")
    if visit_keys is not None and "visit_id" in clean:
        key = _keys(clean, ["patient_id", "visit_id"])
        unknown_visit = key.notna() & ~unknown_patient & ~key.isin(visit_keys)
        C.rows(table, unknown_visit, "visit_id", "visit_id not found in visits for this patient")


def _check_patients(table: Table, C: Collector) -> pd.DataFrame:
    clean = _base_clean(table, C)
    _duplicates(table, clean[["patient_id"]], "patient_id", C, "patient_id")
    return clean


def _check_visits(table: Table, C: Collector, patients: pd.Index | None) -> pd.DataFrame:
    clean = _base_clean(table, C)
    time = _time_column(table, clean, C, anchor=None)
    time_col = "time_years" if "time_years" in table.frame else "date"
    C.rows(table, time < 0, time_col, "visit time is negative")
    for col in visit_columns():
        if col in clean:
            clean[col] = _numeric(table, col, C)  # its range: _check_ranges
        else:
            clean[col] = np.nan
    _duplicates(table, clean[["patient_id", "visit_id"]], "visit_id", C, "(patient_id, visit_id)")
    by_time = pd.DataFrame({"patient_id": clean["patient_id"], "time_years": time})
    _duplicates(table, by_time, time_col, C, "visit time within a patient")
    _unknown(table, clean, C, patients)
    return clean


def _deep_check(table: Table, clean: pd.DataFrame, spec: Spec, C: Collector, usable: pd.Series,
                workers: int | None = None) -> dict[str, tuple[int, int]]:
    """Decode every usable image (:func:`raoutcome.imaging.check.check_images`); report each bad one
    against its images-table rows; return ``{path: (rows, columns)}`` of the decoded images."""
    from raoutcome.imaging.check import check_images

    paths = clean["path"]
    distinct = pd.unique(paths[usable].to_numpy(dtype=object)).tolist()
    root = os.fspath(spec.root)
    verdicts = check_images([os.path.join(root, p) for p in distinct], workers=workers)
    by_rel = {rel: verdicts[os.path.join(root, rel)] for rel in distinct}
    sizes = {rel: (v.rows, v.columns) for rel, v in by_rel.items() if v.rows is not None and v.columns is not None}
    bad = {rel: v for rel, v in by_rel.items() if not v.ok}
    if bad:
        kinds = paths.map({rel: v.kind for rel, v in bad.items()}, na_action="ignore").where(usable)
        reasons = paths.map({rel: v.reason for rel, v in bad.items()}, na_action="ignore")
        for kind in sorted(kinds.dropna().unique()):  # one rule per kind of problem
            C.rows(table, kinds == kind, "path", f"image check: {kind}", messages=reasons)
    return sizes


def _check_images(table: Table, C: Collector, spec: Spec, patients: pd.Index | None,
                  visit_keys: pd.Index | None, check_files: bool, deep: bool = False,
                  sizes: dict[str, tuple[int, int]] | None = None) -> pd.DataFrame:
    clean = _base_clean(table, C)
    _map_labels(clean, "view", spec.views)
    bad_view = clean["view"].notna() & ~clean["view"].isin(anatomy.view_names())
    C.rows(table, bad_view, "view", f"unknown view (expected one of {list(anatomy.view_names())}, "
                                    f"or map yours in cohort.toml [views])")
    paths, escapes = _normalise_paths(clean["path"])
    clean["path"] = paths
    C.rows(table, escapes, "path", "image path leaves the cohort folder (absolute, or '..' above it); "
                                   "paths must be relative to the cohort folder")
    _unknown(table, clean, C, patients, visit_keys)
    if check_files:
        ok = paths.notna() & ~escapes
        mr = mr_rows(clean["view"]) & ok  # MR rows may point at a series folder (raoutcome.cohort.mr_rows)
        folders, status_mr = series_folders(spec.root, paths[mr])
        status = _file_status(spec.root, paths[ok & ~(mr & paths.isin(list(folders)))])
        status.update(status_mr)
        if status:
            # A path written with stray spaces around it (" a.png" in a hand-edited CSV) is
            # taken as the file without them when only that one exists.
            missing = pd.Series([k for k, v in status.items() if v.startswith("image file not found")], dtype=object)
            stripped = missing.str.strip()
            retry = stripped[stripped != missing]
            if len(retry):
                again = _file_status(spec.root, retry)
                fixed = {m: t for m, t in zip(missing[retry.index], retry) if t not in again}
                if fixed:
                    paths = paths.map(lambda v: fixed.get(v, v), na_action="ignore")
                    clean["path"] = paths
                    for m in fixed:
                        del status[m]
            reason = paths.where(ok).map(status, na_action="ignore")
            C.rows(table, reason.notna(), "path", "image file problem", messages=reason)
        if deep:
            fine = ok & ~paths.isin(list(status))
            found = _deep_check(table, clean, spec, C, fine & ~mr)
            series_bad = check_series(spec.root, paths[fine & mr])
            if series_bad:
                why = paths.where(fine & mr).map(series_bad, na_action="ignore")
                C.rows(table, why.notna(), "path", "MR series check", messages=why)
            if sizes is not None:
                sizes.update(found)
    return clean


def _stat_chunk(base: str, rels: list[str]) -> dict[str, str]:
    """What is wrong with each path in ``rels`` (fine ones are left out)."""
    bad: dict[str, str] = {}
    stat, lstat, access, isreg, islnk, R_OK = os.stat, os.lstat, os.access, stat_mod.S_ISREG, stat_mod.S_ISLNK, os.R_OK
    sep = os.sep
    real_base = os.path.realpath(base)
    inside: dict[str, bool] = {}  # folder -> whether it resolves inside the cohort folder

    def within(real: str) -> bool:
        return real == real_base or real.startswith(real_base.rstrip(sep) + sep)

    for rel in rels:
        full = base + sep + rel
        try:
            st = lstat(full)
            folder = rel.rpartition("/")[0]
            if folder not in inside:  # a symlinked folder on the way out of the cohort
                inside[folder] = within(os.path.realpath(base + sep + folder))
            if islnk(st.st_mode) or not inside[folder]:
                if not within(os.path.realpath(full)):
                    bad[rel] = ("image path leaves the cohort folder through a symbolic link; point "
                                "'root' in cohort.toml at the folder holding the images instead")
                    continue
                st = stat(full)
        except (FileNotFoundError, NotADirectoryError):
            bad[rel] = f"image file not found (looked in {base})"
            continue
        except OSError as err:
            bad[rel] = f"image file cannot be accessed: {err.strerror}"
            continue
        if not isreg(st.st_mode):
            bad[rel] = "image path is not a regular file"
        elif st.st_size == 0:
            bad[rel] = "image file is empty (0 bytes)"
        elif not st.st_mode & stat_mod.S_IROTH and not access(full, R_OK):
            # world-readable files need no access() call; others are checked for this user
            bad[rel] = "image file is not readable (permissions)"
    return bad


def _file_status(root: Path, paths: pd.Series) -> dict[str, str]:
    """Stat each distinct path once; return {path: what is wrong} for the bad ones. No pixels are read."""
    rels = pd.unique(paths.to_numpy(dtype=object)).tolist()
    base = os.fspath(root)
    if len(rels) < 20_000:
        return _stat_chunk(base, rels)
    # Many files: a few threads keep the disk busy while one waits on a directory lookup
    # (the system call releases the GIL); on 2 cores and a cold cache about 1.5x.
    from concurrent.futures import ThreadPoolExecutor

    step = 5_000
    bad: dict[str, str] = {}
    with ThreadPoolExecutor(4) as pool:
        for part in pool.map(lambda i: _stat_chunk(base, rels[i:i + step]), range(0, len(rels), step)):
            bad.update(part)
    return bad


def _check_events(table: Table, C: Collector, spec: Spec, patients: pd.Index | None,
                  anchor: pd.Series | str) -> pd.DataFrame:
    clean = _base_clean(table, C)
    _map_labels(clean, "event", spec.events)
    time = _time_column(table, clean, C, anchor=anchor)
    time_col = "time_years" if "time_years" in table.frame else "date"
    C.rows(table, time < 0, time_col, "event time is negative (before the patient's first visit)")
    observed = _numeric(table, "observed", C, what="0 or 1", required=True)
    C.rows(table, observed.notna() & ~observed.isin([0.0, 1.0]), "observed",
           "observed must be 1 (event happened) or 0 (censored)")
    clean["observed"] = observed
    _check_intervals(table, C, clean, time, observed)
    _duplicates(table, clean[["patient_id", "event"]], "event", C,
                "(patient_id, event): give one row per patient and event")
    _unknown(table, clean, C, patients)
    return clean


def _check_intervals(table: Table, C: Collector, clean: pd.DataFrame, time: pd.Series,
                     observed: pd.Series) -> None:
    """Optional ``time_lower``/``time_upper``: an event seen at a visit lies in (lower, upper].

    Observed rows: both blank (exact time) or both given, 0 <= lower <= time_years <= upper; censored
    rows: upper blank, lower (if given) equal to time_years. See docs/manifest.md.
    """
    present = [c for c in schema.INTERVAL_COLUMNS if c in table.frame]
    if not present:
        return
    for col in present:
        clean[col] = _numeric(table, col, C)
        C.rows(table, clean[col] < 0, col, f"{col} is negative (before the patient's first visit)")
    lower = clean["time_lower"] if "time_lower" in clean else pd.Series(np.nan, index=clean.index)
    upper = clean["time_upper"] if "time_upper" in clean else pd.Series(np.nan, index=clean.index)
    seen, censored = observed == 1, observed == 0
    one = seen & (lower.isna() != upper.isna())
    C.rows(table, one & lower.isna(), "time_lower",
           "an observed event with time_upper needs time_lower too (or leave both blank for an exact time)")
    C.rows(table, one & upper.isna(), "time_upper",
           "an observed event with time_lower needs time_upper too (or leave both blank for an exact time)")
    C.rows(table, seen & (lower > upper), "time_lower", "time_lower is after time_upper")
    tol = 1e-4
    both = seen & lower.notna() & upper.notna() & (lower <= upper) & time.notna()
    C.rows(table, both & ((time < lower - tol) | (time > upper + tol)), "time_years",
           "event time is outside its interval [time_lower, time_upper]")
    C.rows(table, censored & upper.notna(), "time_upper",
           "a censored row (observed 0) has no upper bound: leave time_upper blank")
    C.rows(table, censored & lower.notna() & time.notna() & ((lower - time).abs() > tol), "time_lower",
           "a censored row's time_lower must equal its time_years (the last time seen without the event)")


def _check_joints(table: Table, C: Collector, patients: pd.Index | None,
                  visit_keys: pd.Index | None) -> pd.DataFrame:
    clean = _base_clean(table, C)
    clean["kind"] = clean["kind"].str.lower()
    bad_kind = clean["kind"].notna() & ~clean["kind"].isin(schema.SCORE_KINDS)
    C.rows(table, bad_kind, "kind", f"unknown score kind (expected one of {list(schema.SCORE_KINDS)})")
    unknown_joint = pd.Series(False, index=clean.index)
    maxima = pd.Series(np.nan, index=clean.index)
    for kind in schema.SCORE_KINDS:
        rows = clean["kind"] == kind
        valid = schema.valid_joints(kind)
        unknown_joint |= rows & clean["joint"].notna() & ~clean["joint"].isin(valid)
        maxima = maxima.where(~rows, clean["joint"].map({j: anatomy.joint_max(j, kind) for j in valid}))
    C.rows(table, unknown_joint, "joint", "unknown joint for this score kind (expected 'view:site', e.g. "
                                          "'hand_left:MCP2'; see raoutcome.anatomy)")
    score = _numeric(table, "score", C, required=True)
    out = score.notna() & maxima.notna() & ((score < 0) | (score > maxima))
    if out.any():
        msgs = "score out of range [0, " + maxima.fillna(0).astype(int).astype(str) + "] for this joint and kind"
        C.rows(table, out, "score", "score out of range for this joint and kind", messages=msgs)
    clean["score"] = score
    _duplicates(table, clean[["patient_id", "visit_id", "joint", "kind"]], "joint", C,
                "(patient_id, visit_id, joint, kind)")
    _unknown(table, clean, C, patients, visit_keys)
    return clean


def _check_retest(table: Table, C: Collector, patients: pd.Index | None,
                  visit_keys: pd.Index | None) -> pd.DataFrame:
    """The repeat reading of visits' scores: known visits, once each, numeric scores (ranges: _check_ranges)."""
    clean = _base_clean(table, C)
    scores = [col for col in visit_columns() if col in clean]
    for col in scores:
        clean[col] = _numeric(table, col, C)
    if not scores:
        C.add(Problem(table.file, f"a retest table needs at least one score column (one of {list(visit_columns())})"))
    _duplicates(table, clean[["patient_id", "visit_id"]], "visit_id", C, "(patient_id, visit_id)")
    _unknown(table, clean, C, patients, visit_keys)
    return clean


def _check_landmarks(table: Table, C: Collector, image_paths: pd.Index | None,
                     sizes: dict[str, tuple[int, int]] | None = None) -> pd.DataFrame:
    """``sizes`` (path -> (rows, columns), from the deep image check): landmarks must lie on their image."""
    clean = _base_clean(table, C)
    paths, _ = _normalise_paths(clean["path"])
    if image_paths is not None:  # the same stray-space rule as the images table
        stripped = paths.str.strip()
        use = paths.notna() & ~paths.isin(image_paths) & stripped.isin(image_paths)
        paths = paths.where(~use, stripped)
    clean["path"] = paths
    size_of = None
    if sizes:
        known = paths.map(sizes, na_action="ignore")
        size_of = {"x": known.map(lambda rc: rc[1], na_action="ignore").astype(float),
                   "y": known.map(lambda rc: rc[0], na_action="ignore").astype(float)}
    for col in ("x", "y"):
        values = _numeric(table, col, C, required=True)
        C.rows(table, values < -0.5, col,  # the image spans [-0.5, side - 0.5]: pixel centres at 0, 1, ...
               f"landmark {col} is negative beyond the first pixel (< -0.5; the top-left pixel's centre is 0)")
        if size_of is not None:
            side = size_of[col]
            off = values.notna() & side.notna() & (values > side - 0.5)
            if off.any():
                msgs = (f"landmark {col} lies beyond the image's last pixel (the image is "
                        + side.fillna(0).astype(int).astype(str)
                        + (" pixels wide)" if col == "x" else " pixels high)"))
                C.rows(table, off, col, f"landmark {col} lies beyond its image", messages=msgs)
        clean[col] = values
    if image_paths is not None:
        C.rows(table, paths.notna() & ~paths.isin(image_paths), "path", "landmark path is not listed in images")
    _duplicates(table, clean[["path", "landmark"]], "landmark", C, "(path, landmark)")
    return clean


# ---------------------------------------------------------------- entry points

def check(spec: Spec, tables: dict[str, Table | None], check_files: bool = True,
          cap: int = MAX_PER_RULE, images: bool = False) -> tuple[list[Problem], dict[str, pd.DataFrame | None]]:
    """Validate read tables; return (problems, clean typed tables).

    ``images=True`` (with ``check_files``) decodes every image (the deep check of
    :mod:`raoutcome.imaging.check`) and checks landmarks against their image's size.
    """
    C = Collector(cap)
    usable = {name: t is not None and _check_columns(t, C) for name, t in tables.items()}
    clean: dict[str, pd.DataFrame | None] = {name: None for name in schema.TABLES}

    patients = None
    if usable.get("patients"):
        clean["patients"] = _check_patients(tables["patients"], C)
        patients = pd.Index(clean["patients"]["patient_id"].dropna().unique())
    visit_keys = None
    anchor: pd.Series | str = "the visits table is missing or unusable, so event dates cannot be converted"
    if usable.get("visits"):
        v = _check_visits(tables["visits"], C, patients)
        clean["visits"] = v
        visit_keys = pd.Index(_keys(v, ["patient_id", "visit_id"]).dropna().unique())
        if "date" in v:
            anchor = v.groupby("patient_id")["date"].min()
        else:
            anchor = ("events are given by date, but visits have no 'date' column to count years from; "
                      "give events time_years (years since the first visit) or give visits dates")
    image_paths = None
    sizes: dict[str, tuple[int, int]] = {}
    if usable.get("images"):
        im = _check_images(tables["images"], C, spec, patients, visit_keys, check_files,
                           deep=images and check_files, sizes=sizes)
        clean["images"] = im
        image_paths = pd.Index(im["path"].dropna().unique())
    if usable.get("events"):
        clean["events"] = _check_events(tables["events"], C, spec, patients, anchor)
    if usable.get("joints"):
        clean["joints"] = _check_joints(tables["joints"], C, patients, visit_keys)
    if usable.get("landmarks"):
        clean["landmarks"] = _check_landmarks(tables["landmarks"], C, image_paths, sizes)
    if usable.get("retest"):
        clean["retest"] = _check_retest(tables["retest"], C, patients, visit_keys)
    if usable.get("retest_joints"):
        clean["retest_joints"] = _check_joints(tables["retest_joints"], C, patients, visit_keys)
    return C.problems, clean


def read_all(path: str | Path) -> tuple[Spec, dict[str, Table | None], list[Problem]]:
    """Resolve the spec and read every table, collecting problems."""
    spec, problems = resolve_spec(path)
    tables: dict[str, Table | None] = {}
    if problems and not spec.table_dir.is_dir():
        return spec, {name: None for name in schema.TABLES}, problems
    for name in schema.TABLES:
        tables[name] = read_table(spec, name, problems)
    return spec, tables, problems


def validate(path: str | Path, check_files: bool = True, images: bool = False) -> list[Problem]:
    """Every problem in the cohort at ``path`` (folder or cohort.toml); an empty list if it is valid.

    ``images=True`` also decodes every image (see :func:`check`)."""
    spec, tables, problems = read_all(path)
    if not spec.table_dir.is_dir():
        return problems
    found, _ = check(spec, tables, check_files=check_files, images=images)
    return problems + found
