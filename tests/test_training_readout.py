"""Closed-form linear readouts of the HAQ / pain heads: the ridge fit, the model path, the run."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.linear_model import Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from conftest import TINY_MODEL_TOML, write_tiny_cohort
from raoutcome.anatomy import VIEWS
from raoutcome.cohort import load
from raoutcome.imaging.dataset import PatientSequences
from raoutcome.models import LongitudinalOutcomeModel, ModelSpec
from raoutcome.training import train_run
from raoutcome.training import checkpoint as ckpt
from raoutcome.training.readout import (MIN_EVENTS_PER_INPUT, MIN_PATIENTS, fit_cox_readout, fit_readouts, fit_ridge_readout,
                                        readout_data)
from raoutcome.training.trainer import make_loader

torch.set_num_threads(1)
LEFT, RIGHT = VIEWS.index("hand_left"), VIEWS.index("hand_right")


# ------------------------------------------------------------------ the ridge fit
def test_ridge_readout_recovers_a_linear_rule_on_raw_feature_scales():
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(40), 4)
    x = rng.normal(size=(160, 6)) * np.array([1, 10, 100, 0.01, 1, 5]) + np.array([0, 50, -3, 1, 0, 0])
    w = np.array([0.5, -0.02, 0.003, 40.0, 0.0, 0.1])
    y = x @ w + 1.5 + rng.normal(0, 0.01, 160)
    fit = fit_ridge_readout(x, y, groups)
    # standardisation is folded into the raw coefficients: same predictions as the sklearn pipeline
    pipe = make_pipeline(StandardScaler(), Ridge(alpha=fit.alpha)).fit(x, y)
    assert np.allclose(x @ fit.coef + fit.intercept, pipe.predict(x), atol=1e-8)
    assert fit.alpha == pytest.approx(0.1)  # nearly noise-free: the smallest penalty wins
    assert np.allclose(fit.coef, w, atol=0.05 * np.abs(w).max())
    assert fit.cv_r2 > 0.99 and fit.n_patients == 40 and fit.n_visits == 160


def test_ridge_readout_penalty_grows_when_only_noise_is_there():
    rng = np.random.default_rng(1)
    groups = np.repeat(np.arange(30), 3)
    x = rng.normal(size=(90, 50))
    y = rng.normal(size=90)
    assert fit_ridge_readout(x, y, groups).alpha >= 1e3


def test_ridge_readout_skips_missing_labels_and_needs_enough_patients():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(40, 3))
    y = x[:, 0] * 2.0
    y[::5] = np.nan
    groups = np.repeat(np.arange(10), 4)
    fit = fit_ridge_readout(x, y, groups)
    assert fit.n_visits == 32 and np.isfinite(fit.coef).all()
    with pytest.raises(ValueError, match=f">= {MIN_PATIENTS} patients"):
        fit_ridge_readout(x[:8], y[:8], groups[:8])


def test_cox_readout_reproduces_lifelines_published_rossi_fit():
    """lifelines' documented example (Rossi recidivism data, CoxPHFitter, no penalty)."""
    from lifelines.datasets import load_rossi

    rossi = load_rossi()
    names = ("fin", "age", "race", "wexp", "mar", "paro", "prio")
    fit = fit_cox_readout(rossi[list(names)].to_numpy(float), rossi["week"].to_numpy(float),
                          rossi["arrest"].to_numpy(float), names, penalizer=0.0)
    published = {"fin": -0.379, "age": -0.057, "race": 0.314, "wexp": -0.150, "mar": -0.434, "paro": -0.085,
                 "prio": 0.091}
    assert np.allclose(fit.coef, [published[n] for n in names], atol=1.5e-3)
    assert fit.concordance == pytest.approx(0.640, abs=1e-3)
    assert fit.n_events == 114 and fit.n_patients == 432


def test_cox_readout_gives_a_constant_input_no_coefficient_and_needs_events():
    rng = np.random.default_rng(4)
    x = np.column_stack([rng.normal(size=60), np.ones(60)])
    time = rng.exponential(np.exp(-x[:, 0]))
    fit = fit_cox_readout(x, time, np.ones(60), ("signal", "constant"))
    assert fit.coef[0] > 0.5 and fit.coef[1] == 0.0
    few = np.r_[np.ones(2 * MIN_EVENTS_PER_INPUT - 1), np.zeros(60 - 2 * MIN_EVENTS_PER_INPUT + 1)]
    with pytest.raises(ValueError, match=f"on 2 inputs needs >= {2 * MIN_EVENTS_PER_INPUT} observed events"):
        fit_cox_readout(x, time, few, ("signal", "constant"))


# ------------------------------------------------------------------ the model path
def _model(readouts=("haq",), seed=0) -> LongitudinalOutcomeModel:
    torch.manual_seed(seed)
    return LongitudinalOutcomeModel(ModelSpec(encoder="test_efficientnet", d_model=16, attention_heads=2, layers=1,
                                              dropout=0.0, readouts=tuple(readouts))).eval()


def _batch(n_patients=3, n_visits=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    idx = [(b, t, v) for b in range(n_patients) for t in range(n_visits) for v in (LEFT, RIGHT)]
    img_b, img_t, img_v = (torch.tensor(c) for c in zip(*idx))
    return dict(images=torch.rand(len(idx), 1, 32, 32, generator=g), img_b=img_b, img_t=img_t, img_v=img_v,
                time=torch.arange(n_visits, dtype=torch.float32).repeat(n_patients, 1),
                visit_mask=torch.ones(n_patients, n_visits, dtype=torch.bool))


def test_readout_is_the_clipped_linear_map_of_embedding_counts_and_mean_pooled_features():
    model = _model()
    batch = _batch()
    with torch.no_grad():
        model.readouts["haq"].weight.normal_(0, 0.05)
        model.readouts["haq"].bias.fill_(1.2)
        out = model.forward_batch(batch, return_readout_features=True)
        x = out["readout_features"]
        assert x.shape == (3, 2, model.readout_dim)
        pooled = model.encode_images(batch["images"])
        # the pooled part is the mean over the visit's two views
        mean01 = (pooled[2] + pooled[3]) / 2  # patient 0, visit 1
        assert torch.allclose(x[0, 1, -model.encoder.out_features:], mean01, atol=1e-5)
        assert torch.allclose(x[..., :2 * model.spec.d_model], out["embedding"], atol=1e-6)
        expected = (x @ model.readouts["haq"].weight[0] + 1.2).clamp(0, 3)
        assert torch.allclose(out["haq"], expected, atol=1e-5)
        model.readouts["haq"].bias.fill_(50.0)  # far above the range: clipped to the HAQ maximum
        assert torch.allclose(model.forward_batch(batch)["haq"], torch.full((3, 2), 3.0))


def test_risk_readout_is_a_linear_predictor_of_the_visits_own_outputs():
    model = _model(readouts=("haq", "pain", "risk"))
    assert model.risk_inputs == ("log_jsn", "log_erosion", "haq", "pain")
    batch = _batch()
    with torch.no_grad():
        for name, level in (("haq", 1.0), ("pain", 40.0)):
            model.readouts[name].weight.zero_()
            model.readouts[name].bias.fill_(level)
        model.readouts["risk"].weight.copy_(torch.tensor([[0.5, 1.0, 0.8, 0.01]]))
        model.readouts["risk"].bias.zero_()
        model.heads["risk"].center.fill_(0.25)
        out = model.forward_batch(batch, return_readout_features=True)
        x = torch.stack([torch.log1p(out["jsn"]), torch.log1p(out["erosion"]), out["haq"], out["pain"]], -1)
        assert torch.allclose(out["risk_features"], x)
        assert torch.allclose(out["haq"], torch.ones(3, 2)) and torch.allclose(out["pain"], torch.full((3, 2), 40.0))
        expected = 0.5 * x[..., 0] + 1.0 * x[..., 1] + 0.8 * 1.0 + 0.01 * 40.0 - 0.25
        assert torch.allclose(out["risk"], expected, atol=1e-5)


def test_a_visit_without_images_falls_back_to_the_trained_head():
    model = _model()
    batch = _batch(n_patients=1, n_visits=2)
    keep = batch["img_t"] == 0  # visit 1 loses both its images
    for k in ("images", "img_b", "img_t", "img_v"):
        batch[k] = batch[k][keep]
    plain = LongitudinalOutcomeModel(replace_spec(model.spec, readouts=())).eval()
    plain.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith("readouts.")})
    with torch.no_grad():
        model.readouts["haq"].bias.fill_(2.5)
        model.readouts["haq"].weight.zero_()
        a, b = model.forward_batch(batch)["haq"][0], plain.forward_batch(batch)["haq"][0]
    assert a[0] == pytest.approx(2.5) and a[1] == pytest.approx(float(b[1]))


def replace_spec(spec, **kw):
    from dataclasses import replace

    return replace(spec, **kw)


def test_readouts_only_for_heads_that_are_switched_on_and_old_specs_load():
    with pytest.raises(ValueError, match="risk readout reads"):
        LongitudinalOutcomeModel(ModelSpec(encoder="test_efficientnet", d_model=16, attention_heads=2,
                                           heads=("risk",), readouts=("risk",)))
    with pytest.raises(ValueError, match="readouts"):
        LongitudinalOutcomeModel(ModelSpec(encoder="test_efficientnet", d_model=16, attention_heads=2,
                                           heads=("svdh", "haq"), readouts=("pain",)))
    spec = ModelSpec(encoder="test_efficientnet", readouts=("haq", "pain"))
    assert ModelSpec.from_dict(spec.to_dict()) == spec
    old = spec.to_dict()
    del old["readouts"]
    assert ModelSpec.from_dict(old).readouts == ()


class _Images:
    """Images as arrays keyed by path: a fixed random image per file."""

    def __init__(self, size=32):
        self.size, self.cache = size, {}

    def get(self, path, view=None):
        key = str(path)
        if key not in self.cache:
            rng = np.random.default_rng(abs(hash(key)) % 2**32)
            self.cache[key] = rng.random((1, self.size, self.size)).astype(np.float32)
        return self.cache[key]


def test_fit_readouts_learns_a_target_that_is_linear_in_the_models_own_features(tmp_path):
    """Plumbing: features, targets and patients line up, and the folded weights reproduce the fit."""
    cohort = load(write_tiny_cohort(tmp_path / "cohort", n_patients=12, n_visits=3))
    model = _model(readouts=("haq", "pain"))
    images = _Images()
    ds = PatientSequences(cohort, images, cohort.patient_ids)
    loader = make_loader(ds, 4, 0)
    x, _, groups = readout_data(model, loader, torch.device("cpu"))
    rng = np.random.default_rng(3)
    w = rng.normal(0, 1, x.shape[1]) / np.sqrt(x.shape[1])
    rule = x @ w
    haq = 1.5 + 0.4 * (rule - rule.mean()) / rule.std()  # inside 0-3, linear in the features
    visits = cohort.visits.set_index(["patient_id", "visit_id"])
    order = [(ds.patient_ids[p], v) for p in range(len(ds)) for v in ds.visit_ids[p]]
    assert len(order) == len(haq) and len(np.unique(groups)) == 12
    visits.loc[order, "haq"] = haq
    cohort.visits["haq"] = visits.loc[list(zip(cohort.visits["patient_id"], cohort.visits["visit_id"])), "haq"].values
    ds = PatientSequences(cohort, images, cohort.patient_ids)
    fits = fit_readouts(model, make_loader(ds, 4, 0), torch.device("cpu"))
    assert fits["haq"].cv_r2 > 0.6  # held-out patients, with about as many features as visits
    with torch.no_grad():
        pred = np.concatenate([model.forward_batch(b)["haq"][b["visit_mask"]].numpy() for b in make_loader(ds, 4, 0)])
    assert np.corrcoef(pred, haq)[0, 1] > 0.99
    assert np.isfinite(fits["pain"].coef).all()  # pain fitted on its own (noise) labels too


# ------------------------------------------------------------------ the run
TINY = TINY_MODEL_TOML + """[train]
epochs = 1
batch_patients = 4
num_workers = 0
val_fraction = 0.2
[cv]
folds = 2
[data]
cache_dir = "{cache}"
{extra}
"""


def test_a_run_refits_the_readouts_on_each_models_training_patients_only(tmp_path):
    root = write_tiny_cohort(tmp_path / "cohort", n_patients=40, n_visits=3)
    events = pd.read_csv(root / "events.csv")
    events["observed"] = [1, 1, 1, 0] * 10  # enough events in every fold for the Cox readout (3 per input)
    events.to_csv(root / "events.csv", index=False)
    cohort = load(root)
    cfg = tmp_path / "train.toml"
    cfg.write_text(TINY.format(cache=tmp_path / "cache", extra=""))
    run = train_run(cohort, cfg, tmp_path / "run")
    for fold in (0, 1):
        done = json.loads((run / f"fold_{fold}" / "done.json").read_text())
        best = ckpt.load(run / f"fold_{fold}" / "best.pt")
        assert best["spec"]["readouts"] == ["haq", "pain", "risk"]
        assert {"readouts.haq.weight", "readouts.pain.bias"} <= set(best["model"])
        train_patients = set(done["train_ids"]) | set(done["val_ids"])
        assert not train_patients & set(done["test_ids"])
        labelled = cohort.visits[cohort.visits["patient_id"].isin(train_patients)]
        assert done["readouts"]["haq"]["n_patients"] == labelled.dropna(subset=["haq"])["patient_id"].nunique()
        assert done["readouts"]["haq"]["n_visits"] == int(labelled["haq"].notna().sum())
        events = cohort.event_table("deformity").set_index("patient_id").loc[sorted(train_patients)]
        assert done["readouts"]["risk"]["n_events"] == int(events["observed"].sum())
        assert set(done["readouts"]["risk"]["coef"]) == {"log_jsn", "log_erosion", "haq", "pain"}
    # too few events for four inputs (fewer than 12 in a fold's training patients): the trained risk
    # head stays, and the reason is recorded
    rare = pd.read_csv(root / "events.csv")
    rare["observed"] = [1, 0, 0, 0] * 10
    rare.to_csv(root / "events.csv", index=False)
    few = train_run(load(root), cfg, tmp_path / "run_few")
    done = json.loads((few / "fold_0" / "done.json").read_text())
    assert "needs >= 12 observed events" in done["readouts"]["risk"]["kept_trained_head"]
    assert ckpt.load(few / "fold_0" / "best.pt")["spec"]["readouts"] == ["haq", "pain"]
    # switched off: the trained heads stay
    cfg.write_text(TINY.format(cache=tmp_path / "cache", extra="[readout]\nheads = []"))
    off = train_run(cohort, cfg, tmp_path / "run_off")
    assert ckpt.load(off / "fold_0" / "best.pt")["spec"]["readouts"] == []


def test_readout_config_is_validated(tmp_path):
    from raoutcome.errors import ConfigError
    from raoutcome.training.config import load_config

    bad = tmp_path / "bad.toml"
    bad.write_text('[readout]\nheads = ["svdh"]\n')
    with pytest.raises(ConfigError, match=r"readout.heads = \['svdh'\]"):
        load_config(bad)
    ok = tmp_path / "ok.toml"
    ok.write_text('[heads]\npain = false\n[readout]\nheads = ["haq", "pain", "risk"]\n')
    assert load_config(ok).readout_heads == ("haq", "risk")
    only_risk = tmp_path / "only_risk.toml"
    only_risk.write_text('[heads]\nsvdh = false\nhaq = false\npain = false\n')
    assert load_config(only_risk).readout_heads == ()


def test_loader_workers_only_when_a_core_is_free_for_them(monkeypatch):
    from raoutcome.training import trainer

    monkeypatch.setattr(trainer.os, "cpu_count", lambda: 2)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)  # torch uses both cores: workers would contend with it
        assert trainer.loader_workers(2, torch.device("cpu")) == 0
        assert trainer.loader_workers(2, torch.device("cuda")) == 2  # a GPU run keeps its loaders
        torch.set_num_threads(1)  # a core to spare
        assert trainer.loader_workers(2, torch.device("cpu")) == 2
        assert trainer.loader_workers(0, torch.device("cpu")) == 0
    finally:
        torch.set_num_threads(threads)
