"""Site check: does the site route read per-joint damage on cohorts it was not tuned on? (issue #23)

For each simulator seed: simulate the demo cohort (``cohorts/demo.toml`` with that seed, or reuse
``--work/demo_<seed>``), cross-fit the site route (``raoutcome train`` with ``[model] route = "sites"``,
``cohorts/train_sites.toml``, 3 folds) and judge its out-of-fold predictions:

* visit SvdH total, JSN and erosion: Pearson r per fold against the observed (read) totals; target r >= 0.90 in
  every fold of every seed;
* per joint: exact and within-one agreement of the most probable grade with the reading, overall and on damaged
  joints (reading >= 1), next to Hirano et al. 2019 (49-65 % exact, 71-74 % within one; real hands, other readers:
  orientation only);
* RA2-DREAM: weighted RMSE per subchallenge (overall, JSN, erosion) and the subchallenge-1 weighted absolute error
  (:func:`raoutcome.evaluation.joints.dream_subchallenges`);
* HAQ R^2 and the first-visit C-index of the outcome model on sites (informative here; the learning check judges
  them);
* severity classes of the total (RA2-DREAM bins): accuracy, class MAE and PCC of the ordinal head on the total and
  of the convolution of the per-joint distributions (seeds/002 reports accuracy 0.358, PCC 0.859 on real hands);
* whether every fold learned (``stalled``), and how many restarts from a new seed it took (``restarts``).

Settings were chosen on seed 20240601 (the demo cohort); the default seeds are three others. Writes
``site_check.json`` into ``--work`` and prints a table; exits 0 when every fold of every seed meets r >= 0.90.

    python analyses/site_check.py --work site_check_out [--seeds 20240611 20240612 20240613] [--jobs 3]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
R_TARGET = 0.90
SEEDS = (20240611, 20240612, 20240613)
HIRANO = {"exact": (0.49, 0.65), "within_1": (0.71, 0.74)}


def cli() -> list[str]:
    exe = Path(sys.executable).with_name("raoutcome")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "raoutcome.cli"]


def judge_seed(cohort_dir: Path, run_dir: Path) -> dict:
    """Per-fold and pooled figures of one seed's out-of-fold predictions."""
    from raoutcome.cohort import load
    from raoutcome.evaluation.joints import dream_subchallenges, joint_agreement, visit_totals
    from raoutcome.evaluation.regression import pearson_r
    from raoutcome.evaluation.survival_metrics import harrell_c
    from raoutcome.joint_predictions import joints_table
    from raoutcome.predictions import load_predictions, to_frame

    cohort = load(cohort_dir)
    ds = load_predictions(run_dir / "cv_predictions.nc")
    joints = joints_table(ds)
    frame = to_frame(ds)
    obs = cohort.visits.astype({"patient_id": str, "visit_id": str})
    m = frame.merge(obs[["patient_id", "visit_id", "svdh_total", "svdh_jsn", "svdh_erosion", "haq"]].rename(
        columns={"haq": "obs_haq"}), on=["patient_id", "visit_id"])
    folds = []
    for f, g in m.groupby("fold"):
        s = g.dropna(subset=["svdh_total", "svdh"])
        folds.append({"fold": int(f), "n_visits": int(len(s)),
                      "svdh_r": pearson_r(s["svdh_total"], s["svdh"]), "jsn_r": pearson_r(s["svdh_jsn"], s["jsn"]),
                      "erosion_r": pearson_r(s["svdh_erosion"], s["erosion"])})
    metrics = json.loads((run_dir / "metrics.json").read_text())
    for rec in folds:
        member = next(x for x in metrics["members"] if x["fold"] == rec["fold"])
        rec["stalled"] = bool(member["stalled"]) or bool(member.get("outcome", {}).get("stalled", False))
        rec["restarts"], rec["seed"] = int(member.get("restarts", 0)), member.get("seed")
    s = m.dropna(subset=["svdh_total", "svdh"])
    out = {"folds": folds, "svdh_r_pooled": pearson_r(s["svdh_total"], s["svdh"]),
           "agreement": joint_agreement(joints, cohort.joints),
           "dream": dream_subchallenges(joints, cohort.joints, visit_totals(joints)),
           "n_patients": int(frame["patient_id"].nunique()), "severity": metrics.get("severity", {})}
    ok = m[["haq", "obs_haq"]].dropna() if "haq" in m else m.iloc[:0]
    if len(ok) > 2:
        y, p = ok["obs_haq"].to_numpy(), ok["haq"].to_numpy()
        out["haq_r2"] = float(1 - ((y - p) ** 2).sum() / ((y - y.mean()) ** 2).sum())
    if "risk" in frame and frame["risk"].notna().any():
        base = frame.sort_values(["patient_id", "time_years"]).groupby("patient_id").head(1).set_index("patient_id")
        ev = cohort.event_table("deformity").astype({"patient_id": str}).set_index("patient_id").reindex(base.index)
        ok = ev["time_years"].notna() & base["risk"].notna()
        out["c_index_baseline"] = harrell_c(ev.loc[ok, "time_years"], ev.loc[ok, "observed"], base.loc[ok, "risk"])
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=Path("site_check_out"))
    ap.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    ap.add_argument("--config", type=Path, default=REPO / "cohorts" / "train_sites.toml")
    ap.add_argument("--sim-config", type=Path, default=REPO / "cohorts" / "demo.toml")
    ap.add_argument("--jobs", type=int, default=1, help="seeds trained side by side, one process each")
    args = ap.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    for seed in args.seeds:
        cohort = args.work / f"demo_{seed}"
        if not (cohort / "truth" / "oracle.json").exists():
            subprocess.run(cli() + ["simulate", "--config", str(args.sim_config), "--out", str(cohort), "--seed",
                                    str(seed)], check=True, env=env)
    pending = list(args.seeds)
    running: dict[int, subprocess.Popen] = {}
    while pending or running:
        while pending and len(running) < args.jobs:
            seed = pending.pop(0)
            log = open(args.work / f"train_{seed}.log", "w")
            running[seed] = subprocess.Popen(cli() + ["train", "--cohort", str(args.work / f"demo_{seed}"), "--config",
                                                      str(args.config), "--out", str(args.work / f"run_{seed}")],
                                             env=env, stdout=log, stderr=subprocess.STDOUT)
        time.sleep(5)
        for seed, proc in list(running.items()):
            if proc.poll() is not None:
                if proc.returncode:
                    raise SystemExit(f"training seed {seed} failed; see {args.work / f'train_{seed}.log'}")
                del running[seed]
    results = {str(seed): judge_seed(args.work / f"demo_{seed}", args.work / f"run_{seed}") for seed in args.seeds}
    ok = True
    print(f"{'seed':>9} {'fold':>4} {'SvdH r':>7} {'JSN r':>6} {'ero r':>6}  learned (restarts)")
    for seed, res in results.items():
        for f in res["folds"]:
            ok &= f["svdh_r"] >= R_TARGET
            print(f"{seed:>9} {f['fold']:>4} {f['svdh_r']:7.3f} {f['jsn_r']:6.3f} {f['erosion_r']:6.3f}  "
                  f"{'NO (STALLED)' if f['stalled'] else 'yes'} ({f['restarts']})")
        a, d = res["agreement"], res["dream"]
        print(f"{seed:>9} pooled SvdH r {res['svdh_r_pooled']:.3f}; exact/±1 JSN {a['jsn']['exact']:.3f}/"
              f"{a['jsn']['within_1']:.3f} (damaged {a['jsn']['exact_damaged']:.3f}/{a['jsn']['within_1_damaged']:.3f}),"
              f" erosion {a['erosion']['exact']:.3f}/{a['erosion']['within_1']:.3f} (damaged "
              f"{a['erosion']['exact_damaged']:.3f}/{a['erosion']['within_1_damaged']:.3f}); wRMSE SC1 "
              f"{d['sc1_overall']['weighted_rmse']:.3f} (wMAE {d['sc1_overall']['weighted_mae']:.3f}), SC2 "
              f"{d['sc2_jsn']['weighted_rmse']:.3f}, SC3 {d['sc3_erosion']['weighted_rmse']:.3f}; HAQ R² "
              f"{res.get('haq_r2', float('nan')):.3f}, C {res.get('c_index_baseline', float('nan')):.3f}")
        for how, m in res["severity"].items():
            print(f"{seed:>9} severity ({how}): accuracy {m['accuracy']:.3f}, class MAE {m['class_mae']:.3f}, "
                  f"PCC {m['class_pcc']:.3f} (n {m['n']})")
    report = {"seeds": args.seeds, "target_svdh_r_every_fold": R_TARGET, "hirano_2019": HIRANO, "results": results,
              "pass": ok, "seconds": time.perf_counter() - t0, "config": str(args.config)}
    from raoutcome.io_utils import atomic_write

    with atomic_write(args.work / "site_check.json") as fh:
        fh.write(json.dumps(report, indent=2) + "\n")
    print(f"every fold of every seed r >= {R_TARGET}: {'PASS' if ok else 'FAIL'} "
          f"({time.perf_counter() - t0:.0f} s)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
