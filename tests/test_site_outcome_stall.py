"""The outcome model on sites restarts a stalled start from a new seed, as the site reader does (#23)."""
from __future__ import annotations

from dataclasses import asdict

import numpy as np
import pandas as pd
import torch

from raoutcome.models.site_outcome import SiteOutcomeSpec
from raoutcome.training.config import SitesSection, load_config
from raoutcome.training.learning import restart_seed
from raoutcome.training.site_outcome_train import (SEVERITY_TARGET, OutcomeData, count_features, fit_site_outcome,
                                                   outcome_stall_rule)

N_SITES, SITE_DIM = 3, 4


def _data(n_patients: int = 12, seed: int = 0) -> tuple[OutcomeData, torch.Tensor]:
    """Patients with 2 visits of 3 sites each; HAQ = 1 + the visit's mean first embedding feature."""
    rng = np.random.default_rng(seed)
    h = torch.as_tensor(rng.normal(size=(n_patients * 2 * N_SITES, SITE_DIM)), dtype=torch.float32)
    visits, rows, events = {}, {}, {}
    for p in range(n_patients):
        pid = f"P{p:02d}"
        idx = np.arange(p * 2 * N_SITES, (p + 1) * 2 * N_SITES)
        pos = np.repeat([0, 1], N_SITES)
        haq = [1.0 + float(h[idx[pos == t], 0].mean()) for t in (0, 1)]
        visits[pid] = pd.DataFrame({"patient_id": pid, "visit_id": ["V0", "V1"], "time_years": [0.0, 1.0],
                                    "haq": haq, SEVERITY_TARGET: np.nan, **{c: np.nan for c in count_features()}})
        rows[pid] = (idx, pos, np.tile(np.arange(N_SITES), 2))
        events[pid] = (np.nan, np.nan)
    return OutcomeData(sorted(visits), visits, rows, events, ("haq",)), h


def _fit(lr: float, stall: tuple[int, float, int], epochs: int = 3):
    data, h = _data()
    spec = SiteOutcomeSpec(n_sites=N_SITES, site_dim=SITE_DIM, d_model=8, layers=1, attention_heads=2, counts=False,
                           heads=("haq",))
    logs: list[str] = []
    model, rec = fit_site_outcome(spec, data, h, data.patients[:8], data.patients[8:], seed=11, epochs=epochs,
                                  batch=4, lr=lr, stall=stall, log=logs.append)
    return model, rec, logs


def test_a_stalled_outcome_model_is_restarted_from_new_seeds_and_every_attempt_recorded():
    _, rec, logs = _fit(lr=0.0, stall=(1, 0.02, 2))  # lr 0: the validation loss cannot move
    seeds = [a["seed"] for a in rec["attempts"]]
    assert seeds == [restart_seed(11, k) for k in range(3)] and rec["seed"] == seeds[-1]
    assert rec["restarts"] == 2 and rec["stalled"] and all(a["stalled"] for a in rec["attempts"])
    assert [a["epochs"] for a in rec["attempts"]] == [1, 1, 3]  # stopped at the check; the last ran in full
    assert sum("RESTARTING WITH SEED" in m for m in logs) == 2 and any("STALLED" in m for m in logs)


def test_a_learning_outcome_model_is_kept_as_trained():
    model, rec, _ = _fit(lr=2e-2, stall=(2, 0.02, 2))
    assert not rec["stalled"] and rec["restarts"] == 0 and rec["seed"] == 11 and rec["moved"] >= 0.02
    again, rec2, _ = _fit(lr=2e-2, stall=(2, 0.02, 0))  # the restart rule changes nothing for a model that learns
    assert rec2["history"] == rec["history"]
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))


def test_the_outcome_stall_rule_comes_from_the_sites_section(tmp_path):
    defaults = SitesSection()
    assert outcome_stall_rule() == (defaults.outcome_stall_epoch, defaults.outcome_stall_tolerance,
                                    defaults.outcome_stall_restarts)
    assert outcome_stall_rule(asdict(defaults)) == outcome_stall_rule()
    path = tmp_path / "c.toml"
    path.write_text('[model]\nroute = "sites"\n[sites]\noutcome_stall_epoch = 4\noutcome_stall_tolerance = 0.5\n'
                    'outcome_stall_restarts = 0\n')
    assert outcome_stall_rule(load_config(path).sites) == (4, 0.5, 0)
