"""Benchmark: the site route's ``predict`` throughput vs its bare patch-encoder forward over the same patches.

Side by side in one process, on one simulated cohort (``cohorts/demo.toml`` shrunk to ``--patients``), with a
site run of one fold model (random weights: throughput does not depend on them) and its outcome model:

* **bare encoder**: ``SiteModel.encode`` (the timm patch encoder alone), inference mode, on the cohort's site
  patches already in memory, in batches of 32 visits' patches (what one predict batch holds);
* **predict**: :func:`raoutcome.training.site_run.predict_site_run` with the patch cache warm (as a second
  ``raoutcome predict`` on a cohort finds it): cached patches -> encoder + site identity + attention over the
  visit's sites -> ordinal heads -> per-joint probabilities, expected scores and SDs -> visit totals with SDs ->
  outcome model (attention over sites, longitudinal aggregator, readouts) -> Predictions with the ``joint``
  dimension written to netCDF. Where the config's readouts read the joint anomaly (``[readout] joint_anomaly``),
  the outcome model carries a fitted anomaly scorer, so predict also cuts the cohort's anomaly patches and scores
  every visit, as a run of that config does (``--no-anomaly``: without it); where they read image measures
  (``[readout] measures``), predict computes them for every visit, as a run does.

Ratio = predict patches/s / bare patches/s; target >= 0.9. For scale the bench also times the whole site model's
forward over the same batches (encoder, site identity, the attention over a visit's sites, the ordinal heads):
predict cannot run faster than it. Each is timed ``--repeats`` times, alternating, and the best of each kept.
Single-threaded torch by default (``--threads``). The ratio is given on wall-clock time (the target's) and on the
process's CPU time, which a machine shared with other jobs disturbs less; report the load average beside both.
Figures, and where predict's time over the encoder goes: ``docs/site_level.md`` ("Predict speed").

Default 150 patients (~1 000 images, ~24 000 patches): a throughput at cohort scale, where predict's fixed
per-call costs (loading the fold models, ~0.03 s) are spread as in use. At 60 patients they weigh ~2 % more and
the ratio scatters around the target (docs/site_level.md, "Predict speed").

    python benchmarks/bench_site_predict.py [--patients 150] [--repeats 3]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

TARGET = 0.9
REPO = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patients", type=int, default=150)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--config", type=Path, default=REPO / "cohorts" / "train_sites.toml")
    ap.add_argument("--no-anomaly", action="store_true",
                    help="outcome model without the joint-anomaly scorer even where the config's readouts read it")
    args = ap.parse_args(argv)

    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    from raoutcome.cohort import load
    from raoutcome.imaging.site_patches import site_names
    from raoutcome.models.site_model import SiteModel
    from raoutcome.models.site_outcome import SiteOutcomeModel, SiteOutcomeSpec
    from raoutcome.synth import simulate
    from raoutcome.synth.config import load_config as load_sim
    from raoutcome.training import checkpoint as ckpt
    from raoutcome.training.config import load_config
    from raoutcome.training import site_run
    from raoutcome.training.site_run import SITE_MODEL, SITE_OUTCOME, _patches, site_settings
    from raoutcome.training.site_train import SiteData

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        sim = replace(load_sim(REPO / "cohorts" / "demo.toml"), n_patients=args.patients, workers=1)
        simulate(config=sim, out_dir=tmp / "cohort", seed=7)
        cohort = load(tmp / "cohort")
        cfg = load_config(args.config)
        run = tmp / "run"
        (run / "fold_0").mkdir(parents=True)
        (run / "config.resolved.toml").write_text(cfg.to_toml())
        spec, _ = site_settings(cfg)
        spec = replace(spec, sites=site_names(sorted(cohort.images["view"].unique())))
        torch.manual_seed(0)
        model = SiteModel(spec).eval()
        ckpt.save({"spec": spec.to_dict(), "model": model.state_dict(), "record": {}}, run / "fold_0" / SITE_MODEL)
        ospec = SiteOutcomeSpec(n_sites=len(spec.sites), site_dim=spec.d_model, d_model=cfg.model["d_model"],
                                layers=cfg.model["layers"])
        outcome = SiteOutcomeModel(ospec).eval()
        extra = {}
        anomaly = bool(cfg.readout.get("joint_anomaly")) and not args.no_anomaly
        if anomaly:  # as a run of this config: the fold's scorer is saved with its outcome model
            from raoutcome.training.site_anomaly import anomaly_patches, fit_scorer, scorer_state

            scorer = fit_scorer(anomaly_patches(cohort), sorted(cohort.visits["patient_id"].astype(str).unique()))
            extra["anomaly"] = scorer_state(scorer)
        # where the config's readouts read the visit's image measures, predict computes them for every visit (the
        # readouts' measure_fill names them); applying three more ridge coefficients costs nothing measurable
        readouts = {"measure_fill": {m: 0.0 for m in cfg.readout["measures"]}} if cfg.readout["measures"] else {}
        ckpt.save({"spec": ospec.to_dict(), "model": outcome.state_dict(), "readouts": readouts, "record": {}, **extra},
                  run / "fold_0" / SITE_OUTCOME)
        sp = _patches(cohort, cfg, run)  # fills the patch cache (as the first predict does)
        data = SiteData.build(sp, spec.sites, None)
        n = len(data.table)
        batches = list(data.batches(32))

        def bare() -> tuple[float, float]:
            t, c = time.perf_counter(), time.process_time()
            with torch.inference_mode():
                for idx in batches:
                    model.encode(data.patches[idx])
            return time.perf_counter() - t, time.process_time() - c

        from raoutcome.training.site_train import visit_layout

        layouts = [(idx, data.site[idx], *visit_layout(data.visit[idx])) for idx in batches]

        def forward() -> tuple[float, float]:  # the whole site model: encoder, site identity, attention, heads
            t, c = time.perf_counter(), time.process_time()
            with torch.inference_mode():
                for idx, site, group, position, groups in layouts:
                    model(data.patches[idx], site, group, position, groups)
            return time.perf_counter() - t, time.process_time() - c

        def predict() -> tuple[float, float]:
            t, c = time.perf_counter(), time.process_time()
            site_run.predict_site_run(run, cohort, cfg, tmp / "p.nc")
            return time.perf_counter() - t, time.process_time() - c

        bare(), forward(), predict()  # warm-up
        tb, tp, cb, cp, tf, cf = [], [], [], [], [], []
        for _ in range(args.repeats):
            (w, c), (w1, c1), (w2, c2) = bare(), forward(), predict()
            tb.append(w), cb.append(c), tf.append(w1), cf.append(c1), tp.append(w2), cp.append(c2)
        rb, rp = n / min(tb), n / min(tp)
        ratio = rp / rb
        print(f"site route predict ({'with' if anomaly else 'without'} the joint-anomaly readout input): {n} patches "
              f"of {cohort.images.shape[0]} images ({args.threads} thread(s)); "
              f"bare patch encoder {rb:.0f} patches/s, predict {rp:.0f} patches/s, ratio {ratio:.2f} "
              f"(target >= {TARGET}) {'PASS' if ratio >= TARGET else 'FAIL'}")
        print(f"times (s): bare {np.round(tb, 2).tolist()}, predict {np.round(tp, 2).tolist()}")
        print(f"CPU time (s): bare {np.round(cb, 2).tolist()}, predict {np.round(cp, 2).tolist()}; ratio on CPU "
              f"time {min(cb) / min(cp):.2f}")
        print(f"informative: the whole site model's forward (encoder + site identity + attention over the visit's "
              f"sites + ordinal heads) takes {min(cf) / min(cb):.2f} x the bare encoder's CPU time; predict runs at "
              f"{min(cf) / min(cp):.2f} of the whole model's forward (CPU time), {min(tf) / min(tp):.2f} (wall)")
        return 0 if ratio >= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
