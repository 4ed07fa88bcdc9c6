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

Use it to CHOOSE readouts on a selection draw (not the cohorts that report them: the demo cohort and the learning
check's cohorts): issue-23's choice used ``raoutcome simulate --config cohorts/demo.toml`` with ``seed = 4242``.

    python analyses/site_readout_probe.py --run RUN --cohort COHORT [--out probe.json]
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


def probe(run: Path, cohort_dir: Path) -> dict:
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
    ap = anomaly_patches(cohort)
    reads = all(m.reads_joints for m in models)
    own = tuple(cfg.readout["risk_inputs"]) or None
    risks = (FULL_RISK + MEASURE_RISK) if reads else (NO_HUMAN_RISK + NO_HUMAN_MEASURE_RISK)
    variants = [((), own)] + [(extras, r) for extras in RIDGE_EXTRAS for r in risks]
    preds: dict[int, list[pd.DataFrame]] = {i: [] for i in range(len(variants))}
    anomaly_oof = []
    for m in models:
        rec = json.loads((m.fold_dir / "done.json").read_text())
        train = [str(p) for p in rec["train_ids"] + rec["val_ids"]]
        test = [str(p) for p in rec["test_ids"]]
        omodel = _load_outcome(m.fold_dir)
        frame, h = predict_sites(m, data, embeddings=True)
        totals = _totals(cohort, frame if reads else None, views)
        scorer = fit_scorer(ap, train)
        anomaly = visit_anomaly(scorer, ap)
        anomaly_oof.append(anomaly[anomaly["patient_id"].isin(set(test))])
        od = OutcomeData.build(cohort, data.table, {s: i for i, s in enumerate(spec.sites)}, totals,
                               cfg.survival["event"], anomaly=anomaly, measures=measures)
        ht = torch.from_numpy(h)
        for i, (extras, risk) in enumerate(variants):
            risk = risk or tuple(x for x in ("log_jsn", "log_erosion", "haq", "pain") if reads or "log_" not in x)
            omodel.readouts = _fit_readouts(omodel, od, ht, train, _quiet, "probe", risk, extras=extras)
            preds[i].append(predict_site_outcome(omodel, od, ht, test).assign(fold=rec["fold"]))
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
    alone = score(pd.concat(anomaly_oof, ignore_index=True), column="joint_anomaly", haq=False)
    return {"run": str(run), "cohort": str(cohort_dir), "reads_joints": reads, "anomaly_alone_c": alone["c_index"],
            "variants": rows}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run", type=Path, required=True)
    ap.add_argument("--cohort", type=Path, required=True)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    res = probe(args.run, args.cohort)
    print(f"{res['run']} ({'full' if res['reads_joints'] else 'no human score'}); anomaly alone C "
          f"{res['anomaly_alone_c']:.3f}")
    print(f"{'ridge extras':>13}  {'risk inputs':<55} {'HAQ R2':>7} {'C':>6}   per fold R2 / C")
    for r in res["variants"]:
        folds = "  ".join(f"{f['haq_r2']:.3f}/{f['c_index']:.3f}" for f in r["per_fold"])
        extras = {0: "none", 1: "joint_anomaly", 3: "measures", 4: "anomaly+meas."}[len(r["ridge_extras"])]
        print(f"{extras:>13}  {str(r['risk_inputs']):<55} {r['haq_r2']:7.3f} "
              f"{r['c_index']:6.3f}   {folds}")
    if args.out:
        from raoutcome.io_utils import atomic_write

        with atomic_write(args.out) as fh:
            json.dump(res, fh, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
