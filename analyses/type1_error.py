"""Type-I error and power of the beyond-Sharp tests on synthetic cohorts.

The incremental-value tests of :mod:`raoutcome.analysis.incremental` — the
Cox likelihood-ratio test of an image score beyond SvdH + covariates (time to
deformity, baseline visit) and the partial-R² F-test of the score on HAQ
after SvdH + covariates (each patient's last complete visit) — are run with
the simulator's *true* non-Sharp latent (default: ``osteopenia``, from
``truth/visits.csv``) as the image score:

1. on ``--replicates`` null-mode cohorts (``cohorts/null.toml``: the latent is
   drawn and rendered but has no effect on any outcome), ``--patients``
   patients each, no images rendered. The share of p < α must lie in 2–8 %
   at α = 0.05 (a binomial 95 % interval around 5 % with 100 replicates is
   about 1–9 %);
2. on the default cohort (``cohorts/demo.toml``, its own size and seed),
   where the latent does drive HAQ and the hazard: both tests should reject
   at p < 0.01.

Prints both figures and writes one CSV row per replicate and test
(``--out``, default ``out/type1_error.csv``). Exit code 1 if a check fails.

    .venv/bin/python analyses/type1_error.py                 # 100 replicates x 200 patients
    .venv/bin/python analyses/type1_error.py --replicates 20 # quicker look
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
TESTS = ("cox_lrt", "partial_r2_f")

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} as TOML")


def write_toml(data: dict, path: Path) -> Path:
    """A minimal TOML writer for the simulator's nested tables of scalars and lists."""
    lines: list[str] = []

    def emit(table: dict, prefix: str) -> None:
        scalars = {k: v for k, v in table.items() if not isinstance(v, dict)}
        if prefix and scalars:
            lines.append(f"[{prefix}]")
        for key, value in scalars.items():
            lines.append(f"{key} = {_toml_value(value)}")
        for key, value in table.items():
            if isinstance(value, dict):
                emit(value, f"{prefix}.{key}" if prefix else key)

    emit(data, "")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def simulation_config(base: Path, **overrides) -> dict:
    """The simulator TOML at ``base`` with top-level keys replaced; images are never rendered."""
    data = tomllib.loads(base.read_text(encoding="utf-8"))
    data.update(overrides)
    data["render"] = False
    return data


def run_tests(config: dict, latent: str, workdir: Path) -> list[dict]:
    """Simulate one cohort and run the incremental-value tests with the true latent as the image score."""
    from raoutcome.analysis.features import analysis_data, predictions_from_columns
    from raoutcome.analysis.incremental import beyond_sharp
    from raoutcome.cohort import load
    from raoutcome.synth import simulate

    workdir.mkdir(parents=True, exist_ok=True)
    cfg = write_toml(config, workdir / "config.toml")
    folder = simulate(cfg, workdir / "cohort")
    truth = pd.read_csv(Path(folder) / "truth" / "visits.csv", dtype={"patient_id": str, "visit_id": str})
    if latent not in truth:
        raise SystemExit(f"truth/visits.csv has no column {latent!r}; it has {list(truth.columns)}")
    # A true latent is not learned from the data, so it needs no cross-fitting (fold 0 for everyone).
    predictions = predictions_from_columns(truth, {"risk": latent, "haq": latent}, run=f"true {latent}")
    data = analysis_data(load(folder, check_files=False), predictions, embedding=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = beyond_sharp(data, data.pred("risk"), outcome_images={"haq": data.pred("haq")}, tests=TESTS)
    return table[["test", "outcome", "estimate", "statistic", "p_value", "n"]].to_dict("records")


def _replicate(args: tuple[dict, str, str, int]) -> list[dict]:
    config, latent, root, index = args
    rows = run_tests(config, latent, Path(root) / f"rep{index:03d}")
    return [dict(row, replicate=index, seed=config["seed"]) for row in rows]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicates", type=int, default=100)
    parser.add_argument("--patients", type=int, default=200)
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument("--latent", default="osteopenia", help="truth/visits.csv column used as the image score")
    parser.add_argument("--seed", type=int, default=1000, help="first null replicate's seed (then +1, +2, ...)")
    parser.add_argument("--null-config", type=Path, default=REPO / "cohorts" / "null.toml")
    parser.add_argument("--default-config", type=Path, default=REPO / "cohorts" / "demo.toml")
    parser.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1))
    parser.add_argument("--out", type=Path, default=REPO / "out" / "type1_error.csv")
    args = parser.parse_args(argv)

    from tqdm.auto import tqdm

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="raoutcome-type1-") as tmp:
        jobs = [(simulation_config(args.null_config, seed=args.seed + i, n_patients=args.patients), args.latent, tmp, i)
                for i in range(args.replicates)]
        rows: list[dict] = []
        with ProcessPoolExecutor(max_workers=args.workers) as pool:
            for result in tqdm(pool.map(_replicate, jobs), total=len(jobs), desc="null replicates"):
                rows.extend(result)
        null = pd.DataFrame(rows).assign(cohort="null")
        default_rows = run_tests(simulation_config(args.default_config), args.latent, Path(tmp) / "default")
        default = pd.DataFrame(default_rows).assign(cohort="default", replicate=-1)

    table = pd.concat([null, default], ignore_index=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out, index=False)

    ok = True
    print(f"\nimage score: true '{args.latent}' latent; alpha = {args.alpha}; "
          f"{args.replicates} null cohorts x {args.patients} patients")
    for test in TESTS:
        p = null.loc[null["test"] == test, "p_value"].dropna()
        rate = float((p < args.alpha).mean()) if len(p) else float("nan")
        lo, hi = _wilson(int((p < args.alpha).sum()), len(p))
        within = 0.02 <= rate <= 0.08
        ok &= within
        print(f"  null   {test:13s}: rejection rate {100 * rate:5.1f} %  (95 % CI {100 * lo:.1f}–{100 * hi:.1f} %, "
              f"{len(p)} replicates)  {'OK' if within else 'OUTSIDE 2-8 %'}")
    for _, row in default.iterrows():
        rejects = row["p_value"] < 0.01
        ok &= bool(rejects)
        print(f"  default {row['test']:12s}: p = {row['p_value']:.3g} (n = {row['n']}, {row['outcome']})  "
              f"{'rejects at 0.01' if rejects else 'DOES NOT REJECT at 0.01'}")
    print(f"rows written to {args.out}  ({time.perf_counter() - started:.0f} s)")
    return 0 if ok else 1


def _wilson(k: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    if n == 0:
        return float("nan"), float("nan")
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


if __name__ == "__main__":
    sys.exit(main())
