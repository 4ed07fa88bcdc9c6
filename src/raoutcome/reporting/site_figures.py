"""Figures of the site route: the joint atlas of attribution maps (one panel per joint, one figure per head).

Matplotlib with the Agg backend; returns a Figure (save it with
:func:`raoutcome.reporting.cohort_figures.save_figure`). No statistics here.
"""
from __future__ import annotations

__all__ = ["site_atlas_figure"]

import math
from typing import Mapping

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def site_atlas_figure(maps: Mapping[str, np.ndarray], counts: Mapping[str, int], head: str,
                      columns: int = 8) -> plt.Figure:
    """Mean attribution map of each joint (``maps``: joint -> ``float[g, g]``, canonical left orientation; brighter
    = more influence on the joint's ``head`` score), titled with the joint and the number of patches pooled."""
    joints = sorted(maps)
    cols = max(1, min(columns, len(joints)))
    rows = max(1, math.ceil(len(joints) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(1.6 * cols, 1.75 * rows + 0.4), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, joint in zip(axes.ravel(), joints):
        m = np.abs(np.asarray(maps[joint], dtype=float))
        ax.imshow(m / m.max() if m.max() > 0 else m, cmap="magma", vmin=0, vmax=1)
        ax.set_title(f"{joint.replace('_', ' ')}\n(n {counts.get(joint, 0)})", fontsize=6)
    fig.suptitle(f"Joint atlas: what drives each joint's {head} score", fontsize=9)
    fig.tight_layout()
    return fig
