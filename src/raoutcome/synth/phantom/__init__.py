"""Radiograph phantom: PA hand and dorsoplantar foot, rendered with known geometry and labels."""
from __future__ import annotations

import numpy as np

from raoutcome.anatomy import FOOT_VIEWS
from .geometry import ViewState
from .render import Acquisition, Canvas


def render_view(view: str, state: ViewState, size: int, acq: Acquisition, rng: np.random.Generator):
    """One image: (float32 pixels in [0, 1], uint8 region label map, {landmark: (x, y) pixels}).

    Landmarks are in the manifest's convention (``docs/manifest.md``): x = column, y = row, the centre
    of the top-left pixel at (0, 0), as the library's readers index the pixel array."""
    from .foot import render_foot
    from .hand import render_hand

    cv = Canvas(size, acq, rng)
    _, lm = (render_foot if view in FOOT_VIEWS else render_hand)(cv, state)
    img = cv.compose(rng)
    names = list(lm)
    px = acq.forward(np.array([lm[k] for k in names]), size)  # pixel centres at integer coordinates
    return img, cv.label, {k: (float(x), float(y)) for k, (x, y) in zip(names, px)}


__all__ = ["Acquisition", "ViewState", "render_view"]
