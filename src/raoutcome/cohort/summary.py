"""A readable text summary of a :class:`~raoutcome.cohort.Cohort` (rich tables rendered to text)."""
from __future__ import annotations

import io
from typing import TYPE_CHECKING

import numpy as np
from rich import box
from rich.console import Console
from rich.table import Table

from raoutcome.anatomy import view_names
from raoutcome.outcomes import visit_columns

if TYPE_CHECKING:  # pragma: no cover
    from raoutcome.cohort.model import Cohort


def _fmt(x: float, digits: int = 1) -> str:
    return "-" if x is None or (isinstance(x, float) and np.isnan(x)) else f"{x:.{digits}f}"


def summarize(cohort: "Cohort", width: int = 100) -> str:
    """Patients, visits and follow-up; images per view; completeness of each outcome; events."""
    console = Console(file=io.StringIO(), width=width, color_system=None, force_terminal=False, highlight=False)
    parts: list[str] = []

    def add(item) -> None:  # render to text (the library never prints)
        parts.extend("".join(seg.text for seg in line).rstrip()
                     for line in console.render_lines(item, pad=False, new_lines=False))
    v, im, ev = cohort.visits, cohort.images, cohort.events
    n_pat = len(cohort.patients)
    per_patient = v.groupby("patient_id").size()
    follow = v.groupby("patient_id")["time_years"].max()
    no_visits = n_pat - len(per_patient)

    add(f"Cohort: {cohort.source or cohort.root}")
    add(f"Image root: {cohort.root}")
    lines = [
        f"Patients: {n_pat}" + (f" ({no_visits} without visits)" if no_visits else ""),
        f"Visits: {len(v)} (per patient: median {_fmt(float(per_patient.median()) if len(per_patient) else np.nan)}, "
        f"range {per_patient.min() if len(per_patient) else 0}-{per_patient.max() if len(per_patient) else 0})",
        f"Follow-up (years since first visit): median {_fmt(float(follow.median()) if len(follow) else np.nan, 2)}, "
        f"max {_fmt(float(follow.max()) if len(follow) else np.nan, 2)}",
        f"Images: {len(im)}",
    ]
    if cohort.joints is not None:
        lines.append(f"Per-joint scores: {len(cohort.joints)} rows")
    if cohort.landmarks is not None:
        lines.append(f"Landmarks: {len(cohort.landmarks)} rows on {cohort.landmarks['path'].nunique()} images")
    from raoutcome.cohort.landmark_coverage import coverage_lines

    lines.extend(coverage_lines(im, cohort.landmarks))
    for line in lines:
        add(line)

    views = Table(box=box.SIMPLE_HEAD, title="Images per view", title_justify="left")
    for col in ("view", "images", "visits with view", "patients with view"):
        views.add_column(col, justify="left" if col == "view" else "right")
    counts = im.groupby("view").agg(images=("path", "size"), patients=("patient_id", "nunique"))
    visits_with = im.drop_duplicates(["patient_id", "visit_id", "view"]).groupby("view").size()
    for view in view_names():
        if view in counts.index:
            views.add_row(view, str(int(counts.loc[view, "images"])), str(int(visits_with.get(view, 0))),
                          str(int(counts.loc[view, "patients"])))
    add(views)

    outcomes = Table(box=box.SIMPLE_HEAD, title="Outcome completeness (visits with a value)", title_justify="left")
    for col in ("outcome", "visits", "%", "patients", "mean", "min", "max"):
        outcomes.add_column(col, justify="left" if col == "outcome" else "right")
    for name in visit_columns():
        col = v[name]
        n = int(col.notna().sum())
        pct = 100.0 * n / len(v) if len(v) else 0.0
        pats = int(v.loc[col.notna(), "patient_id"].nunique())
        outcomes.add_row(name, str(n), f"{pct:.0f}", str(pats), _fmt(col.mean(), 2),
                         _fmt(col.min(), 2), _fmt(col.max(), 2))
    add(outcomes)

    events = Table(box=box.SIMPLE_HEAD, title="Events (time in years since first visit)", title_justify="left")
    for col in ("event", "patients", "observed", "censored", "median time observed", "median time censored"):
        events.add_column(col, justify="left" if col == "event" else "right")
    for name, group in ev.groupby("event", sort=True):
        obs = group["observed"] == 1
        events.add_row(str(name), str(group["patient_id"].nunique()), str(int(obs.sum())),
                       str(int((~obs).sum())), _fmt(group.loc[obs, "time_years"].median(), 2),
                       _fmt(group.loc[~obs, "time_years"].median(), 2))
    if len(ev) == 0:
        events.add_row("(none)", "0", "0", "0", "-", "-")
    add(events)
    return "\n".join(parts).rstrip() + "\n"
