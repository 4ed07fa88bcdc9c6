"""The ``joint`` dimension of Predictions: per-site class probabilities, expected score and SD.

A site-level model (:mod:`raoutcome.models.site_model`) predicts every scored joint of every visit. In a
Predictions dataset (:mod:`raoutcome.predictions`) these live beside the visit scores:

* ``joint_score`` (``patient_id`` x ``visit_id`` x ``joint`` x ``kind``): the expected score ``sum_k k p_k``;
* ``joint_sd`` (same): its SD ``sqrt(sum_k (k - E)^2 p_k)``;
* ``joint_prob`` (... x ``grade``): the class probabilities, NaN beyond the kind's maximum;

with coordinates ``joint`` (``hand_left:MCP2``, as in ``joints.csv``), ``kind`` (``jsn``, ``erosion``) and
``grade`` (0..10). NaN where a joint is not scored for a kind or was not imaged. The visit subscores ``jsn``,
``erosion`` and the total ``svdh`` are the sums of ``joint_score`` with ``jsn_sd``, ``erosion_sd`` and
``svdh_sd`` (:func:`raoutcome.evaluation.joints.visit_totals`).

:func:`joints_table` turns the dimension back into the manifest's ``joints`` format (``patient_id, visit_id,
joint, kind, score``) plus ``sd`` and ``p0 .. pK``; :func:`write_joints_csv` writes it, and it loads back as a
cohort's ``joints`` table (the extra columns are carried along). No torch here.
"""
from __future__ import annotations

__all__ = ["JOINT_KINDS", "add_joints", "has_joints", "joints_table", "write_joints_csv"]

from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from raoutcome.io_utils import atomic_write
from raoutcome.outcomes import site_outcome

JOINT_KINDS: tuple[str, ...] = ("jsn", "erosion")
_KEYS = ["patient_id", "visit_id"]


def _prob_cols(frame: pd.DataFrame) -> list[str]:
    return sorted((c for c in frame.columns if c.startswith("p") and c[1:].isdigit()), key=lambda c: int(c[1:]))


def add_joints(ds: xr.Dataset, joints: pd.DataFrame, totals: pd.DataFrame | None = None) -> xr.Dataset:
    """``ds`` with the ``joint`` dimension of per-joint predictions ``joints`` (``patient_id, visit_id, joint,
    kind, score, sd, p0 .. pK``; visits absent from ``ds`` are dropped) and, from ``totals`` (as from
    :func:`raoutcome.evaluation.joints.visit_totals`), ``jsn_sd``, ``erosion_sd`` and ``svdh_sd``."""
    pids, vids = ds["patient_id"].values.astype(str), ds["visit_id"].values.astype(str)
    joint = joints["joint"].astype(str).to_numpy()  # columns as arrays: no copy of the whole table
    names = np.array(sorted(pd.unique(joint)))
    pcols = _prob_cols(joints)
    pi = pd.Index(pids).get_indexer(joints["patient_id"].astype(str))
    vi = pd.Index(vids).get_indexer(joints["visit_id"].astype(str))
    ji = pd.Index(names).get_indexer(joint)
    ki = pd.Index(JOINT_KINDS).get_indexer(joints["kind"].astype(str))
    ok = (pi >= 0) & (vi >= 0) & (ki >= 0)
    shape = (len(pids), len(vids), len(names), len(JOINT_KINDS))
    score = np.full(shape, np.nan, np.float32)
    sd = np.full(shape, np.nan, np.float32)
    prob = np.full(shape + (len(pcols),), np.nan, np.float32)
    at = (pi[ok], vi[ok], ji[ok], ki[ok])
    score[at] = joints["score"].to_numpy(np.float32)[ok]
    if "sd" in joints:
        sd[at] = joints["sd"].to_numpy(np.float32)[ok]
    if pcols:
        prob[at] = joints[pcols].to_numpy(np.float32)[ok]
    dims = ("patient_id", "visit_id", "joint", "kind")
    new = {"joint_score": (dims, score), "joint_sd": (dims, sd), "joint_prob": (dims + ("grade",), prob)}
    if totals is not None:
        tp = pd.Index(pids).get_indexer(totals["patient_id"].astype(str))
        tv = pd.Index(vids).get_indexer(totals["visit_id"].astype(str))
        keep = (tp >= 0) & (tv >= 0)
        for name in (f"{o}_sd" for o in site_outcome().outputs if f"{o}_sd" in totals):
            grid = np.full((len(pids), len(vids)), np.nan)
            grid[tp[keep], tv[keep]] = totals[name].to_numpy(float)[keep]
            new[name] = (("patient_id", "visit_id"), grid)
    # one assign (one merge) rather than one per variable
    return ds.assign_coords(joint=names, kind=list(JOINT_KINDS), grade=np.arange(len(pcols))).assign(new)


def has_joints(ds: xr.Dataset) -> bool:
    """Whether ``ds`` holds per-joint predictions."""
    return "joint_score" in ds


def joints_table(ds: xr.Dataset) -> pd.DataFrame:
    """The ``joint`` dimension as rows ``patient_id, visit_id, joint, kind, score, sd, p0 .. pK`` (rows without a
    score dropped; probability columns beyond a kind's maximum NaN)."""
    if not has_joints(ds):
        from raoutcome.errors import InputError

        raise InputError("these predictions hold no per-joint scores (a site-level model writes them)")
    frame = ds[["joint_score", "joint_sd"]].to_dataframe().reset_index()
    prob = ds["joint_prob"].values.reshape(-1, ds.sizes["grade"])
    frame = frame.rename(columns={"joint_score": "score", "joint_sd": "sd"})
    cols = [f"p{k}" for k in range(ds.sizes["grade"])]
    frame = pd.concat([frame[_KEYS + ["joint", "kind", "score", "sd"]], pd.DataFrame(prob, columns=cols)], axis=1)
    frame = frame[frame["score"].notna()].reset_index(drop=True)
    top = frame[cols].notna().to_numpy()
    used = top.any(0)
    return frame[_KEYS + ["joint", "kind", "score", "sd"] + [c for c, u in zip(cols, used) if u]]


def write_joints_csv(table: pd.DataFrame, path: str | Path) -> Path:
    """Write a per-joint table atomically as CSV (``score`` and ``sd`` to 4 decimals, probabilities to 5)."""
    path = Path(path)
    out = table.copy()
    out["score"] = out["score"].round(4)
    if "sd" in out:
        out["sd"] = out["sd"].round(4)
    for c in _prob_cols(out):
        out[c] = out[c].round(5)
    with atomic_write(path) as fh:
        out.to_csv(fh, index=False)
    return path
