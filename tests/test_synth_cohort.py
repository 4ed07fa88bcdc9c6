"""The simulated cohort: manifest format, ranges, monotone damage, reproducibility, DICOM/PNG
output, truth and oracle, null mode, atomic writes and config errors."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from raoutcome.anatomy import OUTCOME_RANGES, REGIONS, joint_max
from raoutcome.errors import ConfigError, InputError
from raoutcome.synth import SimulationConfig, simulate
from raoutcome.synth.config import from_dict

TINY = dict(seed=7, n_patients=6, image_size=64, workers=1)


def _tiny(**kw) -> SimulationConfig:
    return from_dict({**TINY, **kw})


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> Path:
    return simulate(None, tmp_path_factory.mktemp("syn") / "c", config=_tiny())


def _hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_manifest_tables_and_columns(cohort):
    cols = {
        "patients.csv": {"patient_id", "sex", "age", "rf", "acpa", "disease_duration_years"},
        "visits.csv": {"patient_id", "visit_id", "time_years", "svdh_total", "svdh_jsn", "svdh_erosion",
                       "haq", "pain", "das28"},
        "images.csv": {"patient_id", "visit_id", "view", "path"},
        "events.csv": {"patient_id", "event", "time_years", "observed"},
        "joints.csv": {"patient_id", "visit_id", "joint", "kind", "score"},
        "landmarks.csv": {"path", "landmark", "x", "y"},
        "truth/visits.csv": {"svdh_total", "svdh_jsn", "svdh_erosion", "osteopenia", "swelling",
                             "carpal_collapse", "activity", "haq_mean", "pain_mean", "linear_predictor", "hazard"},
        "truth/patients.csv": {"patient_id", "rate", "log_hazard", "age", "rf", "acpa"},
        "truth/joints.csv": {"patient_id", "visit_id", "joint", "kind", "score"},
    }
    for name, need in cols.items():
        df = pd.read_csv(cohort / name)
        assert need <= set(df.columns), (name, need - set(df.columns))
    visits = pd.read_csv(cohort / "visits.csv")
    for _pid, g in visits.groupby("patient_id"):
        assert list(g["visit_id"]) == [f"v{i}" for i in range(len(g))]
        assert g["time_years"].iloc[0] == 0 and g["time_years"].is_monotonic_increasing
    ev = pd.read_csv(cohort / "events.csv")
    assert set(ev["event"]) == {"deformity"} and set(ev["observed"]) <= {0, 1}
    images = pd.read_csv(cohort / "images.csv")
    assert set(images["view"]) <= {"hand_left", "hand_right"}
    for p in images["path"]:
        assert (cohort / p).is_file()
        assert (cohort / "truth" / "regions" / (Path(p).stem + ".png")).is_file()
    lms = pd.read_csv(cohort / "landmarks.csv")
    assert set(lms["path"]) == set(images["path"])
    assert {"IP", "MP", "PIP2", "MCP5", "W1", "W5", "RADCAR"} <= set(lms["landmark"])
    assert lms["x"].between(-20, 84).all() and lms["y"].between(-20, 84).all()


def test_cohort_loads_with_the_library_loader(cohort):
    cohort_mod = pytest.importorskip("raoutcome.cohort")
    if not hasattr(cohort_mod, "load"):
        pytest.skip("cohort loader not available yet")
    c = cohort_mod.load(cohort)
    assert len(c.patients) == 6
    assert c.event_table("deformity").shape[0] == 6


def test_scores_and_outcomes_in_range(cohort):
    v = pd.read_csv(cohort / "visits.csv")
    for col in ("svdh_total", "svdh_jsn", "svdh_erosion", "haq", "pain", "das28"):
        lo, hi = OUTCOME_RANGES[col]
        assert v[col].dropna().between(lo, hi).all(), col
    assert (v["haq"].dropna() * 8 % 1 == 0).all()  # HAQ-DI steps of 0.125
    for name in ("joints.csv", "truth/joints.csv"):
        j = pd.read_csv(cohort / name)
        mx = np.array([joint_max(a, b) for a, b in zip(j["joint"], j["kind"])])
        assert (j["score"] >= 0).all() and (j["score"] <= mx).all()
        assert (j["score"] % 1 == 0).all()
    # the human reading: visit totals are the sums of its per-joint scores
    j = pd.read_csv(cohort / "joints.csv")
    sums = j.groupby(["patient_id", "visit_id"])["score"].sum()
    vv = v.dropna(subset=["svdh_total"]).set_index(["patient_id", "visit_id"])["svdh_total"]
    np.testing.assert_array_equal(sums.loc[vv.index].to_numpy(float), vv.to_numpy(float))
    t = pd.read_csv(cohort / "truth/visits.csv")
    assert (t["svdh_total"] == t["svdh_jsn"] + t["svdh_erosion"]).all()
    assert t["svdh_total"].between(0, 280).all()  # hands only: 160 erosion + 120 JSN
    for col in ("osteopenia", "swelling", "carpal_collapse"):
        assert t[col].between(0, 1).all()


def test_true_damage_never_decreases(cohort):
    j = pd.read_csv(cohort / "truth/joints.csv")
    j["v"] = j["visit_id"].str[1:].astype(int)
    j = j.sort_values(["patient_id", "joint", "kind", "v"])
    d = j.groupby(["patient_id", "joint", "kind"])["score"].diff().dropna()
    assert (d >= 0).all()
    t = pd.read_csv(cohort / "truth/visits.csv")
    for col in ("svdh_total", "svdh_jsn", "svdh_erosion"):
        assert (t.groupby("patient_id")[col].diff().dropna() >= 0).all()


def test_dicom_headers_are_realistic_and_synthetic(cohort):
    import pydicom
    path = cohort / pd.read_csv(cohort / "images.csv")["path"].iloc[0]
    ds = pydicom.dcmread(path)
    assert ds.preamble == b"\0" * 128  # Part-10 file
    assert ds.Modality == "CR" and ds.ViewPosition == "PA" and ds.BodyPartExamined == "HAND"
    assert ds.PhotometricInterpretation == "MONOCHROME2" and ds.BitsStored == 12
    assert ds.Laterality in ("L", "R") and len(ds.PixelSpacing) == 2
    assert str(ds.PatientName).startswith("SYNTH^P") and "PatientBirthDate" not in ds
    assert "InstitutionName" not in ds and "PatientAddress" not in ds
    assert ds.SOPInstanceUID == ds.file_meta.MediaStorageSOPInstanceUID
    assert ds.pixel_array.shape == (64, 64) and ds.pixel_array.max() < 4096
    lab = np.array(__import__("PIL.Image", fromlist=["Image"]).open(
        cohort / "truth" / "regions" / (path.stem + ".png")))
    assert lab.shape == (64, 64) and set(np.unique(lab)) <= set(REGIONS.values())


def test_same_seed_same_bytes_any_worker_count(tmp_path, cohort):
    again = simulate(None, tmp_path / "again", config=_tiny(workers=2))
    assert _hashes(again) == _hashes(cohort)
    other = simulate(None, tmp_path / "other", config=_tiny(), seed=8)
    assert _hashes(other)["visits.csv"] != _hashes(cohort)["visits.csv"]


def test_landmark_annotation_error_moves_only_the_landmarks(tmp_path, cohort):
    noisy = simulate(None, tmp_path / "noisy", config=_tiny(acquisition={"landmark_sd": 0.01}))
    exact, moved = _hashes(cohort), _hashes(noisy)
    assert moved.pop("landmarks.csv") != exact.pop("landmarks.csv")
    moved.pop("truth/simulation.json"), exact.pop("truth/simulation.json")  # the config it records differs
    assert moved == exact  # images, label maps, scores, outcomes: byte for byte the same
    a = pd.read_csv(cohort / "landmarks.csv")
    b = pd.read_csv(noisy / "landmarks.csv")
    assert (a[["path", "landmark"]] == b[["path", "landmark"]]).all().all()
    err = np.r_[b["x"] - a["x"], b["y"] - a["y"]]
    assert 0.45 < err.std() < 0.85  # 0.01 x 64 px = 0.64 px
    assert b[["x", "y"]].min().min() >= 0 and b[["x", "y"]].max().max() < 64


def test_png_output_is_16_bit(tmp_path):
    from PIL import Image
    out = simulate(None, tmp_path / "png", config=_tiny(n_patients=2), image_format="png")
    p = out / pd.read_csv(out / "images.csv")["path"].iloc[0]
    assert p.suffix == ".png"
    arr = np.array(Image.open(p))
    assert arr.dtype == np.uint16 and arr.shape == (64, 64) and arr.max() > 255


def test_feet_are_simulated_and_scored_on_the_full_scale(tmp_path):
    views = ["hand_left", "hand_right", "foot_left", "foot_right"]
    out = simulate(None, tmp_path / "feet", config=_tiny(n_patients=3, views=views))
    images = pd.read_csv(out / "images.csv")
    assert set(images["view"]) == set(views)
    j = pd.read_csv(out / "truth/joints.csv")
    assert {"foot_left:MTP5", "foot_right:IP"} <= set(j["joint"])
    per_visit = j.groupby(["patient_id", "visit_id"]).size()
    assert (per_visit == 2 * (16 + 15) + 2 * (6 + 6)).all()  # every SvdH site of 4 views
    lms = pd.read_csv(out / "landmarks.csv").merge(images, on="path")
    assert set(lms[lms["view"] == "foot_left"]["landmark"]) == {"IP", "MTP1", "MTP2", "MTP3", "MTP4", "MTP5"}


def test_oracle_json(cohort):
    o = json.loads((cohort / "truth/oracle.json").read_text())
    assert o["null"] is False and o["n_patients"] == 6
    for k in ("haq", "pain"):
        assert {"r2_noise_free", "r2_svdh", "incremental_r2_nonsharp"} <= set(o[k])
    assert 0.0 <= o["deformity"]["c_index_oracle"] <= 1.0 or np.isnan(o["deformity"]["c_index_oracle"])


def _tables_only(tmp_path, name, **kw):
    return simulate(None, tmp_path / name, config=from_dict({**TINY, "n_patients": 300, "render": False, **kw}))


def test_oracle_partial_ceilings(tmp_path):
    """c_index_svdh / c_index_haq_mean: Harrell's C of the true baseline SvdH total / noise-free HAQ,
    recomputed here from the truth tables; both below the true log-hazard's C."""
    from lifelines.utils import concordance_index

    root = Path(_tables_only(tmp_path, "o"))
    o = json.loads((root / "truth/oracle.json").read_text())["deformity"]
    ev = pd.read_csv(root / "events.csv", dtype={"patient_id": str})
    tv = pd.read_csv(root / "truth/visits.csv", dtype={"patient_id": str})
    base = tv[tv["visit_id"] == "v0"].set_index("patient_id").loc[ev["patient_id"]]
    for key, col in (("c_index_svdh", "svdh_total"), ("c_index_haq_mean", "haq_mean")):
        assert o[key] == pytest.approx(concordance_index(ev["time_years"], -base[col].to_numpy(), ev["observed"]))
        assert 0.5 < o[key] < o["c_index_oracle"]


def test_null_mode_features_have_zero_effect(tmp_path):
    """In null mode, switching osteopenia and carpal collapse off changes nothing in the outcomes."""
    feats_off = {"features": {"osteopenia": {"enabled": False}, "carpal_collapse": {"enabled": False},
                              "swelling": {"enabled": False}}}
    a = pd.read_csv(_tables_only(tmp_path, "a", null=True) / "truth/visits.csv")
    b = pd.read_csv(_tables_only(tmp_path, "b", null=True, **feats_off) / "truth/visits.csv")
    assert a["osteopenia"].std() > 0.1 and (b["osteopenia"] == 0).all()
    for col in ("haq_mean", "pain_mean", "linear_predictor", "svdh_total"):
        np.testing.assert_array_equal(a[col], b[col])
    # ...whereas in the default model the same switch moves HAQ, pain and the hazard
    c = pd.read_csv(_tables_only(tmp_path, "c") / "truth/visits.csv")
    d = pd.read_csv(_tables_only(tmp_path, "d", **feats_off) / "truth/visits.csv")
    for col in ("haq_mean", "pain_mean", "linear_predictor"):
        assert np.abs(c[col] - d[col]).mean() > 0.01
    o_null = json.loads((tmp_path / "a" / "truth/oracle.json").read_text())
    o_def = json.loads((tmp_path / "c" / "truth/oracle.json").read_text())
    assert abs(o_null["haq"]["incremental_r2_nonsharp_of_mean"]) < 0.02
    assert abs(o_null["deformity"]["incremental_r2_nonsharp"]) < 0.02
    assert o_def["haq"]["incremental_r2_nonsharp_of_mean"] > 0.08
    assert o_def["deformity"]["incremental_r2_nonsharp"] > 0.05


def test_course_matches_published_shape(tmp_path):
    """Early RA (CLINICAL_FACTS.md): low baseline SvdH with a right-skewed tail; yearly progression
    mostly 0-2 units with a minority of rapid progressors; a useful share of deformity events."""
    out = _tables_only(tmp_path, "course")
    t = pd.read_csv(out / "truth/visits.csv")
    base = t[t["visit_id"] == "v0"]["svdh_total"]
    assert base.median() <= 6 and base.mean() > base.median() and base.quantile(0.95) > 15
    g = t.groupby("patient_id")
    span = (g["time_years"].last() - g["time_years"].first())
    rate = ((g["svdh_total"].last() - g["svdh_total"].first()) / span)[span >= 1]
    assert rate.median() <= 2 and 0.05 <= (rate > 5).mean() <= 0.35
    ev = pd.read_csv(out / "events.csv")
    assert 0.15 <= ev["observed"].mean() <= 0.5
    assert not list((out).glob("images"))  # render = false writes no images


def test_refuses_foreign_folder_and_leaves_nothing_on_failure(tmp_path, monkeypatch):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("precious")
    with pytest.raises(InputError, match="refusing"):
        simulate(None, foreign, config=_tiny(n_patients=1))
    assert (foreign / "notes.txt").read_text() == "precious"
    # a previous simulation output may be replaced
    out = simulate(None, tmp_path / "sim", config=_tiny(n_patients=1, render=False))
    simulate(None, out, config=_tiny(n_patients=2, render=False))
    assert len(pd.read_csv(out / "patients.csv")) == 2
    # a failure half-way leaves neither the folder nor a temp folder behind
    from raoutcome.synth import simulator

    def boom(*a, **k):
        raise RuntimeError("disk full")
    monkeypatch.setattr(simulator, "simulate_patient", boom)
    with pytest.raises(RuntimeError):
        simulate(None, tmp_path / "never", config=_tiny(n_patients=2))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine", "sim"]


@pytest.mark.parametrize("data,key", [
    ({"n_patients": 0}, "n_patients"),
    ({"seed": -4}, "seed"),
    ({"n_patients": "many"}, "n_patients"),
    ({"views": ["hand_up"]}, "views"),
    ({"image_format": "jpeg"}, "image_format"),
    ({"image_size": 8}, "image_size"),
    ({"visits": {"times_years": [1.0, 2.0]}}, "visits.times_years"),
    ({"missing": {"haq": 1.5}}, "missing.haq"),
    ({"outcomes": {"hazard": {"shape": -1.0}}}, "outcomes.hazard.shape"),
    ({"features": {"osteopenia": {"visibility": -2}}}, "features.osteopenia.visibility"),
    ({"course": {"wobble": 1}}, "course.wobble"),
    ({"acquisition": {"landmark_sd": -0.01}}, "acquisition.landmark_sd"),
])
def test_bad_config_values_name_key_and_value(data, key):
    with pytest.raises(ConfigError) as err:
        from_dict(data)
    msg = str(err.value)
    assert f"'{key}'" in msg and "value" in msg


def test_bad_config_file_writes_nothing(tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[missing]\nhaq = 1.5\n")
    with pytest.raises(ConfigError, match=r"missing\.haq.*1\.5"):
        simulate(cfg, tmp_path / "out")
    with pytest.raises(ConfigError, match="seed"):
        simulate(None, tmp_path / "out", seed=-1)
    assert not (tmp_path / "out").exists()


def test_cli_simulate_and_bad_config_exit_code(tmp_path):
    from typer.testing import CliRunner

    from raoutcome.cli import app
    cfg = tmp_path / "tiny.toml"
    cfg.write_text("n_patients = 2\nimage_size = 64\nworkers = 1\n")
    res = CliRunner().invoke(app, ["simulate", "--config", str(cfg), "--out", str(tmp_path / "o"), "--format", "png"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "o" / "truth" / "oracle.json").is_file()
    cohort_mod = pytest.importorskip("raoutcome.cohort")
    if hasattr(cohort_mod, "load"):
        c = cohort_mod.load(tmp_path / "o")
        assert len(c.patients) == 2 and c.images["path"].str.endswith(".png").all()
    cfg.write_text("n_patients = -3\n")
    res = CliRunner().invoke(app, ["simulate", "--config", str(cfg), "--out", str(tmp_path / "p")])
    assert res.exit_code == 2 and "n_patients" in res.output


def test_demo_configs_load_and_any_packaged_copy_matches():
    from raoutcome.synth import load_config
    repo = Path(__file__).resolve().parents[1]
    demo, null = load_config(repo / "cohorts" / "demo.toml"), load_config(repo / "cohorts" / "null.toml")
    assert not demo.null and null.null
    assert demo.image_size in (128, 160) and demo.views == ("hand_left", "hand_right")
    assert null.replace(null=False, seed=demo.seed) == demo  # the null cohort differs only in mode and seed
    packaged = repo / "src" / "raoutcome" / "data" / "demo.toml"
    if packaged.is_file():  # the copy shipped for installed packages must not drift
        assert packaged.read_text() == (repo / "cohorts" / "demo.toml").read_text()


def test_attribution_cohorts_differ_from_demo_only_where_documented():
    """cohorts/osteopenia_haq*.toml (analyses/attribution_beyond_sharp.py): HAQ driven by periarticular
    osteopenia, and a null twin whose HAQ is driven by joint damage instead; nothing else may drift."""
    from dataclasses import replace

    from raoutcome.synth import load_config
    repo = Path(__file__).resolve().parents[1]
    demo = load_config(repo / "cohorts" / "demo.toml")
    osteo = load_config(repo / "cohorts" / "osteopenia_haq.toml")
    twin = load_config(repo / "cohorts" / "osteopenia_haq_null.toml")
    assert not osteo.null and twin.null and len({demo.seed, osteo.seed, twin.seed}) == 3
    h = osteo.outcomes.haq
    assert h.osteopenia > 2 * demo.outcomes.haq.osteopenia and h.damage < demo.outcomes.haq.damage
    assert h.carpal_collapse == 0.0
    assert twin.outcomes.haq.damage > demo.outcomes.haq.damage  # HAQ stays learnable, from damage only

    def without_haq(cfg):
        return cfg.replace(seed=0, null=False, outcomes=replace(cfg.outcomes, haq=demo.outcomes.haq))
    assert without_haq(osteo) == without_haq(demo) == without_haq(twin)
    assert replace(twin.outcomes.haq, damage=h.damage) == h
