"""Did a model learn? The stall rule shared by every route.

A fold that does not learn must not pass silently (issue #23: a whole-image fold's validation loss went
4.00 -> 3.92 in 14 epochs and stayed there). A model is *stalled* when its validation loss has not fallen by
at least ``tolerance`` (relative) from its start by epoch ``epoch``:

    stalled  <=>  (start - min(val[1..epoch])) / |start| < tolerance

``start`` is the loss before training where a route measures it (site route), else the first epoch's. The
runs record ``stalled`` per model and print a capitalised warning naming the model.
"""
from __future__ import annotations

__all__ = ["stall_check"]

import math
from typing import Sequence


def stall_check(val: Sequence[float], epoch: int, tolerance: float, start: float | None = None) -> dict:
    """``{"stalled": bool | None, "moved": relative drop by ``epoch``, "start", "epoch"}`` of the validation losses
    ``val`` (one per epoch from the first). ``stalled`` is None when fewer than ``epoch`` epochs ran or no loss is
    finite (nothing to judge)."""
    vals = [float(v) for v in val[:epoch]]
    ref = float(start) if start is not None and math.isfinite(start) else (vals[0] if vals else float("nan"))
    if len(vals) < epoch or not math.isfinite(ref) or not any(math.isfinite(v) for v in vals):
        return {"stalled": None, "moved": float("nan"), "start": ref, "epoch": int(epoch)}
    moved = (ref - min(v for v in vals if math.isfinite(v))) / max(abs(ref), 1e-12)
    return {"stalled": bool(moved < tolerance), "moved": float(moved), "start": ref, "epoch": int(epoch)}
