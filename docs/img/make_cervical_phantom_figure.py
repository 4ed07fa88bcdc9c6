"""Draw docs/img/cervical_phantom.png: the craniocervical phantom at baseline and with deformity.

Top row: a patient without deformity (neutral, flexion lateral radiographs with the atlantoaxial landmarks;
mid-sagittal T2; parasagittal T1 through the C1–C2 facets). Bottom row: the same anatomy with pannus 5 mm,
facet degeneration 0.8, dens erosion 0.6, laxity 3 mm (vertical translocation follows the facets).
Run:  PYTHONPATH=src python docs/img/make_cervical_phantom_figure.py
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from raoutcome.analysis.craniocervical import measure_points  # noqa: E402
from raoutcome.io_utils import atomic_path  # noqa: E402
from raoutcome.synth.phantom.craniocervical import (CervicalGeometry, XrAcquisition, render_lateral,  # noqa: E402
                                                    render_mr)

OUT = Path(__file__).with_name("cervical_phantom.png")


def main() -> int:
    healthy = CervicalGeometry(pannus=0.5, facet=0.15, erosion=0.05, laxity=0.6)
    sick = replace(healthy, pannus=5.0, facet=0.8, erosion=0.6, laxity=3.0, adi=3.2, vt=6.0 * 0.3)
    fig, axes = plt.subplots(2, 4, figsize=(14, 7.2))
    for r, (g, name) in enumerate(((healthy, "no deformity"), (sick, "deformity"))):
        rng = np.random.default_rng(3)
        for c, view in enumerate(("neutral", "flexion")):
            img, _, pts = render_lateral(g, view, 128, 0.55, XrAcquisition.draw(rng, view), rng)
            m = measure_points(pts, 0.55)
            ax = axes[r, c]
            ax.imshow(img, cmap="gray")
            for k in ("C1A", "DA", "DP", "C1P"):
                ax.plot(*pts[k], "r+", ms=6)
            ax.set_title(f"{name}, {view}: ADI {m['adi_mm']:.1f}, SAC {m['sac_mm']:.1f} mm", fontsize=9)
        for c, (contrast, k) in enumerate((("t2", 5), ("t1", 1)), start=2):
            vol, _ = render_mr(g, contrast, (12, 48, 48), (3.5, 1.4, 1.4), np.random.default_rng(4))
            axes[r, c].imshow(vol[k], cmap="gray", vmin=0, vmax=1)
            axes[r, c].set_title(f"{name}: {contrast.upper()} slice {k} "
                                 f"({'mid-sagittal' if k == 5 else 'C1–C2 facets'})", fontsize=9)
    for ax in axes.ravel():
        ax.axis("off")
    fig.tight_layout()
    with atomic_path(OUT) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
