"""Landmark localisation metrics and grouping images by content for honest splits.

- :func:`radial_errors`: the Euclidean (radial) error of each detected landmark against its annotation,
  in pixels and divided by a per-image reference length (e.g. the hand's width); the standard measures
  of the ISBI 2015 cephalometric / hand landmark challenges (Wang et al. 2016; Payer et al. 2019):
  mean radial error (MRE) and the successful detection rate, the share of landmarks within a radius.
- :func:`landmark_table`: per landmark (and overall) MRE in pixels and as a share, and the share within
  each radius.
- :func:`content_groups`: images that show the same radiograph, byte for byte, mirrored, or mirrored and
  re-cropped, get one group, so a hand and its copy or mirror never sit on both sides of a split.
  Two images are the same content when the normalised cross-correlation of their grey levels (one
  of them possibly mirrored, shifted horizontally by up to ``max_shift`` of the width) exceeds ``threshold``.

References
----------
Wang CW et al. A benchmark for comparison of dental radiography analysis algorithms. Med Image Anal
2016;31:63-76.
"""
from __future__ import annotations

__all__ = ["radial_errors", "landmark_table", "content_groups", "hand_width"]

import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd


def radial_errors(truth: pd.DataFrame, detected: pd.DataFrame, reference: Mapping[str, float] | None = None,
                  key: str = "path") -> pd.DataFrame:
    """One row per annotated landmark found in ``detected``: ``key, landmark, error_px`` and, with
    ``reference`` (``key -> length in px``), ``error_rel``. Both tables: ``key, landmark, x, y``."""
    m = truth.merge(detected, on=[key, "landmark"], suffixes=("_true", "_det"), how="inner")
    out = m[[key, "landmark"]].copy()
    out["error_px"] = np.hypot(m["x_det"] - m["x_true"], m["y_det"] - m["y_true"])
    if reference is not None:
        out["error_rel"] = out["error_px"] / m[key].map(reference).astype(float)
    return out


def landmark_table(errors: pd.DataFrame, radii_px: Sequence[float] = (10.0,),
                   radii_rel: Sequence[float] = ()) -> pd.DataFrame:
    """Per landmark and ``all``: n, MRE (px, and relative if present), share within each radius."""
    def summary(e: pd.DataFrame) -> dict:
        row = {"n": len(e), "mre_px": e["error_px"].mean(), "median_px": e["error_px"].median()}
        if "error_rel" in e:
            row["mre_rel"] = e["error_rel"].mean()
        for r in radii_px:
            row[f"within_{r:g}px"] = float((e["error_px"] <= r).mean())
        for r in radii_rel:
            row[f"within_{r:g}rel"] = float((e["error_rel"] <= r).mean())
        return row

    rows = {name: summary(g) for name, g in errors.groupby("landmark", sort=False)}
    rows["all"] = summary(errors)
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("landmark").reset_index()


def hand_width(points: Mapping[str, tuple[float, float]]) -> float:
    """Hand width in px: the distance from the thumb MCP (``MP``) to the fifth MCP, else the x-extent."""
    if "MP" in points and "MCP5" in points:
        (ax, ay), (bx, by) = points["MP"], points["MCP5"]
        return float(np.hypot(ax - bx, ay - by))
    xs = [p[0] for p in points.values()]
    return float(max(xs) - min(xs))


def _grey(path: Path, width: int = 96) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        g = im.convert("L")
        h = max(1, round(g.height * width / g.width))
        return np.asarray(g.resize((width, h), Image.BILINEAR), dtype=np.float64)


def _ncc(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    d = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / d) if d > 0 else 0.0


def _same(a: np.ndarray, b: np.ndarray, max_shift: int, threshold: float) -> bool:
    if a.shape != b.shape:
        return False
    w = a.shape[1]
    for cand in (b, b[:, ::-1]):
        for s in range(-max_shift, max_shift + 1):
            x, y = (a[:, s:], cand[:, :w - s]) if s >= 0 else (a[:, :w + s], cand[:, -s:])
            if x.shape[1] >= w // 2 and _ncc(x, y) > threshold:
                return True
    return False


def content_groups(paths: Sequence[str | Path], threshold: float = 0.97, max_shift: float = 0.25) -> dict[str, int]:
    """``{path: group}``: byte-identical files, mirrors and mirrored re-crops share a group (numbered
    from 0 in order of first appearance)."""
    paths = [Path(p) for p in paths]
    digest = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}
    greys: dict[Path, np.ndarray] = {}
    group: dict[str, int] = {}
    reps: list[Path] = []
    for p in paths:
        found = next((group[str(r)] for r in reps if digest[r] == digest[p]), None)
        if found is None:
            g = greys.setdefault(p, _grey(p))
            for r in reps:
                gr = greys.setdefault(r, _grey(r))
                if _same(g, gr, int(max_shift * g.shape[1]), threshold):
                    found = group[str(r)]
                    break
        if found is None:
            found = len(reps)
            reps.append(p)
        group[str(p)] = found
    return group
