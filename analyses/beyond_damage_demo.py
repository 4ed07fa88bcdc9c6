"""Both questions on the demo cohort and its null twin, with a perfect-reader stand-in for the model.

The demo cohort (``cohorts/demo.toml``) plants non-Sharp features (osteopenia,
carpal collapse) in HAQ and the deformity hazard; its null twin
(``cohorts/null.toml``) draws them with no effect. Both are simulated as
tables only (no images). Training a model would take the demo's 15 minutes, so
the image scores are an image-free stand-in for a model that reads its image
*perfectly*, computed from ``truth/visits.csv`` with the coefficients the
simulator applies (``raoutcome.synth.outcomes.effective``: the planted terms
are 0 in null mode):

* ``pred_risk`` = hazard erosion coef × log(1 + true erosion) + osteopenia and
  carpal-collapse terms of the hazard (at every visit);
* ``pred_haq`` = HAQ damage coef × the true damage term + osteopenia and
  carpal-collapse terms of HAQ (no activity, age or sex: the image cannot see
  those);
* ``pred_svdh`` = the true SvdH total (the model's own damage reading).

On the null twin these scores are pure damage readers, far more precise than
the human reading: the worst case for ``beyond_sharp``. ``beyond_damage`` uses
the simulator's ``retest.csv``, by regression calibration of the damage basis (the
default) and by SIMEX (``calibration="simex"``: Wald tests ``cox_simex``,
``ols_simex``). Prints both questions' Cox LRT (deformity) and
HAQ partial-R² F-test, and writes ``docs/img/beyond_damage_demo.png``
(−log10 p per test, question and cohort) and ``out/beyond_damage_demo.csv``.

    .venv/bin/python analyses/beyond_damage_demo.py           # ~1 min
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
TESTS = ("cox_lrt", "partial_r2_f")


def stand_in_scores(truth: pd.DataFrame, config) -> pd.DataFrame:
    """The perfect-reader stand-in (see the module docstring), one row per visit."""
    from raoutcome.synth.outcomes import effective

    haq, _, hz = effective(config)
    risk = (hz.erosion * np.log1p(truth["svdh_erosion"]) + hz.osteopenia * truth["osteopenia"]
            + hz.carpal_collapse * truth["carpal_collapse"])
    haq_score = haq.damage * truth["damage"] + haq.osteopenia * truth["osteopenia"] \
        + haq.carpal_collapse * truth["carpal_collapse"]
    return truth.assign(risk_score=risk, haq_score=haq_score, svdh_score=truth["svdh_total"].astype(float))


def run_cohort(config_path: Path, workdir: Path) -> pd.DataFrame:
    """Simulate one cohort (tables only) and run both questions' tests on the stand-in scores."""
    from raoutcome.analysis.features import analysis_data, predictions_from_columns
    from raoutcome.analysis.incremental import beyond_damage, beyond_sharp
    from raoutcome.synth import simulate
    from type1_error import simulation_config, tables_only_cohort

    config = simulation_config(config_path)
    folder = Path(simulate(out_dir=workdir, config=config))
    truth = pd.read_csv(folder / "truth" / "visits.csv", dtype={"patient_id": str, "visit_id": str})
    scores = stand_in_scores(truth, config)
    preds = predictions_from_columns(scores, {"risk": "risk_score", "haq": "haq_score", "svdh": "svdh_score"},
                                     run="perfect-reader stand-in")
    data = analysis_data(tables_only_cohort(folder), preds, embedding=False)
    retest = pd.read_csv(folder / "retest.csv", dtype={"patient_id": str, "visit_id": str})
    kw = dict(outcome_images={"haq": data.pred("haq")}, tests=TESTS)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = pd.concat([beyond_sharp(data, data.pred("risk"), **kw),
                           beyond_damage(data, data.pred("risk"), retest=retest, **kw),
                           beyond_damage(data, data.pred("risk"), retest=retest, calibration="simex", **kw)],
                          ignore_index=True)
    return table.assign(cohort=config_path.stem, seed=config.seed, patients=config.n_patients,
                        events=int(data.patients["observed"].sum()))


def figure(table: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), sharey=True)
    for ax, (cohort, rows) in zip(axes, table.groupby("cohort", sort=False)):
        reading = rows["question"].str.startswith("Does the image add").to_numpy()
        simex = rows["test"].str.endswith("_simex").to_numpy()
        labels = [f"{'reading' if r else 'damage, SIMEX' if x else 'damage'}\n{t.replace('_', ' ')}"
                  for r, x, t in zip(reading, simex, rows["test"])]
        values = -np.log10(rows["p_value"].clip(lower=1e-12))
        ax.bar(range(len(rows)), values, color=["#888" if r else "#9d9" if x else "#2a7"
                                               for r, x in zip(reading, simex)])
        ax.axhline(-np.log10(0.05), color="k", ls="--", lw=0.8)
        ax.set_xticks(range(len(rows)), labels, fontsize=7, rotation=30, ha="right")
        ax.set_title(f"{cohort} cohort ({rows['patients'].iloc[0]} patients)", fontsize=9)
    axes[0].set_ylabel("−log10 p (dashed: p = 0.05)\nbeyond the reading / beyond damage")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", type=Path, nargs="+",
                        default=[REPO / "cohorts" / "demo.toml", REPO / "cohorts" / "null.toml"])
    parser.add_argument("--out", type=Path, default=REPO / "out" / "beyond_damage_demo.csv")
    parser.add_argument("--figure", type=Path, default=REPO / "docs" / "img" / "beyond_damage_demo.png")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="raoutcome-bd-") as tmp:
        table = pd.concat([run_cohort(c, Path(tmp) / c.stem) for c in args.configs], ignore_index=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out, index=False)
    figure(table, args.figure)
    for _, r in table.iterrows():
        print(f"{r['cohort']:5s} {r['test']:13s} {r['outcome']:10s} "
              f"{'beyond damage ' if r['question'].startswith('Does the image carry') else 'beyond reading'} "
              f"estimate {r['estimate']:8.4g}  coefficient of the image score {r['coef_added']:7.3g}  "
              f"p = {r['p_value']:.3g}  (n = {r['n']}, events {r['events']})"
              + (f"  [same fits: robust score p = {r['p_robust_score']:.3g}]"
                 if pd.notna(r.get("p_robust_score", np.nan)) else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
