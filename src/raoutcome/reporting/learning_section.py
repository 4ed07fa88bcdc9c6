"""The report's "did every model learn?" blocks, read from a training run's ``metrics.json``.

Both routes record per model whether its validation loss left its start by the stall epoch
(:mod:`raoutcome.training.learning`); the site route also records restarts from new seeds and each fold's
out-of-fold SvdH r. A model that did not learn is named in a warning, never left to a table.
"""
from __future__ import annotations

__all__ = ["learning_blocks"]

import json
from pathlib import Path

import pandas as pd

from raoutcome.reporting.html import Table, Text


def learning_blocks(run_dir: Path) -> list:
    """A table of the run's models (fold, seed, restarts, validation loss start -> best, stalled, SvdH r) and a
    warning naming any that did not learn; [] without a readable ``metrics.json``."""
    try:
        metrics = json.loads((Path(run_dir) / "metrics.json").read_text())
    except (OSError, ValueError):
        return []
    rows = metrics.get("folds") or metrics.get("members") or []
    cols = {"fold": "fold", "member": "model", "seed": "seed", "restarts": "restarts", "val_loss_start": "val. loss start",
            "best_val_loss": "val. loss best", "svdh_pearson_r": "out-of-fold SvdH r", "stalled": "stalled"}
    frame = pd.DataFrame([{label: r[key] for key, label in cols.items() if key in r} for r in rows])
    blocks: list = []
    stalled = [str(r.get("fold", r.get("member"))) for r in rows if r.get("stalled")]
    if stalled:
        blocks.append(Text(f"MODEL(S) {', '.join(stalled)} DID NOT LEARN: their validation loss had not left its "
                           "start by the stall epoch, even after restarts from new seeds. Their predictions are "
                           "not to be trusted.", "warning"))
    if len(frame):
        restarted = [str(r.get("fold")) for r in rows if r.get("restarts")]
        note = (f" Fold(s) {', '.join(restarted)} stalled at first and were trained again from a new seed."
                if restarted else "")
        blocks.append(Table(frame, digits=3, caption="Did every model learn? Validation loss before training and at "
                                                     "its best epoch, per model." + note))
    return blocks
