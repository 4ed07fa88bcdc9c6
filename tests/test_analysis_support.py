"""Helpers for the analysis tests: a small cohort with a known generative model (no simulator).

The manifest folder (tables + tiny PNGs) comes from the shared ``write_tiny_cohort``;
its patients, visits and events are then replaced by draws from this model:

* damage: SvdH_true(t) = b_i + r_i t, observed SvdH = SvdH_true + N(0, 1.5) (reader noise);
* image latent (the thing SvdH does not see): z_it = z_i + 0.1 t + N(0, 0.3), z_i ~ N(0, 1);
* HAQ_it = clip(0.4 + 0.02 SvdH_true + beta_haq z_it + u_i + N(0, 0.25), 0, 3);
* pain_it = clip(30 + 0.4 SvdH_true + beta_pain z_it + N(0, 10), 0, 100);
* hazard: exp(0.04 SvdH_true(0) + beta_hazard z_i0), exponential times, censored at the last visit.

With every beta 0 the latent carries no outcome information (the null).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from conftest import write_tiny_cohort


def draw_tables(n_patients: int = 150, n_visits: int = 4, seed: int = 0, beta_haq: float = 0.3,
                beta_pain: float = 8.0, beta_hazard: float = 0.8) -> dict[str, pd.DataFrame]:
    """patients, visits, events and truth (visit rows with the latent and a learned SvdH score)."""
    rng = np.random.default_rng(seed)
    pids = [f"p{i + 1}" for i in range(n_patients)]
    age = np.round(rng.normal(55, 10, n_patients), 1)
    sex = rng.choice(["F", "M"], n_patients, p=[0.7, 0.3])
    rf = rng.integers(0, 2, n_patients)
    base = rng.gamma(1.5, 4.0, n_patients)
    rate = np.exp(rng.normal(0.0, 0.8, n_patients))
    z = rng.normal(0, 1, n_patients)
    u = rng.normal(0, 0.25, n_patients)
    visits, truth = [], []
    for i, pid in enumerate(pids):
        for j in range(n_visits):
            t = float(j) if j == 0 else round(j + rng.normal(0, 0.05), 3)
            true = base[i] + rate[i] * t
            latent = z[i] + 0.1 * t + rng.normal(0, 0.3)
            haq = np.clip(0.4 + 0.02 * true + beta_haq * latent + u[i] + rng.normal(0, 0.25), 0, 3)
            pain = np.clip(30 + 0.4 * true + beta_pain * latent + rng.normal(0, 10), 0, 100)
            visits.append({"patient_id": pid, "visit_id": f"v{j}", "time_years": t,
                           "svdh_total": round(max(true + rng.normal(0, 1.5), 0.0), 1),
                           "haq": np.round(haq * 8) / 8, "pain": float(np.round(pain))})
            truth.append({"patient_id": pid, "visit_id": f"v{j}", "time_years": t, "latent": latent,
                          "svdh_true": true, "svdh_learned": true + rng.normal(0, 2.0)})
    lp = 0.04 * base + beta_hazard * z
    t_event = rng.exponential(1.0 / (0.12 * np.exp(lp)))
    follow = n_visits - 1.0
    events = pd.DataFrame({"patient_id": pids, "event": "deformity",
                           "time_years": np.round(np.minimum(t_event, follow), 3),
                           "observed": (t_event <= follow).astype(int)})
    patients = pd.DataFrame({"patient_id": pids, "sex": sex, "age": age, "rf": rf})
    return {"patients": patients, "visits": pd.DataFrame(visits), "events": events, "truth": pd.DataFrame(truth)}


def write_analysis_cohort(root: Path, n_patients: int = 150, n_visits: int = 4, seed: int = 0,
                          **betas: float) -> tuple[Path, pd.DataFrame]:
    """A loadable manifest folder with the model above; returns (folder, truth table)."""
    root = write_tiny_cohort(Path(root), n_patients=n_patients, n_visits=n_visits, size=16)
    tables = draw_tables(n_patients, n_visits, seed, **betas)
    for name in ("patients", "visits", "events"):
        tables[name].to_csv(root / f"{name}.csv", index=False)
    for optional in ("joints", "landmarks"):
        (root / f"{optional}.csv").unlink(missing_ok=True)
    return root, tables["truth"]
