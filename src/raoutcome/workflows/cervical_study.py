"""The RA cervical study end to end (``raoutcome cervical study``): simulate, measure, predict, report.

Stages (each writes into ``out/`` and is skipped when its output exists, unless ``force``):

1. ``train/`` and ``test/``: two simulated cohorts (``study.train_seed``, ``study.test_seed``) from the
   ``[simulation]`` table of the config (``cohorts/ra_cervical.toml``);
2. ``detector.safetensors``: the craniocervical landmark detector trained on ``train/``'s radiographs;
3. ``detected_*.csv`` (cached) and ``measured_train.csv`` / ``measured_test.csv``: ADI, SAC, Ranawat, BDI,
   facet gap of every baseline neutral and flexion radiograph from detected landmarks; with
   ``study.refine_adi`` the ADI edges are refined and each view's mean ADI offset on the detector's
   validation patients (training seed) is subtracted; ``measurement_agreement.csv``:
   held-out measures against truth, uncertainty from the training residuals;
4. ``prediction_metrics.csv``: deformity by the horizon from baseline MR, radiograph, both (and the
   simulator's latents as the ceiling), trained on ``train/``, reported on ``test/``; when the cohorts have
   images before baseline (``simulation.prior_years``), the same four again with each feature's slope per
   year since the earlier images (``<set> + prior``, :mod:`raoutcome.workflows.cervical_longitudinal`;
   the earlier radiographs are measured like the baseline ones: ``detected_prior_*.csv``), on the same
   patients;
5. ``report.html`` and ``results.json``.

Settings were chosen on the training seed; the held-out seed is only ever predicted.
"""
from __future__ import annotations

__all__ = ["StudySettings", "load_study", "run_study"]

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from raoutcome.errors import ConfigError
from raoutcome.io_utils import atomic_write
from raoutcome.synth.cervical import MARKER, CervicalConfig, load_cervical_config, simulate_cervical


@dataclass(frozen=True)
class StudySettings:
    """The ``[study]`` table of the cervical study config."""

    train_seed: int = 101
    test_seed: int = 202
    n_train: int = 600
    n_test: int = 220
    horizon_years: float = 3.2
    detector_steps: int = 1200
    detector_size: int = 128
    detector_backbone: str = "efficientnet_lite0"
    bootstrap: int = 1000
    refine_adi: bool = True  # sub-pixel edge refinement of C1A/DA, its per-view offset removed (docs/craniocervical.md)


def load_study(path: str | Path | None) -> tuple[CervicalConfig, StudySettings]:
    """The simulator config and the study settings of a cervical study TOML (``None``: defaults)."""
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            import tomllib
        except ModuleNotFoundError:  # Python 3.10: the tomli backport (a dependency there)
            import tomli as tomllib  # type: ignore[no-redef]

        try:
            raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as err:
            raise ConfigError(f"{path}: cannot read the cervical study config ({err})") from err
    unknown = sorted(set(raw) - {"simulation", "study"})
    if unknown:
        raise ConfigError(f"{path}: unknown table(s) {unknown} (known: simulation, study)")
    study = dict(raw.get("study", {}))
    names = {f.name for f in dataclasses.fields(StudySettings)}
    bad = sorted(set(study) - names)
    if bad:
        raise ConfigError(f"study: unknown key(s) {bad} (known: {sorted(names)})")
    settings = StudySettings(**study)
    if not 0 < settings.horizon_years:
        raise ConfigError(f"study.horizon_years: must be positive (value: {settings.horizon_years!r})")
    return load_cervical_config(raw.get("simulation", {})), settings


def _write_csv(frame: pd.DataFrame, path: Path) -> None:
    with atomic_write(path, encoding="utf-8", newline="") as fh:
        frame.to_csv(fh, index=False)


def _cohort(sim: CervicalConfig, seed: int, n: int, out: Path, force: bool, log) -> Path:
    cfg = dataclasses.replace(sim, seed=seed, n_patients=n)
    marker = out / MARKER
    if marker.is_file() and not force:
        recorded = json.loads(marker.read_text())["config"]
        wanted = json.loads(json.dumps({k: v for k, v in dataclasses.asdict(cfg).items() if k != "extra"}))
        if recorded == wanted:
            log(f"cohort {out} exists (seed {seed}, {n} patients, same settings): kept")
            return out
    log(f"simulating {n} patients (seed {seed}) into {out}")
    return simulate_cervical(cfg, out)


def _longitudinal_sets(cl, cp, roots: dict, measured: dict, measured_prior: dict, ids: dict, feat,
                       mr: dict, xr: dict, latents: dict, log) -> dict[str, Any]:
    """The ``<set> + prior`` feature sets: baseline features and their slopes per year since the earlier
    images (:mod:`raoutcome.workflows.cervical_longitudinal`), for the patients of the baseline sets."""
    out: dict[str, Any] = {"mr + prior": [], "radiograph + prior": [], "both + prior": ("mr + prior", "radiograph + prior"),
                           "truth + prior (ceiling)": []}
    for part in ("train", "test"):
        root = roots[part]
        visits = ["v0", *sorted(set(cl.prior_images(root)["visit_id"]))]
        log(f"longitudinal features ({part}): visits {visits}")
        series = cl.radiograph_series(root, pd.concat([measured[part], measured_prior[part]], ignore_index=True), visits)
        out["radiograph + prior"].append(cl.with_slopes(xr[part], series))
        out["mr + prior"].append(cl.with_slopes(mr[part], cl.mr_series(root, ids[part], feat, visits)))
        lat = latents[part]
        cols = [c for c in lat.columns if c.endswith("_v0")]
        out["truth + prior (ceiling)"].append(pd.concat([lat, cl.slopes(cl.latent_series(root), cols).reindex(lat.index)],
                                                        axis=1))
    for key in ("mr + prior", "radiograph + prior", "truth + prior (ceiling)"):
        tr, te = out[key]
        bad = [part for part, x in (("train", tr), ("test", te)) if not np.isfinite(x.to_numpy(float)).all()]
        if bad:  # an earlier radiograph without a measure: its slope is unknown; impute the training median
            med = tr.median()
            tr, te = tr.fillna(med), te.fillna(med)
            log(f"{key}: missing slopes in {bad} imputed with the training median")
        out[key] = (tr, te)
    return out


def run_study(config: str | Path | None, out_dir: str | Path, *, force: bool = False,
              log: Callable[[str], None] = print) -> dict:
    """Run every stage; returns the results dictionary written to ``results.json``."""
    from raoutcome.analysis.craniocervical import with_uncertainty
    from raoutcome.cohort import load
    from raoutcome.models.landmarks import load_detector
    from raoutcome.workflows import cervical_longitudinal as cl
    from raoutcome.workflows import cervical_predict as cp
    from raoutcome.workflows.cervical_measure import (ADI_COLLAPSE_SIGMA, ADI_MIN_GAP_FRACTION, MEASURED_VIEWS,
                                                      adi_bias, agreement, correct_adi,
                                                      fit_cervical_detector, measure_images, measurement_sd)

    sim, st = load_study(config)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    train = _cohort(sim, st.train_seed, st.n_train, out / "train", force, log)
    test = _cohort(sim, st.test_seed, st.n_test, out / "test", force, log)

    det_path = out / "detector.safetensors"
    if force or not det_path.is_file():
        log(f"training the landmark detector ({st.detector_steps} steps)")
        fit_cervical_detector(train, det_path, steps=st.detector_steps, size=st.detector_size,
                              backbone=st.detector_backbone, seed=st.train_seed, log=log)
    model = load_detector(det_path)

    measured, measured_prior = {}, {}
    for name, root in (("train", train), ("test", test)):
        base_images = load(root).images
        base_images = base_images[(base_images["visit_id"] == "v0") & base_images["view"].isin(MEASURED_VIEWS)]
        prior_xr = cl.prior_images(root)
        prior_xr = prior_xr[prior_xr["view"].isin(MEASURED_VIEWS)]
        for key, images, store in (("", base_images, measured), ("prior_", prior_xr, measured_prior)):
            if images.empty and key:
                continue
            path = out / f"detected_{key}{name}.csv"  # the measures as detected (cached); measured_*.csv: corrected
            stamp = {"refine_adi": st.refine_adi, "min_gap_fraction": ADI_MIN_GAP_FRACTION,
                     "collapse_sigma": ADI_COLLAPSE_SIGMA,
                     "detector_bytes": det_path.stat().st_size, "detector_mtime_ns": det_path.stat().st_mtime_ns,
                     "images": len(images)}
            stamp_path = path.with_suffix(".json")
            stale = not stamp_path.is_file() or json.loads(stamp_path.read_text()) != stamp
            if force or stale or not path.is_file():
                log(f"measuring {len(images)} {name} radiographs{' before baseline' if key else ''}")
                _write_csv(measure_images(model, root, images, refine=st.refine_adi), path)
                with atomic_write(stamp_path, encoding="utf-8") as fh:
                    json.dump(stamp, fh)
            store[name] = pd.read_csv(path)
    truth = {name: pd.read_csv(root / "truth" / "measurements.csv") for name, root in (("train", train), ("test", test))}
    val_file = det_path.with_suffix(".validation.json")
    val_ids = set(json.loads(val_file.read_text())["validation_patients"]) if val_file.is_file() else set()
    held = measured["train"]["patient_id"].isin(val_ids) if val_ids else measured["train"]["patient_id"].notna()
    bias = adi_bias(measured["train"][held], truth["train"]) if st.refine_adi else {}
    measured = {k: correct_adi(v, bias) for k, v in measured.items()}
    measured_prior = {k: correct_adi(v, bias) for k, v in measured_prior.items()}
    for name, table in measured.items():
        _write_csv(table, out / f"measured_{name}.csv")
    sd = measurement_sd(measured["train"][held], truth["train"])  # the detector's validation patients: not trained on
    agree = agreement(measured["test"], truth["test"])
    _write_csv(agree, out / "measurement_agreement.csv")
    _write_csv(with_uncertainty(measured["test"], sd), out / "measured_test_with_uncertainty.csv")

    ev = {name: cp.event_table(root) for name, root in (("train", train), ("test", test))}
    xr = {name: cp.radiograph_features(measured[name]) for name in ("train", "test")}
    ids = {name: sorted(set(xr[name].dropna().index) & set(ev[name]["patient_id"])) for name in ("train", "test")}
    mr_train, feat = cp.mr_features(train, ids["train"])
    mr_test, _ = cp.mr_features(test, ids["test"], feat)
    tp = {name: pd.read_csv(root / "truth" / "patients.csv").set_index("patient_id")
          for name, root in (("train", train), ("test", test))}
    latents = ["pannus_v0", "facet_v0", "erosion_v0", "laxity_v0", "activity"]
    sets: dict[str, Any] = {
        "mr": (mr_train, mr_test),
        "radiograph": (xr["train"].loc[ids["train"]], xr["test"].loc[ids["test"]]),
        "both": ("mr", "radiograph"),  # stacked: the two scores (cross-fitted on training) side by side
        "truth (ceiling)": (tp["train"].loc[ids["train"], latents], tp["test"].loc[ids["test"], latents])}
    if len(measured_prior) == 2:  # images before baseline in both cohorts: the longitudinal model too
        long = _longitudinal_sets(cl, cp, {"train": train, "test": test}, measured, measured_prior, ids, feat,
                                  {"train": sets["mr"][0], "test": sets["mr"][1]},
                                  {"train": sets["radiograph"][0], "test": sets["radiograph"][1]},
                                  {"train": sets["truth (ceiling)"][0], "test": sets["truth (ceiling)"][1]}, log)
        sets.update(long)
    rows, preds, curves, scores = [], [], [], {}
    for name, pair in sets.items():
        if isinstance(pair[0], str):
            pair = tuple(pd.DataFrame({k: scores[k][part].set_index("patient_id")["score"] for k in pair})
                         for part in ("train", "test"))
        xtr, xte = pair
        log(f"deformity model: {name}")
        fit = cp.fit_predict(xtr, ev["train"], xte, st.horizon_years, seed=st.train_seed)
        scores[name] = fit
        hr = fit["cs_cox"].summary.iloc[0]
        weib = fit["weibull"].summary.iloc[0]
        for rule, threshold in fit["thresholds"].items():
            res = cp.evaluate(fit["test"], ev["test"], st.horizon_years, threshold, n_boot=st.bootstrap,
                              seed=st.test_seed)
            rows.append({"features": name, "threshold_rule": rule,
                         **{f"{k}{s}": v[key] for k, v in res.items() if "estimate" in v
                            for s, key in (("", "estimate"), ("_lo", "ci_low"), ("_hi", "ci_high"))},
                         **res["counts"], **{f"calibration_{k}": v for k, v in res["calibration"].items()},
                         "weibull_hr_per_score_sd": float(np.exp(weib["coef"] * fit["train"]["score"].std())),
                         "cs_cox_hr_per_score_sd": float(np.exp(hr["coef"] * fit["train"]["score"].std()))})
        preds.append(fit["test"].assign(features=name))
        grid = np.round(np.arange(0.25, 6.01, 0.25), 2)
        surv = fit["weibull"].predict_survival(fit["test"], grid)
        curves.append(pd.DataFrame({"features": name, "patient_id": np.repeat(fit["test"]["patient_id"].to_numpy(),
                                                                               len(grid)),
                                    "time_years": np.tile(grid, len(fit["test"])),
                                    "deformity_probability": (1.0 - surv).ravel()}))
    metrics = pd.DataFrame(rows)
    _write_csv(metrics, out / "prediction_metrics.csv")
    _write_csv(pd.concat(preds, ignore_index=True), out / "predictions_test.csv")
    _write_csv(pd.concat(curves, ignore_index=True), out / "risk_curves_test.csv")  # 1 - S(t), Weibull
    results = {"config": str(config) if config else None, "study": dataclasses.asdict(st),
               "measurement_sd_mm": sd, "adi_bias_correction_mm": bias, "measurement_agreement": agree.to_dict(orient="records"),
               "prediction": metrics.to_dict(orient="records"),
               "events": {name: {"patients": int(len(e)), "found_by_horizon": int(cp.horizon_status(e, st.horizon_years)[0].sum()),
                                 "found_ever": int(e["observed"].sum()), "deaths_first": int((e["status"] == 2).sum())}
                          for name, e in ev.items()}}
    with atomic_write(out / "results.json", encoding="utf-8") as fh:
        json.dump(results, fh, indent=2, default=float)
    from raoutcome.reporting.cervical_report import write_cervical_report

    write_cervical_report(out, results)
    log(f"report written to {out / 'report.html'}")
    return results
