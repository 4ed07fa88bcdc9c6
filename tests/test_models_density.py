"""Lesion-density branch: counts are sums of the maps, summed over a visit's views, and the
SvdH head reads them (a visit's subscores are its images' counts)."""
from __future__ import annotations

import pytest
import torch

from raoutcome.anatomy import VIEWS
from raoutcome.models import LongitudinalOutcomeModel, ModelSpec
from raoutcome.models.density import LesionDensity, visit_counts

torch.set_num_threads(1)
LEFT, RIGHT = VIEWS.index("hand_left"), VIEWS.index("hand_right")


def _model(lesion_maps=2, heads=("svdh", "haq", "pain", "risk")):
    torch.manual_seed(0)
    return LongitudinalOutcomeModel(ModelSpec(encoder="test_efficientnet", d_model=16, attention_heads=2, layers=1,
                                              dropout=0.0, heads=tuple(heads), lesion_maps=lesion_maps)).eval()


def test_counts_are_sums_of_nonnegative_maps_channels_first_last_and_tokens():
    dens = LesionDensity(8, 3, prefix_tokens=1)
    f = torch.randn(2, 8, 5, 4)
    maps = dens.maps(f)
    assert maps.shape == (2, 3, 5, 4) and (maps >= 0).all()
    torch.testing.assert_close(dens(f), maps.sum((2, 3)))
    torch.testing.assert_close(dens(f.permute(0, 2, 3, 1)), dens(f))  # channels-last feature map
    tokens = torch.randn(2, 1 + 20, 8)  # one prefix (class) token, excluded from the count
    torch.testing.assert_close(dens(tokens), dens.maps(tokens).sum(-1))
    assert dens.maps(tokens).shape == (2, 3, 20)
    with pytest.raises(ValueError, match="features"):
        dens(torch.randn(2, 8))


def test_visit_counts_sum_the_views_of_each_visit():
    counts = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    img_b, img_t = torch.tensor([0, 0, 1]), torch.tensor([1, 1, 0])
    out = visit_counts(counts, img_b, img_t, n_patients=2, n_visits=2)
    assert out.tolist() == [[[0.0, 0.0], [4.0, 6.0]], [[5.0, 6.0], [0.0, 0.0]]]


def test_svdh_head_starts_at_the_image_counts_and_a_view_adds_its_count():
    model = _model()
    g = torch.Generator().manual_seed(3)
    images = torch.rand(2, 1, 32, 32, generator=g)
    with torch.no_grad():
        _, counts = model.encode(images)
        one = model(images[:1], torch.tensor([0]), torch.tensor([0]), torch.tensor([LEFT]),
                    torch.zeros(1, 1), torch.ones(1, 1, dtype=torch.bool))
        both = model(images, torch.tensor([0, 0]), torch.tensor([0, 0]), torch.tensor([LEFT, RIGHT]),
                     torch.zeros(1, 1), torch.ones(1, 1, dtype=torch.bool))
    # JSN and erosion are the image counts, summed over the views of the visit
    torch.testing.assert_close(one["jsn"][0, 0], counts[0, 0], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(one["erosion"][0, 0], counts[0, 1], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(both["svdh"][0, 0], counts.sum(), rtol=1e-4, atol=1e-4)


def test_damage_maps_are_jsn_and_erosion_with_the_svdh_head_else_the_first_free_map():
    assert _model().damage_maps == (0, 1)
    assert _model(heads=("haq", "risk")).damage_maps == (0,)
    assert _model(lesion_maps=0).damage_maps == ()


def test_counts_learn_a_target_through_the_maps():
    """Gradient reaches the maps: a few steps move the count towards a target."""
    model = _model(heads=("svdh",)).train()
    images = torch.rand(2, 1, 32, 32, generator=torch.Generator().manual_seed(1))
    args = (torch.tensor([0, 1]), torch.tensor([0, 0]), torch.tensor([LEFT, LEFT]), torch.zeros(2, 1),
            torch.ones(2, 1, dtype=torch.bool))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    target = torch.tensor([[30.0], [30.0]])
    first = None
    for _ in range(30):
        loss = ((torch.log1p(model(images, *args)["svdh"]) - torch.log1p(target)) ** 2).mean()
        first = float(loss.detach()) if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss) < 0.1 * first


def test_lesion_maps_shape_off_switch_and_old_specs():
    model = _model()
    maps = model.lesion_maps(torch.rand(3, 1, 32, 32))
    assert maps.shape[:2] == (3, 2) and (maps >= 0).all()
    plain = _model(lesion_maps=0)
    assert plain.density is None
    with pytest.raises(ValueError, match="lesion-density"):
        plain.lesion_maps(torch.rand(1, 1, 32, 32))
    assert ModelSpec.from_dict({"encoder": "resnet10t"}).lesion_maps == 0  # checkpoints from before
    with pytest.raises(ValueError, match="lesion_maps"):
        _model(lesion_maps=1)
    free = _model(lesion_maps=3, heads=("haq",))  # no SvdH head: free sum-pooled features
    with torch.no_grad():
        out = free(torch.rand(1, 1, 32, 32), torch.tensor([0]), torch.tensor([0]), torch.tensor([LEFT]),
                   torch.zeros(1, 1), torch.ones(1, 1, dtype=torch.bool))
    assert set(out) == {"haq", "embedding"}


def test_haq_pain_and_risk_read_the_counts_directly_and_old_specs_keep_their_heads():
    model = _model()
    with torch.no_grad():
        model.count_proj.weight.zero_()  # close the path through the visit embedding
        model.count_proj.bias.zero_()
    x = torch.rand(2, 1, 32, 32)
    out = model.forward_single_image(x, "hand_left")
    for name in ("haq", "pain", "risk"):
        grad, = torch.autograd.grad(out[name].sum(), model.density.proj.bias, retain_graph=True)
        assert grad.abs().sum() > 0, name  # the counts still reach the head
    assert model.heads["haq"].mlp[0].in_features == 2 * 16 + 2
    old = ModelSpec.from_dict({k: v for k, v in model.spec.to_dict().items() if k != "counts_to_heads"})
    assert old.counts_to_heads is False
    assert LongitudinalOutcomeModel(old).heads["haq"].mlp[0].in_features == 2 * 16


def test_a_real_timm_vit_counts_over_its_patch_tokens_only():
    """The token path on an actual timm ViT (random init): the class token is left out of the
    maps, the 14x14 patch grid takes the joint-density loss, and its gradient reaches the encoder."""
    from raoutcome.models.losses import joint_density_loss

    torch.manual_seed(0)
    model = LongitudinalOutcomeModel(ModelSpec(encoder="vit_tiny_patch16_224", d_model=16, attention_heads=2,
                                               layers=1, dropout=0.0, heads=("svdh",), lesion_maps=2))
    x = torch.rand(2, 1, 224, 224, generator=torch.Generator().manual_seed(0))
    tokens = model.encoder.forward_features(model._standardise(x))
    assert model.encoder.num_prefix_tokens == 1 and tokens.shape[1] == 1 + 14 * 14
    maps = model.lesion_maps(x)
    assert maps.shape == (2, 2, 196)
    patch_only = torch.nn.functional.softplus(model.density.proj(tokens[:, 1:])).sum(1)
    torch.testing.assert_close(model.encode(x)[1], patch_only, rtol=1e-4, atol=1e-4)
    out = model(x, torch.tensor([0, 0]), torch.tensor([0, 0]), torch.tensor([LEFT, RIGHT]), torch.zeros(1, 1),
                torch.ones(1, 1, dtype=torch.bool), return_maps=True)
    torch.testing.assert_close(out["jsn"][0, 0], patch_only[:, 0].sum(), rtol=1e-4, atol=1e-4)
    loss = joint_density_loss(out["lesion_density"], torch.tensor([[0, 1, 0.9, 0.1, 3.0]]), torch.tensor([True, False]))
    loss.backward()
    assert model.encoder.patch_embed.proj.weight.grad.abs().sum() > 0
