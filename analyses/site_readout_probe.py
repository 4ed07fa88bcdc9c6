"""Site-route readout probe: which readout inputs help the outcome model on sites? (issue #23)

Takes a cross-fitted site-route run (``raoutcome train`` with ``[model] route = "sites"``, the full model or the
"no human score" one) and, per fold, keeps its trained reader / encoder and outcome model as they are and refits
only the closed-form readouts on the fold's training patients, once per variant:

* ``ridge``: HAQ and pain ridge on the readout features, alone, with the visit's label-free joint anomaly
  (:mod:`raoutcome.training.site_anomaly`: the PCA fitted on the fold's training patients only) or with the
  visit's image measures (:mod:`raoutcome.imaging.visit_measures`: joint density and contrast, carpal height ratio);
* ``risk``: the Cox readout's inputs (subsets of ``log_jsn, log_erosion, haq, pain, joint_anomaly`` and the
  measures).

Each variant predicts the fold's test patients; the script prints the pooled out-of-fold HAQ R^2 (all visits with
an observed HAQ) and first-visit Harrell C (deformity), per fold and pooled, and the C of the out-of-fold anomaly
alone. The variant ``ridge = no, risk = the run's own`` reproduces the run's ``cv_predictions.nc``.

With ``--test-cohort DIR`` each variant also predicts an independent cohort by the fold ensemble (the mean of the
folds' outputs, as ``raoutcome predict`` does) and is scored there and on the out-of-fold patients and the test
cohort pooled (as the demo's "never seen" table), with a paired bootstrap over patients of each variant's pooled C
against the first variant's. ``--risk`` restricts the Cox variants (comma-separated inputs, one variant per value;
the ridges then read the run's own ``[readout] measures``).

Use it to CHOOSE readouts on a selection draw (not the cohorts that report them: the demo cohort and the learning
check's cohorts): issue-23's choice used ``raoutcome simulate --config cohorts/demo.toml`` with ``seed = 4242``.

    python analyses/site_readout_probe.py --run RUN --cohort COHORT [--out probe.json]
    python analyses/site_readout_probe.py --run RUN --cohort COHORT --test-cohort TEST \
        --risk log_erosion log_erosion,carpal_height_ratio
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

FULL_RISK = (("log_jsn", "log_erosion", "haq"), ("log_erosion", "haq"), ("log_erosion",),
             ("log_jsn", "log_erosion", "haq", "joint_anomaly"), ("log_erosion", "haq", "joint_anomaly"),
             ("log_erosion", "joint_anomaly"), ("log_jsn", "log_erosion", "haq", "pain", "joint_anomaly"))
NO_HUMAN_RISK = (("haq",), ("haq", "pain"), ("joint_anomaly",), ("haq", "joint_anomaly"),
                 ("haq", "pain", "joint_anomaly"))
MEASURE_NAMES = ("joint_density", "joint_contrast", "carpal_height_ratio")
MEASURE_RISK = (("log_erosion", *MEASURE_NAMES), ("log_erosion", "haq", *MEASURE_NAMES),
                ("log_erosion", "carpal_height_ratio"), ("log_erosion", "haq", "carpal_height_ratio"))
NO_HUMAN_MEASURE_RISK = (("haq", *MEASURE_NAMES), ("haq", "carpal_height_ratio"),
                         ("joint_anomaly", *MEASURE_NAMES))
RIDGE_EXTRAS = ((), ("joint_anomaly",), MEASURE_NAMES, ("joint_anomaly", *MEASURE_NAMES))


def _quiet(_msg: str) -> None:
    return None


def probe(run: Path, cohort_dir: Path, test_dir: Path | None = None,
          risk_variants: tuple[tuple[str, ...], ...] | None = None, bootstrap: int = 1000) -> dict:
    """Out-of-fold HAQ R^2 and first-visit C per readout variant (see the module docstring)."""
    import numpy as np
    import pandas as pd
    import torch

    from raoutcome.cohort import load
    from raoutcome.evaluation.survival_metrics import harrell_c
    from raoutcome.imaging.visit_measures import visit_measures
    from raoutcome.training.config import load_config
    from raoutcome.training.site_anomaly import anomaly_patches, fit_scorer, visit_anomaly
    from raoutcome.training.site_outcome_train import OutcomeData, _fit_readouts, predict_site_outcome
    from raoutcome.training.site_run import _load_outcome, _patches, _totals, load_site_models
    from raoutcome.training.site_train import SiteData, predict_sites

    cohort = load(cohort_dir)
    cfg = load_config(run / "config.resolved.toml")
    models = load_site_models(run)
    spec = models[0].spec
    sp = _patches(cohort, cfg, run)
    data = SiteData.build(sp, spec.sites, None)
    measures = visit_measures(sp, cohort, MEASURE_NAMES)
    views = sorted({s.split(":")[0] for s in spec.sites})
    reads = all(m.reads_joints for m in models)
    own = tuple(cfg.readout["risk_inputs"]) or None
    risks = (FULL_RISK + MEASURE_RISK) if reads else (NO_HUMAN_RISK + NO_HUMAN_MEASURE_RISK)
    if risk_variants:
        variants = [(tuple(cfg.readout["measures"]), r) for r in risk_variants]
    else:
        variants = [((), own)] + [(extras, r) for extras in RIDGE_EXTRAS for r in risks]
    needs_anomaly = not risk_variants or any("joint_anomaly" in (*e, *(r or ())) for e, r in variants)
    ap = anomaly_patches(cohort) if needs_anomaly else None
    preds: dict[int, list[pd.DataFrame]] = {i: [] for i in range(len(variants))}
    test_preds: dict[int, list[pd.DataFrame]] = {i: [] for i in range(len(variants))}
    anomaly_oof = []
    site_index = {s: i for i, s in enumerate(spec.sites)}
    if test_dir is not None:
        from raoutcome.imaging.site_patches import cohort_site_patches

        tcohort = load(test_dir)
        tsp = cohort_site_patches(tcohort, cfg.sites["grid"], cfg.sites["half_width"],
                                  views=cfg.model["views"] or None)
        tdata = SiteData.build(tsp, spec.sites, None)
        tmeasures = visit_measures(tsp, tcohort, MEASURE_NAMES)
        tap = anomaly_patches(tcohort) if needs_anomaly else None
        tpids = sorted(tcohort.visits["patient_id"].astype(str).unique())
    for m in models:
        rec = json.loads((m.fold_dir / "done.json").read_text())
        train = [str(p) for p in rec["train_ids"] + rec["val_ids"]]
        test = [str(p) for p in rec["test_ids"]]
        omodel = _load_outcome(m.fold_dir)
        frame, h = predict_sites(m, data, embeddings=True)
        totals = _totals(cohort, frame if reads else None, views)
        scorer = fit_scorer(ap, train) if needs_anomaly else None
        anomaly = visit_anomaly(scorer, ap) if needs_anomaly else None
        if needs_anomaly:
            anomaly_oof.append(anomaly[anomaly["patient_id"].isin(set(test))])
        od = OutcomeData.build(cohort, data.table, site_index, totals,
                               cfg.survival["event"], anomaly=anomaly, measures=measures)
        ht = torch.from_numpy(h)
        if test_dir is not None:
            tframe, th = predict_sites(m, tdata, embeddings=True)
            tod = OutcomeData.build(tcohort, tdata.table, site_index, _totals(tcohort, tframe if reads else None, views),
                                    None, anomaly=visit_anomaly(scorer, tap) if needs_anomaly else None,
                                    measures=tmeasures)
            tht = torch.from_numpy(th)
        for i, (extras, risk) in enumerate(variants):
            risk = risk or tuple(x for x in ("log_jsn", "log_erosion", "haq", "pain") if reads or "log_" not in x)
            omodel.readouts = _fit_readouts(omodel, od, ht, train, _quiet, "probe", risk, extras=extras)
            preds[i].append(predict_site_outcome(omodel, od, ht, test).assign(fold=rec["fold"]))
            if test_dir is not None:
                test_preds[i].append(predict_site_outcome(omodel, tod, tht, tpids)[["patient_id", "visit_id", "haq",
                                                                                     "risk"]])
    visits = cohort.visits.astype({"patient_id": str, "visit_id": str})
    events = cohort.event_table(cfg.survival["event"]).astype({"patient_id": str}).set_index("patient_id")

    def score(p: pd.DataFrame, column: str = "risk", haq: bool = True) -> dict:
        m = p.merge(visits[["patient_id", "visit_id", "time_years", "haq"]].rename(columns={"haq": "obs_haq"}),
                    on=["patient_id", "visit_id"])
        out = {}
        if haq:
            ok = m[["haq", "obs_haq"]].dropna()
            y, yhat = ok["obs_haq"].to_numpy(), ok["haq"].to_numpy()
            out["haq_r2"] = float(1 - ((y - yhat) ** 2).sum() / ((y - y.mean()) ** 2).sum())
        first = m.sort_values(["patient_id", "time_years"]).groupby("patient_id").head(1).set_index("patient_id")
        first = first[np.isfinite(first[column])]
        ev = events.loc[first.index]
        out["c_index"] = float(harrell_c(ev["time_years"], ev["observed"], first[column].to_numpy()))
        return out

    rows = []
    for i, (extras, risk) in enumerate(variants):
        pooled = pd.concat(preds[i], ignore_index=True)
        rows.append({"ridge_extras": list(extras), "risk_inputs": list(risk) if risk else "run's own",
                     **score(pooled), "per_fold": [{"fold": int(f), **score(g)} for f, g in pooled.groupby("fold")]})
    alone = (score(pd.concat(anomaly_oof, ignore_index=True), column="joint_anomaly", haq=False)["c_index"]
             if anomaly_oof else float("nan"))
    res = {"run": str(run), "cohort": str(cohort_dir), "reads_joints": reads, "anomaly_alone_c": alone,
           "variants": rows}
    if test_dir is not None:
        res["test_cohort"] = str(test_dir)
        res["never_seen"] = _never_seen(preds, test_preds, cohort, tcohort, cfg.survival["event"], bootstrap)
        for row, extra in zip(rows, res["never_seen"]):
            row.update(extra)
    return res


def _first_visit_risk(frames, cohort, event: str, tag: str):
    """(patient, time, observed, risk) at each patient's first visit with a finite risk; ids prefixed by ``tag``."""
    import numpy as np
    import pandas as pd

    p = pd.concat(frames, ignore_index=True).groupby(["patient_id", "visit_id"], as_index=False)["risk"].mean()
    v = cohort.visits.astype({"patient_id": str, "visit_id": str})[["patient_id", "visit_id", "time_years"]]
    p = p.merge(v, on=["patient_id", "visit_id"]).sort_values(["patient_id", "time_years"])
    first = p[np.isfinite(p["risk"])].groupby("patient_id").head(1).set_index("patient_id")
    ev = cohort.event_table(event).astype({"patient_id": str}).set_index("patient_id").loc[first.index]
    return pd.DataFrame({"patient": tag + first.index, "time": ev["time_years"].to_numpy(float),
                         "observed": ev["observed"].to_numpy(float), "risk": first["risk"].to_numpy(float)})


def _never_seen(preds, test_preds, cohort, tcohort, event: str, bootstrap: int) -> list[dict]:
    """Per variant: C on the test cohort (fold-ensemble mean risk), on out-of-fold + test pooled, and the paired
    bootstrap (patients resampled) of the pooled C's gain over the first variant."""
    import numpy as np
    import pandas as pd

    from raoutcome.evaluation.survival_metrics import harrell_c

    tables = []
    for i in sorted(preds):
        oof = _first_visit_risk(preds[i], cohort, event, "oof:")
        test = _first_visit_risk(test_preds[i], tcohort, event, "test:")
        tables.append((test, pd.concat([oof, test], ignore_index=True)))
    base = tables[0][1].set_index("patient")
    rng = np.random.default_rng(0)
    draws = [rng.integers(0, len(base), len(base)) for _ in range(bootstrap)]
    out = []
    for test, pooled in tables:
        pooled = pooled.set_index("patient").loc[base.index]
        c = harrell_c(pooled["time"], pooled["observed"], pooled["risk"].to_numpy())
        gains = np.array([harrell_c(pooled["time"].iloc[d], pooled["observed"].iloc[d], pooled["risk"].to_numpy()[d])
                          - harrell_c(base["time"].iloc[d], base["observed"].iloc[d], base["risk"].to_numpy()[d])
                          for d in draws]) if bootstrap else np.zeros(0)
        out.append({"test_c": float(harrell_c(test["time"], test["observed"], test["risk"].to_numpy())),
                    "never_seen_c": float(c), "n_never_seen": int(len(pooled)),
                    "gain_over_first": float(c - harrell_c(base["time"], base["observed"], base["risk"].to_numpy())),
                    "p_gain_positive": float((gains > 0).mean()) if bootstrap else float("nan")})
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run", type=Path, required=True)
    ap.add_argument("--cohort", type=Path, required=True)
    ap.add_argument("--test-cohort", type=Path, help="an independent cohort the fold ensemble predicts")
    ap.add_argument("--risk", nargs="+", help="Cox variants to try, each comma-separated inputs (default: all)")
    ap.add_argument("--bootstrap", type=int, default=1000)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    risks = tuple(tuple(r.split(",")) for r in args.risk) if args.risk else None
    res = probe(args.run, args.cohort, args.test_cohort, risks, args.bootstrap)
    print(f"{res['run']} ({'full' if res['reads_joints'] else 'no human score'}); anomaly alone C "
          f"{res['anomaly_alone_c']:.3f}")
    print(f"{'ridge extras':>13}  {'risk inputs':<55} {'HAQ R2':>7} {'C':>6}   per fold R2 / C")
    for r in res["variants"]:
        folds = "  ".join(f"{f['haq_r2']:.3f}/{f['c_index']:.3f}" for f in r["per_fold"])
        extras = {0: "none", 1: "joint_anomaly", 3: "measures", 4: "anomaly+meas."}[len(r["ridge_extras"])]
        seen = (f"   test C {r['test_c']:.4f}, never seen C {r['never_seen_c']:.4f} (n {r['n_never_seen']}, gain "
                f"{r['gain_over_first']:+.4f}, P(gain > 0) {r['p_gain_positive']:.3f})" if "test_c" in r else "")
        print(f"{extras:>13}  {str(r['risk_inputs']):<55} {r['haq_r2']:7.3f} "
              f"{r['c_index']:6.3f}   {folds}{seen}")
    if args.out:
        from raoutcome.io_utils import atomic_write

        with atomic_write(args.out) as fh:
            json.dump(res, fh, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
