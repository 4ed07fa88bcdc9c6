"""Figures and tables that describe a cohort before any model: who is in it, and what the images look like.

* :func:`cohort_table` — patients, visits, images per view, completeness of each outcome, events.
* :func:`cohort_overview_figure` — SvdH trajectories, HAQ over time, follow-up per patient.
* :func:`pick_rapid_progressor` / :func:`example_radiographs_figure` — one patient's radiographs at the
  first and the last visit, side by side (the quickest way to see what "progression" looks like).

Counts and a choice of example only; no statistical model is fitted here (that is ``raoutcome.analysis``).
Matplotlib runs on the Agg backend; every function returns a Figure the caller saves.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator  # noqa: E402

from raoutcome.anatomy import DEFORMITY_EVENT  # noqa: E402
from raoutcome.io_utils import atomic_path  # noqa: E402
from raoutcome.outcomes import column, damage_outcome, outcomes, visit_columns  # noqa: E402


def _column_label(col: str) -> str:
    """A visit column's registered label with its unit: "HAQ (0–3)"."""
    if col not in visit_columns():
        return col
    m = column(col)
    return f"{m.label} ({m.unit})" if m.unit else m.label


def _damage_column() -> str:
    """The human damage reading's column (``svdh_total``)."""
    damage = damage_outcome()
    return damage.column if damage is not None else ""


def cohort_table(cohort) -> pd.DataFrame:
    """A two-column table (item, value) summarising the cohort for a reader."""
    visits, images, events = cohort.visits, cohort.images, cohort.events
    per_patient = visits.groupby("patient_id")["time_years"]
    rows: list[tuple[str, str]] = [
        ("Patients", f"{len(cohort.patients):,}"),
        ("Visits", f"{len(visits):,} (median {per_patient.size().median():.0f} per patient)"),
        ("Follow-up, years", f"median {per_patient.max().median():.1f} (range "
                             f"{per_patient.max().min():.1f}–{per_patient.max().max():.1f})"),
        ("Radiographs", f"{len(images):,}"),
    ]
    for view, n in images["view"].value_counts().sort_index().items():
        rows.append((f"  · {view.replace('_', ' ')}", f"{n:,} ({n / max(len(visits), 1):.0%} of visits)"))
    for col in visit_columns():
        if col in visits and visits[col].notna().any():
            present = visits[col].notna()
            base = visits.groupby("patient_id").head(1)
            rows.append((f"{_column_label(col)}: recorded",
                         f"{present.mean():.0%} of visits; baseline median {base[col].median():.3g} "
                         f"(IQR {base[col].quantile(.25):.3g}–{base[col].quantile(.75):.3g})"))
    for event, grp in events.groupby("event"):
        obs = int(grp["observed"].sum())
        rows.append((f"Event '{event}'", f"{obs:,} observed ({obs / max(len(grp), 1):.0%}), "
                                         f"{len(grp) - obs:,} censored"))
    return pd.DataFrame(rows, columns=["Item", "Value"])


def pick_rapid_progressor(cohort, views: Sequence[str] = ("hand_left", "hand_right")) -> str | None:
    """The patient with the steepest observed SvdH rise (per year) between first and last visit that has
    radiographs of ``views`` at both; ``None`` when no SvdH scores or images allow a choice."""
    visits, damage = cohort.visits, _damage_column()
    if damage not in visits or visits[damage].notna().sum() == 0:
        return None
    have = cohort.images[cohort.images["view"].isin(views)].groupby(["patient_id", "visit_id"])["view"].nunique()
    full = set(have[have == len(set(views))].index)
    scored = visits.dropna(subset=[damage])
    scored = scored[[(p, v) in full for p, v in zip(scored["patient_id"], scored["visit_id"])]]
    if scored.empty:
        return None
    g = scored.sort_values(["patient_id", "time_years"]).groupby("patient_id")
    first, last = g.first(), g.last()
    dt = last["time_years"] - first["time_years"]
    rate = (last[damage] - first[damage]) / dt.where(dt > 0)
    rate = rate.dropna()
    if rate.empty:
        return None
    return str(rate.sort_values(ascending=False, kind="stable").index[0])


def _visit_images(cohort, patient_id: str, views: Sequence[str]):
    visits = cohort.visits[cohort.visits["patient_id"] == patient_id]
    imgs = cohort.images[cohort.images["patient_id"] == patient_id]
    ok = imgs.groupby("visit_id")["view"].apply(lambda s: set(views) <= set(s))
    visits = visits[visits["visit_id"].map(ok).fillna(False).astype(bool)].sort_values("time_years")
    damage = _damage_column()
    if damage in visits and visits[damage].notna().sum() >= 2:
        visits = visits.dropna(subset=[damage])  # the visits whose scores chose this patient
    return visits, imgs


def example_radiographs_figure(cohort, patient_id: str, views: Sequence[str] = ("hand_left", "hand_right")):
    """Radiographs of one patient: rows = first and last visit, columns = views."""
    from raoutcome.imaging import read_image

    visits, imgs = _visit_images(cohort, patient_id, views)
    damage = _damage_column()
    short = damage_outcome().short_label if damage else ""
    if len(visits) == 0:
        raise ValueError(f"patient {patient_id} has no visit with all of {list(views)}")
    chosen = [visits.iloc[0], visits.iloc[-1]] if len(visits) > 1 else [visits.iloc[0]]
    fig, axes = plt.subplots(len(chosen), len(views), figsize=(3.3 * len(views), 3.9 * len(chosen)),
                             squeeze=False, layout="constrained")
    for r, visit in enumerate(chosen):
        for c, view in enumerate(views):
            ax = axes[r, c]
            rel = imgs[(imgs["visit_id"] == visit["visit_id"]) & (imgs["view"] == view)]["path"].iloc[0]
            pixels = read_image(cohort.image_path(rel)).pixels
            ax.imshow(pixels, cmap="gray", vmin=0, vmax=1, interpolation="lanczos")
            ax.set_xticks([])
            ax.set_yticks([])
            score = visit.get(damage, np.nan)
            label = "first visit" if r == 0 else "last visit"
            sv = f"{short} not scored" if pd.isna(score) else f"{column(damage).label} {score:.0f}"
            ax.set_title(f"{view.replace('_', ' ')} · {label}\nyear {visit['time_years']:.1f} · {sv}", fontsize=9.5)
    fig.suptitle(f"Patient {patient_id}", fontsize=11)
    return fig


def cohort_overview_figure(cohort, highlight: str | None = None):
    """Three panels: SvdH over time, HAQ over time (one thin line per patient), follow-up and events."""
    visits, damage = cohort.visits, _damage_column()
    reported = next((o.column for o in outcomes() if o.kind == "bounded"), "")
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for ax, col in zip(axes[:2], (damage, reported)):
        data = visits.dropna(subset=[col]) if col in visits else visits.iloc[:0]
        if data.empty:
            ax.text(0.5, 0.5, f"no {col} recorded", ha="center", va="center", transform=ax.transAxes)
            ax.set_axis_off()
            continue
        for pid, grp in data.groupby("patient_id"):
            hl = pid == highlight
            ax.plot(grp["time_years"], grp[col], color="#c0392b" if hl else "#4a6f94",
                    alpha=1.0 if hl else 0.18, lw=2.2 if hl else 0.8, zorder=3 if hl else 1,
                    label="example patient (next section)" if hl else None)
        med = data.assign(t=data["time_years"].round(0)).groupby("t")[col].median()
        ax.plot(med.index, med.values, color="black", lw=2, ls="--", label="median by year", zorder=4)
        ax.set_xlabel("years since first visit")
        ax.set_ylabel(_column_label(col))
        ax.legend(fontsize=8, loc="lower left", bbox_to_anchor=(0, 1.0), ncol=2, frameon=False)
        if col == damage:  # right-skewed: stretch the low end, label in plain numbers
            ax.set_yscale("symlog", linthresh=5, linscale=0.6)
            top = float(np.nanmax(data[col])) if len(data) else 1.0
            ticks = [t for t in (0, 2, 5, 10, 20, 50, 100, 200, 400) if t <= max(top * 1.25, 5)]
            ax.yaxis.set_major_locator(FixedLocator(ticks))
            ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            ax.yaxis.set_minor_locator(NullLocator())
    ax = axes[2]
    fu = visits.groupby("patient_id")["time_years"].max()
    ax.hist(fu, bins=min(20, max(5, fu.nunique())), color="#8fa9c4", edgecolor="white")
    ax.set_xlabel("follow-up (years)")
    ax.set_ylabel("patients")
    ev = cohort.events[cohort.events["event"] == DEFORMITY_EVENT] if len(cohort.events) else cohort.events
    if len(ev):
        ax.set_title(f"{int(ev['observed'].sum())} of {len(ev)} patients had a {DEFORMITY_EVENT} event",
                     fontsize=9.5, loc="left")
    fig.tight_layout()
    return fig


def save_figure(fig, path: str | Path, dpi: int = 110) -> Path:
    """Save a matplotlib figure as PNG atomically and close it."""
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png", bbox_inches="tight", facecolor="white")
    plt.close(fig)
    return path


__all__ = ["cohort_table", "pick_rapid_progressor", "example_radiographs_figure", "cohort_overview_figure",
           "save_figure"]
