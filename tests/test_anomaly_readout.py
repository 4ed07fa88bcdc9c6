"""The joint anomaly inside a model: the torch scorer computes what the NumPy estimator computes, the
dataset samples the patches the standalone score samples, a run fits the PCA on each model's training
patients only and carries it in the checkpoint, and every way to misuse it is refused clearly."""
from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

from raoutcome.anatomy import VIEWS
from raoutcome.cohort import load
from raoutcome.errors import ConfigError, InputError
from raoutcome.imaging.joint_anomaly import (PATCH_SIDE, JointAnomaly, _standardise, cohort_patches,
                                             image_anomaly)
from raoutcome.models import LongitudinalOutcomeModel, ModelSpec
from raoutcome.models.anomaly_readout import JointAnomalyScorer

torch.set_num_threads(1)
D = PATCH_SIDE * PATCH_SIDE  # a sampled patch: the scored window and its shift margin


def _patch_sets(rng, n=40):
    base = rng.normal(size=(3, D))
    out = {name: base[i] + 0.3 * rng.normal(size=(n, D)) + rng.normal(size=(n, 1)) for i, name in
           enumerate(("MCP2", "CMC3", "MP"))}
    out["MCP2"][5] = np.nan  # an image without this landmark
    return out


def test_the_torch_scorer_reproduces_the_numpy_estimator_and_its_erosion_site_mean():
    rng = np.random.default_rng(0)
    ref = _patch_sets(rng)
    fitted = JointAnomaly(n_components=5).fit(ref)
    names = ("CMC3", "MCP2", "MP", "W1")  # W1 has no reference: never fitted, always missing
    scorer = JointAnomalyScorer(names)
    scorer.load_fitted(fitted)
    assert scorer.fitted.tolist() == [True, True, True, False]
    new = _patch_sets(rng, n=12)
    new["W1"] = rng.normal(size=(12, D))
    patches = torch.as_tensor(np.stack([new[n] for n in names], 1), dtype=torch.float32)
    got = scorer.landmark_scores(patches).numpy()
    want = fitted.score({n: new[n].astype(np.float32) for n in ("CMC3", "MCP2", "MP")})
    for i, name in enumerate(names[:3]):
        np.testing.assert_allclose(got[:, i], want[name], atol=1e-4, equal_nan=True)
    assert np.isnan(got[:, 3]).all() and np.isnan(got[5, 1])
    views = np.array(["hand_left", "hand_right", "foot_left"] * 4)
    per_image = scorer(patches, torch.as_tensor([VIEWS.index(v) for v in views])).numpy()
    expected = image_anomaly(pd.DataFrame({"view": views}), pd.DataFrame(got, columns=names)).to_numpy()
    np.testing.assert_allclose(per_image, expected, atol=1e-6, equal_nan=True)
    assert np.isnan(per_image[views == "foot_left"]).all()  # no foot erosion site among these landmarks


def _spec(**kw) -> ModelSpec:
    return ModelSpec(encoder="test_efficientnet", d_model=16, attention_heads=2, layers=1, lesion_maps=0,
                     heads=("haq", "pain", "risk"), readouts=("haq", "risk"), **kw)


def test_the_model_reads_the_visit_anomaly_and_refuses_to_guess_it():
    model = LongitudinalOutcomeModel(_spec(anomaly_landmarks=("MCP2", "PIP2")), load_pretrained=False).eval()
    assert model.risk_inputs == ("haq", "pain", "joint_anomaly")
    base = LongitudinalOutcomeModel(_spec(), load_pretrained=False)
    assert model.readout_dim == base.readout_dim + 1
    rng = np.random.default_rng(1)
    model.joint_anomaly.load_fitted(JointAnomaly(3).fit({"MCP2": rng.normal(size=(30, D)),
                                                         "PIP2": rng.normal(size=(30, D))}))
    images = torch.rand(3, 1, 32, 32)
    b, t, v = torch.tensor([0, 0, 1]), torch.tensor([0, 0, 0]), torch.tensor([VIEWS.index("hand_left")] * 3)
    time, mask = torch.zeros(2, 2), torch.tensor([[True, False], [True, False]])
    patches = torch.as_tensor(rng.normal(size=(3, 2, D)), dtype=torch.float32)
    patches[2] = float("nan")  # patient 1's only image has no landmark: its visit gets the reference mean, 0
    with torch.no_grad():
        out = model(images, b, t, v, time, mask, return_readout_features=True, joint_patches=patches)
        per_image = model.joint_anomaly(patches, v)
    feats = out["readout_features"]
    assert feats[0, 0, -1].item() == pytest.approx(per_image[:2].mean().item(), abs=1e-6)
    assert feats[1, 0, -1].item() == 0.0
    assert torch.equal(out["risk_features"][..., -1], feats[..., -1])
    with pytest.raises(ValueError, match="joint_patches"):
        model(images, b, t, v, time, mask)
    single = model.forward_single_image(torch.rand(2, 1, 32, 32), "hand_left")  # attribution: no patches
    assert torch.isfinite(single["haq"]).all()
    with pytest.raises(ValueError, match="readouts"):
        LongitudinalOutcomeModel(replace(_spec(anomaly_landmarks=("MCP2",)), readouts=()), load_pretrained=False)
    # old checkpoints (no anomaly) still load
    assert ModelSpec.from_dict({k: v for k, v in _spec().to_dict().items() if k != "anomaly_landmarks"}) == _spec()


def test_the_dataset_samples_the_standalone_scores_patches_in_the_model_frame(small_study, tmp_path):
    from raoutcome.imaging.cache import ImageCache
    from raoutcome.imaging.dataset import PatientSequences, collate_patients
    from raoutcome.imaging.landmark_patches import cohort_landmark_names

    cohort = load(small_study["cohort"])
    names = cohort_landmark_names(cohort)
    assert "MCP2" in names and len(names) >= 20
    size = 64  # the simulated images' own size: the cache only letter-boxes and mirrors
    ds = PatientSequences(cohort, ImageCache(tmp_path / "cache", size), cohort.patient_ids[:3], patch_landmarks=names)
    batch = collate_patients([ds[i] for i in range(3)])
    assert batch["joint_patches"].shape == (len(batch["images"]), len(names), D)
    paths = [cohort.images.set_index(["patient_id", "visit_id", "view"]).loc[ds._image_keys[p][:3], "path"]
             for items in ds.images for p, *_ in items]
    table, standalone = cohort_patches(cohort, paths=paths, progress=False)
    order = [table.index[table["path"] == p][0] for p in paths]
    for j, name in enumerate(names):
        ours = _standardise(batch["joint_patches"][:, j].double().numpy())
        theirs = _standardise(standalone[name][order].astype(np.float64))
        r = [np.corrcoef(a, c)[0, 1] for a, c in zip(ours, theirs)]
        assert min(r) > 0.97, (name, min(r))


TINY = """
[model]
encoder = "test_efficientnet"
image_size = 64
d_model = 16
attention_heads = 2
layers = 1
lesion_maps = 0
[heads]
svdh = false
[train]
epochs = 1
batch_patients = 6
num_workers = 0
val_fraction = 0.2
[cv]
folds = 2
[data]
cache_dir = "{cache}"
[readout]
joint_anomaly = true
risk_inputs = {risk}
"""


def test_a_run_fits_the_anomaly_on_each_models_training_patients_and_predicts_with_it(small_study, tmp_path):
    from raoutcome.imaging.cache import ImageCache
    from raoutcome.imaging.dataset import PatientSequences
    from raoutcome.imaging.landmark_patches import cohort_landmark_names
    from raoutcome.training import checkpoint as ckpt
    from raoutcome.training import train_run
    from raoutcome.training.run import predict_run
    from raoutcome.training.trainer import make_loader

    cohort = load(small_study["cohort"])
    cfg = tmp_path / "train.toml"
    cfg.write_text(TINY.format(cache=tmp_path / "cache", risk='["joint_anomaly"]'))
    run = train_run(cohort, cfg, tmp_path / "run")
    names = cohort_landmark_names(cohort)
    for fold in (0, 1):
        done = json.loads((run / f"fold_{fold}" / "done.json").read_text())
        best = ckpt.load(run / f"fold_{fold}" / "best.pt")
        assert tuple(best["spec"]["anomaly_landmarks"]) == names
        assert set(done["readouts"]["risk"]["coef"]) == {"joint_anomaly"}
        # the PCA in the checkpoint is the one fitted on this model's training patients, never its test patients
        ds = PatientSequences(cohort, ImageCache(tmp_path / "cache", 64), done["train_ids"] + done["val_ids"],
                              patch_landmarks=names)
        patches = np.concatenate([b["joint_patches"].numpy() for b in make_loader(ds, 6, 0)])
        refit = JointAnomaly().fit({n: patches[:, i] for i, n in enumerate(names)})
        i = names.index("MCP2")
        np.testing.assert_allclose(best["model"]["joint_anomaly.mean"][i].numpy(), refit.models_["MCP2"].mean,
                                   atol=1e-5)
        weights = best["model"]["readouts.risk.weight"][0]
        assert weights[-1] != 0 and (weights[:-1] == 0).all()  # the Cox reads only the anomaly
    preds = predict_run(run, cohort, tmp_path / "pred.nc")
    assert preds.exists()
    with pytest.raises(InputError, match="landmarks"):
        predict_run(run, replace(cohort, landmarks=None), tmp_path / "pred2.nc")
    with pytest.raises(InputError, match="landmarks"):
        train_run(replace(cohort, landmarks=None), cfg, tmp_path / "run_no_marks")


@pytest.mark.parametrize("text, match", [
    ('[readout]\nrisk_inputs = ["joint_anomaly"]\n', r"names \['joint_anomaly'\]"),
    ('[heads]\nsvdh = false\n[readout]\nrisk_inputs = ["log_jsn"]\n', r"names \['log_jsn'\]"),
    ('[readout]\nheads = []\njoint_anomaly = true\n', "fits no readout"),
    ('[readout]\nrisk_inputs = ["bmi"]\n', "a list of distinct inputs"),
    ('[readout]\njoint_anomaly = "yes"\n', "true or false"),
])
def test_the_anomaly_readout_options_are_validated(tmp_path, text, match):
    from raoutcome.training.config import load_config

    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=match):
        load_config(path)
