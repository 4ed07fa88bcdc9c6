"""docs/img/spine_phantom.png: the lateral spine phantom (cervical, lumbar) with its landmarks, and one posed
corner patch per mSASSS lesion.

    PYTHONPATH=src python docs/img/make_spine_figure.py
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from raoutcome.imaging.corner_patches import image_corner_patches  # noqa: E402
from raoutcome.synth.phantom.render import Acquisition  # noqa: E402
from raoutcome.synth.phantom.spine import SpineState, render_spine_view  # noqa: E402

OUT = Path(__file__).resolve().parent / "spine_phantom.png"


def main() -> None:
    lesions = {"spine_cervical": {"C3_inf": "syndesmophyte", "C5_inf": "bridging", "C6_sup": "bridging",
                                  "C4_sup": "erosion"},
               "spine_lumbar": {"L1_inf": "sclerosis", "L2_inf": "squaring", "L3_inf": "bridging",
                                "L4_sup": "bridging", "L4_inf": "syndesmophyte", "L1_sup": "erosion"}}
    fig = plt.figure(figsize=(12, 6.4))
    grid = fig.add_gridspec(2, 8, height_ratios=(3.2, 1.0))
    shown = {}
    for k, view in enumerate(("spine_cervical", "spine_lumbar")):
        st = SpineState(lesions=lesions[view], osteophytes=frozenset({"T12_inf"} if view == "spine_lumbar" else ()),
                        shoulder=0.8)
        img, _, lm, hidden = render_spine_view(view, st, 256, Acquisition(rotation=0.05, noise_sd=0.008),
                                               np.random.default_rng(k))
        ax = fig.add_subplot(grid[0, 4 * k:4 * k + 4])
        ax.imshow(img, cmap="gray")
        for name, (x, y) in lm.items():
            ax.plot(x, y, ".", ms=4, color="tab:red" if name.endswith("_c") else "tab:green")
        ax.set_title(f"{view} (corners green, centres red; hidden: {', '.join(sorted(hidden)) or 'none'})",
                     fontsize=9)
        ax.axis("off")
        patches = image_corner_patches(img, view, lm)
        for corner, lesion in {**lesions[view], **({"T12_inf": "osteophyte (NS)"} if k else {})}.items():
            shown.setdefault(lesion, patches[corner])
        if k == 0:
            shown.setdefault("none", patches["C4_inf"])
    for i, (lesion, patch) in enumerate(list(shown.items())[:8]):
        ax = fig.add_subplot(grid[1, i])
        ax.imshow(patch, cmap="gray")
        ax.set_title(lesion, fontsize=8)
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(OUT, dpi=90)
    print(OUT)


if __name__ == "__main__":
    main()
