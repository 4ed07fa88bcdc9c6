"""Label-free image measures of a visit (raoutcome.imaging.visit_measures): hand-computed values, the phantom's
osteopenia and carpal collapse moving them the right way, and the site route's readouts reading them."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from raoutcome.errors import InputError
from raoutcome.imaging.site_patches import SitePatches
from raoutcome.imaging.visit_measures import MEASURES, visit_measures


def _patches(values: list[np.ndarray], keys: list[tuple[str, str]]) -> SitePatches:
    table = pd.DataFrame([{"patient_id": p, "visit_id": v, "view": "hand_left", "site": "MCP2",
                           "joint": "hand_left:MCP2", "path": f"{p}_{v}.png"} for p, v in keys])
    return SitePatches(table, np.stack(values).astype(np.float32), values[0].shape[0], 0.08)


def test_density_contrast_and_carpal_height_ratio_by_hand():
    grid = 8
    a = np.zeros((grid, grid))
    a[2:6, 2:6] = 2.0  # central half: mean 2; whole patch: mean 0.5, SD sqrt(16*4/64 - 0.25) = sqrt(0.75)
    b = np.ones((grid, grid))  # central mean 1, SD 0
    sp = _patches([a, b, b], [("P1", "V0"), ("P1", "V0"), ("P2", "V0")])
    lm = pd.DataFrame({"path": ["P1_V0.png"] * 3 + ["P2_V0.png"] * 2,
                       "landmark": ["RADCAR", "CMC3", "MCP3", "RADCAR", "CMC3"],
                       "x": [0.0, 3.0, 3.0, 0.0, 0.0], "y": [0.0, 4.0, 14.0, 0.0, 5.0]})
    images = pd.DataFrame({"patient_id": ["P1", "P2"], "visit_id": ["V0", "V0"], "view": ["hand_left", "hand_right"],
                           "path": ["P1_V0.png", "P2_V0.png"]})
    got = visit_measures(sp, SimpleNamespace(landmarks=lm, images=images), list(MEASURES)).set_index("patient_id")
    assert got.loc["P1", "joint_density"] == pytest.approx((2.0 + 1.0) / 2)
    assert got.loc["P1", "joint_contrast"] == pytest.approx(np.sqrt(0.75) / 2)
    assert got.loc["P2", "joint_density"] == pytest.approx(1.0) and got.loc["P2", "joint_contrast"] == 0.0
    assert got.loc["P1", "carpal_height_ratio"] == pytest.approx(5.0 / 10.0)  # |(0,0)-(3,4)| / |(3,4)-(3,14)|
    assert np.isnan(got.loc["P2", "carpal_height_ratio"])  # no MCP3: not measured, never 0
    with pytest.raises(InputError, match="bone_age"):
        visit_measures(sp, SimpleNamespace(landmarks=lm, images=images), ["bone_age"])


def test_the_phantoms_osteopenia_swelling_and_carpal_collapse_move_the_measures(tmp_path):
    from PIL import Image

    from raoutcome.cohort import load
    from raoutcome.imaging.site_patches import cohort_site_patches
    from raoutcome.synth.phantom import Acquisition, ViewState, render_view

    rows, marks = [], []
    states = {"healthy": ViewState(), "osteopenic": ViewState(osteopenia=1.0), "collapsed": ViewState(collapse=1.0), "swollen": ViewState(swelling=1.0)}
    (tmp_path / "images").mkdir()
    for pid, state in states.items():
        img, _, lms = render_view("hand_left", state, 128, Acquisition(noise_sd=0.0), np.random.default_rng(0))
        rel = f"images/{pid}.png"
        Image.fromarray((img * 65535).astype(np.uint16)).save(tmp_path / rel)
        rows.append({"patient_id": pid, "visit_id": "V0", "view": "hand_left", "path": rel})
        marks += [{"path": rel, "landmark": k, "x": x, "y": y} for k, (x, y) in lms.items()]
    pd.DataFrame({"patient_id": list(states), "sex": "F", "age": 50}).to_csv(tmp_path / "patients.csv", index=False)
    pd.DataFrame({"patient_id": list(states), "visit_id": "V0", "time_years": 0.0}).to_csv(tmp_path / "visits.csv",
                                                                                          index=False)
    pd.DataFrame(rows).to_csv(tmp_path / "images.csv", index=False)
    pd.DataFrame({"patient_id": list(states), "event": "deformity", "time_years": 1.0, "observed": 0}).to_csv(
        tmp_path / "events.csv", index=False)
    pd.DataFrame(marks).to_csv(tmp_path / "landmarks.csv", index=False)
    cohort = load(tmp_path)
    got = visit_measures(cohort_site_patches(cohort, progress=False), cohort, list(MEASURES)).set_index("patient_id")
    healthy = got.loc["healthy"]
    assert 0.50 < healthy["carpal_height_ratio"] < 0.62  # Youm's normal range, 0.54 +- 0.03, with the phantom's
    assert got.loc["collapsed", "carpal_height_ratio"] < healthy["carpal_height_ratio"] - 0.1
    # periarticular osteopenia: the bone next to the joint fades into the soft tissue, the patch loses contrast
    assert got.loc["osteopenic", "joint_contrast"] < healthy["joint_contrast"] - 0.02
    assert got.loc["swollen", "joint_density"] > healthy["joint_density"] + 0.1  # more soft tissue by the joint
    assert got.loc["osteopenic", "carpal_height_ratio"] == pytest.approx(healthy["carpal_height_ratio"], abs=1e-6)


def test_the_config_takes_measures_on_the_site_route_only(tmp_path):
    from raoutcome.errors import ConfigError
    from raoutcome.training.config import load_config

    path = tmp_path / "c.toml"
    path.write_text('[model]\nroute = "sites"\n[readout]\nmeasures = ["carpal_height_ratio"]\n'
                    'risk_inputs = ["log_erosion", "carpal_height_ratio"]\n')
    assert load_config(path).readout["measures"] == ["carpal_height_ratio"]
    for bad, match in (('[model]\nroute = "image"\n[readout]\nmeasures = ["joint_density"]\n', "site route"),
                       ('[model]\nroute = "sites"\n[readout]\nrisk_inputs = ["joint_density"]\n', "joint_density"),
                       ('[model]\nroute = "sites"\n[readout]\nmeasures = ["bone_age"]\n', "measures")):
        path.write_text(bad)
        with pytest.raises(ConfigError, match=match):
            load_config(path)


def test_the_readouts_read_a_measure_fill_a_missing_one_and_predict_needs_it():
    """HAQ and the hazard depend on a visit measure only: the ridge and Cox readouts that read it recover it; a
    visit without it reads the training mean; outcome data without it are refused."""
    from dataclasses import replace

    import torch

    from raoutcome.models.site_outcome import SiteOutcomeModel, SiteOutcomeSpec
    from raoutcome.training.site_outcome_train import (SEVERITY_TARGET, OutcomeData, _fit_readouts, count_features,
                                                       predict_site_outcome)

    rng = np.random.default_rng(3)
    n_sites, site_dim, n = 3, 4, 60
    h = torch.as_tensor(rng.normal(size=(n * 2 * n_sites, site_dim)), dtype=torch.float32)
    visits, rows, events = {}, {}, {}
    for p in range(n):
        pid = f"P{p:02d}"
        m = rng.normal(0.55, 0.04, size=2)
        if p == n - 1:
            m[1] = np.nan  # a visit without the measure
        visits[pid] = pd.DataFrame({"patient_id": pid, "visit_id": ["V0", "V1"], "time_years": [0.0, 1.0],
                                    "haq": 1.0 + 10 * (np.nan_to_num(m, nan=0.55) - 0.55), SEVERITY_TARGET: np.nan,
                                    "carpal_height_ratio": m, **{c: np.nan for c in count_features()}})
        rows[pid] = (np.arange(p * 2 * n_sites, (p + 1) * 2 * n_sites), np.repeat([0, 1], n_sites),
                     np.tile(np.arange(n_sites), 2))
        t = float(rng.exponential(np.exp(-40 * (m[0] - 0.55))))
        events[pid] = (min(t, 2.0), float(t < 2.0))
    data = OutcomeData(sorted(visits), visits, rows, events, ("haq",), measures=("carpal_height_ratio",))
    torch.manual_seed(0)
    model = SiteOutcomeModel(SiteOutcomeSpec(n_sites=n_sites, site_dim=site_dim, d_model=8, layers=1,
                                             attention_heads=2, counts=False, heads=("haq", "risk"))).eval()
    train, test = data.patients[:40], data.patients[40:]
    model.readouts = _fit_readouts(model, data, h, train, [].append, "t", ("carpal_height_ratio",),
                                   extras=data.extras)
    fill = model.readouts["measure_fill"]["carpal_height_ratio"]
    train_values = pd.concat([visits[p] for p in train])["carpal_height_ratio"]
    assert fill == pytest.approx(train_values.mean())
    assert model.readouts["risk"]["coef"][0] > 10  # the hazard rises as the ratio rises (exp(40 (m - 0.55)))
    first_train = pd.concat([visits[p] for p in train]).groupby("patient_id").head(1)["carpal_height_ratio"]
    assert model.readouts["risk"]["center"] == pytest.approx([first_train.mean()])  # a measure is centred
    got = predict_site_outcome(model, data, h, test)
    truth = pd.concat([visits[p] for p in test])
    ok = truth["carpal_height_ratio"].notna().to_numpy()
    assert np.abs(got["haq"].to_numpy()[ok] - truth["haq"].to_numpy()[ok]).mean() < 0.05
    assert got["haq"].to_numpy()[~ok] == pytest.approx(1.0 + 10 * (fill - 0.55), abs=0.05)  # the filled mean
    first = got.groupby("patient_id").head(1)
    m0 = truth.groupby("patient_id").head(1)["carpal_height_ratio"].to_numpy()
    np.testing.assert_allclose(first["risk"], model.readouts["risk"]["coef"][0] * (m0 - first_train.mean()), rtol=1e-6)
    with pytest.raises(ValueError, match="carpal_height_ratio"):
        predict_site_outcome(model, replace(data, measures=(), _arrays={}), h, test)


REAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real-hands"


@pytest.mark.skipif(not (REAL / "landmarks.csv").exists(), reason="real hands not available")
def test_real_hands_get_grey_level_measures_and_no_carpal_ratio_without_its_landmarks(tmp_path):
    """The real hand radiographs (read where they lie, via cohort.toml's root): every hand gets finite grey-level
    measures that differ between hands; their 15-landmark set has no CMC3 / RADCAR, so no carpal height ratio."""
    from raoutcome.cohort import load
    from raoutcome.imaging.site_patches import cohort_site_patches

    table = pd.read_csv(REAL / "landmarks.csv")
    names = sorted(n for n in table["image"].unique() if n.endswith("_L.png"))  # the *_R files are mirrored copies
    pids = [f"h{i}" for i in range(len(names))]
    pd.DataFrame({"patient_id": pids}).to_csv(tmp_path / "patients.csv", index=False)
    pd.DataFrame({"patient_id": pids, "visit_id": "v0", "time_years": 0.0}).to_csv(tmp_path / "visits.csv", index=False)
    pd.DataFrame({"patient_id": pids, "event": "deformity", "time_years": 1.0, "observed": 0}).to_csv(
        tmp_path / "events.csv", index=False)
    pd.DataFrame({"patient_id": pids, "visit_id": "v0", "view": "hand_left",
                  "path": [f"images/{n}" for n in names]}).to_csv(tmp_path / "images.csv", index=False)
    marks = table[table["image"].isin(names)].assign(path=lambda t: "images/" + t["image"])
    marks[["path", "landmark", "x", "y"]].to_csv(tmp_path / "landmarks.csv", index=False)
    (tmp_path / "cohort.toml").write_text(f"root = {str(REAL)!r}\n".replace("'", '"'))
    cohort = load(tmp_path)
    got = visit_measures(cohort_site_patches(cohort, progress=False), cohort, list(MEASURES))
    assert len(got) == len(names)
    assert np.isfinite(got[["joint_density", "joint_contrast"]].to_numpy()).all()
    assert (got["joint_contrast"] > 0).all() and got["joint_density"].std() > 0
    assert got["carpal_height_ratio"].isna().all()


def test_no_patches_give_no_visits():
    empty = SitePatches(pd.DataFrame(columns=["patient_id", "visit_id", "view", "site", "joint", "path"]),
                        np.zeros((0, 8, 8), np.float32), 8, 0.08)
    got = visit_measures(empty, SimpleNamespace(landmarks=None, images=pd.DataFrame()), list(MEASURES))
    assert list(got.columns) == ["patient_id", "visit_id", *MEASURES] and got.empty
