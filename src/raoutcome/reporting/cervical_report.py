"""The RA cervical study report: measurement agreement, deformity prediction, one patient's images.

Reads what :func:`raoutcome.workflows.cervical_study.run_study` wrote (``results.json``, the measured and
true tables, the held-out cohort) and draws; computes no statistics of its own.
"""
from __future__ import annotations

__all__ = ["measurement_figure", "prediction_figure", "patient_figure", "write_cervical_report", "SEED_METRICS"]

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from raoutcome.reporting.html import Figure, KeyNumbers, Section, Table, Text, write_report  # noqa: E402

#: seeds/004 (Lebouille-Veldman et al. 2025, 67 validation patients): accuracy, PPV, NPV
SEED_METRICS = {"accuracy": 0.84, "ppv": 0.56, "npv": 0.92}


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def measurement_figure(measured: pd.DataFrame, truth: pd.DataFrame, agree: pd.DataFrame) -> bytes:
    """Measured vs true ADI and SAC (held-out radiographs), with the cut-offs and the ±1 mm band; Bland–Altman
    for ADI with the bias and limits of agreement of ``agree`` (neutral view)."""
    j = measured.merge(truth, on="path", suffixes=("", "_true"))
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.2))
    for ax, m, cut in ((axes[0], "adi_mm", 3.0), (axes[1], "sac_mm", 14.0)):
        for view, mk in (("cervical_neutral", "o"), ("cervical_flexion", "^")):
            s = j[j["view"] == view]
            ax.scatter(s[f"{m}_true"], s[m], s=10, marker=mk, alpha=0.6, label=view.split("_")[1])
        lo, hi = float(np.nanmin(j[f"{m}_true"])) - 0.5, float(np.nanmax(j[f"{m}_true"])) + 0.5
        ax.plot([lo, hi], [lo, hi], "k-", lw=0.8)
        ax.fill_between([lo, hi], [lo - 1, hi - 1], [lo + 1, hi + 1], color="grey", alpha=0.15, label="±1 mm")
        ax.axvline(cut, color="tab:red", lw=0.7, ls="--")
        ax.axhline(cut, color="tab:red", lw=0.7, ls="--")
        ax.set_xlabel(f"true {m[:-3].upper()} (mm)")
        ax.set_ylabel(f"measured {m[:-3].upper()} (mm)")
        ax.legend(fontsize=8)
    d = (j["adi_mm"] - j["adi_mm_true"]).to_numpy(float)
    mean = (j["adi_mm"] + j["adi_mm_true"]).to_numpy(float) / 2
    axes[2].scatter(mean, d, s=8, alpha=0.6)
    ba = agree[(agree["measure"] == "adi_mm") & (agree["view"] == "cervical_neutral")]
    for y in (ba[["bias", "loa_low", "loa_high"]].to_numpy(float).ravel() if len(ba) else ()):
        axes[2].axhline(y, color="k", lw=0.7, ls="--")
    axes[2].set_xlabel("mean of measured and true ADI (mm)")
    axes[2].set_ylabel("measured - true ADI (mm)")
    axes[2].set_title("Bland–Altman, ADI")
    return _png(fig)


def prediction_figure(metrics: pd.DataFrame) -> bytes:
    """Accuracy, PPV, NPV (with CIs) per feature set next to the seed's values; C-index and td-AUC."""
    names = [f"{f}\n({r})" if "threshold_rule" in metrics else f
             for f, r in zip(metrics["features"], metrics.get("threshold_rule", metrics["features"]))]
    fig, axes = plt.subplots(1, 2, figsize=(max(12.0, 0.9 * len(names)), 4.5))
    x = np.arange(len(names))
    for k, (m, colour) in enumerate((("accuracy", "tab:blue"), ("ppv", "tab:orange"), ("npv", "tab:green"))):
        est = metrics[m].to_numpy(float)
        err = np.vstack([est - metrics[f"{m}_lo"].to_numpy(float), metrics[f"{m}_hi"].to_numpy(float) - est])
        axes[0].errorbar(x + (k - 1) * 0.22, est, yerr=np.abs(err), fmt="o", color=colour, label=m.upper(), capsize=3)
        axes[0].axhline(SEED_METRICS[m], color=colour, lw=0.8, ls=":")
    axes[0].set_xticks(x, names, rotation=60, ha="right", fontsize=7)
    axes[0].set_ylim(0, 1.02)
    axes[0].set_title("held-out, at the horizon (dotted: seeds/004)")
    axes[0].legend(fontsize=8)
    for k, (m, colour) in enumerate((("c_interval", "tab:purple"), ("td_auc", "tab:brown"))):
        est = metrics[m].to_numpy(float)
        err = np.vstack([est - metrics[f"{m}_lo"].to_numpy(float), metrics[f"{m}_hi"].to_numpy(float) - est])
        axes[1].errorbar(x + (k - 0.5) * 0.25, est, yerr=np.abs(err), fmt="s", color=colour, capsize=3,
                         label={"c_interval": "C-index (interval-censored)", "td_auc": "td-AUC at horizon (competing)"}[m])
    axes[1].axhline(0.5, color="grey", lw=0.7)
    axes[1].set_xticks(x, names, rotation=60, ha="right", fontsize=7)
    axes[1].set_ylim(0.4, 1.0)
    axes[1].legend(fontsize=8)
    return _png(fig)


def patient_figure(cohort: Path, patient: str, measured: pd.DataFrame | None = None) -> bytes:
    """One patient's baseline neutral and flexion radiographs (detected landmarks) and mid-sagittal T1/T2."""
    from raoutcome.imaging.io import read_image
    from raoutcome.imaging.volume import read_volume

    images = pd.read_csv(cohort / "images.csv")
    im = images[(images["patient_id"] == patient) & (images["visit_id"] == "v0")].set_index("view")["path"]
    fig, axes = plt.subplots(1, 4, figsize=(15, 4))
    for ax, view in zip(axes[:2], ("cervical_neutral", "cervical_flexion")):
        ax.imshow(read_image(cohort / im[view]).pixels, cmap="gray")
        if measured is not None:
            row = measured[measured["path"] == im[view]]
            if len(row):
                r = row.iloc[0]
                for name in ("C1A", "DA", "DP", "C1P"):
                    ax.plot(r[f"{name}_x"], r[f"{name}_y"], "r+", ms=7)
                ax.set_title(f"{view.split('_')[1]}: ADI {r['adi_mm']:.1f} mm, SAC {r['sac_mm']:.1f} mm", fontsize=9)
        ax.axis("off")
    for ax, c in zip(axes[2:], ("t1", "t2")):
        vol = read_volume(cohort / im[f"cervical_mr_{c}"]).array
        ax.imshow(vol[vol.shape[0] // 2], cmap="gray")
        ax.set_title(f"mid-sagittal {c.upper()}", fontsize=9)
        ax.axis("off")
    return _png(fig)


def _fmt_ci(row: pd.Series, m: str) -> str:
    return f"{row[m]:.2f} ({row[f'{m}_lo']:.2f}–{row[f'{m}_hi']:.2f})"


def write_cervical_report(out: Path, results: dict) -> Path:
    """``out/report.html`` from a finished study folder."""
    out = Path(out)
    agree = pd.DataFrame(results["measurement_agreement"])
    metrics = pd.DataFrame(results["prediction"])
    mt = pd.read_csv(out / "measured_test.csv")
    truth = pd.read_csv(out / "test" / "truth" / "measurements.csv")
    adi = agree[agree["measure"] == "adi_mm"]
    key = [(f"ADI within 1 mm ({r.view.split('_')[1]})", f"{100 * r.within_1mm:.1f} %", f"n = {r.n}; target ≥ 90 %")
           for r in adi.itertuples()]
    sections = [
        Section("measure", "Atlantoaxial measurements on held-out radiographs",
                "ADI and SAC in millimetres from detected landmarks (heatmap detector trained on the training "
                "seed's radiographs), against the phantom's truth; AAS at ADI > 3 mm / SAC < 14 mm "
                "(textbook cut-offs). Sensitivity and specificity are of the measured class against the true class.",
                [KeyNumbers(key), Figure(measurement_figure(mt, truth, agree), "Measured vs true ADI and SAC; dashed red: "
                                         "cut-offs; grey band ±1 mm. Right: Bland–Altman for ADI (dashed: neutral-view bias and 95 % limits)."),
                 Table(agree, "Agreement per view and measure (mm).")]),
        Section("predict", "Deformity by the horizon from baseline images",
                "Trained on the training seed's patients, reported on the held-out seed's. Dotted lines: seeds/004 "
                "(accuracy 0.84, PPV 0.56, NPV 0.92 on 67 patients). The 'truth (ceiling)' row uses the simulator's "
                "baseline latents: what an image model could at best reach; the rest is the unseen frailty. Two "
                "decision thresholds, both from the training patients: the most accurate one (specified first; with "
                "a 15 % prevalence it can predict nobody positive) and the one predicting as many positives as "
                "there were training events (added after seeing that). C-index and td-AUC do not depend on it.",
                [Figure(prediction_figure(metrics), "Point estimates with patient-bootstrap 95 % CIs."),
                 Table(pd.DataFrame({"features": metrics["features"],
                                     "threshold": metrics.get("threshold_rule", pd.Series("", index=metrics.index)),
                                     **{m.upper() if len(m) <= 3 else m: [_fmt_ci(r, m) for _, r in metrics.iterrows()]
                                        for m in ("accuracy", "ppv", "npv", "auroc", "c_interval", "c_competing", "td_auc")},
                                     "calibration ICI": metrics.get("calibration_ici", pd.Series(dtype=float)),
                                     "events / known": [f"{r.events_by_horizon} / {r.n_known}" for r in metrics.itertuples()]}),
                       "Held-out metrics (95 % CI). C-index: interval-censored (definite pairs); C competing: "
                       "Wolbers; td-AUC: cumulative/dynamic at the horizon with death as a competing event.")]),
    ]
    test = out / "test"
    ev = pd.read_csv(test / "events.csv")
    found = ev[(ev["event"] == "deformity") & (ev["observed"] == 1)]["patient_id"]
    if len(found):
        pid = str(found.iloc[0])
        sections.append(Section("patient", f"One held-out patient ({pid}): baseline images",
                                "This patient's deformity was found at a follow-up visit. Red crosses: the detected "
                                "atlantoaxial landmarks.",
                                [Figure(patient_figure(test, pid, mt), "Baseline neutral and flexion radiographs, "
                                        "mid-sagittal T1 and T2.")]))
    sections.append(Section("notes", "What this is and is not", "", [Text(
        "All images are simulated (raoutcome.synth.cervical); the numbers show that the pipeline measures and "
        "predicts what the simulator planted, not clinical performance. "
        + ("Rows '<set> + prior' are the longitudinal model: the baseline features and their slopes per year since "
           "the images before baseline, on the same patients as the baseline-only rows."
           if metrics["features"].astype(str).str.contains("+ prior", regex=False).any() else
           "The cohorts have no images before baseline, so the longitudinal model was not fitted: the "
           "prediction reads baseline images only."), "note")]))
    return write_report(out / "report.html", "RA cervical spine: craniocervical deformity and atlantoaxial subluxation",
                        sections, subtitle=[f"horizon {results['study']['horizon_years']} years; "
                                            f"train seed {results['study']['train_seed']}, held-out seed "
                                            f"{results['study']['test_seed']}"])
