"""The longitudinal deformity model (issue 30, item 4): per-patient slopes since the images before baseline.

Slopes are checked against hand-computed OLS lines; on table-only cohorts with an earlier visit, the
latents' slopes (which read the progression rate, frailty included) must raise the held-out C-index above
the baseline latents alone, while the baseline-only rows stay what they were.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from raoutcome.errors import InputError
from raoutcome.synth.cervical import load_cervical_config, simulate_cervical
from raoutcome.workflows import cervical_longitudinal as cl
from raoutcome.workflows import cervical_predict as cp


def test_slopes_hand_computed():
    series = pd.DataFrame({"patient_id": ["a", "a", "a", "b", "b", "c"],
                           "time_years": [-3.0, -1.5, 0.0, -1.5, 0.0, 0.0],
                           "x": [1.0, 2.0, 4.0, 5.0, 2.0, 7.0],
                           "y": [1.0, np.nan, 2.0, 0.0, 0.0, 1.0]})
    s = cl.slopes(series, ["x", "y"])
    # a: OLS of (1, 2, 4) on (-3, -1.5, 0): t-mean -1.5, Sxy = (-1.5)(-1.333) + 0 + (1.5)(1.667) = 4.5, Sxx = 4.5
    assert s.loc["a", "slope_x"] == pytest.approx(1.0)
    assert s.loc["a", "slope_y"] == pytest.approx(1.0 / 3.0)        # the NaN visit is skipped: (2 - 1) / 3
    assert s.loc["b", "slope_x"] == pytest.approx(-2.0)             # (2 - 5) / 1.5
    assert np.isnan(s.loc["c", "slope_x"])                           # one visit: no slope
    base = pd.DataFrame({"x": [4.0, 2.0, 7.0], "y": [2.0, 0.0, 1.0]}, index=["a", "b", "c"])
    w = cl.with_slopes(base, series)
    assert list(w.columns) == ["x", "y", "slope_x", "slope_y"] and w.loc["b", "slope_x"] == pytest.approx(-2.0)
    with pytest.raises(InputError, match="time_years"):
        cl.slopes(series.drop(columns="time_years"), ["x"])


@pytest.fixture(scope="module")
def cohorts(tmp_path_factory):
    root = tmp_path_factory.mktemp("cervical_long")
    return {name: simulate_cervical(load_cervical_config(n_patients=n, seed=seed, render="none", prior_years=[-1.5]),
                                    root / name)
            for name, seed, n in (("train", 41, 300), ("test", 42, 200))}


def test_slopes_read_the_progression_rate(cohorts):
    """No model: the extrapolated time to the pannus / facet thresholds from the baseline value and its slope
    ranks the held-out patients far better than the baseline values alone (interval-censored C)."""
    from raoutcome.analysis.interval_censored import interval_c_index

    root = cohorts["test"]
    ev = cp.event_table(root).set_index("patient_id")
    cols = ["pannus_v0", "facet_v0"]
    base = pd.read_csv(root / "truth" / "patients.csv").set_index("patient_id")[cols]
    long = cl.with_slopes(base, cl.latent_series(root)).loc[ev.index]
    assert (long["slope_pannus_v0"] >= 0).all() and (long["slope_pannus_v0"] > 0).mean() > 0.9
    t_hit = np.minimum((3.0 - long["pannus_v0"]) / long["slope_pannus_v0"], (0.6 - long["facet_v0"]) / long["slope_facet_v0"])
    lo, hi = ev["lower"].to_numpy(float), ev["upper"].to_numpy(float)
    c_long = interval_c_index(lo, hi, -t_hit.to_numpy())
    c_base = interval_c_index(lo, hi, (base.loc[ev.index, "pannus_v0"] / 3.0 + base.loc[ev.index, "facet_v0"] / 0.6).to_numpy())
    assert c_long > 0.9 and c_long > c_base + 0.1, (c_long, c_base)


@pytest.mark.slow
def test_latent_slopes_add_to_the_baseline_latents(cohorts):
    ev = {k: cp.event_table(v) for k, v in cohorts.items()}
    cols = ["pannus_v0", "facet_v0", "erosion_v0", "laxity_v0"]
    base = {k: pd.read_csv(v / "truth" / "patients.csv").set_index("patient_id")[cols] for k, v in cohorts.items()}
    long = {k: cl.with_slopes(base[k], cl.latent_series(v)) for k, v in cohorts.items()}
    assert long["test"].notna().all().all()
    c = {}
    for name, x in (("baseline", base), ("longitudinal", long)):
        fit = cp.fit_predict(x["train"], ev["train"], x["test"], 3.2, seed=0)
        c[name] = cp.evaluate(fit["test"], ev["test"], 3.2, fit["threshold"], n_boot=2)["c_interval"]["estimate"]
    # the slope reads the progression rate (frailty included), which the baseline latents cannot
    assert c["longitudinal"] > c["baseline"] + 0.03, c
