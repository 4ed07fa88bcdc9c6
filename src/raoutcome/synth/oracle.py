"""Ceilings known only to the simulator, written to ``truth/oracle.json``.

* ``deformity.c_index_oracle``: Harrell's C (lifelines ``concordance_index``) of the true log-hazard
  against the observed event times — no model can beat it in expectation.
* ``deformity.c_index_svdh`` / ``deformity.c_index_haq_mean``: the same C for a risk that knows only the
  true baseline SvdH total, or only the noise-free baseline HAQ: what a model whose risk merely echoes
  the Sharp score, or disability, can reach (a "no human score" model trained on HAQ and events alone
  must see the damage itself to go beyond the second).
* ``haq.r2_noise_free`` / ``pain.r2_noise_free``: R^2 of the noise-free mean as a prediction of the
  observed outcome, 1 - SSE/SST over visits with the outcome present.
* Variance shares (``r2_svdh``, ``r2_svdh_plus_nonsharp``, ``incremental_r2_nonsharp``): OLS R^2 of the
  outcome on the true SvdH total (linear + log(1 + x)), then with osteopenia, swelling and carpal
  collapse added; the increment is what the features the Sharp score ignores explain beyond it.
  Given for the observed outcome and for its noise-free mean (``*_of_mean``). For the hazard the same
  is done on the linear predictor across patients with the baseline-visit latents.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from raoutcome.io_utils import atomic_write

NONSHARP = ["osteopenia", "swelling", "carpal_collapse"]


def _r2(y: np.ndarray, X: np.ndarray) -> float:
    X = np.column_stack([np.ones(len(y)), X])
    beta, *_ = np.linalg.lstsq(X, y, rcond=None)
    resid = y - X @ beta
    sst = ((y - y.mean()) ** 2).sum()
    return float(1 - (resid @ resid) / sst) if sst > 0 else float("nan")


def _shares(y, svdh, feats) -> dict:
    base = np.column_stack([svdh, np.log1p(svdh)])
    r_s = _r2(y, base)
    r_all = _r2(y, np.column_stack([base, feats]))
    return {"r2_svdh": r_s, "r2_svdh_plus_nonsharp": r_all, "incremental_r2_nonsharp": r_all - r_s}


def read_truth_tables(root: Path) -> dict[str, pd.DataFrame]:
    """The tables :func:`oracle_from_tables` reads: truth visits and patients, observed visits and events."""
    root = Path(root)
    return {"truth_visits": pd.read_csv(root / "truth" / "visits.csv"),
            "visits": pd.read_csv(root / "visits.csv"),
            "truth_patients": pd.read_csv(root / "truth" / "patients.csv"),
            "events": pd.read_csv(root / "events.csv")}


def compute_oracle(root: Path, null: bool) -> dict:
    """The ceilings of the cohort simulated into ``root``."""
    return oracle_from_tables(**read_truth_tables(root), null=null)


def oracle_from_tables(truth_visits: pd.DataFrame, visits: pd.DataFrame, truth_patients: pd.DataFrame,
                       events: pd.DataFrame, null: bool) -> dict:
    """The ceilings of any set of simulated patients (e.g. two cohorts pooled, ids made unique)."""
    from lifelines.utils import concordance_index

    tv, ov, tp, ev = truth_visits, visits, truth_patients, events
    m = tv.merge(ov[["patient_id", "visit_id", "haq", "pain"]], on=["patient_id", "visit_id"])
    out: dict = {"null": bool(null), "n_patients": int(len(tp)), "n_visits": int(len(tv))}
    for name in ("haq", "pain"):
        d = m.dropna(subset=[name])
        y, mu = d[name].to_numpy(float), d[f"{name}_mean"].to_numpy(float)
        sst = ((y - y.mean()) ** 2).sum()
        res = {"r2_noise_free": float(1 - ((y - mu) ** 2).sum() / sst) if sst > 0 else float("nan"),
               "n": int(len(d))}
        obs = _shares(y, d["svdh_total"].to_numpy(float), d[NONSHARP].to_numpy(float))
        mean = _shares(mu, d["svdh_total"].to_numpy(float), d[NONSHARP].to_numpy(float))
        res.update(obs)
        res.update({f"{k}_of_mean": v for k, v in mean.items()})
        out[name] = res
    e = ev[ev["event"] == "deformity"].merge(tp, on="patient_id")
    base = tv[tv["visit_id"] == "v0"].set_index("patient_id").loc[e["patient_id"]]

    def c_of(risk) -> float:
        """NaN without an observed event or a comparable pair (a tiny cohort)."""
        if not e["observed"].any():
            return float("nan")
        try:
            return float(concordance_index(e["time_years"], -np.asarray(risk, float), e["observed"]))
        except ZeroDivisionError:  # lifelines: no admissible pair
            return float("nan")

    hz = {"c_index_oracle": c_of(e["log_hazard"]), "c_index_svdh": c_of(base["svdh_total"]),
          "c_index_haq_mean": c_of(base["haq_mean"]), "event_rate": float(e["observed"].mean()),
          "n_events": int(e["observed"].sum())}
    hz.update(_shares(e["log_hazard"].to_numpy(float), base["svdh_total"].to_numpy(float),
                      base[NONSHARP].to_numpy(float)))
    out["deformity"] = hz
    return out


def write_oracle(root: Path, cfg) -> dict:
    res = compute_oracle(root, cfg.null)
    with atomic_write(Path(root) / "truth" / "oracle.json") as fh:
        json.dump(res, fh, indent=2, sort_keys=True)
    return res
