"""Figures for attribution: heat maps over radiographs, region overlays, region-density charts.

Matplotlib with the Agg backend; every function returns a Figure (the caller saves it, e.g. with
:func:`save_figure`, which writes atomically). No statistics are computed here.
"""
from __future__ import annotations

import textwrap
from typing import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from raoutcome.anatomy import REGION_NAMES, REGIONS  # noqa: E402
from raoutcome.reporting.cohort_figures import save_figure  # noqa: E402,F401  (re-exported: one PNG writer)
from raoutcome.reporting.labels import label  # noqa: E402

# One fixed colour per region code, so every figure reads the same way.
REGION_COLOURS: dict[str, str] = {
    "background": "#00000000",
    "soft_tissue": "#1f77b4",
    "shaft": "#2ca02c",
    "svdh_site": "#d62728",
    "periarticular": "#ff7f0e",
    "carpus": "#9467bd",
    "foreground": "#17becf",
}
FOREGROUND_CODE = 255


def label_rgba(labels: np.ndarray, alpha: float) -> np.ndarray:
    """RGBA image painting each region code in its fixed colour (background transparent)."""
    rgba = np.zeros(labels.shape + (4,), dtype=np.float32)
    names = dict(REGION_NAMES)
    names[FOREGROUND_CODE] = "foreground"
    for code, name in names.items():
        if name == "background":
            continue
        colour = matplotlib.colors.to_rgba(REGION_COLOURS[name])
        rgba[labels == code] = (*colour[:3], alpha)
    return rgba


def region_overlay_figure(image: np.ndarray, labels: np.ndarray, landmarks: Mapping[str, Sequence[float]] | None = None,
                          title: str | None = None, alpha: float = 0.45) -> plt.Figure:
    """The radiograph beside the same radiograph with its region label map painted on it."""
    h, w = labels.shape
    fig, axes = plt.subplots(1, 2, figsize=(2 * 4.2, 4.2 * h / w + 0.6))
    for ax in axes:
        ax.imshow(image, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        ax.set_axis_off()
    axes[1].imshow(label_rgba(labels, alpha), interpolation="nearest")
    if landmarks:
        xy = np.array([tuple(v)[:2] for v in landmarks.values()], dtype=float)
        axes[1].plot(xy[:, 0], xy[:, 1], "w+", ms=5, mew=1)
    present = [REGION_NAMES.get(c, "foreground") for c in np.unique(labels) if c != REGIONS["background"]]
    handles = [Patch(color=REGION_COLOURS[n], label=n.replace("_", " ")) for n in present]
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 6), fontsize=8, frameon=False)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0.06, 1, 0.95 if title else 1))
    return fig


def region_montage_figure(panels: Sequence[tuple[str, np.ndarray, np.ndarray, Mapping[str, Sequence[float]] | None]],
                          title: str | None = None, alpha: float = 0.45) -> plt.Figure:
    """Several radiographs side by side, each with its region map painted on and landmarks marked.

    ``panels``: ``(name, image, labels, landmarks or None)`` per radiograph.
    """
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 4.9), squeeze=False)
    present: set[int] = set()
    for ax, (name, image, labels, landmarks) in zip(axes[0], panels):
        ax.imshow(image, cmap="gray", vmin=0, vmax=1)
        ax.imshow(label_rgba(labels, alpha), interpolation="nearest")
        if landmarks:
            xy = np.array([tuple(v)[:2] for v in landmarks.values()], dtype=float)
            ax.plot(xy[:, 0], xy[:, 1], "w+", ms=4, mew=0.8)
        ax.set_title(name, fontsize=8)
        ax.set_axis_off()
        present |= set(np.unique(labels).tolist())
    names = [REGION_NAMES.get(c, "foreground") for c in sorted(present) if c != REGIONS["background"]]
    fig.legend(handles=[Patch(color=REGION_COLOURS[n], label=n.replace("_", " ")) for n in names],
               loc="lower center", ncol=max(1, len(names)), fontsize=8, frameon=False)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout(rect=(0, 0.05, 1, 0.96 if title else 1))
    return fig


def attribution_overlay_figure(image: np.ndarray, maps: Mapping[str, np.ndarray], labels: np.ndarray | None = None,
                               title: str | None = None, quantile: float = 0.995,
                               smooth_px: float | None = None) -> plt.Figure:
    """The radiograph and one panel per head with its attribution heat map on top.

    Each map is shown lightly smoothed (Gaussian, ``smooth_px``, default 1/128 of the image height:
    pixel-level Integrated Gradients is speckled; the saved maps are not smoothed), scaled to its own
    ``quantile`` (robust to a few extreme pixels) and drawn with transparency growing with magnitude,
    so the anatomy stays visible. SvdH sites are outlined when a label map is given. Signed maps use a
    diverging colour map centred at zero.
    """
    from scipy.ndimage import gaussian_filter

    heads = list(maps)
    n = len(heads) + 1
    h, w = image.shape
    # Titles are large for the figure: a row of 7+ panels is shown scaled down to a page's width.
    fig, axes = plt.subplots(1, n, figsize=(2.6 * n, 2.6 * h / w + 0.9), squeeze=False)
    axes = axes[0]
    axes[0].imshow(image, cmap="gray", vmin=0, vmax=1)
    axes[0].set_title("radiograph", fontsize=14)
    for ax, head in zip(axes[1:], heads):
        m = np.asarray(maps[head], dtype=np.float32)
        signed = bool((m < 0).any())
        m = gaussian_filter(m, smooth_px if smooth_px is not None else max(0.5, h / 128))
        scale = float(np.quantile(np.abs(m), quantile)) or float(np.abs(m).max()) or 1.0
        ax.imshow(image, cmap="gray", vmin=0, vmax=1)
        if signed:
            norm = np.clip(m / scale, -1, 1)
            rgba = plt.get_cmap("coolwarm")((norm + 1) / 2)
            rgba[..., 3] = np.abs(norm) * 0.85
        else:
            norm = np.clip(m / scale, 0, 1)
            rgba = plt.get_cmap("inferno")(norm)
            rgba[..., 3] = norm * 0.85
        ax.imshow(rgba)
        if labels is not None:
            ax.contour(labels == REGIONS["svdh_site"], levels=[0.5], colors="cyan", linewidths=0.4)
        ax.set_title(label(head), fontsize=14)
    for ax in axes:
        ax.set_axis_off()
    if title:  # wrapped to the figure's width (a long file name must not run off the edges)
        fig.suptitle(textwrap.fill(title, width=max(30, int(fig.get_figwidth() * 72 / (14 * 0.6)))), fontsize=14)
    fig.tight_layout()
    return fig


def density_ratio_figure(table, title: str | None = None) -> plt.Figure:
    """Density ratio (periarticular / svdh_site) with 95 % CIs, one point per row of ``table``.

    ``table`` needs columns ``label``, ``ratio``, ``ci_low``, ``ci_high``; the parity line is drawn.
    """
    fig, ax = plt.subplots(figsize=(7.5, 0.5 * len(table) + 1.4))
    y = np.arange(len(table))[::-1]
    ax.errorbar(table["ratio"], y, xerr=[table["ratio"] - table["ci_low"], table["ci_high"] - table["ratio"]],
                fmt="o", color="k", capsize=3)
    ax.axvline(1.0, color="grey", ls="--", lw=1)
    ax.set_yticks(y, list(table["label"]))
    ax.set_xlabel("attribution density, periarticular / SvdH site (95 % patient-bootstrap CI)")
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig
