"""Route a lateral-spine (AS) cohort away from the outcome-model commands, with the command that reads it.

``raoutcome train``, ``predict`` and ``attribute`` build and explain the whole-image / site outcome model of
hands and feet (SvdH). A cohort whose films are all lateral spine views (``spine_cervical``, ``spine_lumbar``)
is read corner by corner by the mSASSS corner reader instead (``raoutcome msasss fit | read | study``):
:func:`refuse_spine_cohort` raises an :class:`~raoutcome.errors.InputError` (CLI exit 2) that names it, rather
than letting the outcome model fail later on views it has no anatomy for.
"""
from __future__ import annotations

__all__ = ["refuse_spine_cohort"]

from raoutcome.errors import InputError
from raoutcome.msasss import SPINE_VIEWS

_NEXT = {
    "train": "train a corner reader with `raoutcome msasss fit --cohort {c} --out corner_reader.pt`",
    "predict": "read it with `raoutcome msasss read --reader corner_reader.pt --cohort {c} --out corners.csv "
               "--totals-out totals.csv`",
    "attribute": "run `raoutcome msasss study --reader corner_reader.pt --cohort {c} --out study`, whose report "
                 "holds the corner reader's attribution atlas",
}


def refuse_spine_cohort(cohort, command: str) -> None:
    """Raise :class:`InputError` when every image of ``cohort`` is a lateral spine view (``command``: the
    refused CLI command, ``train`` / ``predict`` / ``attribute``); do nothing otherwise."""
    views = set(cohort.images["view"].astype(str)) if len(cohort.images) else set()
    if not views or not views <= set(SPINE_VIEWS):
        return
    hint = _NEXT.get(command, _NEXT["train"]).format(c=cohort.root)
    raise InputError(f"{cohort.root}: an ankylosing spondylitis cohort (views {', '.join(sorted(views))}): "
                     f"`raoutcome {command}` builds the hand and foot outcome model and has no spine anatomy. "
                     f"mSASSS is read corner by corner: {hint} "
                     "(`raoutcome msasss --help`; `raoutcome demo --cohort spine` runs the AS study end to end).")
