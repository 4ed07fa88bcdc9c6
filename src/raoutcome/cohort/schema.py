"""The manifest schema: which tables exist, which columns they need, and what type each column is.

Everything here is data, so the reader, the validator and the docs agree.
"""
from __future__ import annotations

from raoutcome import anatomy

TABLES: tuple[str, ...] = ("patients", "visits", "images", "events", "joints", "landmarks")
REQUIRED_TABLES: tuple[str, ...] = ("patients", "visits", "images", "events")
OPTIONAL_TABLES: tuple[str, ...] = ("joints", "landmarks")
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
}
# Numeric columns (float in the Cohort; ``observed`` becomes int 0/1).
NUMERIC_COLUMNS: dict[str, tuple[str, ...]] = {
    "patients": (),
    "visits": ("time_years", *anatomy.OUTCOMES),
    "images": (),
    "events": ("time_years", "observed", "time_lower", "time_upper"),
    "joints": ("score",),
    "landmarks": ("x", "y"),
}

# Optional events columns for an event found between two visits: (time_lower, time_upper].
INTERVAL_COLUMNS: tuple[str, str] = ("time_lower", "time_upper")

OUTCOMES: tuple[str, ...] = anatomy.OUTCOMES
SCORE_KINDS: tuple[str, ...] = ("jsn", "erosion")


def valid_joints(kind: str) -> frozenset[str]:
    """Every ``view:site`` name scored for ``kind`` ('jsn' or 'erosion')."""
    return frozenset(
        anatomy.joint_name(view, site) for view in anatomy.VIEWS for site in anatomy.sites_for(view, kind)
    )


DAYS_PER_YEAR = 365.25
