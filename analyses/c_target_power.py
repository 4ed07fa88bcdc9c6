"""How decisive is the learning check's deformity target at a given cohort size?

The learning check (``analyses/learning_check.py``) asks for a deformity C-index >= the oracle C-index
(the true log-hazard's) - 0.05 on the patients it judges. Both C's are estimated on the same few
patients, so the check judges their *gap*, which scatters from cohort to cohort. This script measures
that scatter with the simulator itself:

1. simulate a large cohort from ``--sim-config`` without images (``render = false``; the outcome model
   is the same, only the radiographs are skipped), ``--population`` patients;
2. redraw ``--draws`` cohorts of each size in ``--sizes`` (patients sampled without replacement);
3. in each, compute Harrell's C (lifelines ``concordance_index``) of the true log-hazard and of a
   stand-in for a model's baseline risk: the true log(1 + baseline erosion count), exactly and with
   Gaussian noise (drawn afresh for each cohort) that lowers its Pearson r with the truth to each of ``--r``;
4. report per size: the mean and SD of the oracle C, and per stand-in the mean and SD of the
   oracle-minus-stand-in gap and the share of draws that meet the target (gap <= 0.05).

The true erosion count is what the simulator's hazard reads most (``[outcomes.hazard] erosion``);
a model that measures it with r 0.9 is what the learning check's models are, so the pass rate of that
stand-in is how often such a model can be expected to pass on a cohort of that size.

    python analyses/c_target_power.py --out c_target_power [--population 6000] [--sizes 180 540] [--draws 1000]

Writes ``c_target_power.json`` into ``--out`` and reuses the population in ``--out/population`` when it
was simulated with the same config; about 15 s on 2 cores.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
C_MARGIN = 0.05


def simulate_population(sim_config: Path, out: Path, n_patients: int) -> pd.DataFrame:
    """Per patient: true log-hazard, log(1 + baseline erosion count), observed deformity time and event."""
    from raoutcome.anatomy import DEFORMITY_EVENT
    from raoutcome.synth import simulate
    from raoutcome.synth.config import load_config, to_dict

    cfg = replace(load_config(sim_config), n_patients=int(n_patients), render=False)
    done = out / "truth" / "simulation.json"
    stored = json.loads(done.read_text()).get("config", {}) if done.exists() else {}
    if not stored or any(stored.get(k) != v for k, v in to_dict(cfg).items() if k != "workers"):
        simulate(config=cfg, out_dir=out)  # else reuse the population simulated with this config
    truth = pd.read_csv(out / "truth" / "patients.csv")
    events = pd.read_csv(out / "events.csv")
    events = events[events["event"] == DEFORMITY_EVENT]
    table = truth.merge(events[["patient_id", "time_years", "observed"]], on="patient_id")
    return pd.DataFrame({"log_hazard": table["log_hazard"], "log_erosion": np.log1p(table["erosion_v0"]),
                         "time": table["time_years"], "observed": table["observed"].astype(bool)})


def noisy(x: np.ndarray, r: float, rng: np.random.Generator) -> np.ndarray:
    """``x`` plus Gaussian noise whose SD makes the expected Pearson r with ``x`` equal ``r``."""
    if r >= 1:
        return x.copy()
    return x + rng.normal(0.0, x.std() * np.sqrt(1 / r ** 2 - 1), len(x))


def power(population: pd.DataFrame, sizes, r_values, draws: int, seed: int = 0) -> dict:
    """Oracle C and oracle-minus-stand-in gaps over ``draws`` redrawn cohorts of each size; each draw also
    redraws the stand-ins' noise (one fixed noise draw would itself shift C by ~0.01)."""
    from lifelines.utils import concordance_index

    rng = np.random.default_rng(seed)
    t, e = population["time"].to_numpy(), population["observed"].to_numpy()
    lh, le = population["log_hazard"].to_numpy(), population["log_erosion"].to_numpy()
    names = {r: f"erosion_r{r:g}" for r in r_values}
    out: dict = {"population": {"n_patients": len(population), "n_events": int(e.sum()),
                                "c_oracle": float(concordance_index(t, -lh, e)),
                                **{f"c_{names[r]}": float(np.mean([concordance_index(t, -noisy(le, r, rng), e)
                                                                   for _ in range(5)])) for r in r_values}}}
    for n in sizes:
        oracle, gaps = [], {r: [] for r in r_values}
        for _ in range(draws):
            idx = rng.choice(len(population), size=int(n), replace=False)
            c_oracle = concordance_index(t[idx], -lh[idx], e[idx])
            oracle.append(c_oracle)
            for r in r_values:
                gaps[r].append(c_oracle - concordance_index(t[idx], -noisy(le, r, rng)[idx], e[idx]))
        out[str(n)] = {"c_oracle_mean": float(np.mean(oracle)), "c_oracle_sd": float(np.std(oracle)),
                       "events_mean": float(e.mean() * n),
                       **{names[r]: {"gap_mean": float(np.mean(g)), "gap_sd": float(np.std(g)),
                                     "pass_rate": float(np.mean(np.asarray(g) <= C_MARGIN))} for r, g in gaps.items()}}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("c_target_power"))
    ap.add_argument("--sim-config", type=Path, default=REPO / "cohorts" / "demo.toml")
    ap.add_argument("--population", type=int, default=6000)
    ap.add_argument("--sizes", type=int, nargs="+", default=[180, 540])
    ap.add_argument("--r", type=float, nargs="+", default=[1.0, 0.95, 0.9])
    ap.add_argument("--draws", type=int, default=1000)
    args = ap.parse_args(argv)
    if args.population < max(args.sizes) or min(args.sizes) < 2 or args.draws < 1:
        ap.error("need --population >= every size >= 2 and --draws >= 1")
    if any(not 0 < r <= 1 for r in args.r):
        ap.error(f"every --r must be in (0, 1], got {args.r}")

    args.out.mkdir(parents=True, exist_ok=True)
    population = simulate_population(args.sim_config, args.out / "population", args.population)
    result = power(population, args.sizes, args.r, args.draws)
    pop = result["population"]
    print(f"population: {pop['n_patients']} patients, {pop['n_events']} events, oracle C {pop['c_oracle']:.3f}; "
          + ", ".join(f"{k} C {v:.3f}" for k, v in pop.items() if k.startswith("c_erosion")))
    for n in args.sizes:
        res = result[str(n)]
        print(f"{n} patients (~{res['events_mean']:.0f} events): oracle C {res['c_oracle_mean']:.3f} "
              f"(SD {res['c_oracle_sd']:.3f})")
        for k, v in res.items():
            if isinstance(v, dict):
                print(f"  {k:<16} gap {v['gap_mean']:.3f} (SD {v['gap_sd']:.3f}), target met in "
                      f"{100 * v['pass_rate']:.0f} % of {args.draws} draws")
    from raoutcome.io_utils import atomic_write

    with atomic_write(args.out / "c_target_power.json") as fh:
        fh.write(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
