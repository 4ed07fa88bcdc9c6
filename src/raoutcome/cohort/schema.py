"""The manifest schema: which tables exist, which columns they need, and what type each column is.

Everything here is data, so the reader, the validator and the docs agree.
"""
from __future__ import annotations

from raoutcome import anatomy

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
    "visits": ("time_years", *anatomy.OUTCOMES),
    "images": (),
    "events": ("time_years", "observed"),
    "joints": ("score",),
    "landmarks": ("x", "y"),
    "retest": anatomy.OUTCOMES,
    "retest_joints": ("score",),
}

OUTCOMES: tuple[str, ...] = anatomy.OUTCOMES
SCORE_KINDS: tuple[str, ...] = ("jsn", "erosion")


def valid_joints(kind: str) -> frozenset[str]:
    """Every ``view:site`` name scored for ``kind`` ('jsn' or 'erosion')."""
    return frozenset(
        anatomy.joint_name(view, site) for view in anatomy.VIEWS for site in anatomy.sites_for(view, kind)
    )


DAYS_PER_YEAR = 365.25
