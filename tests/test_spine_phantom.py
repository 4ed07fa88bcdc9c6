"""The mSASSS score definition, the spine views in the registry, the lateral spine phantom and the AS cohort
simulator: truth that follows the score's rules, and cohort statistics that match CLINICAL_FACTS / seeds/003."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from raoutcome import anatomy, msasss
from raoutcome.synth.phantom.render import Acquisition, FRAME_CENTRE, FRAME_ZOOM
from raoutcome.synth.phantom.spine import SpineState, render_spine_view, spine_geometry
from raoutcome.synth.spine_course import SpineCohortConfig, draw_course, load_spine_config


def test_corners_and_facing_pairs():
    assert msasss.CORNERS["spine_cervical"][:3] == ("C2_inf", "C3_sup", "C3_inf")
    assert msasss.CORNERS["spine_cervical"][-1] == "T1_sup"
    assert msasss.CORNERS["spine_lumbar"][0] == "T12_inf" and msasss.CORNERS["spine_lumbar"][-1] == "S1_sup"
    assert all(len(c) == 12 for c in msasss.CORNERS.values())
    assert msasss.facing("C2_inf") == "C3_sup" and msasss.facing("L5_inf") == "S1_sup"
    assert all(msasss.facing(msasss.facing(c)) == c for c in msasss.FACING)
    assert len(msasss.landmark_names("spine_lumbar")) == 12 + 7


def test_segment_total_imputes_within_segment_up_to_three_missing():
    nan = math.nan
    full = np.array([1, 2, 3, 0, 0, 0, 0, 0, 0, 0, 0, 2], float)
    assert msasss.segment_total(full) == 8
    two_missing = full.copy()
    two_missing[[3, 4]] = nan  # 10 scorable corners summing to 8: mean 0.8, two imputed
    assert msasss.segment_total(two_missing) == pytest.approx(8 + 2 * 0.8)
    four_missing = full.copy()
    four_missing[:4] = nan
    assert np.isnan(msasss.segment_total(four_missing))
    assert np.isnan(msasss.msasss_total(four_missing, full))
    assert msasss.msasss_total(full, np.full(12, 3.0)) == 8 + 36
    assert msasss.msasss_total(np.full(12, 3.0), np.full(12, 3.0)) == msasss.MAX_TOTAL


def test_bridge_consistency_rule():
    assert msasss.bridge_consistent({"C2_inf": 3, "C3_sup": 3, "C3_inf": 2})
    assert not msasss.bridge_consistent({"C2_inf": 3, "C3_sup": 2})


def test_spine_views_in_the_registry():
    for view in msasss.SPINE_VIEWS:
        assert anatomy.sites_for(view, "msasss") == msasss.CORNERS[view]
        assert anatomy.body_part(view) == view
    assert anatomy.joint_max("spine_lumbar:L3_sup", "msasss") == 3
    from raoutcome.cohort import schema

    assert "spine_cervical:C3_sup" in schema.valid_joints("msasss")
    assert "hand_left:MCP2" not in schema.valid_joints("msasss")


@pytest.mark.parametrize("view", msasss.SPINE_VIEWS)
def test_landmark_template_in_step_with_the_phantom(view):
    lm = spine_geometry(view, SpineState()).landmarks(view)
    template = anatomy.landmark_template(view)
    assert set(lm) == set(template) == set(msasss.landmark_names(view))
    for k, (x, y) in lm.items():
        fx, fy = (x - FRAME_CENTRE[0]) * FRAME_ZOOM + 0.5, (y - FRAME_CENTRE[1]) * FRAME_ZOOM + 0.5
        assert template[k] == pytest.approx((fx, fy), abs=2e-4)


def test_course_truth_follows_the_score_rules():
    cfg = SpineCohortConfig()
    rng = np.random.default_rng(3)
    for _ in range(60):
        pc = draw_course(cfg, rng)
        assert (np.diff(pc.grades, axis=0) >= 0).all()  # true damage never heals
        assert pc.grades.min() >= 0 and pc.grades.max() <= 3
        local = [k.split(":", 1)[1] for k in pc.corners]
        for v in range(len(pc.times)):
            grades = dict(zip(local, pc.grades[v].tolist()))
            assert msasss.bridge_consistent(grades)  # a bridge scores both of its corners
            for k, g in grades.items():
                lesion = pc.lesions[v].get(k, "none")
                assert msasss.LESION_GRADE[lesion] == g
                assert not (lesion == "squaring" and k in msasss.NO_SQUARING)


def test_cohort_statistics_match_clinical_facts(tmp_path):
    """400 patients, tables only: demographics (seeds/003) and the observed 2-year change (Ramiro 2013)."""
    from raoutcome.synth.spine_cohort import simulate_spine

    cfg = SpineCohortConfig(n_patients=400, render=False, seed=11)
    out = simulate_spine(out_dir=tmp_path / "as", config=cfg)
    pats = pd.read_csv(out / "patients.csv")
    assert abs((pats["sex"] == "M").mean() - 0.76) < 0.06
    assert abs(pats["age_at_diagnosis"].mean() - 26.5) < 1.8
    assert 8.5 < pats["age_at_diagnosis"].std() < 11.5  # clipped at 15: a little below 10.7
    visits = pd.read_csv(out / "visits.csv")
    wide = visits.pivot(index="patient_id", columns="visit_id", values="msasss")
    change = (wide["v1"] - wide["v0"]).dropna()
    assert len(change) > 300
    assert 1.4 < change.mean() < 2.8, change.mean()
    assert 2.9 < change.std() < 4.4, change.std()
    retest = pd.read_csv(out / "retest.csv").pivot(index="patient_id", columns="visit_id", values="msasss")
    change2 = (retest["v1"] - retest["v0"]).reindex(change.index)
    ok = change2.notna()
    icc_like = np.cov(change[ok], change2[ok])[0, 1] / ((change[ok].var() + change2[ok].var()) / 2)
    assert 0.3 < icc_like < 0.75, icc_like  # human readers agree poorly on change (ICC 0.44-0.62)
    truth = pd.read_csv(out / "truth" / "visits.csv")
    assert truth["msasss_true"].between(0, 72).all()


def test_rendered_cohort_tables_agree_with_truth(tmp_path):
    from raoutcome.cohort import load
    from raoutcome.synth.spine_cohort import simulate_spine

    cfg = SpineCohortConfig(n_patients=4, image_size=128, seed=5)
    out = simulate_spine(out_dir=tmp_path / "as", config=cfg)
    cohort = load(out)  # validates every table
    corners = pd.read_csv(out / "truth" / "corners.csv")
    joints = pd.read_csv(out / "joints.csv")
    visits = pd.read_csv(out / "visits.csv")
    truth = pd.read_csv(out / "truth" / "visits.csv")
    # total mSASSS = the sum of the scorable corners' readings (imputed within segment)
    for (pid, vid), g in corners.groupby(["patient_id", "visit_id"]):
        read = g.set_index("corner")["read1"]
        cerv = read[list(msasss.CORNERS["spine_cervical"])].to_numpy(float)
        lumb = read[list(msasss.CORNERS["spine_lumbar"])].to_numpy(float)
        expected = msasss.msasss_total(cerv, lumb)
        got = visits.set_index(["patient_id", "visit_id"]).loc[(pid, vid), "msasss"]
        assert (np.isnan(expected) and np.isnan(got)) or got == pytest.approx(expected, abs=1e-3)
        assert truth.set_index(["patient_id", "visit_id"]).loc[(pid, vid), "msasss_true"] == g["grade"].sum()
        grades = dict(zip(g["corner"], g["grade"]))
        assert msasss.bridge_consistent(grades)
        # not scorable <=> no reading in joints.csv, and a reason is given
        j = joints[(joints.patient_id == pid) & (joints.visit_id == vid)]
        read_joints = set(j["joint"])
        for row in g.itertuples():
            assert (row.joint in read_joints) == bool(row.scorable)
            assert bool(row.scorable) != isinstance(row.reason, str)
    hidden = corners[corners["reason"] == "hidden"]
    assert hidden["view"].eq("spine_cervical").all()
    lm = cohort.landmarks
    assert lm["x"].between(0, 128).all() and lm["y"].between(0, 128).all()
    assert set(lm["landmark"]) == set(msasss.landmark_names("spine_cervical")) | set(
        msasss.landmark_names("spine_lumbar"))


def test_lesions_change_the_image_at_their_corner_only():
    view = "spine_lumbar"
    acq = Acquisition(noise_sd=0.0)
    base, _, lm, _ = render_spine_view(view, SpineState(), 256, acq, np.random.default_rng(0))
    for lesion, corners in (("bridging", ("L2_inf", "L3_sup")), ("syndesmophyte", ("L2_inf",)),
                            ("erosion", ("L2_inf",)), ("sclerosis", ("L2_inf",)), ("squaring", ("L2_inf",))):
        st = SpineState(lesions={c: lesion for c in corners})
        img, _, _, _ = render_spine_view(view, st, 256, acq, np.random.default_rng(0))
        diff = np.abs(img - base)
        assert diff.max() > 0.05, lesion
        yy, xx = np.mgrid[0:256, 0:256]
        x, y = lm["L2_inf"]
        near = np.hypot(xx - x, yy - y) < 22
        assert diff[~near].max() < 0.02, lesion  # nothing changes away from the corner


def test_config_errors_name_the_key(tmp_path):
    from raoutcome.errors import ConfigError

    bad = tmp_path / "bad.toml"
    bad.write_text('cohort = "as_spine"\nmale_fraction = 1.5\n')
    with pytest.raises(ConfigError, match="male_fraction"):
        load_spine_config(bad)
    cfg = load_spine_config(Path(__file__).resolve().parents[1] / "cohorts" / "as_spine.toml")
    assert cfg.male_fraction == 0.76 and cfg.age_at_diagnosis_mean == 26.5


def test_as_outcomes_register_on_demand_and_columns_are_validated(tmp_path):
    """The AS outcomes join the registry only when asked; BASFI/BASDAI are visit columns with a checked range."""
    from raoutcome import outcomes
    from raoutcome.cohort import load
    from raoutcome.errors import CohortValidationError
    from raoutcome.synth.spine_cohort import simulate_spine

    assert "basfi" not in outcomes.outcome_names()
    assert outcomes.column("basfi").upper == 10 and outcomes.column("msasss").upper == 72
    with outcomes.registered(*msasss.SPINE_OUTCOMES):
        assert {"msasss", "basfi", "basdai", "new_bridge"} <= set(outcomes.outcome_names())
        assert outcomes.damage_outcome().name == "svdh"  # the RA damage reading stays the first count outcome
        assert outcomes.event_outcome().name == "risk"
    assert "basfi" not in outcomes.outcome_names()
    out = simulate_spine(out_dir=tmp_path / "as", config=SpineCohortConfig(n_patients=3, render=False, seed=2))
    visits = pd.read_csv(out / "visits.csv")
    visits.loc[1, "basfi"] = 11.5
    visits.to_csv(out / "visits.csv", index=False)
    with pytest.raises(CohortValidationError, match=r"visits.csv, row 2, column 'basfi'.*11.5"):
        load(out, check_files=False)


def test_facing_syndesmophytes_leave_a_gap_a_bridge_does_not():
    """Two facing grade-2 corners must not look like a bridge: along the front of the disc the bone signal has a
    gap between two syndesmophytes and none along a bridge."""
    view = "spine_lumbar"
    acq = Acquisition(noise_sd=0.0)

    def profile(lesion):
        st = SpineState(lesions={"L2_inf": lesion, "L3_sup": lesion})
        img, _, lm, _ = render_spine_view(view, st, 256, acq, np.random.default_rng(0))
        base, _, _, _ = render_spine_view(view, SpineState(), 256, acq, np.random.default_rng(0))
        p, q = np.array(lm["L2_inf"]), np.array(lm["L3_sup"])
        from scipy.ndimage import map_coordinates

        best = []
        for shift in np.linspace(-4, 0, 9):  # the spur runs a little in front of the corners (-x here)
            pts = [p + (q - p) * f + np.array([shift, 0.0]) for f in np.linspace(0.2, 0.8, 25)]
            xy = np.array(pts).T
            best.append(map_coordinates(img - base, [xy[1], xy[0]], order=1).min())
        return max(best)  # the best line's weakest point

    assert profile("bridging") > 0.05
    assert profile("syndesmophyte") < 0.5 * profile("bridging")
