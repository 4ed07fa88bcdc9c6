"""Figures of the observed-event survival analyses: calibration at horizons, cumulative incidence.

Tables come from :func:`raoutcome.analysis.observed_survival.observed_survival`; nothing is computed
here but the layout (Agg backend; :func:`raoutcome.reporting.stats_figures.save` writes them).
"""
from __future__ import annotations

__all__ = ["calibration_figure", "cif_figure"]

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from raoutcome.reporting.stats_figures import GROUP_COLOURS, PALETTE  # noqa: E402


def calibration_figure(curves: pd.DataFrame, table: pd.DataFrame, event_label: str = "deformity") -> Figure:
    """One panel per horizon: smoothed observed vs predicted P(event by the horizon), per model, with ICI."""
    horizons = sorted(curves["horizon"].unique())
    models = list(dict.fromkeys(curves["model"]))
    fig, axes = plt.subplots(1, len(horizons), figsize=(4.2 * len(horizons), 4.2), squeeze=False)
    for ax, h in zip(axes[0], horizons):
        top = 0.0
        for i, model in enumerate(models):
            c = curves[(curves["horizon"] == h) & (curves["model"] == model)]
            if c.empty:
                continue
            row = table[(table["horizon"] == h) & (table["model"] == model)]
            ici = f" (ICI {row['ici'].iloc[0]:.3f})" if len(row) else ""
            ax.plot(c["predicted"], c["observed"], color=PALETTE[i % len(PALETTE)], lw=2, label=model + ici)
            top = max(top, float(c["predicted"].max()), float(c["observed"].max()))
        top = min(1.0, top * 1.05 + 0.02)
        ax.plot([0, top], [0, top], color="grey", ls="--", lw=1, label="perfect calibration")
        ax.set_xlim(0, top)
        ax.set_ylim(0, top)
        ax.set_xlabel(f"predicted P({event_label} by {h:g} years)")
        ax.set_ylabel("observed (smoothed)")
        ax.set_title(f"{h:g} years")
        ax.legend(fontsize=7, loc="upper left")
    fig.suptitle("Calibration of the survival models (cross-validated predictions)")
    fig.tight_layout()
    return fig


def cif_calibration_figure(curves: pd.DataFrame, table: pd.DataFrame, groups: pd.DataFrame,
                           event_label: str = "deformity") -> Figure:
    """One panel per horizon: Fine–Gray predicted cumulative incidence against the observed one
    (smoothed curve with ICI; points: Aalen–Johansen per risk group with 95 % CI)."""
    horizons = sorted(curves["horizon"].unique())
    fig, axes = plt.subplots(1, len(horizons), figsize=(4.2 * len(horizons), 4.2), squeeze=False)
    for ax, h in zip(axes[0], horizons):
        c = curves[curves["horizon"] == h]
        g = groups[groups["horizon"] == h]
        row = table[table["horizon"] == h]
        ici = f" (ICI {row['ici'].iloc[0]:.3f})" if len(row) else ""
        ax.plot(c["predicted"], c["observed"], color=PALETTE[0], lw=2, label="smoothed" + ici)
        err = np.vstack([g["observed"] - g["lower"], g["upper"] - g["observed"]])
        ax.errorbar(g["mean_predicted"], g["observed"], yerr=np.where(np.isfinite(err), np.maximum(err, 0), 0),
                    fmt="o", color=PALETTE[1], ms=5, capsize=3, label="risk groups (Aalen–Johansen)")
        top = min(1.0, max(float(c["predicted"].max()), float(c["observed"].max()),
                           float(np.nanmax(g["upper"])) if g["upper"].notna().any() else 0.0) * 1.05 + 0.02)
        ax.plot([0, top], [0, top], color="grey", ls="--", lw=1, label="perfect calibration")
        ax.set_xlim(0, top)
        ax.set_ylim(0, top)
        ax.set_xlabel(f"predicted P({event_label} by {h:g} years, before death)")
        ax.set_ylabel("observed cumulative incidence")
        ax.set_title(f"{h:g} years")
        ax.legend(fontsize=7, loc="upper left")
    fig.suptitle("Calibration of the Fine–Gray cumulative incidence (cross-validated, death competing)")
    fig.tight_layout()
    return fig


def cif_figure(cif: pd.DataFrame, score_label: str, event_label: str = "deformity") -> Figure:
    """Aalen–Johansen cumulative incidence of the event, death competing, per image-risk tertile."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for i, (group, c) in enumerate(cif.groupby("group", sort=False)):
        colour = GROUP_COLOURS.get(group, PALETTE[i % len(PALETTE)])
        ax.step(c["time"], c["cif"], where="post", color=colour, lw=2, label=f"{group} {score_label}")
        ax.fill_between(c["time"], c["lower"], c["upper"], step="post", color=colour, alpha=0.15, lw=0)
    ax.set_xlabel("years since the first visit")
    ax.set_ylabel(f"cumulative incidence of {event_label}")
    ax.set_ylim(0, None)
    ax.set_title(f"{event_label.capitalize()} with death as a competing event (Aalen–Johansen)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
