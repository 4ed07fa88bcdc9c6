"""The AS report's corner attribution section: where in a corner patch the reader's grade comes from.

Reads ``corner_atlas.npz`` and ``corner_attribution.csv`` (:mod:`raoutcome.workflows.corner_attribution`) and
draws; computes nothing.
"""
from __future__ import annotations

__all__ = ["atlas_figure", "attribution_section"]

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from raoutcome.reporting.html import Figure, Section, Table, Text  # noqa: E402


def atlas_figure(atlas: dict[str, np.ndarray], groups: list[str], titles: list[str], ncols: int,
                 with_patch: bool) -> bytes:
    """Mean |IG| per group (the corner marked +), under each the group's mean patch when ``with_patch``."""
    xy = atlas["corner_xy"]
    rows = (2 if with_patch else 1) * int(np.ceil(len(groups) / ncols))
    fig, axes = plt.subplots(rows, ncols, figsize=(1.9 * ncols, 1.9 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for i, (group, title) in enumerate(zip(groups, titles)):
        r, c = divmod(i, ncols)
        r = 2 * r if with_patch else r
        ax = axes[r, c]
        ax.imshow(atlas[f"map_{group}"], cmap="magma")
        ax.plot(*xy, "+", color="cyan", ms=8, mew=1.5)
        ax.set_title(title, fontsize=8)
        if with_patch:
            axes[r + 1, c].imshow(atlas[f"patch_{group}"], cmap="gray")
            axes[r + 1, c].plot(*xy, "+", color="red", ms=8, mew=1.5)
            axes[r + 1, c].set_title("mean patch", fontsize=7)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def attribution_section(folder: str | Path) -> Section:
    """The section (a note when the study wrote no atlas)."""
    folder = Path(folder)
    npz, csv = folder / "corner_atlas.npz", folder / "corner_attribution.csv"
    title = "Corner attribution: what drives the reader's grade"
    if not npz.is_file() or not csv.is_file():
        return Section("corner_attribution", title, blocks=[Text(
            "No corner atlas: attribution is drawn from 10 patients on (or was switched off).", kind="note")])
    with np.load(npz) as f:
        atlas = {k: f[k] for k in f.files}
    table = pd.read_csv(csv)
    grades = table[table["kind"] == "grade"]
    corners = table[table["kind"] == "corner"]
    blocks: list = []
    if len(grades):
        blocks.append(Figure(atlas_figure(atlas, list(grades["group"]), [
            f"{g.replace('_', ' ')} (n={n})" for g, n in zip(grades["group"], grades["patches"])],
            ncols=len(grades), with_patch=True), caption="Mean |Integrated Gradients| of the expected grade per "
            "predicted grade, over all corners (top), and the mean patch (bottom). The corner landmark is "
            "marked +; in every patch the vertebral body is above and to the right, the disc below, the "
            "anterior soft tissue to the left."))
    if len(corners):
        blocks.append(Figure(atlas_figure(atlas, list(corners["group"]), [
            g.split(":", 1)[-1] for g in corners["group"]], ncols=6, with_patch=False),
            caption="Mean |Integrated Gradients| of the expected grade per corner (all its patches called "
                    "scorable, any grade)."))
    blocks.append(Table(table, caption="Share of each map within 0.02 template units of the corner (6.4 px of a "
                                       "32-px patch) and its enrichment: that share over the share of the "
                                       "patch's area (1 = no preference); below_*: the same for the strip below "
                                       "that neighbourhood (columns within 6.4 px of the corner: the anterior "
                                       "disc margin, where syndesmophytes grow and bridges cross the disc)"))
    return Section(
        "corner_attribution", title,
        intro="Integrated Gradients (Captum, 16 steps, baseline the all-zero patch = the film's mean grey) of the "
              "corner reader's expected grade on each corner patch called scorable (at most 48 patches per "
              "predicted grade and 16 per corner). "
              "Every patch is posed by its own vertebra and upper corners are flipped, so maps of many patches "
              "lie on top of each other and are averaged into an atlas: which part of the corner patch drives "
              "the grade.",
        blocks=blocks)
