"""The craniocervical phantom and the RA cervical cohort simulator (issue 30, item 2).

Checks real computations: landmarks in pixels measure the geometry's ADI/SAC/Ranawat exactly through any
acquisition jitter, the label map agrees with the landmarks, MR volumes survive the NIfTI round trip into
the canonical frame with T1/T2 contrast where it belongs, and the cohort's deformity rate, interval
censoring and competing deaths follow the documented model.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from raoutcome import anatomy
from raoutcome.analysis.craniocervical import measure_points
from raoutcome.synth.cervical import (DEFORMITY_THRESHOLDS, CervicalConfig, cohort_tables, load_cervical_config,
                                      simulate_cervical)
from raoutcome.synth.phantom.craniocervical import (CervicalGeometry, XrAcquisition, landmarks_mm, render_lateral,
                                                    render_mr, template_fractions)
from raoutcome.errors import ConfigError


def test_views_and_template_registered():
    for v in anatomy.CRANIOCERVICAL_VIEWS:
        assert anatomy.body_part(v) == "craniocervical"
    for v in anatomy.CRANIOCERVICAL_MR_VIEWS:
        assert anatomy.view(v).modality == "mr" and anatomy.body_part(v) is None
    tmpl = anatomy.landmark_template("cervical_neutral")
    for name, (x, y) in template_fractions().items():
        assert tmpl[name] == pytest.approx((x, y), abs=1e-3), name


@pytest.mark.parametrize("view", ["neutral", "flexion", "extension"])
def test_pixel_landmarks_measure_the_geometry(view):
    g = CervicalGeometry(dens_w=9.6, adi=2.2, canal=31.0, laxity=1.8, facet=0.4, vt=1.0)
    rng = np.random.default_rng(4)
    acq = XrAcquisition.draw(rng, view)
    spacing = 0.5
    img, label, pts = render_lateral(g, view, 128, spacing, acq, rng)
    m = measure_points(pts, spacing)
    gv = g.at_view(view)
    assert m["adi_mm"] == pytest.approx(gv.adi, abs=1e-6)
    assert m["sac_mm"] == pytest.approx(31.0 - 9.6 - gv.adi, abs=1e-6)
    assert m["facet_gap_mm"] == pytest.approx(2.5 * (1 - 0.8 * 0.4), abs=1e-6)
    # Ranawat: C2 pedicle (v = 17) to the C1 transverse axis (v = v_c1), rotation-invariant
    assert m["ranawat_mm"] == pytest.approx(17.0 - gv.v_c1, abs=1e-6)
    expected_adi = {"neutral": 2.2, "flexion": 2.2 + 1.8, "extension": max(0.5, 2.2 - 0.9)}[view]
    assert gv.adi == pytest.approx(expected_adi)
    # the label map agrees with the landmarks: the ADI midpoint is the atlantodental interval, the arch in front
    (xa, ya), (xd, yd) = pts["C1A"], pts["DA"]
    mid = label[int(round((ya + yd) / 2)), int(round((xa + xd) / 2))]
    assert mid == anatomy.REGIONS["cc_atlantodental"]
    xt, yt = pts["C1AT"]
    assert label[int(round(yt)), int(round(xt))] == anatomy.REGIONS["cc_c1_anterior_arch"]
    # bone bright: the anterior arch centre is brighter than the atlantodental gap
    assert img[int(round(yt)), int(round(xt))] > img[int(round((ya + yd) / 2)), int(round((xa + xd) / 2))]


def test_mr_round_trip_and_contrast(tmp_path):
    pytest.importorskip("SimpleITK")
    from raoutcome.imaging.volume import read_volume
    from raoutcome.synth.cervical import _write_mr

    shape, spacing = (12, 48, 48), (3.5, 1.4, 1.4)
    vols = {}
    for pannus in (0.2, 5.0):
        g = CervicalGeometry(pannus=pannus, facet=0.2)
        for c in ("t1", "t2"):
            vols[pannus, c], label = render_mr(g, c, shape, spacing, np.random.default_rng(1), noise_sd=0.0)
    _write_mr(tmp_path / "t2.nii.gz", vols[5.0, "t2"], spacing)
    back = read_volume(tmp_path / "t2.nii.gz")
    assert back.spacing == pytest.approx((1.4, 1.4, 3.5), abs=1e-5)
    np.testing.assert_allclose(back.array / 1000.0, vols[5.0, "t2"], atol=6e-4)
    # a canal voxel (CSF between the cord and the posterior arch): bright on T2, dark on T1
    g = CervicalGeometry(pannus=0.2)
    lm = landmarks_mm(g)
    col = lambda u: int(round((u - 12.0) / 1.4 + 23.5))  # noqa: E731 - VIEW_CENTRE u = 12, v = -4
    row = lambda v: int(round((v + 4.0) / 1.4 + 23.5))  # noqa: E731
    k = 5  # |w| = 1.75 mm: mid-sagittal
    r, c_csf = row(-30.0), col(lm["C1P"][0] - 0.8)
    assert vols[0.2, "t2"][k, r, c_csf] > 0.7 > 0.2 > vols[0.2, "t1"][k, r, c_csf]
    # retro-odontoid pannus raises T2 signal just behind the dens above C1 (it displaces the cord)
    rp, cp = row(g.v_c1 - 2.0), col(g.dens_w + 3.5)
    assert vols[5.0, "t2"][k, rp, cp] > vols[0.2, "t2"][k, rp, cp] + 0.05
    assert label.max() >= 10


def test_config_refuses_unknown_keys_and_bad_values():
    with pytest.raises(ConfigError, match="did you mean 'n_patients'"):
        load_cervical_config({"n_patient": 3})
    with pytest.raises(ConfigError, match="simulation.seed.*expected an integer"):  # not a SeedSequence traceback
        load_cervical_config({"seed": "x"})
    with pytest.raises(ConfigError, match="render"):
        load_cervical_config({"render": "sometimes"})
    with pytest.raises(ConfigError, match="visit_years"):
        CervicalConfig(visit_years=(0.0, 0.1))


def test_cohort_rate_intervals_and_competing_deaths():
    cfg = load_cervical_config(n_patients=1200, seed=11, render="none")
    t = cohort_tables(cfg)
    ev, truth = t["events"], t["truth/patients"].set_index("patient_id")
    d = ev[ev["event"] == "deformity"].set_index("patient_id")
    # about 15 % found by the 3-year visit (seeds/004: 33 of 220); binomial SD at n = 1200 is ~1 %
    by3 = ((d["observed"] == 1) & (d["time_years"] <= 3.2)).mean()
    assert 0.12 <= by3 <= 0.18, by3
    # interval censoring: the true time lies in (lower, upper] for every found event; censored ones after
    seen = d[d["observed"] == 1]
    t_true = truth.loc[seen.index, "event_time_true"]
    assert (seen["time_lower"] < t_true).all() and (t_true <= seen["time_upper"]).all()
    assert (seen["time_years"] == seen["time_upper"]).all()
    cens = d[d["observed"] == 0]
    assert (truth.loc[cens.index, "event_time_true"] > cens["time_years"]).all()
    # nobody has the deformity at baseline; the thresholds define it
    assert (truth["pannus_v0"] < DEFORMITY_THRESHOLDS["pannus"]).all()
    assert (truth["facet_v0"] < DEFORMITY_THRESHOLDS["facet"]).all()
    tv = t["truth/visits"]
    assert (tv.loc[tv["visit_id"] == "v0", "deformity"] == 0).all()
    # deaths: registered within follow-up only, never before the last attended visit
    death = ev[ev["event"] == "death"].set_index("patient_id")
    assert 0.02 < death["observed"].mean() < 0.2
    last = t["visits"].groupby("patient_id")["time_years"].max()
    dead = death[death["observed"] == 1]
    assert (dead["time_years"] >= last.loc[dead.index] - 1e-9).all()
    # visible baseline activity speeds progression: earlier deformity with higher baseline pannus
    rho = pd.Series(truth["pannus_v0"]).corr(np.log(truth["event_time_true"]), method="spearman")
    assert rho < -0.3


def test_simulated_cohort_validates_and_reproduces(tmp_path):
    pytest.importorskip("SimpleITK")
    from raoutcome.cohort import validate

    cfg = load_cervical_config(n_patients=3, seed=5)
    out = simulate_cervical(cfg, tmp_path / "a")
    assert validate(out) == []
    images = pd.read_csv(out / "images.csv")
    assert set(images["view"]) == set(anatomy.CRANIOCERVICAL_VIEWS) | set(anatomy.CRANIOCERVICAL_MR_VIEWS)
    lms = pd.read_csv(out / "landmarks.csv")
    truth = pd.read_csv(out / "truth" / "measurements.csv").set_index("path")
    for path, g in lms.groupby("path"):
        m = measure_points(dict(zip(g["landmark"], zip(g["x"], g["y"]))), truth.loc[path, "pixel_spacing_mm"])
        assert m["adi_mm"] == pytest.approx(truth.loc[path, "adi_mm"], abs=0.01)  # landmarks rounded to 1e-3 px
    again = simulate_cervical(cfg, tmp_path / "b")
    for name in ("events.csv", "landmarks.csv", "truth/visits.csv"):
        assert (out / name).read_bytes() == (again / name).read_bytes(), name
    assert not math.isnan(truth["sac_mm"].mean())


def test_earlier_visits_render_before_baseline_without_changing_it(tmp_path):
    pytest.importorskip("SimpleITK")
    from raoutcome.cohort import validate

    with pytest.raises(ConfigError, match="prior_years"):
        CervicalConfig(prior_years=(0.5,))
    small = dict(n_patients=3, seed=5, xr_views=("neutral",), mr_contrasts=("t2",))
    base = simulate_cervical(load_cervical_config(small), tmp_path / "base")
    out = simulate_cervical(load_cervical_config({**small, "prior_years": [-3.0, -1.5]}), tmp_path / "prior")
    assert validate(out) == []                      # the manifest is untouched by the earlier visits
    for name in ("images.csv", "events.csv", "landmarks.csv", "visits.csv"):
        assert (out / name).read_bytes() == (base / name).read_bytes(), name
    images = pd.read_csv(out / "images.csv")
    for rel in images["path"]:                      # baseline pixels identical with or without earlier visits
        assert (out / rel).read_bytes() == (base / rel).read_bytes(), rel
    prior = pd.read_csv(out / "prior_images.csv")
    assert len(prior) == 3 * 2 * 2 and set(prior["visit_id"]) == {"p1", "p2"}
    assert ((prior["time_years"] < -1.2) & (prior["time_years"] > -3.2)).all()
    assert all((out / p).is_file() for p in prior["path"])
    # earlier latents are smaller (the trajectories run backwards), and so is the true ADI
    tp = pd.read_csv(out / "truth" / "prior_visits.csv").set_index(["patient_id", "visit_id"])
    tv = pd.read_csv(out / "truth" / "visits.csv").set_index(["patient_id", "visit_id"])
    for pid in images["patient_id"].unique():
        assert tp.loc[(pid, "p1"), "pannus"] <= tp.loc[(pid, "p2"), "pannus"] <= tv.loc[(pid, "v0"), "pannus"]
        assert tp.loc[(pid, "p1"), "facet"] <= tv.loc[(pid, "v0"), "facet"]
    meas = pd.read_csv(out / "truth" / "measurements.csv")
    adi = meas.set_index(["patient_id", "visit_id"])["adi_mm"]
    assert all(adi.loc[(pid, "p1")] <= adi.loc[(pid, "v0")] + 1e-9 for pid in images["patient_id"].unique())
