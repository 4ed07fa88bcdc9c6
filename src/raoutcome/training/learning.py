"""Did a model learn? The stall rule shared by every route.

A fold that does not learn must not pass silently (issue #23: a whole-image fold's validation loss went
4.00 -> 3.92 in 14 epochs and stayed there). A model is *stalled* when its validation loss has not fallen by
at least ``tolerance`` (relative) from its start by epoch ``epoch``:

    stalled  <=>  (start - min(val[1..epoch])) / |start| < tolerance

``start`` is the loss before training where a route measures it (site route), else the first epoch's. The
runs record ``stalled`` per model and print a capitalised warning naming the model.

A stalled model is not kept (:func:`fit_until_learned`): the plateau is a property of the draw (initial
weights, batch order, augmentation), not of the data, so the model is trained again from a new seed
(:func:`restart_seed`), up to ``restarts`` times; the last attempt runs its full length (it may still leave
the plateau late). Every attempt (seed, how far its loss moved, whether it stalled) is recorded.
"""
from __future__ import annotations

__all__ = ["RESTART_STRIDE", "fit_until_learned", "restart_seed", "stall_check"]

import math
from typing import Callable, Sequence, TypeVar

M = TypeVar("M")
#: seed offset between restarts: a prime far from the fold stride (1009) and small ensemble indices, so a
#: restart never reuses another fold's or member's seed
RESTART_STRIDE = 7919


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


def restart_seed(seed: int, attempt: int) -> int:
    """The seed of attempt ``attempt`` (0: the model's own ``seed``; k: its k-th restart)."""
    return int(seed) + RESTART_STRIDE * int(attempt)


def fit_until_learned(fit: Callable[[int, bool], tuple[M, dict]], seed: int, restarts: int, name: str = "model",
                      log: Callable[[str], None] | None = None) -> tuple[M, dict]:
    """Train with ``fit(seed, last)`` and, while the attempt's record says ``stalled``, again from
    :func:`restart_seed` (at most ``restarts`` more times; ``last`` tells ``fit`` that this attempt is the
    last, so it should not stop early at the stall check). Returns the first model that learned, else the
    last attempt's, with its record extended by ``restarts`` (how many were needed) and ``attempts`` (per
    attempt: ``seed``, ``stalled``, ``moved``, ``val_loss_start``, ``epochs``)."""
    attempts = []
    for attempt in range(int(restarts) + 1):
        s = restart_seed(seed, attempt)
        last = attempt == int(restarts)
        model, record = fit(s, last)
        attempts.append({"seed": s, "stalled": bool(record.get("stalled")), "moved": record.get("moved"),
                         "val_loss_start": record.get("val_loss_start"), "epochs": len(record.get("history", []))})
        if not record.get("stalled"):
            break
        if log is not None:
            log(f"WARNING {name.upper()} STALLED WITH SEED {s}: "
                + (f"RESTARTING WITH SEED {restart_seed(seed, attempt + 1)} "
                   f"(restart {attempt + 1} of {restarts})" if not last else "no restart left: keeping it"))
    return model, {**record, "restarts": len(attempts) - 1, "attempts": attempts}
