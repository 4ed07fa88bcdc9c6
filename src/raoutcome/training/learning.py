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
the plateau late). Every attempt (seed, how far its loss moved, whether it stalled) is recorded. Both routes
use this one loop: the whole-image route (:mod:`raoutcome.training.run`) persists each abandoned attempt
(``on_abandon``) and resumes after them (``abandoned``), with its own seed stride.
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


def restart_seed(seed: int, attempt: int, stride: int = RESTART_STRIDE) -> int:
    """The seed of attempt ``attempt`` (0: the model's own ``seed``; k: its k-th restart), ``seed + stride k``.
    A route whose own seeds are ``RESTART_STRIDE`` apart (the image route's ensemble members) passes another
    ``stride`` so a restart never takes another model's seed."""
    return int(seed) + int(stride) * int(attempt)


def fit_until_learned(fit: Callable[[int, bool], tuple[M, dict]], seed: int, restarts: int, name: str = "model",
                      log: Callable[[str], None] | None = None, *, stride: int = RESTART_STRIDE,
                      abandoned: Sequence[dict] = (),
                      on_abandon: Callable[[dict, dict], None] | None = None) -> tuple[M, dict]:
    """Train with ``fit(seed, last)`` and, while the attempt's record says ``stalled``, again from
    :func:`restart_seed` (at most ``restarts`` more times; ``last`` tells ``fit`` that this attempt is the
    last, so it should not stop early at the stall check). Returns the first model that learned, else the
    last attempt's, with its record extended by ``restarts`` (how many were needed) and ``attempts`` (per
    attempt: ``seed``, ``stalled``, ``moved``, ``val_loss_start``, ``epochs``).

    Resume (a run killed mid-restart): ``abandoned`` are the attempts an earlier session abandoned (as it
    recorded them); training goes on with attempt ``len(abandoned)`` and they head ``attempts``.
    ``on_abandon(attempt, record)`` is called with each newly abandoned attempt's entry and ``fit``'s record
    of it, before the next attempt starts (to persist it for such a resume)."""
    attempts = list(abandoned)
    first = len(attempts)
    for attempt in range(first, max(int(restarts), first) + 1):
        s = restart_seed(seed, attempt, stride)
        last = attempt >= int(restarts)
        model, record = fit(s, last)
        moved = record.get("moved")
        attempts.append({"seed": s, "stalled": bool(record.get("stalled")), "moved": moved,
                         "val_loss_start": record.get("val_loss_start"), "epochs": len(record.get("history", []))})
        if not record.get("stalled"):
            break
        if on_abandon is not None and not last:
            on_abandon(attempts[-1], record)
        if log is not None:
            how = (f" (validation loss moved {100 * moved:.1f} % in {attempts[-1]['epochs']} epochs)"
                   if isinstance(moved, (int, float)) and math.isfinite(moved) else "")
            log(f"WARNING {name.upper()} STALLED WITH SEED {s}{how}: "
                + (f"RESTARTING WITH SEED {restart_seed(seed, attempt + 1, stride)} "
                   f"(restart {attempt + 1} of {restarts})" if not last else "no restart left: keeping it"))
    return model, {**record, "restarts": len(attempts) - 1, "attempts": attempts}
