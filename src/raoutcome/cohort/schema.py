"""The manifest schema: which tables exist, which columns they need, and what type each column is.

Everything here is data, so the reader, the validator and the docs agree.
"""
from __future__ import annotations

from raoutcome import anatomy
from raoutcome.outcomes import column as registry_column
from raoutcome.outcomes import visit_columns

TABLES: tuple[str, ...] = ("patients", "visits", "images", "events", "joints", "landmarks", "retest",
                           "retest_joints")
REQUIRED_TABLES: tuple[str, ...] = ("patients", "visits", "images", "events")
# ``retest`` / ``retest_joints``: a second, independent reading of the same radiographs (SDC, reader
# agreement, reader-error correction of the beyond-damage tests), shaped like visits' scores / joints.
OPTIONAL_TABLES: tuple[str, ...] = ("joints", "landmarks", "retest", "retest_joints")
SUFFIXES: tuple[str, ...] = (".csv", ".parquet")

# Columns every row must have (a value on each row). ``time_years`` / ``date`` are
# handled separately: a table needs one of the two (see TIME_TABLES).
REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {
    "patients": ("patient_id",),
    "visits": ("patient_id", "visit_id"),
    "images": ("patient_id", "visit_id", "view", "path"),
    "events": ("patient_id", "event", "observed"),
    "joints": ("patient_id", "visit_id", "joint", "kind", "score"),
    "landmarks": ("path", "landmark", "x", "y"),
    "retest": ("patient_id", "visit_id"),
    "retest_joints": ("patient_id", "visit_id", "joint", "kind", "score"),
}
# Tables whose time is given as ``time_years`` or as an ISO ``date``.
TIME_TABLES: tuple[str, ...] = ("visits", "events")

# Identifier / label columns: kept as stripped strings.
STRING_COLUMNS: dict[str, tuple[str, ...]] = {
    "patients": ("patient_id",),
    "visits": ("patient_id", "visit_id"),
    "images": ("patient_id", "visit_id", "view", "path"),
    "events": ("patient_id", "event"),
    "joints": ("patient_id", "visit_id", "joint", "kind"),
    "landmarks": ("path", "landmark"),
    "retest": ("patient_id", "visit_id"),
    "retest_joints": ("patient_id", "visit_id", "joint", "kind"),
}
# Numeric columns (float in the Cohort; ``observed`` becomes int 0/1).
NUMERIC_COLUMNS: dict[str, tuple[str, ...]] = {
    "patients": (),
    "visits": ("time_years",),  # + every registered visit column: numeric_columns()
    "images": (),
    "events": ("time_years", "observed", "time_lower", "time_upper"),
    "joints": ("score",),
    "landmarks": ("x", "y"),
    "retest": (),  # + every registered visit column: numeric_columns()
    "retest_joints": ("score",),
}


def numeric_columns(table: str) -> tuple[str, ...]:
    """The numeric columns of ``table``; for ``visits`` with every visit column of the outcome registry."""
    return NUMERIC_COLUMNS[table] + (visit_columns() if table in ("visits", "retest") else ())


# Optional events columns for an event found between two visits: (time_lower, time_upper].
INTERVAL_COLUMNS: tuple[str, str] = ("time_lower", "time_upper")

SCORE_KINDS: tuple[str, ...] = ("jsn", "erosion", "msasss")


def valid_joints(kind: str) -> frozenset[str]:
    """Every ``view:site`` name scored for ``kind`` ('jsn', 'erosion' or 'msasss')."""
    return frozenset(
        anatomy.joint_name(view, site) for view in anatomy.view_names() for site in anatomy.sites_for(view, kind)
    )


DAYS_PER_YEAR = 365.25

#: Columns holding file paths: kept as written (a file name may end in a space), blank = missing.
PATH_COLUMNS: tuple[str, ...] = ("path",)
#: Longest id or label accepted (ids end up in file names, which allow 255 bytes).
MAX_ID_LENGTH = 200
#: Plausible ranges of time columns in years (any table; ``time_lower``/``time_upper`` bound
#: interval-censored event times). Negative times are reported by each table's own rule.
TIME_RANGES: dict[str, tuple[float, float]] = {
    "time_years": (-float("inf"), 120.0),
    "time_lower": (-float("inf"), 120.0),
    "time_upper": (-float("inf"), 120.0),
}


def column_range(column: str) -> tuple[float, float] | None:
    """The valid closed range of a numeric manifest column, or None when it has none.

    Visit columns take their range from the outcome registry (:mod:`raoutcome.outcomes`), time columns
    from :data:`TIME_RANGES`.
    """
    if column in visit_columns():
        measure = registry_column(column)
        return float(measure.lower), float(measure.upper)
    return TIME_RANGES.get(column)
