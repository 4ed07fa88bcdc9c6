"""Re-imaged retest of the spine phantom, the SDCs and power of the AS study, the one-command demo (issue #24)."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from raoutcome.synth.config import VisitsConfig
from raoutcome.synth.spine_cohort import simulate_spine
from raoutcome.synth.spine_course import SpineCohortConfig, SpineOutcomesConfig


def _cfg(**kw) -> SpineCohortConfig:
    """Small films, two visits 2 years apart, nobody lost."""
    return SpineCohortConfig(image_size=64, visits=VisitsConfig(times_years=(0.0, 2.0), jitter_years=0.05, dropout=0.0),
                             outcomes=SpineOutcomesConfig(dropout_rate=0.0), **kw)


def _read(path, **kw) -> pd.DataFrame:
    return pd.read_csv(path, dtype={"patient_id": str, "visit_id": str}, **kw)


def test_reimaged_films_are_new_acquisitions_of_the_same_visits(tmp_path):
    """reimage = 1: every visit imaged again (other pixels, other pose, same true grades) and read again, as a
    cohort of its own that validates; the first films and readings do not change."""
    from raoutcome.cohort import load

    plain = simulate_spine(out_dir=tmp_path / "a", config=_cfg(n_patients=4, seed=7))
    both = simulate_spine(out_dir=tmp_path / "b", config=_cfg(n_patients=4, seed=7, reimage=1.0))
    for name in ("images.csv", "landmarks.csv", "joints.csv", "retest.csv", "visits.csv", "truth/corners.csv",
                 "images/P0001/P0001_v1_spine_lumbar.png"):
        assert (plain / name).read_bytes() == (both / name).read_bytes(), name
    assert not (plain / "reimaged").exists()
    again = load(both / "reimaged", images=True)  # a valid cohort: the manifest validator accepts it
    first = load(both)
    assert set(map(tuple, again.visits[["patient_id", "visit_id"]].astype(str).to_numpy())) == \
        set(map(tuple, first.visits[["patient_id", "visit_id"]].astype(str).to_numpy()))
    t1, t2 = _read(both / "truth" / "corners.csv"), _read(both / "reimaged" / "truth" / "corners.csv")
    m = t1.merge(t2, on=["patient_id", "visit_id", "joint"], suffixes=("", "_re"))
    assert len(m) == len(t1) and (m["grade"] == m["grade_re"]).all() and (m["lesion"] == m["lesion_re"]).all()
    sc = (m["scorable"] == 1) & (m["scorable_re"] == 1)
    assert (m.loc[sc, "read1"] != m.loc[sc, "read1_re"]).any()  # an independent reading
    from raoutcome.imaging.io import read_image

    a = read_image(both / "images" / "P0001" / "P0001_v0_spine_cervical.png").pixels
    b = read_image(both / "reimaged" / "images" / "P0001" / "P0001_v0_spine_cervical_retest.png").pixels
    assert a.shape == b.shape and np.abs(a - b).mean() > 0.01
    l1 = first.landmarks.merge(again.landmarks.assign(path=again.landmarks["path"].str.replace("_retest", "")),
                               on=["path", "landmark"], suffixes=("", "_re"))
    assert len(l1) > 0 and np.hypot(l1["x"] - l1["x_re"], l1["y"] - l1["y_re"]).mean() > 0.3  # a new pose
    part = simulate_spine(out_dir=tmp_path / "c", config=_cfg(n_patients=10, seed=7, reimage=0.5))
    n = _read(part / "reimaged" / "patients.csv")["patient_id"].nunique()
    assert 0 < n < 10


def test_reimage_must_be_a_share(tmp_path):
    from raoutcome.errors import ConfigError
    from raoutcome.synth.spine_course import load_spine_config

    p = tmp_path / "as.toml"
    p.write_text('cohort = "as_spine"\nreimage = 1.5\n')
    with pytest.raises(ConfigError, match="'reimage'.*1.5"):
        load_spine_config(p)


def test_ttest_power_is_the_noncentral_t():
    """statsmodels' power against the noncentral t by hand: df = 2n - 2, noncentrality d sqrt(n / 2)."""
    from raoutcome.analysis.endpoints import ttest_power

    for d, n in ((0.5, 64), (0.3, 100), (0.8, 20)):
        df, nc = 2 * n - 2, d * math.sqrt(n / 2)
        crit = stats.t.ppf(0.975, df)
        hand = stats.nct.sf(crit, df, nc) + stats.nct.cdf(-crit, df, nc)
        assert ttest_power(d, n) == pytest.approx(hand, abs=1e-6)
    assert ttest_power(-0.5, 64) == pytest.approx(ttest_power(0.5, 64))


def _scoring_reader(path):
    """An untrained reader whose scorable head always says yes (so every corner gets a value)."""
    import torch

    from raoutcome.models.corner_reader import CornerReader, CornerSpec
    from raoutcome.training.corner_train import corner_vocabulary, save_corner_reader

    torch.manual_seed(0)
    model = CornerReader(CornerSpec(corners=corner_vocabulary(), d_model=16))
    with torch.no_grad():
        model.scorable.bias.fill_(8.0)
    save_corner_reader(model, path)
    return path


def _by_hand_change(corners: pd.DataFrame) -> pd.Series:
    """24 / n * sum over corners present at v0 and v1 of (expected at v1 - expected at v0)."""
    w = corners.pivot_table(index="patient_id", columns=["visit_id", "joint"], values="expected")
    d = w["v1"] - w["v0"]
    n = d.notna().sum(1)
    return d.sum(1) * 24 / n


def test_study_sdc_from_rereading_and_reimaging_and_power(tmp_path):
    """The study's SDCs come from the two test-retest designs (checked by hand from the files it wrote), the
    endpoints sit on the same patients, the closed-form power matches the noncentral t."""
    from raoutcome.workflows.spine_study import run_spine_study

    cohort = simulate_spine(out_dir=tmp_path / "as", config=_cfg(n_patients=4, seed=3, reimage=1.0))
    out = run_spine_study(cohort, _scoring_reader(tmp_path / "r.pt"), tmp_path / "study", trial_n=30, n_sim=50,
                          report=False)
    retest = pd.read_csv(out / "retest.csv").set_index(["endpoint", "design"])
    assert set(retest.index) == {("human mSASSS change", "re-reading"), ("learned change score", "re-imaging"),
                                 ("human mSASSS change", "re-imaging")}
    # learned: the same reader on the first and on the re-imaged films
    a = _by_hand_change(_read(out / "corners.csv"))
    b = _by_hand_change(_read(out / "corners_reimaged.csv"))
    diff = (a - b).dropna()
    sdc_learned = 1.959963984540054 * diff.std(ddof=1) / math.sqrt(2)
    assert retest.loc[("learned change score", "re-imaging"), "sdc"] == pytest.approx(sdc_learned, rel=1e-4)
    assert retest.loc[("learned change score", "re-imaging"), "patients"] == len(diff) == 4
    # human: visits.csv against retest.csv (the same films read twice)
    v, r = _read(cohort / "visits.csv"), _read(cohort / "retest.csv")
    ch = lambda t: t.pivot(index="patient_id", columns="visit_id", values="msasss").eval("v1 - v0")  # noqa: E731
    hd = (ch(v) - ch(r)).dropna()
    assert retest.loc[("human mSASSS change", "re-reading"), "sdc"] == pytest.approx(
        1.959963984540054 * hd.std(ddof=1) / math.sqrt(2), rel=1e-6)
    ends = pd.read_csv(out / "endpoints.csv").set_index("endpoint")
    assert ends.loc["learned change score", "sdc"] == pytest.approx(sdc_learned, rel=1e-4)
    assert ends.loc["learned change score", "sdc_design"] == "re-imaging"
    assert ends.loc["human mSASSS change", "sdc_design"] == "re-reading"
    assert ends["n"].nunique() == 1  # the same patients for both endpoints
    changes = pd.read_csv(out / "changes.csv", dtype={"patient_id": str}).set_index("patient_id")
    assert changes["learned change score"].to_numpy() == pytest.approx(a.reindex(changes.index).to_numpy(), abs=1e-5)
    power = pd.read_csv(out / "power.csv")
    for row in power.itertuples():
        df, nc = 2 * row.n_per_arm - 2, abs(row.effect_size_d) * math.sqrt(row.n_per_arm / 2)
        crit = stats.t.ppf(0.975, df)
        assert row.power_ttest == pytest.approx(stats.nct.sf(crit, df, nc) + stats.nct.cdf(-crit, df, nc), abs=1e-6)


@pytest.mark.slow
def test_msasss_demo_one_command(tmp_path):
    """`raoutcome msasss demo` on tiny cohorts: simulate, train, read, SDC from both retests, report."""
    from typer.testing import CliRunner

    from raoutcome.cli import app

    cfg = tmp_path / "as.toml"
    cfg.write_text('cohort = "as_spine"\nimage_size = 96\n[visits]\ntimes_years = [0.0, 2.0]\ndropout = 0.0\n'
                   '[outcomes]\ndropout_rate = 0.0\n')
    r = CliRunner().invoke(app, ["msasss", "demo", "--out", str(tmp_path / "d"), "--config", str(cfg),
                                 "--train-patients", "6", "--study-patients", "6", "--epochs", "1",
                                 "--trial-n", "30"])
    assert r.exit_code == 0, r.output
    retest = pd.read_csv(tmp_path / "d" / "study" / "retest.csv")
    assert set(retest["design"]) == {"re-reading", "re-imaging"} and np.isfinite(retest["sdc"]).all()
    html = (tmp_path / "d" / "study" / "report.html").read_text()
    for title in ("Change endpoints", "Measurement error", "Power of a two-arm trial", "Agreement with the "
                  "simulation", "Per-lesion accuracy", "Confusion of the reader", "AS outcomes against mSASSS",
                  "Corner attribution"):
        assert title in html, title
    r = CliRunner().invoke(app, ["msasss", "demo", "--out", str(tmp_path / "e"), "--epochs", "0"])
    assert r.exit_code == 2 and "epochs" in r.output and "Traceback" not in r.output


def test_demo_cohort_must_be_ra_or_spine(tmp_path):
    from typer.testing import CliRunner

    from raoutcome.cli import app

    r = CliRunner().invoke(app, ["demo", "--cohort", "knee", "--out", str(tmp_path / "d")])
    assert r.exit_code == 2 and "--cohort 'knee'" in r.output and "Traceback" not in r.output
    assert not (tmp_path / "d").exists()


@pytest.mark.slow
def test_study_detects_the_corners_of_both_film_sets(tmp_path):
    """`detector`: one detector finds the corners of the first and of the re-imaged films (an untrained tiny
    one here: the path, not the accuracy), written to detected_landmarks.csv and used for both readings."""
    import torch

    from raoutcome.models.landmarks import DetectorSpec, LandmarkNet, channel_names, save_detector
    from raoutcome.msasss import SPINE_VIEWS
    from raoutcome.workflows.spine_study import run_spine_study

    torch.manual_seed(0)
    spec = DetectorSpec(backbone="mobilenetv3_small_050", size=64, out_indices=(1, 2, 3), decoder=8,
                        channels=channel_names(SPINE_VIEWS))
    det = save_detector(LandmarkNet(spec).eval(), tmp_path / "d.safetensors")
    cohort = simulate_spine(out_dir=tmp_path / "as", config=_cfg(n_patients=4, seed=3, reimage=1.0))
    out = run_spine_study(cohort, _scoring_reader(tmp_path / "r.pt"), tmp_path / "study", detector=det,
                          trial_n=30, n_sim=20, report=False)
    found = pd.read_csv(out / "detected_landmarks.csv")
    first, again = _read(cohort / "images.csv"), _read(cohort / "reimaged" / "images.csv")
    assert set(found["path"]) == set(first["path"]) | set(again["path"])
    assert set(_read(out / "corners_reimaged.csv")["path"]) <= set(again["path"])


@pytest.mark.slow
def test_study_with_outcomes_and_corner_atlas(tmp_path):
    """From 10 patients the study models BASFI / BASDAI / new bridges and draws the corner atlas, into the
    tables and the report."""
    from raoutcome.workflows.spine_study import run_spine_study

    cohort = simulate_spine(out_dir=tmp_path / "as", config=_cfg(n_patients=10, seed=5))
    out = run_spine_study(cohort, _scoring_reader(tmp_path / "r.pt"), tmp_path / "study", trial_n=30, n_sim=20,
                          n_boot=20)
    assoc = pd.read_csv(out / "outcomes_association.csv")
    assert set(assoc["outcome"]) == {"basfi", "basdai"} and assoc["patients"].max() == 10
    table = pd.read_csv(out / "corner_attribution.csv")
    assert set(table["kind"]) == {"grade", "corner"} and (table["patches"] > 0).all()
    html = (out / "report.html").read_text()
    assert "AS outcomes against mSASSS" in html and "Corner attribution" in html and "No corner atlas" not in html
