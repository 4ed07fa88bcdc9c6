"""The analysis chooses interval-censored and competing-risk models when the events call for them."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from raoutcome.analysis.features import analysis_data, predictions_from_columns
from raoutcome.analysis.observed_survival import observed_survival
from raoutcome.cohort import load
from test_analysis_support import write_analysis_cohort


def _clinic_events(root, seed=1):
    """Deformity re-recorded as found at the visits; a death row for a fifth of the censored patients."""
    rng = np.random.default_rng(seed)
    visits = pd.read_csv(root / "visits.csv")
    ev = pd.read_csv(root / "events.csv")
    rows = []
    for r in ev.itertuples(index=False):
        times = np.sort(visits.loc[visits["patient_id"] == r.patient_id, "time_years"].to_numpy())
        if r.observed:
            k = int(np.searchsorted(times, r.time_years))
            if k < len(times):
                rows.append((r.patient_id, "deformity", times[k], 1, times[k - 1], times[k]))
                continue
        rows.append((r.patient_id, "deformity", times[-1], 0, times[-1], np.nan))
        if rng.random() < 0.2:
            rows.append((r.patient_id, "death", times[-1] + rng.uniform(0.01, 0.5), 1, np.nan, np.nan))
    out = pd.DataFrame(rows, columns=["patient_id", "event", "time_years", "observed", "time_lower", "time_upper"])
    out.to_csv(root / "events.csv", index=False)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root, truth = write_analysis_cohort(tmp_path_factory.mktemp("obs") / "cohort", n_patients=160, seed=5)
    _clinic_events(root)
    cohort = load(root)
    ds = predictions_from_columns(truth, {"risk": "latent"}, run="stand-in")
    return cohort, analysis_data(cohort, ds)


def test_interval_and_competing_models_are_used_and_named(data):
    cohort, d = data
    image = d.pred("risk")
    base = ["svdh_total", *d.covariates]
    res = observed_survival(d.patients, d.visits, cohort.events, image, base, scaled=[image, "svdh_total"])
    used = res.summary["survival_models_used"]
    assert used["interval_censored"] and used["competing_risk"]
    assert "interval-censored" in used["statement"] and "competing-risk" in used["statement"]
    hr = res.tables["interval_hazard_ratios.csv"]
    full = hr[hr["model"] == "image + SvdH + covariates"].set_index("covariate")
    assert full.loc[image, "hr"] > 1.5 and full.loc[image, "hr_lower"] > 1  # the latent drives the hazard
    assert res.tables["interval_beyond_sharp.csv"]["p_value"].iloc[0] < 0.01
    c = res.tables["interval_c_index.csv"].set_index("cross_validated")["c_index_interval"]
    assert 0.6 < c[False] < 1 and 0.6 < c[True] < 1
    comp = res.tables["competing_hazard_ratios.csv"]
    assert set(comp["model"]) == {"cause-specific Cox", "Fine–Gray"}
    assert (comp[comp["covariate"] == image]["hr"] > 1).all()
    fg = comp[comp["model"] == "Fine–Gray"].set_index("covariate")
    assert fg["event_times"].iloc[0].startswith("imputed within the visit intervals")
    assert (fg["se_bootstrap"] > 0).all() and (0.5 < fg["se_bootstrap"] / fg["se"]).all() \
        and (fg["se_bootstrap"] / fg["se"] < 2).all()
    assert set(res.cif["group"]) == {"low", "middle", "high"}
    high = res.cif[res.cif["group"] == "high"]["cif"].iloc[-1]
    low = res.cif[res.cif["group"] == "low"]["cif"].iloc[-1]
    assert high > low
    assert res.tables["landmark_lookahead.csv"]["no_look_ahead"].all()
    auc = res.tables["landmark_auc.csv"]
    assert set(auc["model"]) == {"landmark Cox", "time-varying Cox"} and (auc["auc"].dropna() > 0.55).all()
    cal = res.tables["calibration.csv"]
    assert set(cal["horizon"]) == {1.0, 2.0}  # 5 years is beyond the 3-year follow-up: noted, not assessed
    assert any("5 years beyond" in n for n in res.notes)
    assert set(cal["model"]) == {"Cox: image + SvdH + covariates", "interval Weibull: image + SvdH + covariates"}
    assert (cal["ici"] < 0.15).all() and cal["d_calibration_p"].notna().all()
    # the Fine–Gray cumulative incidence (death competing), cross-validated, at the horizons inside follow-up
    cif_cal = res.tables["cif_calibration.csv"]
    assert set(cif_cal["horizon"]) == {1.0, 2.0} and (cif_cal["ici"] < 0.15).all()
    assert (abs(cif_cal["mean_predicted"] - cif_cal["observed_aalen_johansen"]) < 0.1).all()
    groups = res.tables["cif_calibration_groups.csv"]
    two = groups[groups["horizon"] == 2.0]
    assert len(two) == 5 and two["n"].sum() == cif_cal["n"].iloc[0]
    assert two["observed"].iloc[-1] > two["observed"].iloc[0]  # the riskiest fifth has more deformity
    assert set(res.cif_calibration_curves["horizon"]) == {1.0, 2.0}


def test_exact_events_use_right_censored_models_only(tmp_path):
    root, truth = write_analysis_cohort(tmp_path / "cohort", n_patients=120, seed=6)
    cohort = load(root)
    d = analysis_data(cohort, predictions_from_columns(truth, {"risk": "latent"}, run="stand-in"))
    image = d.pred("risk")
    res = observed_survival(d.patients, d.visits, cohort.events, image, ["svdh_total", *d.covariates],
                            scaled=[image, "svdh_total"])
    assert res.summary["survival_models_used"] == {
        "interval_censored": False, "competing_risk": False,
        "statement": "Events have exact times and no competing event: right-censored models only."}
    assert not any(name.startswith(("interval_", "competing_", "cif_")) for name in res.tables)
    assert {"calibration.csv", "landmark_auc.csv", "landmark_lookahead.csv"} <= set(res.tables)


def test_report_section_shows_calibration_figures_and_the_lookahead_check(data, tmp_path):
    import json

    from raoutcome.reporting import survival_figures as sfigs
    from raoutcome.reporting.html import render_report
    from raoutcome.reporting.stats_figures import save
    from raoutcome.reporting.study_report import _Folder, _observed_section

    cohort, d = data
    image = d.pred("risk")
    res = observed_survival(d.patients, d.visits, cohort.events, image, ["svdh_total", *d.covariates],
                            scaled=[image, "svdh_total"])
    for name, frame in res.tables.items():
        frame.to_csv(tmp_path / name, index=False)
    save(sfigs.calibration_figure(res.calibration_curves, res.tables["calibration.csv"]), tmp_path / "calibration.png")
    save(sfigs.cif_figure(res.cif, "image risk score"), tmp_path / "cif_groups.png")
    save(sfigs.cif_calibration_figure(res.cif_calibration_curves, res.tables["cif_calibration.csv"],
                                      res.tables["cif_calibration_groups.csv"]), tmp_path / "cif_calibration.png")
    (tmp_path / "summary.json").write_text(json.dumps({"survival_models_used": res.summary["survival_models_used"]}))
    html = render_report("t", [_observed_section(_Folder(tmp_path))])
    assert html.count("data:image/png;base64,") == 3
    assert "Calibration of the cross-validated Fine–Gray cumulative incidence" in html
    assert "interval-censored models" in html and "competing-risk models" in html
    assert "Look-ahead check" in html and "no_look_ahead" in html
    assert "D-calibration" in html and "Fine–Gray" in html
