"""Pieces of the site route's predict made faster (#23): the patch cache's table format, visit numbering, the
scored-site selection of the per-joint frame. Each is checked against the slower form it replaced."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from raoutcome.imaging.site_patches import SitePatches, patches_file
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


def test_the_patch_cache_keeps_its_patches_beside_the_table(tmp_path):
    sp = _patches()
    path = sp.save(tmp_path / "c.npz")
    with np.load(path) as z:
        assert "patches" not in z.files  # the patches live in the .npy, read in one go
    assert np.array_equal(np.load(patches_file(path)), sp.patches)
    with open(tmp_path / "v2.npz", "wb") as fh:  # the previous format: patches inside, table as string columns
        np.savez(fh, patches=sp.patches, **{f"col_{c}": sp.table[c].to_numpy(str) for c in sp.table},
                 meta=json.dumps({"grid": 4, "half_width": 0.08}))
    v2 = SitePatches.load(tmp_path / "v2.npz")
    assert np.array_equal(v2.patches, sp.patches)
    pd.testing.assert_frame_equal(v2.table, sp.table)
    np.save(patches_file(path), sp.patches[:-1])  # a patches file that does not match its table
    with pytest.raises(ValueError, match="5 patches"):
        SitePatches.load(path)
    patches_file(path).unlink()
    with pytest.raises(FileNotFoundError):  # the cache reader then builds the patches again
        SitePatches.load(path)


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


def test_visit_totals_number_the_visits_as_the_sorted_pairs():
    from raoutcome.evaluation.joints import visit_totals

    rng = np.random.default_rng(5)
    pairs = [("P10", "V1"), ("P2", "V0"), ("P1", "V10"), ("P1", "V2"), ("P2", "V1")]
    rows = [{"patient_id": p, "visit_id": v, "joint": f"hand_left:{s}", "kind": kind, "score": rng.uniform(0, 3),
             "sd": rng.uniform(0, 1)} for p, v in pairs for s in ("MCP2", "PIP3") for kind in ("jsn", "erosion")]
    frame = pd.DataFrame(rows).sample(frac=1.0, random_state=1).reset_index(drop=True)
    out = visit_totals(frame)
    want = sorted(pairs)  # the MultiIndex factorized with sort=True, as before
    assert list(zip(out["patient_id"], out["visit_id"])) == want
    for p, v in want:
        g = frame[(frame["patient_id"] == p) & (frame["visit_id"] == v)]
        row = out[(out["patient_id"] == p) & (out["visit_id"] == v)].iloc[0]
        assert row["jsn"] == pytest.approx(g.loc[g["kind"] == "jsn", "score"].sum())
        assert row["svdh_sd"] == pytest.approx(np.sqrt((g["sd"] ** 2).sum()))


def test_joints_frame_columns_and_order_as_built_column_by_column():
    from raoutcome.anatomy import joint_name, sites_for

    table = _patches().table
    n = len(table)
    rng = np.random.default_rng(2)
    probs = {"jsn": np.full((n, 11), np.nan, np.float32), "erosion": np.full((n, 11), np.nan, np.float32)}
    probs["jsn"][:, :5] = rng.dirichlet(np.ones(5), n)
    probs["erosion"][:, :6] = rng.dirichlet(np.ones(6), n)
    mean = {k: rng.uniform(0, 4, n) for k in probs}
    sd = {k: rng.uniform(0, 1, n) for k in probs}
    out = joints_frame(table, probs, mean, sd)
    parts = []  # the earlier construction, one column at a time
    for kind in ("jsn", "erosion"):
        names = {joint_name(view, s) for view in pd.unique(table["view"]) for s in sites_for(view, kind)}
        scored = table["joint"].isin(names).to_numpy()
        frame = table.loc[scored, ["patient_id", "visit_id", "joint"]].reset_index(drop=True)
        frame.insert(3, "kind", kind)
        frame["score"], frame["sd"] = mean[kind][scored], sd[kind][scored]
        for k in range(11):
            frame[f"p{k}"] = probs[kind][scored][:, k]
        parts.append(frame)
    old = pd.concat(parts, ignore_index=True)
    old = old.drop(columns=[c for c in old.columns if c.startswith("p") and c[1:].isdigit() and old[c].isna().all()])
    pd.testing.assert_frame_equal(out, old)
    assert list(out.columns)[-1] == "p5"
