"""The AS (mSASSS) study report: endpoints, power, the cumulative probability plot, and agreement with the truth.

Reads what :func:`raoutcome.workflows.spine_study.run_spine_study` wrote (``endpoints.csv``, ``power.csv``,
``changes.csv``, ``totals.csv``, ``agreement.json``, ``outcomes_*.csv``, ``corner_atlas.npz``) and draws; computes no statistics of its own.
"""
from __future__ import annotations

__all__ = ["change_figure", "write_spine_report"]

import io
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from raoutcome.reporting.html import Figure, KeyNumbers, Section, Table, Text, write_report  # noqa: E402


def change_figure(changes: pd.DataFrame, totals: pd.DataFrame) -> bytes:
    """Cumulative probability plot of each endpoint's change (standardised by its SD, so the two scales
    compare), and the learned total against the human total per visit."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for col in [c for c in changes.columns if c != "patient_id"]:
        x = np.sort(changes[col].to_numpy(float))
        sd = x.std(ddof=1) or 1.0
        axes[0].plot(x / sd, np.arange(1, len(x) + 1) / len(x), label=col)
    axes[0].axvline(0, color="grey", lw=0.8)
    axes[0].set_xlabel("change / SD of change")
    axes[0].set_ylabel("cumulative probability")
    axes[0].legend(frameon=False)
    if "msasss" in totals and totals["msasss"].notna().any():
        axes[1].scatter(totals["msasss"], totals["msasss_learned"], s=8, alpha=0.6)
        axes[1].plot([0, 72], [0, 72], color="grey", lw=0.8)
        axes[1].set_xlabel("human mSASSS")
        axes[1].set_ylabel("learned mSASSS")
    else:
        axes[1].hist(totals["msasss_learned"].dropna(), bins=30)
        axes[1].set_xlabel("learned mSASSS")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def write_spine_report(folder: str | Path) -> Path:
    """``folder/report.html`` from the study's tables."""
    folder = Path(folder)
    ends = pd.read_csv(folder / "endpoints.csv")
    power = pd.read_csv(folder / "power.csv")
    changes = pd.read_csv(folder / "changes.csv")
    totals = pd.read_csv(folder / "totals.csv")
    retest_path = folder / "retest.csv"
    retest = pd.read_csv(retest_path) if retest_path.is_file() else pd.DataFrame()
    keys = [(row.endpoint, f"{row.srm:.2f}", "SRM") for row in ends.itertuples()]
    keys += [(f"SDC, {row.endpoint}", f"{row.sdc:.2f}", row.sdc_design) for row in ends.itertuples()
             if np.isfinite(row.sdc) and "sdc_design" in ends]
    keys += [(f"power, {row.endpoint}", f"{row.power:.2f}", f"{int(row.n_per_arm)} per arm, progression "
              f"x {1 - row.effect:g}") for row in power.itertuples()]
    n = int(power["n_per_arm"].iloc[0]) if len(power) else 0
    retest_blocks = [Table(retest, caption="SDC = 1.96 × SD(difference of the two change scores) / √2, per "
                                           "test-retest design")] if len(retest) else \
        [Text("No retest in this cohort (no retest.csv, no reimaged/ folder): SDC not measured.", kind="note")]
    sections = [
        Section("endpoints", "Change endpoints",
                intro="Change from the first visit to the visit nearest 2 years. The learned change score sums the "
                      "change of each corner's expected grade over the corners scorable at both visits (scaled to "
                      "24 corners); the human change is the mSASSS of the cohort's reading. Both on the same "
                      "patients and visits. SDC: the human change's from the second reading of the same films, the "
                      "learned score's from the same visits imaged again (see Measurement error).",
                blocks=[KeyNumbers(keys), Table(ends, caption="Endpoints (SRM, SDC, progressors, patients per arm)"),
                        Figure(change_figure(changes, totals), caption="Left: cumulative probability of each "
                               "standardised change score. Right: learned vs human total per visit.")]),
        Section("retest", "Measurement error (test-retest)",
                intro="Each change score computed twice over the same patients and visits: the human mSASSS from "
                      "two readings of the same films (re-reading), the learned score (and the human reading) from "
                      "a second acquisition of every film of those visits (re-imaging: a model reads one film the "
                      "same way twice, so only a new film measures its error).",
                blocks=retest_blocks),
        Section("power", "Power of a two-arm trial",
                intro=f"{n} patients per arm, the treatment shrinking progression by the stated fraction, two-sided "
                      "α = 0.05. 'power': simulated trials (patients' change scores resampled into two arms, the "
                      "treated arm's changes scaled, Welch t-test). 'power_ttest': statsmodels' two-sample t-test "
                      "power at the standardized difference effect_size_d = f·SRM / √((1 + (1 − f)²)/2).",
                blocks=[Table(power, caption="Power per endpoint (simulated and closed form)")]),
    ]
    from raoutcome.reporting.spine_outcomes_section import outcome_sections

    sections.extend(outcome_sections(folder))
    from raoutcome.reporting.corner_attribution_section import attribution_section

    sections.append(attribution_section(folder))
    agree = folder / "agreement.json"
    if agree.is_file():
        a = json.loads(agree.read_text())
        rows = [{"reading": k, **{m: a[k].get(m, np.nan) for m in ("accuracy_4", "grade3_vs_rest", "within_1",
                                                                      "scorable_accuracy", "total_r")}}
                for k in ("reader", "human")]
        conf = pd.DataFrame(a["reader"]["confusion"]).T
        conf.index.name = "truth"
        sections.append(Section(
            "agreement", "Agreement with the simulation's truth",
            intro="Per-corner grades against the simulator's truth (corners scorable in truth and called scorable).",
            blocks=[Table(pd.DataFrame(rows), caption="Reader and human reading against the truth"),
                    Table(conf.reset_index(), caption="Confusion of the reader (rows truth, columns predicted)"),
                    Table(pd.DataFrame(a["per_lesion"]), caption="Per-lesion accuracy (reader, human)")]))
    else:
        sections.append(Section("agreement", "Agreement", blocks=[Text("No simulation truth in this cohort: "
                                                                        "agreement not measured.", kind="note")]))
    return write_report(folder / "report.html", "mSASSS study (ankylosing spondylitis)", sections)
