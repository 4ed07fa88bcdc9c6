"""Joint anomaly check: does the label-free joint anomaly score see damage in patients it was not fitted on?

:mod:`raoutcome.imaging.joint_anomaly` scores how unusual each joint's shape is next to the same
joint in reference radiographs. It uses no human score, only landmarks. This script validates it
with patient-grouped K-fold cross-fitting (:func:`raoutcome.cohort.splits.kfold`, stratified on the
event): each fold's PCA is fitted on the other folds' patients, and only the held-out patients are
scored (:func:`raoutcome.imaging.joint_anomaly.cross_fitted_joint_anomaly`). Reported on the visit-level score (mean over the views):

* Pearson r with log(1 + SvdH total), log(1 + erosion), log(1 + JSN) and, on a simulated cohort,
  the simulator's truth: damage, bone density (osteopenia), carpal collapse, swelling;
* Harrell's C (lifelines ``concordance_index``) of the baseline score for the first event in
  ``events`` (``--event``), beside the simulator's ceilings in ``truth/oracle.json`` when present.

With the SvdH columns of ``visits`` (a real cohort's human score), the r's are its agreement with
the Sharp score; with ``truth/`` (a simulated cohort) they are against the true damage.

Writes ``joint_anomaly_check.json``, ``joint_anomaly_images.csv`` (held-out score per image and
landmark) and ``joint_anomaly_vs_svdh.png`` into ``--out``. By default it simulates the
learning-check cohort (``cohorts/demo.toml``, as ``analyses/learning_check.py`` does) or reuses
``--cohort``. About a minute on 2 cores for the 180-patient demo cohort.

    .venv/bin/python analyses/joint_anomaly_check.py --out joint_anomaly [--cohort DIR] [--folds 3]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))


def correlations(visits: pd.DataFrame) -> dict:
    """Pearson r (and n) of the visit score with every reference column present."""
    cols = {"log_svdh": ("svdh_total", True), "log_erosion": ("svdh_erosion", True), "log_jsn": ("svdh_jsn", True),
            "true_damage": ("damage", False), "osteopenia": ("osteopenia", False),
            "carpal_collapse": ("carpal_collapse", False), "swelling": ("swelling", False)}
    out = {}
    for name, (col, log) in cols.items():
        if col not in visits:
            continue
        d = visits[["anomaly", col]].dropna()
        if len(d) < 3:
            continue
        y = np.log1p(d[col].to_numpy(float)) if log else d[col].to_numpy(float)
        out[name] = {"r": float(np.corrcoef(d["anomaly"], y)[0, 1]), "n": int(len(d))}
    return out


def baseline_c_index(visits: pd.DataFrame, cohort, event: str) -> dict:
    from lifelines.utils import concordance_index

    first = visits.sort_values("time_years").groupby("patient_id").head(1).set_index("patient_id")
    ev = cohort.events[cohort.events["event"] == event].set_index("patient_id").reindex(first.index).dropna()
    if ev.empty or not ev["observed"].any():
        return {}
    score = first.loc[ev.index, "anomaly"]
    return {"c_index_baseline": float(concordance_index(ev["time_years"], -score, ev["observed"])),
            "n_patients": int(len(ev)), "n_events": int(ev["observed"].sum())}


def figure(visits: pd.DataFrame, path: Path) -> Path | None:
    if "svdh_total" not in visits or visits["svdh_total"].notna().sum() < 3:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from raoutcome.reporting.cohort_figures import save_figure

    d = visits.dropna(subset=["svdh_total", "anomaly"])
    fig, ax = plt.subplots(figsize=(5.2, 4.2))
    colour = d["osteopenia"] if "osteopenia" in d else None
    sc = ax.scatter(np.log1p(d["svdh_total"]), d["anomaly"], c=colour, s=10, cmap="viridis", alpha=0.8)
    if colour is not None:
        fig.colorbar(sc, ax=ax, label="bone density loss (simulated osteopenia)")
    ax.set_xlabel("log(1 + SvdH total)")
    ax.set_ylabel("joint anomaly score (held out)")
    r = np.corrcoef(np.log1p(d["svdh_total"]), d["anomaly"])[0, 1]
    ax.set_title(f"Label-free joint anomaly vs the Sharp score (r = {r:.2f}, {len(d)} visits)")
    return save_figure(fig, path)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("joint_anomaly_out"))
    ap.add_argument("--cohort", type=Path, default=None, help="a cohort folder with a landmarks table")
    ap.add_argument("--sim-config", type=Path, default=REPO / "cohorts" / "demo.toml")
    ap.add_argument("--folds", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--components", type=int, default=5, help="principal components per landmark")
    ap.add_argument("--event", default="deformity")
    args = ap.parse_args(argv)

    from raoutcome.cohort import load
    from raoutcome.errors import InputError
    from raoutcome.imaging.joint_anomaly import cross_fitted_joint_anomaly, visit_anomaly
    from raoutcome.io_utils import atomic_write

    args.out.mkdir(parents=True, exist_ok=True)
    if args.cohort is None:
        from learning_check import simulate

        cohort_dir = simulate(args.sim_config, args.out / "cohort")
    else:
        cohort_dir = args.cohort
    try:
        cohort = load(cohort_dir)
        images = cross_fitted_joint_anomaly(cohort, args.folds, args.seed, args.components, args.event)
    except InputError as err:
        print(f"joint anomaly check: {err}", file=sys.stderr)
        return 2
    visits = visit_anomaly(images).merge(cohort.visits, on=["patient_id", "visit_id"], how="left")
    truth = Path(cohort_dir) / "truth" / "visits.csv"
    if truth.exists():
        t = pd.read_csv(truth, dtype={"patient_id": str, "visit_id": str})
        keep = ["patient_id", "visit_id"] + [c for c in ("damage", "osteopenia", "carpal_collapse", "swelling")
                                             if c in t]
        visits = visits.merge(t[keep], on=["patient_id", "visit_id"], how="left")
    result = {"cohort": str(cohort_dir), "folds": args.folds, "seed": args.seed, "components": args.components,
              "n_images": int(len(images)), "n_visits": int(len(visits)),
              "pearson_r": correlations(visits), "survival": baseline_c_index(visits, cohort, args.event)}
    oracle = Path(cohort_dir) / "truth" / "oracle.json"
    if oracle.exists():
        dz = json.loads(oracle.read_text()).get("deformity", {})
        result["ceilings"] = {k: dz[k] for k in ("c_index_oracle", "c_index_svdh", "c_index_haq_mean") if k in dz}
    with atomic_write(args.out / "joint_anomaly_images.csv") as fh:
        images.to_csv(fh, index=False)
    fig = figure(visits, args.out / "joint_anomaly_vs_svdh.png")
    with atomic_write(args.out / "joint_anomaly_check.json") as fh:
        json.dump(result, fh, indent=2)
    print(f"joint anomaly check on {cohort_dir}: {len(images)} images, held-out scores from {args.folds} folds")
    for name, v in result["pearson_r"].items():
        print(f"  r with {name:<16} {v['r']:+.3f}  ({v['n']} visits)")
    if result["survival"]:
        s = result["survival"]
        print(f"  C of the baseline score for {args.event}: {s['c_index_baseline']:.3f} "
              f"({s['n_patients']} patients, {s['n_events']} events)")
    for k, v in result.get("ceilings", {}).items():
        print(f"  ceiling {k}: {v:.3f}")
    if fig:
        print(f"  figure: {fig}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
