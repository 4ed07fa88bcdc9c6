"""Figures for the cohort statistics (matplotlib, Agg backend; no statistics computed here).

Every function takes tables produced by :mod:`raoutcome.analysis` and returns
a ``matplotlib.figure.Figure``; :func:`save` writes it atomically as PNG and
closes it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator  # noqa: E402

from raoutcome.io_utils import atomic_path  # noqa: E402
from raoutcome.outcomes import damage_outcome  # noqa: E402
from raoutcome.reporting.labels import label  # noqa: E402

GROUP_COLOURS = {"low": "#1b9e77", "middle": "#7570b3", "high": "#d95f02"}
PALETTE = ["#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d", "#666666"]


def save(fig: Figure, path: str | Path, dpi: int = 120) -> Path:
    """Write ``fig`` as PNG atomically and close it."""
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format="png")
    plt.close(fig)
    return path


def score_name(column: str) -> str:
    """A readable name for a score column (``pred_risk`` -> 'image risk score'; see :func:`labels.label`)."""
    return label(column)


def km_figure(curves: pd.DataFrame, groups: pd.DataFrame, p_value: float, score_label: str,
              event_label: str = "event") -> Figure:
    """Kaplan–Meier curves with 95 % bands per risk group, numbers at risk below, log-rank p in the title."""
    fig, (ax, ax_tab) = plt.subplots(2, 1, figsize=(7, 5.6), gridspec_kw={"height_ratios": [4, 1]}, sharex=True)
    labels = list(groups["group"])
    t_max = float(curves["time"].max()) if len(curves) else 1.0
    ticks = np.linspace(0, t_max, 6)
    for i, group in enumerate(labels):
        c = curves[curves["group"] == group]
        colour = GROUP_COLOURS.get(group, PALETTE[i % len(PALETTE)])
        g = groups[groups["group"] == group].iloc[0]
        ax.step(c["time"], c["survival"], where="post", color=colour, lw=2,
                label=f"{group} ({g['score_min']:.2g} to {g['score_max']:.2g}): {int(g['events'])}/{int(g['n'])} events")
        ax.fill_between(c["time"], c["lower"], c["upper"], step="post", color=colour, alpha=0.15, lw=0)
        at_risk = [int((c["at_risk"].where(c["time"] >= t).dropna().iloc[0]) if (c["time"] >= t).any() else 0)
                   for t in ticks]
        for t, n in zip(ticks, at_risk):
            ax_tab.text(t, len(labels) - 1 - i, str(n), ha="center", va="center", color=colour, fontsize=9)
    ax.set_ylim(0, 1.02)
    ax.set_ylabel(f"free of {event_label}")
    score_label = score_name(score_label)
    ax.set_title(f"Kaplan–Meier by tertile of the {score_label}\nlog-rank {_fmt_p(p_value)}")
    ax.legend(loc="lower left", fontsize=8, frameon=False, title=f"{score_label} tertile", title_fontsize=8)
    ax.grid(alpha=0.3)
    ax_tab.set_yticks(range(len(labels)))
    ax_tab.set_yticklabels(labels[::-1], fontsize=9)
    ax_tab.set_ylim(-0.6, len(labels) - 0.4)
    ax_tab.set_xticks(ticks)
    ax_tab.set_xlabel("years since first visit")
    ax_tab.set_title("number at risk", fontsize=9, loc="left")
    for side in ("top", "right", "left"):
        ax_tab.spines[side].set_visible(False)
    ax_tab.tick_params(axis="y", length=0)
    fig.tight_layout()
    return fig


def forest_figure(table: pd.DataFrame, title: str = "Cox model: hazard ratios (95 % CI)") -> Figure:
    """Forest plot of hazard ratios; ``table`` has ``model, covariate, hr, hr_lower, hr_upper, p, per``."""
    table = table.reset_index(drop=True)
    fig, ax = plt.subplots(figsize=(9.5, 0.42 * len(table) + 1.6))
    y = np.arange(len(table))[::-1]
    models = list(dict.fromkeys(table["model"])) if "model" in table else [""]
    for i, row in table.iterrows():
        colour = PALETTE[models.index(row.get("model", "")) % len(PALETTE)]
        ax.plot([row["hr_lower"], row["hr_upper"]], [y[i]] * 2, color=colour, lw=2)
        ax.plot(row["hr"], y[i], "s", color=colour, ms=6)
        ax.text(1.02, y[i], f"{row['hr']:.2f} ({row['hr_lower']:.2f}–{row['hr_upper']:.2f})  {_fmt_p(row['p'])}",
                transform=ax.get_yaxis_transform(), va="center", fontsize=8)
    labels = [f"{r['model']}: {label(r['covariate'])}" if "model" in table else label(r["covariate"])
              for _, r in table.iterrows()]
    ax.set_yticks(y)
    ax.set_yticklabels([f"{lab} (per {r['per']})" for lab, (_, r) in zip(labels, table.iterrows())], fontsize=8)
    ax.axvline(1.0, color="grey", ls="--", lw=1)
    ax.set_xscale("log")
    lo, hi = float(table["hr_lower"].min()), float(table["hr_upper"].max())
    ticks = [t for t in (0.05, 0.1, 0.2, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 4, 5, 10, 20) if lo / 1.3 <= t <= hi * 1.3]
    ax.xaxis.set_major_locator(FixedLocator(ticks or [1]))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xlabel("hazard ratio (log scale)")
    ax.set_title(title)
    ax.grid(axis="x", alpha=0.3, which="both")
    fig.tight_layout()
    return fig


def coefficient_figure(table: pd.DataFrame, title: str) -> Figure:
    """Dot-and-whisker plot of model coefficients, one panel per outcome.

    ``table`` has ``outcome, model, term, estimate, ci_lower, ci_upper`` (Intercept rows are dropped).
    """
    table = table[table["term"] != "Intercept"]
    outcomes = list(dict.fromkeys(table["outcome"]))
    fig, axes = plt.subplots(1, max(1, len(outcomes)), figsize=(5.2 * max(1, len(outcomes)), 0.45 * table.groupby("outcome").size().max() + 1.8),
                             squeeze=False)
    for ax, outcome in zip(axes[0], outcomes):
        sub = table[table["outcome"] == outcome].reset_index(drop=True)
        models = list(dict.fromkeys(sub["model"]))
        y = np.arange(len(sub))[::-1]
        for i, row in sub.iterrows():
            colour = PALETTE[models.index(row["model"]) % len(PALETTE)]
            ax.plot([row["ci_lower"], row["ci_upper"]], [y[i]] * 2, color=colour, lw=2)
            ax.plot(row["estimate"], y[i], "o", color=colour)
        ax.set_yticks(y)
        ax.set_yticklabels([f"{r['model']} model: {label(r['term'])}" for _, r in sub.iterrows()], fontsize=9)
        ax.axvline(0, color="grey", ls="--", lw=1)
        ax.set_title(label(outcome))
        ax.set_xlabel("coefficient (95 % CI)")
        ax.grid(axis="x", alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def cumulative_probability_figure(changes: Mapping[str, Sequence[float]], sdcs: Mapping[str, float] | None = None) -> Figure:
    """Cumulative probability plots of change scores, one panel per endpoint (SDC marked when known)."""
    sdcs = dict(sdcs or {})
    names = list(changes)
    fig, axes = plt.subplots(1, max(1, len(names)), figsize=(4.2 * max(1, len(names)), 3.8), squeeze=False)
    for i, (ax, name) in enumerate(zip(axes[0], names)):
        arr = np.sort(np.asarray(changes[name], dtype=float))
        arr = arr[np.isfinite(arr)]
        prob = np.arange(1, len(arr) + 1) / max(len(arr), 1)
        ax.plot(prob, arr, ".-", ms=3, lw=1, color=PALETTE[i % len(PALETTE)])
        ax.axhline(0, color="grey", lw=0.8)
        sdc = sdcs.get(name)
        if sdc is not None and np.isfinite(sdc):
            ax.axhline(sdc, color="black", ls="--", lw=1)
            share = 100 * np.mean(arr > sdc) if len(arr) else np.nan
            ax.text(0.02, sdc, f" SDC {sdc:.2g}: {share:.0f} % above", va="bottom", fontsize=8,
                    transform=ax.get_yaxis_transform())
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("cumulative probability")
        ax.set_ylabel("change (end − first visit)")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def power_figure(power: pd.DataFrame, target: float = 0.8) -> Figure:
    """Simulated power against effect size (treated-arm shrinkage of change), one line per endpoint."""
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for i, (name, sub) in enumerate(power.groupby("endpoint", sort=False)):
        sub = sub.sort_values("effect")
        colour = PALETTE[i % len(PALETTE)]
        ax.plot(100 * sub["effect"], sub["power"], "o-", color=colour, label=name)
        ax.fill_between(100 * sub["effect"], sub["power"] - 1.96 * sub["power_se"],
                        sub["power"] + 1.96 * sub["power_se"], color=colour, alpha=0.15, lw=0)
    ax.axhline(target, color="grey", ls="--", lw=1)
    n = int(power["n_per_arm"].iloc[0]) if len(power) else 0
    test = power["test"].iloc[0] if len(power) else ""
    if "alpha" not in power:
        power = power.assign(alpha=0.05)
    ax.set_xlabel("treatment effect: reduction of change in the treated arm (%)")
    ax.set_ylabel("power")
    ax.set_ylim(0, 1.02)
    test_name = {"ttest": "Welch t-test", "mannwhitney": "Mann–Whitney"}.get(test, test)
    ax.set_title(f"Simulated two-arm trials, {n} patients per arm ({test_name}, α = {power['alpha'].iloc[0]:g})")
    ax.legend(frameon=False, fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def scatter_figure(observed: np.ndarray, predicted: np.ndarray, head: str, target: str,
                   stats_text: str = "") -> Figure:
    """Predicted vs observed, identity line; ``stats_text`` (e.g. RMSE, r) in the corner."""
    obs, pred = np.asarray(observed, float), np.asarray(predicted, float)
    ok = np.isfinite(obs) & np.isfinite(pred)
    fig, ax = plt.subplots(figsize=(4.6, 4.4))
    ax.scatter(obs[ok], pred[ok], s=8, alpha=0.45, color=PALETTE[0], edgecolor="none")
    if ok.any():
        lo = float(min(obs[ok].min(), pred[ok].min()))
        hi = float(max(obs[ok].max(), pred[ok].max()))
        ax.plot([lo, hi], [lo, hi], color="grey", ls="--", lw=1)
    ax.set_xlabel(f"observed {label(target)}")
    ax.set_ylabel(f"predicted ({label(head)} head)")
    ax.set_title(f"{label(head)}: predicted vs observed (n = {int(ok.sum())})", fontsize=10)
    return _finish_panel(fig, ax, stats_text)


def risk_scatter_figure(risk: np.ndarray, duration: np.ndarray, observed: np.ndarray, stats_text: str = "") -> Figure:
    """Risk head vs time to event: events and censored patients in two colours."""
    risk, duration, observed = (np.asarray(a, float) for a in (risk, duration, observed))
    ok = np.isfinite(risk) & np.isfinite(duration) & np.isfinite(observed)
    fig, ax = plt.subplots(figsize=(4.6, 4.4))
    ev = ok & (observed == 1)
    ce = ok & (observed == 0)
    ax.scatter(duration[ce], risk[ce], s=8, alpha=0.4, color="grey", label="censored", edgecolor="none")
    ax.scatter(duration[ev], risk[ev], s=10, alpha=0.7, color=PALETTE[1], label="event", edgecolor="none")
    ax.set_xlabel("years to event or censoring")
    ax.set_ylabel("predicted risk (risk head, baseline visit)")
    ax.set_title(f"risk vs observed time (n = {int(ok.sum())})", fontsize=10)
    ax.legend(frameon=True, framealpha=0.8, fontsize=8, loc="best")
    return _finish_panel(fig, ax, stats_text)


def _finish_panel(fig: Figure, ax, stats_text: str) -> Figure:
    """Statistics box in the upper-left corner, grid, tight layout."""
    if stats_text:
        ax.text(0.03, 0.97, stats_text, transform=ax.transAxes, va="top", fontsize=8,
                bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "none"})
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def _fmt_p(p: float) -> str:
    """``p = 0.032`` or ``p < 0.0001``."""
    if p is None or not np.isfinite(p):
        return "p n/a"
    return f"p = {p:.2g}" if p >= 1e-4 else "p < 0.0001"


def anomaly_figure(visits: pd.DataFrame, score: str = "anomaly", damage: str | None = None) -> Figure:
    """A visit score against log(1 + the human damage reading, default the registry's: SvdH total), coloured
    by simulated bone density loss when present."""
    damage = damage or damage_outcome().column
    d = visits.dropna(subset=[damage, score])
    fig, ax = plt.subplots(figsize=(5.4, 4.3))
    x = np.log1p(d[damage].to_numpy(float))
    colour = d["osteopenia"].to_numpy(float) if "osteopenia" in d and d["osteopenia"].notna().all() else None
    dots = ax.scatter(x, d[score], c=colour if colour is not None else PALETTE[0], s=9, alpha=0.75,
                      cmap="viridis" if colour is not None else None, edgecolor="none")
    if colour is not None:
        fig.colorbar(dots, ax=ax, label="bone density loss (simulated osteopenia)")
    ax.set_xlabel(f"log(1 + {label(damage)})")
    ax.set_ylabel("joint anomaly score (held out)")
    r = float(np.corrcoef(x, d[score])[0, 1]) if len(d) > 2 else float("nan")
    ax.set_title(f"Label-free joint anomaly vs the Sharp score\n(r = {r:.2f}, {len(d)} visits)", fontsize=10)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig
