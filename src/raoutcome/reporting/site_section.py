"""The report's blocks for a site-route attribution folder (:mod:`raoutcome.workflows.site_attribution`).

Reads ``site_summary.csv`` (per joint and head: patches pooled, share of the attribution at the joint centre) and
the joint-atlas figures ``atlas/site_atlas_<head>.png``; computes nothing beyond a mean over the two sides.
"""
from __future__ import annotations

__all__ = ["site_attribution_blocks"]

import json
from pathlib import Path

import pandas as pd

from raoutcome.reporting.html import Figure, Table, Text


def site_attribution_blocks(folder: Path) -> list:
    """Table (per site and head: the centre density, averaged over the views of both sides) and atlas figures."""
    blocks: list = []
    path = folder / "site_summary.csv"
    if path.exists():
        s = pd.read_csv(path)
        if len(s):
            s["body_site"] = s["view"].str.replace("_left", "").str.replace("_right", "") + ":" + s["site"]
            t = s.groupby(["body_site", "head"])["centre_density"].mean().unstack("head").reset_index()
            blocks.append(Table(t.rename(columns={"body_site": "site"}), digits=2, caption=(
                "Per joint site and score: attribution density at the joint centre (the disc of a quarter patch "
                "around the posed joint) relative to the whole patch, pooled over patients, visits and both sides. "
                "Above 1: the score is driven by the joint itself more than by its surroundings.")))
    for png in sorted((folder / "atlas").glob("site_atlas_*.png")) if (folder / "atlas").is_dir() else []:
        head = png.stem.replace("site_atlas_", "")
        blocks.append(Figure(png, caption=f"Joint atlas of the {head} score: each panel is one joint's mean "
                                          "attribution map over its posed patches (brighter = more influence).",
                             width="100%"))
    meta_path = folder / "attribution.json"
    if meta_path.exists():
        meta = json.loads(meta_path.read_text())
        blocks.append(Text(f"Method: {str(meta.get('method', '?')).replace('_', ' ')}; {meta.get('joints', '?')} "
                           f"joints, at most {meta.get('max_per_joint', '?')} patches each; each patient attributed "
                           "by the cross-fitting model that never saw them.", "note"))
    return blocks
