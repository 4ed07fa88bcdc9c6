"""Pieces of the site route's predict made faster (#23): the patch cache's table format, visit numbering, the
scored-site selection of the per-joint frame. Each is checked against the slower form it replaced."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd

from raoutcome.imaging.site_patches import SitePatches
from raoutcome.training.site_train import _visit_codes, joints_frame


def _patches(n: int = 6) -> SitePatches:
    table = pd.DataFrame({"patient_id": ["P1", "P1", "P2", "P2", "P10", "P10"][:n],
                          "visit_id": ["V0", "V1", "V0", "V0", "V1", "V0"][:n],
                          "view": ["hand_left", "hand_left", "hand_right", "foot_left", "hand_left", "hand_left"][:n],
                          "site": ["MCP2", "PIP3", "MCP2", "MTP1", "CMC3", "MCP2"][:n]})
    table["joint"] = table["view"] + ":" + table["site"]
    table["path"] = "img/" + table["patient_id"] + "_" + table["visit_id"] + ".png"
    rng = np.random.default_rng(0)
    return SitePatches(table, rng.normal(size=(n, 4, 4)).astype(np.float32), 4, 0.08)


def test_the_patch_cache_round_trips_and_still_reads_its_json_format(tmp_path):
    sp = _patches()
    back = SitePatches.load(sp.save(tmp_path / "c.npz"))
    pd.testing.assert_frame_equal(back.table, sp.table)
    assert isinstance(back.table["patient_id"].iloc[0], str) and back.table["patient_id"].dtype == object
    assert np.array_equal(back.patches, sp.patches) and (back.grid, back.half_width) == (4, 0.08)
    with open(tmp_path / "old.npz", "wb") as fh:  # the earlier format: the table as JSON
        np.savez(fh, patches=sp.patches, table=sp.table.to_json(orient="split"),
                 meta=json.dumps({"grid": 4, "half_width": 0.08}))
    old = SitePatches.load(tmp_path / "old.npz")
    pd.testing.assert_frame_equal(old.table, sp.table)


def test_visit_codes_are_the_factorized_pairs():
    keys = _patches().table[["patient_id", "visit_id"]]
    expected, _ = pd.factorize(pd.MultiIndex.from_frame(keys))
    assert np.array_equal(_visit_codes(keys), expected)
    assert _visit_codes(keys).tolist() == [0, 1, 2, 2, 3, 4]  # P1/V0, P1/V1, P2/V0 (twice), P10/V1, P10/V0


def test_joints_frame_keeps_the_sites_each_kind_scores():
    from raoutcome.anatomy import sites_for

    table = _patches().table
    n = len(table)
    probs = {k: np.full((n, 11), 0.0, np.float32) for k in ("jsn", "erosion")}
    for p in probs.values():
        p[:, 0] = 1.0
    mean = {k: np.arange(n, dtype=float) for k in ("jsn", "erosion")}
    out = joints_frame(table, probs, mean, {k: np.zeros(n) for k in ("jsn", "erosion")})
    for kind in ("jsn", "erosion"):
        want = [j for j, v, s in zip(table["joint"], table["view"], table["site"]) if s in sites_for(v, kind)]
        got = out[out["kind"] == kind]
        assert got["joint"].tolist() == want
        assert got["score"].tolist() == [float(i) for i, j in enumerate(table["joint"]) if j in set(want)]
    assert len(out) < 2 * n  # some site is not scored for some kind (the CMC3 for JSN, the PIP3 for erosion)
