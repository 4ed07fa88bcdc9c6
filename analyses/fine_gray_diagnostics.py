"""Why do the Fine–Gray CIs under-cover on simulated clinic cohorts? Experiments for issue #26.

``simulate``: one large sample of the simulator's patients (``interval_competing_bias.simulate_cohort``,
``--chunks`` blocks of ``--chunk`` patients, seed ``--seed``), saved with the exact times, the visit
intervals (schedules A and B) and the competing status.

``truth``: the large-sample limit (pseudo-true value) of each Fine–Gray estimator on all of them: exact
times with Kaplan–Meier censoring weights, exact times with every censoring time known (the target of
``fine_gray_coverage.py``), visit times, imputed in the intervals; and the cause-specific Cox (true 1.0).

``cohorts``: the same patients cut into consecutive cohorts of ``--n``: per cohort the estimate and
the analytic (Fine–Gray / crr), weights-known and model-based (inverse information) SEs, and
optionally the patient bootstrap SE; summarised against the pseudo-true values of ``truth``.

``fg-design``: outcomes drawn from a true Fine–Gray model (Fine & Gray 1999, section 5:
``F1(t | x) = 1 - (1 - p (1 - exp(-t)))^exp(x'b)``) on the simulator's covariates, so the target is
exact: coverage of the analytic SE there.

    python analyses/fine_gray_diagnostics.py simulate --out D --seed 4242 --chunks 200 --chunk 1000
    python analyses/fine_gray_diagnostics.py truth --out D
    python analyses/fine_gray_diagnostics.py cohorts --out D --n 300 [--replicates 50]
    python analyses/fine_gray_diagnostics.py fg-design --out D --n 300 --cohorts 200 --seed 5
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
Z95 = 1.959963984540054
KEEP = ["ex_time", "ex_status", "c_true", "t_true", "d_true", "cr_time", "cr_status", "lower", "upper"]


def _paths() -> None:
    sys.path.insert(0, str(REPO / "src"))
    sys.path.insert(0, str(REPO / "analyses"))
    warnings.simplefilter("ignore")


def simulate(out: Path, seed: int, chunks: int, chunk: int) -> None:
    """Blocks of patients saved one file per block (``parts/``), so a long run can be read while it goes on."""
    import interval_competing_bias as icb

    cfg = icb.config(8)
    (out / "parts").mkdir(exist_ok=True)
    started = time.time()
    for k in range(chunks):
        f = out / "parts" / f"{k:04d}.pkl"
        if f.exists():
            continue
        df = icb.simulate_cohort(cfg, seed, k, chunk)
        b = icb.risk_schedule(df)
        part = df[[*icb.COVARIATES, *KEEP]].copy()
        for c in ("cr_time", "cr_status", "lower", "upper"):
            part["B_" + c] = b[c].to_numpy()
        part.assign(chunk=k).to_pickle(f)
        if (k + 1) % 10 == 0:
            print(f"{(k + 1) * chunk} patients, {time.time() - started:.0f} s", flush=True)


def patients(out: Path) -> pd.DataFrame:
    return pd.concat([pd.read_pickle(f) for f in sorted((out / "parts").glob("*.pkl"))], ignore_index=True)


def _fits(df: pd.DataFrame, seed: int, which: tuple[str, ...], replicates: int = 0) -> dict[str, tuple]:
    """(estimate, analytic SE, weights-known SE, model-based SE, bootstrap SE) of the planted feature."""
    import interval_competing_bias as icb

    from raoutcome.analysis.fine_gray import bootstrap_fine_gray, fit_fine_gray, fit_fine_gray_imputed

    x = df[icb.COVARIATES].to_numpy(float)
    j = icb.COVARIATES.index(icb.FEATURE)
    res: dict[str, tuple] = {}

    def pack(f, boot=None) -> tuple:
        return (float(f.coef[j]), float(np.sqrt(f.cov_fine_gray[j, j])), float(np.sqrt(f.cov_fixed_weights[j, j])),
                float(np.sqrt(np.linalg.inv(f.information)[j, j])),
                float(boot[:, j].std(ddof=1)) if boot is not None else float("nan"),
                float(boot[:, j].mean()) if boot is not None else float("nan"))

    if "exact" in which:
        f = fit_fine_gray(df["ex_time"], df["ex_status"], x)
        boot = (bootstrap_fine_gray(df["ex_time"], df["ex_status"], x, replicates=replicates, seed=seed)
                if replicates else None)
        res["exact"] = pack(f, boot)
    if "complete" in which:
        died = df["ex_status"].to_numpy() == 2
        t = np.where(died, df["c_true"], df["ex_time"])
        res["complete"] = pack(fit_fine_gray(t, np.where(died, 0, df["ex_status"]), x))
    for sc in ("A", "B"):
        pre = "" if sc == "A" else "B_"
        st = df[pre + "cr_status"].to_numpy(int)
        lo = np.where(st == 1, df[pre + "lower"], np.nan).astype(float)
        hi = np.where(st == 1, df[pre + "upper"], np.nan).astype(float)
        if f"visit_{sc}" in which:
            res[f"visit_{sc}"] = pack(fit_fine_gray(df[pre + "cr_time"], st, x))
        free = df[pre + "lower"].to_numpy(float)   # other rows: the last visit free of the event
        for name, kind, low in ((f"imputed_{sc}", "uniform", lo), (f"wimputed_{sc}", "weibull", np.where(st == 1, lo, free))):
            if name not in which:
                continue
            imp = fit_fine_gray_imputed(df[pre + "cr_time"], st, x, low, hi, imputations=10, seed=seed, imputer=kind)
            boot = (bootstrap_fine_gray(df[pre + "cr_time"], st, x, low, hi, replicates=replicates, seed=seed + 1,
                                        imputer=kind) if replicates else None)
            res[name] = (float(imp.coef[j]), float(imp.se[j]), float("nan"), float(np.sqrt(imp.within[j, j])),
                         float(boot[:, j].std(ddof=1)) if boot is not None else float("nan"),
                         float(boot[:, j].mean()) if boot is not None else float("nan"))
    if "cs_cox" in which:
        from lifelines import CoxPHFitter

        frame = df[icb.COVARIATES].assign(_T=df["ex_time"].to_numpy(float), _E=(df["ex_status"] == 1).astype(int))
        fit = CoxPHFitter().fit(frame, "_T", "_E")
        res["cs_cox"] = (float(fit.params_[icb.FEATURE]), float(fit.standard_errors_[icb.FEATURE]),
                         float("nan"), float("nan"), float("nan"), float("nan"))
    return res


ALL = ("exact", "complete", "visit_A", "imputed_A", "wimputed_A", "visit_B", "imputed_B", "wimputed_B", "cs_cox")


def truth(out: Path, which: tuple[str, ...] = ALL) -> dict:
    """Pseudo-true values on all patients (``which`` models; others already in truth.json are kept)."""
    pts = patients(out)
    started = time.time()
    old = json.loads((out / "truth.json").read_text()) if (out / "truth.json").exists() else {}
    res = {**old, **{m: v[0] for m, v in _fits(pts, 1, which).items()}}
    res["n_patients"] = len(pts)
    res["seconds"] = round(time.time() - started, 1)
    print(json.dumps(res, indent=2))
    (out / "truth.json").write_text(json.dumps(res, indent=2))
    return res


def cohorts(out: Path, n: int, replicates: int, which: tuple[str, ...], limit: int) -> pd.DataFrame:
    pts = patients(out)
    tr = json.loads((out / "truth.json").read_text())
    k_max = min(len(pts) // n, limit)
    rows, started = [], time.time()
    for k in range(k_max):
        df = pts.iloc[k * n:(k + 1) * n].reset_index(drop=True)
        for m, (est, se, se_fw, se_model, se_boot, boot_mean) in _fits(df, 1000 + k, which, replicates).items():
            rows.append({"cohort": k, "model": m, "estimate": est, "se": se, "se_fixed_weights": se_fw,
                         "se_model": se_model, "se_bootstrap": se_boot, "boot_mean": boot_mean})
        if (k + 1) % 20 == 0:
            print(f"{k + 1}/{k_max} cohorts, {time.time() - started:.0f} s", flush=True)
    d = pd.DataFrame(rows)
    d.to_csv(out / f"cohorts_n{n}.csv", index=False)
    table = summarise(d, tr)
    print(table.round(4).to_string())
    table.to_csv(out / f"summary_n{n}.csv", index=False)
    return table


def summarise(d: pd.DataFrame, tr: dict) -> pd.DataFrame:
    rows = []
    for m, g in d.groupby("model", sort=False):
        target = tr["exact"] if m != "cs_cox" else 1.0
        own = tr.get(m, target)
        e = g["estimate"].to_numpy()
        row = {"model": m, "cohorts": len(e), "pseudo_true_own": own, "mean": e.mean(),
               "bias_vs_exact_limit": e.mean() - target, "bias_vs_own_limit": e.mean() - own,
               "mc_se_mean": e.std(ddof=1) / np.sqrt(len(e)), "sd": e.std(ddof=1)}
        for col in ("se", "se_fixed_weights", "se_model", "se_bootstrap"):
            s = g[col].to_numpy()
            if np.isfinite(s).all():
                row[f"mean_{col}"] = s.mean()
                row[f"cov_{col}"] = float(np.mean(np.abs(e - target) <= Z95 * s))
                row[f"cov_{col}_own"] = float(np.mean(np.abs(e - own) <= Z95 * s))
        bm = g["boot_mean"].to_numpy() if "boot_mean" in g else np.full(len(e), np.nan)
        if np.isfinite(bm).all():   # bootstrap bias-corrected estimate 2 b - mean(b*), bootstrap SE
            bc = 2 * e - bm
            sb = g["se_bootstrap"].to_numpy()
            row.update(mean_bc=bc.mean(), sd_bc=bc.std(ddof=1), bias_bc=bc.mean() - target,
                       cov_bc=float(np.mean(np.abs(bc - target) <= Z95 * sb)))
        rows.append(row)
    return pd.DataFrame(rows)


def fg_design(out: Path, n: int, n_cohorts: int, seed: int, replicates: int) -> pd.DataFrame:
    """Fine–Gray-generated outcomes on the simulator's covariates (resampled from ``patients.pkl``)."""
    import interval_competing_bias as icb

    from raoutcome.analysis.fine_gray import bootstrap_fine_gray, fit_fine_gray

    pts = patients(out)
    tr = json.loads((out / "truth.json").read_text())
    xall = pts[icb.COVARIATES].to_numpy(float)
    beta = fit_fine_gray(pts["ex_time"], pts["ex_status"], xall).coef   # a realistic coefficient vector
    j = icb.COVARIATES.index(icb.FEATURE)
    p = 0.45
    rng = np.random.default_rng(seed)
    rows = []
    for k in range(n_cohorts):
        x = xall[rng.integers(0, len(xall), n)]
        lp = (x - xall.mean(axis=0)) @ beta
        f1_inf = 1 - (1 - p) ** np.exp(lp)
        c1 = rng.random(n) < f1_inf
        v = rng.random(n) * f1_inf
        t1 = -np.log(1 - (1 - (1 - v) ** np.exp(-lp)) / p) * 3.0
        t = np.where(c1, t1, rng.exponential(60.0, n))
        c = np.minimum(rng.exponential(25.0, n), 8.0)
        st = np.where(t <= c, np.where(c1, 1, 2), 0)
        tt = np.minimum(t, c)
        f = fit_fine_gray(tt, st, x)
        boot = bootstrap_fine_gray(tt, st, x, replicates=replicates, seed=k) if replicates else None
        rows.append({"cohort": k, "model": "fg_design", "estimate": f.coef[j], "se": f.se[j],
                     "se_fixed_weights": np.sqrt(f.cov_fixed_weights[j, j]),
                     "se_model": np.sqrt(np.linalg.inv(f.information)[j, j]),
                     "se_bootstrap": boot[:, j].std(ddof=1) if boot is not None else np.nan,
                     "boot_mean": boot[:, j].mean() if boot is not None else np.nan,
                     "events": int((st == 1).sum()), "competing": int((st == 2).sum())})
    d = pd.DataFrame(rows)
    d.to_csv(out / f"fg_design_n{n}.csv", index=False)
    table = summarise(d, {"exact": float(beta[j]), "fg_design": float(beta[j])})
    table["events"], table["competing"] = d["events"].mean(), d["competing"].mean()
    print(f"true b {beta[j]:.4f} (pooled exact fit {tr['exact']:.4f})")
    print(table.round(4).to_string())
    table.to_csv(out / f"fg_design_summary_n{n}.csv", index=False)
    return table


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("stage", choices=["simulate", "truth", "cohorts", "fg-design"])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--seed", type=int, default=4242)
    ap.add_argument("--chunks", type=int, default=200)
    ap.add_argument("--chunk", type=int, default=1000)
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--cohorts", type=int, default=10**9)
    ap.add_argument("--replicates", type=int, default=0)
    ap.add_argument("--models", default=",".join(m for m in ALL if m != "complete"))
    args = ap.parse_args(argv)
    args.models_given = "--models" in (argv if argv is not None else sys.argv)
    _paths()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.stage == "simulate":
        simulate(args.out, args.seed, args.chunks, args.chunk)
    elif args.stage == "truth":
        truth(args.out, tuple(args.models.split(",")) if args.models_given else ALL)
    elif args.stage == "cohorts":
        cohorts(args.out, args.n, args.replicates, tuple(args.models.split(",")), args.cohorts)
    else:
        fg_design(args.out, args.n, min(args.cohorts, 10_000), args.seed, args.replicates)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
