"""Learning check: does the model learn what the simulator planted, on patients it never saw?

1. Simulate the demo cohort (``raoutcome simulate --config cohorts/demo.toml``), or reuse
   ``--cohort``.
2. Train with 3-fold patient-grouped cross-fitting (``cohorts/train_demo.toml``, 14 epochs, with
   ``--folds 3``: the demo itself uses 2 folds to fit its 15-minute budget) twice: the full
   model, and the "no human score" model (``[heads] svdh = false``). Each model's HAQ, pain and
   risk heads are refitted in closed form on its training patients (``[readout]``).
3. On the out-of-fold predictions (every patient scored by the fold model that never saw
   them) compare with the simulator's ceilings in ``truth/oracle.json``:

   * SvdH total: Pearson r (visits with an observed score) >= 0.85;
   * HAQ: R^2 against the observed HAQ >= 0.7 x the noise-free R^2 (``haq.r2_noise_free``);
   * deformity: Harrell's C-index (lifelines ``concordance_index``) of the per-patient risk
     at the baseline visit (``--risk-at last``: the last visit) against the observed
     events >= oracle C-index - 0.05 (``deformity.c_index_oracle``).

   The no-SvdH model is held to the HAQ and deformity targets. Its readouts also read the label-free
   joint anomaly score (:data:`NO_SVDH_READOUT`: ``[readout] joint_anomaly``, the risk readout on the
   anomaly alone), which needs no human score. For scale the script also prints the C of
   a risk that knows only the true baseline SvdH total, or only the noise-free baseline HAQ
   (``deformity.c_index_svdh`` / ``c_index_haq_mean``: 0.721 and 0.711 on the demo cohort, both under
   the 0.746 target).

Prints a table, writes ``learning_check.json`` into ``--out`` and exits 0 when every
target is met (1 otherwise). Budget: <= 30 minutes on 2 CPU cores.

    python analyses/learning_check.py --out learning_check_out [--cohort DIR] [--config FILE] [--epochs N] [--folds K]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SVDH_R_TARGET = 0.85
HAQ_FRACTION = 0.7
C_MARGIN = 0.05


def raoutcome_cli() -> list[str]:
    """The ``raoutcome`` command of this interpreter's environment (or ``python -m raoutcome.cli``)."""
    exe = Path(sys.executable).with_name("raoutcome")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "raoutcome.cli"]


def simulate(config: Path, out: Path) -> Path:
    if (out / "truth" / "oracle.json").exists():
        return out
    subprocess.run(raoutcome_cli() + ["simulate", "--config", str(config), "--out", str(out)], check=True)
    return out


def derived_config(config: Path, out: Path, note: str, *, svdh: bool | None = None, epochs: int | None = None,
                   folds: int | None = None, readout: dict | None = None) -> Path:
    """``config`` with the SvdH head switched on/off, ``epochs`` (patience follows), ``folds`` and/or
    ``[readout]`` keys, written to ``out``."""
    from raoutcome.training.config import write_config_variant

    overrides: dict = {}
    if svdh is not None:
        overrides["heads"] = {"svdh": svdh}
    if epochs is not None:
        overrides["train"] = {"epochs": int(epochs), "patience": int(epochs)}
    if folds is not None:
        overrides["cv"] = {"folds": int(folds)}
    if readout:
        overrides["readout"] = dict(readout)
    return write_config_variant(config, overrides, out, note)


#: What the "no human score" model's readouts read besides its own features: the label-free joint
#: anomaly (fitted on each fold's training patients), and its risk readout the anomaly alone. Chosen by
#: a within-fold probe on this cohort with the session-4 fold models and the earlier, mean-aggregated
#: anomaly: Cox C 0.71 on the anomaly alone, 0.66 with the refitted HAQ beside it.
NO_SVDH_READOUT = {"joint_anomaly": True, "risk_inputs": ["joint_anomaly"]}


def no_svdh_config(config: Path, out: Path, readout: dict | None = None) -> Path:
    """``config`` with the SvdH head switched off and the readouts of :data:`NO_SVDH_READOUT` (``readout``)."""
    return derived_config(config, out, "with the SvdH head switched off; its readouts read the joint anomaly",
                          svdh=False, readout=NO_SVDH_READOUT if readout is None else readout)


def train_side_by_side(runs: dict, cohort_dir: Path, out: Path, jobs: int) -> dict:
    """``raoutcome train`` for each run in its own process, ``jobs`` at a time.

    Each process gets ``cpu_count // jobs`` torch threads: small CNNs on CPU use two single-
    threaded processes better than one process with two threads (less synchronisation).
    """
    threads = str(max(1, (os.cpu_count() or 1) // jobs))
    env = {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
    base = raoutcome_cli()
    pending = list(runs.items())
    running: dict[str, tuple[subprocess.Popen, float]] = {}
    timings: dict[str, float] = {}
    while pending or running:
        while pending and len(running) < jobs:
            name, config = pending.pop(0)
            log = open(out / f"train_{name}.log", "w")
            cmd = base + ["train", "--cohort", str(cohort_dir), "--config", str(config), "--out", str(out / f"run_{name}")]
            running[name] = (subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT), time.perf_counter())
        time.sleep(2)
        for name, (proc, started) in list(running.items()):
            if proc.poll() is not None:
                if proc.returncode != 0:
                    raise SystemExit(f"training {name} failed (exit {proc.returncode}); see {out / f'train_{name}.log'}")
                timings[f"train_{name}"] = time.perf_counter() - started
                del running[name]
    return timings


def evaluate(predictions: Path, cohort, risk_at: str) -> dict:
    from raoutcome.evaluation.regression import pearson_r
    from raoutcome.evaluation.survival_metrics import harrell_c  # lifelines concordance_index
    from raoutcome.predictions import load_predictions, to_frame

    frame = to_frame(load_predictions(predictions))
    obs = cohort.visits[["patient_id", "visit_id", "svdh_total", "haq"]].rename(
        columns={"svdh_total": "obs_svdh", "haq": "obs_haq"})
    merged = frame.merge(obs, on=["patient_id", "visit_id"], how="inner")
    out: dict = {"n_patients": int(frame["patient_id"].nunique()), "n_visits": int(len(frame))}
    if merged["svdh"].notna().any():
        ok = merged[["svdh", "obs_svdh"]].dropna()
        out["svdh_pearson_r"] = pearson_r(ok["obs_svdh"], ok["svdh"])
    ok = merged[["haq", "obs_haq"]].dropna()
    y, p = ok["obs_haq"].to_numpy(), ok["haq"].to_numpy()
    out["haq_r2"] = float(1 - ((y - p) ** 2).sum() / ((y - y.mean()) ** 2).sum())
    events = cohort.event_table("deformity").set_index("patient_id")
    ordered = frame.sort_values(["patient_id", "time_years"])
    for where, pick in (("baseline", ordered.groupby("patient_id").head(1)),
                        ("last", ordered.groupby("patient_id").tail(1))):
        risk = pick.set_index("patient_id")["risk"]
        ev = events.loc[risk.index]
        out[f"c_index_{where}"] = harrell_c(ev["time_years"], ev["observed"], risk.to_numpy())
    out["c_index"] = out[f"c_index_{risk_at}"]
    return out


def label_free_reference(cohort, folds: int = 3) -> dict:
    """What the label-free joint anomaly score alone gives on the same cohort: C of its first-visit value
    for deformity and its r with log(1 + SvdH), each patient scored by a PCA fitted without them
    (:func:`raoutcome.workflows.anomaly.evaluate_joint_anomaly`; empty when the cohort has no landmarks)."""
    from raoutcome.errors import InputError
    from raoutcome.workflows.anomaly import evaluate_joint_anomaly

    try:
        summary = evaluate_joint_anomaly(cohort, folds, progress=False).summary
    except InputError:
        return {}
    return {"c_index_baseline": summary["survival"]["c_index_first_visit"],
            "r_log_svdh": summary["pearson_r"]["log_svdh"]["r"], "folds": folds}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("learning_check_out"))
    ap.add_argument("--cohort", type=Path, default=None, help="reuse a simulated cohort (needs truth/oracle.json)")
    ap.add_argument("--sim-config", type=Path, default=REPO / "cohorts" / "demo.toml")
    ap.add_argument("--config", type=Path, default=REPO / "cohorts" / "train_demo.toml")
    ap.add_argument("--risk-at", choices=("baseline", "last"), default="baseline")
    ap.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1),
                    help="train the two models side by side, each in its own process with "
                         "cpu_count/jobs torch threads (default: 2 on a machine with >= 2 cores)")
    ap.add_argument("--epochs", type=int, default=None,
                    help="train this many epochs instead of the config's (patience alike)")
    ap.add_argument("--folds", type=int, default=3,
                    help="cross-fitting folds (default 3: 120 training patients per model; 0 = the config's)")
    args = ap.parse_args(argv)

    from raoutcome.cohort import load
    from raoutcome.training import train_run

    args.out.mkdir(parents=True, exist_ok=True)
    timings = {}
    t0 = time.perf_counter()
    cohort_dir = args.cohort or simulate(args.sim_config, args.out / "cohort")
    timings["simulate"] = time.perf_counter() - t0
    oracle = json.loads((cohort_dir / "truth" / "oracle.json").read_text())
    cohort = load(cohort_dir)
    targets = {"svdh_pearson_r": SVDH_R_TARGET,
               "haq_r2": HAQ_FRACTION * oracle["haq"]["r2_noise_free"],
               "c_index": oracle["deformity"]["c_index_oracle"] - C_MARGIN}
    config = args.config
    folds = args.folds or None
    if args.epochs is not None or folds is not None:
        config = derived_config(config, args.out / "train_full.toml", f"with epochs={args.epochs}, folds={folds}",
                                epochs=args.epochs, folds=folds)
    runs = {"full": config, "no_svdh": no_svdh_config(config, args.out / "train_no_svdh.toml")}
    results = {}
    if args.jobs > 1:
        timings.update(train_side_by_side(runs, cohort_dir, args.out, args.jobs))
    else:
        for name, config in runs.items():
            t = time.perf_counter()
            train_run(cohort, config, args.out / f"run_{name}")
            timings[f"train_{name}"] = time.perf_counter() - t
    for name in runs:
        results[name] = evaluate(args.out / f"run_{name}" / "cv_predictions.nc", cohort, args.risk_at)
    timings["total"] = time.perf_counter() - t0

    checks = []
    for name, res in results.items():
        for key, target in targets.items():
            if key not in res:
                continue
            checks.append({"model": name, "metric": key, "value": res[key], "target": target,
                           "pass": bool(res[key] >= target)})
    print(f"learning check on {cohort_dir} ({results['full']['n_patients']} patients, out-of-fold predictions)")
    print(f"{'model':<9}{'metric':<16}{'value':>8}{'target':>9}  result")
    for c in checks:
        print(f"{c['model']:<9}{c['metric']:<16}{c['value']:>8.3f}{c['target']:>9.3f}  {'PASS' if c['pass'] else 'FAIL'}")
    for name, res in results.items():
        print(f"{name}: C-index at baseline {res['c_index_baseline']:.3f}, at last visit {res['c_index_last']:.3f}")
    dz = oracle["deformity"]
    if "c_index_haq_mean" in dz:  # cohorts simulated before these ceilings existed lack them
        below = " (below the target: a risk that only echoes HAQ cannot meet it)" \
            if dz["c_index_haq_mean"] < targets["c_index"] else ""
        print(f"ceilings (C at baseline): true log-hazard {dz['c_index_oracle']:.3f}, true SvdH total "
              f"{dz['c_index_svdh']:.3f}, noise-free HAQ {dz['c_index_haq_mean']:.3f}{below}")
    label_free = label_free_reference(cohort)
    if label_free:
        print(f"label-free reference (no model, no human score): the cross-fitted joint anomaly score at baseline "
              f"ranks deformity with C {label_free['c_index_baseline']:.3f}; its r with log(1 + SvdH) is "
              f"{label_free['r_log_svdh']:.3f} (raoutcome.imaging.joint_anomaly)")
    print("timings (s): " + ", ".join(f"{k} {v:.0f}" for k, v in timings.items()))
    report = {"cohort": str(cohort_dir), "oracle": oracle, "targets": targets, "results": results,
              "label_free_joint_anomaly": label_free,
              "checks": checks, "timings_s": timings, "risk_at": args.risk_at,
              "config": tomllib.loads(Path(config).read_text())}
    (args.out / "learning_check.json").write_text(json.dumps(report, indent=2) + "\n")
    return 0 if all(c["pass"] for c in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
