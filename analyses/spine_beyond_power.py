"""How many AS patients before a more precise mSASSS reading adds to the human one? (issue #24)

On the held-out cohort (seed 24002, 58 patients) the learned total mSASSS added nothing to the human total for
BASFI, BASDAI or the time to a new bridge. This asks whether that is the cohort's size or the readings: AS
cohorts are simulated without images (``cohorts/as_spine.toml``, ``render = false``; the human mSASSS is the
simulator's reader model), and the learned total is drawn from the error model measured on the held-out
cohort (learned = a + b × true + Normal(0, σ), fitted there on 149 visits: a = 5.07, b = 0.833, σ = 1.01,
detected landmarks; the human reading's own error there: σ = 1.87). Per cohort size and replicate
(``--reps`` cohorts, seeds from ``--seed``), :func:`raoutcome.analysis.as_outcomes.beyond_msasss` runs the
partial-R² F-test for BASFI (last visit per patient) and the Cox likelihood-ratio test for new bridges; the
rejection rate at 0.05 is the power. A null arm (learned = human + Normal(0, 1): no information beyond the
human reading) checks the size. The base model is ``beyond_msasss``'s default (a natural spline of the human
mSASSS on its own scale, chosen on seeds 1–12; these cohorts use seeds 24500 + 1000 × rep + n).

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python analyses/spine_beyond_power.py --sizes 200,1000,2000 --reps 40
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
ERROR_MODEL = {"a": 5.066, "b": 0.833, "sigma": 1.008}  # learned vs true total, held-out seed 24002 (detected)


def one_cohort(n: int, seed: int, work: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Visit table (human, true, BASFI) and events of a simulated AS cohort without images."""
    from raoutcome.synth.spine_cohort import simulate_spine
    from raoutcome.synth.spine_course import load_spine_config

    cfg = load_spine_config(REPO / "cohorts" / "as_spine.toml").replace(seed=seed, n_patients=n, render=False,
                                                                        reimage=0.0)
    root = simulate_spine(out_dir=work / f"c{seed}", config=cfg)
    read = lambda name: pd.read_csv(root / name, dtype={"patient_id": str, "visit_id": str})  # noqa: E731
    visits = read("visits.csv").merge(read("truth/visits.csv")[["patient_id", "visit_id", "msasss_true"]])
    return visits, read("events.csv")


def tests(visits: pd.DataFrame, events: pd.DataFrame, learned: np.ndarray) -> dict[str, float]:
    from raoutcome.analysis.as_outcomes import baseline_table, beyond_msasss

    table = visits.assign(msasss_learned=learned)
    pts = baseline_table(table, events, "new_bridge")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = beyond_msasss(table, pts, outcomes=("basfi",), tests=("partial_r2_f", "cox_lrt"))
    return {f"{r.test}:{r.outcome}": float(r.p_value) for r in res.itertuples()}


def conditional_null(n: int, draws: int, seed: int) -> dict[str, float]:
    """Size of the BASFI F-test given one cohort: ``draws`` fresh null scores (human + Normal(0, 1)) on the
    same patients and outcomes. A regressor independent of the outcome makes the F-test exact whatever the
    outcome's distribution, so this should be 5 % up to Monte Carlo error."""
    from raoutcome.analysis.as_outcomes import _base_terms
    from raoutcome.analysis.incremental import last_complete_visit, partial_r2

    with tempfile.TemporaryDirectory() as tmp:
        visits, _ = one_cohort(n, seed, Path(tmp))
    visits = visits.dropna(subset=["msasss", "basfi"]).reset_index(drop=True)
    visits, terms, _ = _base_terms(visits, "msasss", 3, "s_", "raw")
    last = last_complete_visit(visits, ["basfi", *terms]).reset_index(drop=True)
    rng = np.random.default_rng(seed)
    p = [partial_r2(last.assign(z=last["msasss"] + rng.normal(0, 1.0, len(last))), "basfi", terms, ["z"]).p_value
         for _ in range(draws)]
    return {"n": n, "seed": seed, "draws": draws, "rejection_rate": float(np.mean(np.array(p) < 0.05))}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="200,1000,2000")
    ap.add_argument("--reps", type=int, default=40)
    ap.add_argument("--seed", type=int, default=24500)
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "data" / "spine_beyond_power.json")
    ap.add_argument("--conditional-null", type=int, default=0,
                    help="only: this many null draws on one cohort of the first size (the F-test's size)")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(REPO / "src"))
    if args.conditional_null:
        print(json.dumps(conditional_null(int(args.sizes.split(",")[0]), args.conditional_null, args.seed)))
        return 0
    rows = []
    t0 = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        for n in (int(s) for s in args.sizes.split(",")):
            for rep in range(args.reps):
                seed = args.seed + 1000 * rep + n
                visits, events = one_cohort(n, seed, Path(tmp))
                rng = np.random.default_rng(seed)
                e = ERROR_MODEL
                learned = e["a"] + e["b"] * visits["msasss_true"].to_numpy(float) + rng.normal(0, e["sigma"],
                                                                                               len(visits))
                null = visits["msasss"].to_numpy(float) + rng.normal(0, 1.0, len(visits))
                for arm, score in (("learned", learned), ("null", null)):
                    rows.append({"n": n, "rep": rep, "arm": arm, "events": int(events["observed"].sum()),
                                 **tests(visits, events, score)})
            done = pd.DataFrame(rows)
            print(f"[{time.time() - t0:.0f} s] n={n}: " + json.dumps(
                done[done["n"] == n].drop(columns=["rep", "n"]).groupby("arm").agg(
                    lambda s: float((s < 0.05).mean()) if s.name != "events" else float(s.mean())).to_dict()),
                flush=True)
    table = pd.DataFrame(rows)
    summary = (table.drop(columns=["rep", "events"]).groupby(["n", "arm"])
               .agg(lambda s: float((s < 0.05).mean())).reset_index())
    summary["reps"] = args.reps
    summary["mean_events"] = table.groupby(["n", "arm"])["events"].mean().to_numpy()
    args.out.write_text(json.dumps({"error_model": ERROR_MODEL, "seed": args.seed,
                                    "rejection_rate_at_0.05": summary.to_dict(orient="records")}, indent=1))
    print(summary.to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
