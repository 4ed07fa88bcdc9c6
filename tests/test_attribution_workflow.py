"""`raoutcome attribute` end to end on a tiny cohort with a stand-in run (models with the trained interface)."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from PIL import Image

from raoutcome.anatomy import REGIONS
from raoutcome.errors import InputError
from test_attribution_standin import StandIn

SIZE = 48


@pytest.fixture
def cohort(tiny_cohort):
    from raoutcome.cohort import load

    # one image gets a simulator-style truth label map; the first already has landmarks in the manifest
    images = pd.read_csv(tiny_cohort / "images.csv")
    rel = images["path"].iloc[3]
    labels = np.full((64, 64), REGIONS["soft_tissue"], np.uint8)
    labels[20:30, 20:30] = REGIONS["svdh_site"]
    labels[30:40, 20:30] = REGIONS["periarticular"]
    (tiny_cohort / "truth" / "regions").mkdir(parents=True)
    Image.fromarray(labels).save(tiny_cohort / "truth" / "regions" / (rel.split("/")[-1].rsplit(".", 1)[0] + ".png"))
    return load(tiny_cohort)


@pytest.fixture
def run(tmp_path, monkeypatch):
    import raoutcome.workflows.attribute as wf

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    models = [StandIn(heads=("svdh", "haq", "pain"), seed=s).eval() for s in (0, 1)]
    monkeypatch.setattr(wf, "load_run", lambda path: (models, {"model": {"image_size": SIZE}, "data": {"contrast": []}}))
    return run_dir


def test_attribute_writes_overlays_tables_and_maps(cohort, run, tmp_path):
    from raoutcome.workflows.attribute import attribute

    out = tmp_path / "attr"
    with pytest.warns(UserWarning, match="foreground/background"):  # images with neither truth nor landmarks
        path = attribute(run, cohort, out, method="integrated_gradients", max_images=8, n_boot=50,
                         settings={"n_steps": 4}, progress=False)
    assert path == out
    meta = json.loads((out / "attribution.json").read_text())
    assert meta["n_images"] == 8 and meta["heads"] == ["svdh", "haq", "pain"] and meta["n_models"] == 2
    assert meta["region_sources"].get("fallback", 0) >= 1
    # one image per patient before any second one: 6 patients, 8 images
    table = pd.read_csv(out / "regions.csv")
    per_patient = table.drop_duplicates("image").groupby("patient_id").size()
    assert len(per_patient) == 6 and per_patient.max() == 2
    assert {"image", "patient_id", "visit_id", "view", "region_source", "head", "region", "area", "mass",
            "mass_share", "density", "relative_density"} <= set(table.columns)
    shares = table.groupby(["image", "head"])["area_share"].sum()
    np.testing.assert_allclose(shares, 1.0)
    summary = pd.read_csv(out / "summary.csv")
    assert set(summary["head"]) == {"svdh", "haq", "pain"}
    ds = xr.load_dataset(out / "maps.nc", engine="h5netcdf")
    assert ds["attribution"].dims == ("image", "head", "y", "x")
    assert ds["attribution"].shape == (8, 3, SIZE, SIZE)
    assert (ds["attribution"] >= 0).all()
    # the maps in the file are the ones the table was computed from
    first = ds.isel(image=0)
    mass = float(first["attribution"].sel(head="haq").where(first["region"] == 0).sum())
    row = table[(table.image == str(first.image.values)) & (table["head"] == "haq") & (table.region == "background")]
    assert mass == pytest.approx(float(row["mass"].iloc[0]), rel=1e-4)
    overlays = sorted((out / "overlays").glob("*.png"))
    assert len(overlays) == 8
    assert Image.open(overlays[0]).size[0] > 3 * Image.open(overlays[0]).size[1] // 2  # panels side by side


def test_each_image_gets_the_best_region_source(cohort):
    from raoutcome.workflows.attribute import prepare_images

    paths = pd.read_csv(cohort.root / "images.csv")["path"]
    rows = cohort.images.set_index("path").loc[[paths[0], paths[3], paths[5]]].reset_index()
    with pytest.warns(UserWarning, match="1 of 3 images have neither"):
        x, labels, sources = prepare_images(cohort, rows, SIZE, progress=False)
    assert sources == ["landmarks", "truth", "fallback"]
    assert x.shape == labels.shape == (3, SIZE, SIZE)
    # the truth map (64 px) lands in the 48 px model frame: svdh_site rows 20-29 -> 15-21.75 (mirrored if right)
    assert (labels[1] == REGIONS["svdh_site"]).sum() == pytest.approx(100 * (SIZE / 64) ** 2, rel=0.25)


def test_attribute_replaces_its_own_output_but_never_a_foreign_folder(cohort, run, tmp_path):
    from raoutcome.workflows.attribute import attribute

    out = tmp_path / "attr"
    for _ in range(2):
        attribute(run, cohort, out, method="gradcam", max_images=2, n_boot=20, progress=False)
    assert len(list((out / "overlays").glob("*.png"))) == 2
    foreign = tmp_path / "results"
    foreign.mkdir()
    (foreign / "precious.txt").write_text("keep me")
    with pytest.raises(InputError, match="not an attribution folder"):
        attribute(run, cohort, foreign, max_images=2, progress=False)
    assert (foreign / "precious.txt").read_text() == "keep me"


@pytest.mark.parametrize("kwargs, message", [
    ({"method": "lime"}, "unknown attribution method 'lime'"),
    ({"max_images": 0}, "max_images must be at least 1"),
    ({"heads": ["risk"]}, r"no head\(s\) \['risk'\]"),
    ({"settings": {"n_steps": 1}}, "n_steps"),
])
def test_bad_arguments_are_rejected_and_nothing_is_written(cohort, run, tmp_path, kwargs, message):
    from raoutcome.workflows.attribute import attribute

    out = tmp_path / "attr"
    with pytest.raises(InputError, match=message):
        attribute(run, cohort, out, progress=False, **kwargs)
    assert not out.exists()


def test_cli_exit_code_2_on_bad_input(cohort, run, tmp_path):
    from typer.testing import CliRunner

    from raoutcome.cli import app

    res = CliRunner().invoke(app, ["attribute", "--run", str(run), "--cohort", str(cohort.root),
                                   "--out", str(tmp_path / "a"), "--method", "lime"])
    assert res.exit_code == 2 and "unknown attribution method" in res.output
    res = CliRunner().invoke(app, ["attribute", "--run", str(tmp_path / "nope"), "--cohort", str(cohort.root),
                                   "--out", str(tmp_path / "a")])
    assert res.exit_code == 2 and "run folder not found" in res.output


def test_cross_fitted_run_attributes_each_patient_with_the_model_that_never_saw_it(cohort, tmp_path, monkeypatch):
    import raoutcome.workflows.attribute as wf
    from raoutcome.attribution.methods import attribute_images, settings_from
    from raoutcome.predictions import from_frame, save_predictions

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    models = [StandIn(seed=s).eval() for s in (0, 1)]
    for fold, m in enumerate(models):
        m.fold = fold
    visits = cohort.visits[["patient_id", "visit_id", "time_years"]].assign(haq=0.5)
    folds = {p: (0 if p in ("p1", "p2", "p3") else 1) for p in cohort.patient_ids if p != "p6"}  # p6: not in the run
    save_predictions(from_frame(visits, folds=folds), run_dir / "cv_predictions.nc")
    monkeypatch.setattr(wf, "load_run", lambda path: (models, {"model": {"image_size": SIZE}}))
    out = tmp_path / "attr"
    with pytest.warns(UserWarning):
        wf.attribute(run_dir, cohort, out, max_images=6, n_boot=20, settings={"n_steps": 4}, progress=False)
    table = pd.read_csv(out / "regions.csv").drop_duplicates("image").set_index("patient_id")
    assert table.loc["p1", "models"] == "fold 0" and table.loc["p5", "models"] == "fold 1"
    assert table.loc["p6", "models"] == "ensemble"
    assert json.loads((out / "attribution.json").read_text())["models_used"] == {"fold 0": 3, "fold 1": 2,
                                                                                 "ensemble": 1}
    ds = xr.load_dataset(out / "maps.nc", engine="h5netcdf")
    i = int(np.flatnonzero(ds["patient_id"].values == "p1")[0])
    direct = attribute_images([models[0]], ds["radiograph"].values[i:i + 1], str(ds["view"].values[i]), ["haq"],
                              settings_from("integrated_gradients", {"n_steps": 4}))["haq"][0]
    np.testing.assert_allclose(ds["attribution"].sel(head="haq").values[i], direct, rtol=1e-4, atol=1e-7)


TINY_TRAIN = """
[model]
encoder = "resnet10t"
image_size = 32
d_model = 16
layers = 1
[train]
epochs = 1
batch_patients = 4
num_workers = 0
[cv]
folds = 2
[predict]
num_workers = 0
"""


def test_cli_on_a_real_tiny_run(cohort, tmp_path):
    try:
        from raoutcome.training import train_run
    except ImportError:
        pytest.skip("raoutcome.training is not available")
    from typer.testing import CliRunner

    from raoutcome.cli import app

    (tmp_path / "train.toml").write_text(TINY_TRAIN)
    run = train_run(cohort, tmp_path / "train.toml", tmp_path / "run")
    out = tmp_path / "attr"
    res = CliRunner().invoke(app, ["attribute", "--run", str(run), "--cohort", str(cohort.root), "--out", str(out),
                                   "--method", "gradcam", "--max-images", "4"])
    assert res.exit_code == 0, res.output
    meta = json.loads((out / "attribution.json").read_text())
    assert meta["n_models"] == 2 and set(meta["models_used"]) <= {"fold 0", "fold 1"}
    assert {"svdh", "haq"} <= set(meta["heads"])
    assert len(list((out / "overlays").glob("*.png"))) == 4
    assert xr.load_dataset(out / "maps.nc", engine="h5netcdf")["attribution"].shape[2:] == (32, 32)
