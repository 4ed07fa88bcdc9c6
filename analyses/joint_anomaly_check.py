"""Joint anomaly check: does the label-free joint anomaly score see damage in patients it was not fitted on?

:mod:`raoutcome.imaging.joint_anomaly` scores how unusual each joint's shape is next to the same
joint in reference radiographs. It uses no human score, only landmarks. This script validates it
with patient-grouped K-fold cross-fitting (:func:`raoutcome.cohort.splits.kfold`, stratified on the
event): each fold's PCA is fitted on the other folds' patients, and only the held-out patients are
scored (:func:`raoutcome.imaging.joint_anomaly.cross_fitted_joint_anomaly`). Reported on the
visit-level score (mean over the views):

* Pearson r with log(1 + SvdH total), log(1 + erosion), log(1 + JSN) and, on a simulated cohort,
  the simulator's truth: damage, bone density (osteopenia), carpal collapse, swelling;
* Harrell's C (lifelines ``concordance_index``) of the first-visit score for the event ``--event``
  (default deformity), beside the simulator's ceilings in ``truth/oracle.json`` when present.

With the SvdH columns of ``visits`` (a real cohort's human score), the r's are its agreement with
the Sharp score; with ``truth/`` (a simulated cohort) they are against the true damage.

Writes ``joint_anomaly_check.json`` (the summary, the cohort and its ceilings) and what
:func:`raoutcome.workflows.anomaly.write_evaluation` writes (``visit_scores.csv``, ``summary.json``,
``image_scores.csv`` with every landmark's held-out score, ``anomaly_vs_svdh.png``) into ``--out``. By default it simulates the
learning-check cohort (``cohorts/demo.toml``, as ``analyses/learning_check.py`` does) or reuses
``--cohort``. On 2 cores: about 15 s for the 180-patient demo cohort, plus a few minutes to simulate it.

    .venv/bin/python analyses/joint_anomaly_check.py --out joint_anomaly [--cohort DIR] [--folds 3]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))


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
    from raoutcome.io_utils import atomic_write
    from raoutcome.workflows.anomaly import evaluate_joint_anomaly, write_evaluation

    args.out.mkdir(parents=True, exist_ok=True)
    if args.cohort is None:
        from learning_check import simulate

        cohort_dir = simulate(args.sim_config, args.out / "cohort")
    else:
        cohort_dir = args.cohort
    try:
        cohort = load(cohort_dir)
        evaluation = evaluate_joint_anomaly(cohort, args.folds, args.seed, args.components, args.event)
    except InputError as err:
        print(f"joint anomaly check: {err}", file=sys.stderr)
        return 2
    paths = write_evaluation(evaluation, args.out, image_scores=True)
    result = {"cohort": str(cohort_dir), **evaluation.summary}
    oracle = Path(cohort_dir) / "truth" / "oracle.json"
    if oracle.exists():
        dz = json.loads(oracle.read_text()).get("deformity", {})
        result["ceilings"] = {k: dz[k] for k in ("c_index_oracle", "c_index_svdh", "c_index_haq_mean") if k in dz}
    with atomic_write(args.out / "joint_anomaly_check.json") as fh:
        json.dump(result, fh, indent=2)
    fig = paths.get("figure")
    images = evaluation.images
    print(f"joint anomaly check on {cohort_dir}: {len(images)} images, held-out scores from {args.folds} folds")
    for name, v in result["pearson_r"].items():
        print(f"  r with {name:<16} {v['r']:+.3f}  ({v['n']} visits)")
    if result["survival"]:
        s = result["survival"]
        print(f"  C of the first-visit score for {args.event}: {s['c_index_first_visit']:.3f} "
              f"({s['n_patients']} patients, {s['n_events']} events)")
    for k, v in result.get("ceilings", {}).items():
        print(f"  ceiling {k}: {v:.3f}")
    if fig:
        print(f"  figure: {fig}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
