"""Label-free progression ranking: pairs are later vs earlier images of one view of one patient;
the RankNet term matches its textbook form and trains a count to order images by what grows."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from raoutcome.anatomy import VIEWS
from raoutcome.errors import ConfigError
from raoutcome.models import LongitudinalOutcomeModel, ModelSpec
from raoutcome.models.losses import MultitaskLoss, progression_pairs, progression_rank_loss
from raoutcome.training.config import TrainConfig

torch.set_num_threads(1)
LEFT, RIGHT = VIEWS.index("hand_left"), VIEWS.index("hand_right")


def _layout():
    """Patient 0: left at visits 0, 1, 2 and right at visit 1; patient 1: left at visits 0 and 1
    with equal times (no order)."""
    img_b = torch.tensor([0, 0, 0, 0, 1, 1])
    img_t = torch.tensor([0, 1, 2, 1, 0, 1])
    img_v = torch.tensor([LEFT, LEFT, LEFT, RIGHT, LEFT, LEFT])
    time = torch.tensor([[0.0, 1.0, 2.5], [0.0, 0.0, 0.0]])
    return img_b, img_t, img_v, time


def test_pairs_are_earlier_later_images_of_the_same_patient_and_view():
    early, late = progression_pairs(*_layout())
    assert sorted(zip(early.tolist(), late.tolist())) == [(0, 1), (0, 2), (1, 2)]


def test_rank_loss_is_ranknet_on_log_counts():
    img_b, img_t, img_v, time = _layout()
    counts = torch.tensor([1.0, 3.0, 2.0, 9.0, 5.0, 0.5])
    s = np.log1p(counts.numpy())
    pairs = [(0, 1), (0, 2), (1, 2)]
    expected = np.mean([math.log1p(math.exp(-(s[j] - s[i]) / 0.1)) for i, j in pairs])
    got = progression_rank_loss(counts, img_b, img_t, img_v, time)
    assert float(got) == pytest.approx(expected, rel=1e-5)
    # the same via torch's BCE with logits, target "later is larger"
    logits = torch.tensor([(s[j] - s[i]) / 0.1 for i, j in pairs])
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, torch.ones(3))
    assert float(got) == pytest.approx(float(bce), rel=1e-5)
    # equal counts: every pair is a coin flip, log 2
    assert float(progression_rank_loss(torch.ones(6), img_b, img_t, img_v, time)) == pytest.approx(math.log(2))


def test_rank_gradient_raises_later_and_lowers_earlier_counts():
    img_b, img_t, img_v, time = _layout()
    counts = torch.full((6,), 2.0, requires_grad=True)
    progression_rank_loss(counts, img_b, img_t, img_v, time).backward()
    g = counts.grad
    assert g[0] > 0 and g[2] < 0  # first visit pushed down, last pushed up
    assert g[3] == 0 and g[4] == 0 and g[5] == 0  # no partner of its view, or no time order


def test_no_pairs_gives_a_connected_zero_and_the_multitask_loss_adds_the_weighted_term():
    counts = torch.ones(2, requires_grad=True)
    zero = progression_rank_loss(counts, torch.tensor([0, 1]), torch.tensor([0, 0]),
                                 torch.tensor([LEFT, LEFT]), torch.zeros(2, 1))
    assert float(zero.detach()) == 0.0 and zero.requires_grad
    img_b, img_t, img_v, time = _layout()
    maps = torch.rand(6, 2, 3, 3, generator=torch.Generator().manual_seed(0))
    out = {"lesion_density": maps, "haq": torch.zeros(2, 3)}
    batch = {"visit_mask": torch.ones(2, 3, dtype=torch.bool), "target_haq": torch.zeros(2, 3),
             "img_b": img_b, "img_t": img_t, "img_v": img_v, "time": time}
    base, parts = MultitaskLoss(("haq",), "fixed")(out, batch)
    assert "rank" not in parts
    crit = MultitaskLoss(("haq",), "fixed", rank_weight=0.5, rank_channels=(1,))
    assert crit.wants_maps({}) and not MultitaskLoss(("haq",), "fixed", joint_weight=1.0).wants_maps({})
    total, parts = crit(out, batch)
    expected = progression_rank_loss(maps[:, 1].flatten(1).sum(1), img_b, img_t, img_v, time)
    assert parts["rank"] == pytest.approx(float(expected), rel=1e-6)
    assert float(total - base) == pytest.approx(0.5 * parts["rank"], rel=1e-5)


def _dots(n_dots: np.ndarray, rng: np.random.Generator) -> torch.Tensor:
    """32x32 images holding ``n`` bright 2x2 dots each, on a noisy background."""
    imgs = rng.normal(0.3, 0.03, (len(n_dots), 1, 32, 32))
    for k, n in enumerate(n_dots):
        for _ in range(int(n)):
            y, x = rng.integers(1, 29, 2)
            imgs[k, 0, y:y + 2, x:x + 2] = 0.9
    return torch.tensor(imgs, dtype=torch.float32)


def test_ranking_alone_teaches_a_lesion_map_to_count_what_accumulates():
    """Patients whose dots only accumulate over visits, no label at all: the ranked map ends up
    ordering new images by their number of dots."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    model = LongitudinalOutcomeModel(ModelSpec(encoder="test_efficientnet", d_model=16, attention_heads=2, layers=1,
                                               dropout=0.0, heads=("haq",), lesion_maps=2)).train()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    n_pat, n_vis = 6, 3
    img_b = torch.arange(n_pat).repeat_interleave(n_vis)
    img_t = torch.arange(n_vis).repeat(n_pat)
    img_v = torch.full_like(img_b, LEFT)
    time = torch.arange(n_vis, dtype=torch.float32).repeat(n_pat, 1)

    def ranked_counts(images):
        return model.density.maps(model.encoder.forward_features(model._standardise(images)))[:, 0].flatten(1).sum(1)

    held_out = rng.integers(0, 12, 64)
    x_held = _dots(held_out, rng)
    with torch.no_grad():
        before = spearmanr(ranked_counts(x_held).numpy(), held_out).statistic
    for _ in range(150):
        start = rng.integers(0, 5, n_pat)
        n = (start[:, None] + np.cumsum(rng.integers(1, 4, (n_pat, n_vis)), 1)).ravel()
        loss = progression_rank_loss(ranked_counts(_dots(n, rng)), img_b, img_t, img_v, time)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        after = spearmanr(ranked_counts(x_held).numpy(), held_out).statistic
    assert after > 0.8 and after > before + 0.3, (before, after)


def test_progression_rank_config_is_validated():
    assert TrainConfig({}).loss["progression_rank"] == 0.0
    assert TrainConfig({"loss": {"progression_rank": 1}}).loss["progression_rank"] == 1.0
    with pytest.raises(ConfigError, match="loss.progression_rank"):
        TrainConfig({"loss": {"progression_rank": -1.0}})
    with pytest.raises(ConfigError, match="model.lesion_maps = 0"):
        TrainConfig({"loss": {"progression_rank": 0.5}, "model": {"lesion_maps": 0}})


def test_a_no_human_score_run_trains_with_the_ranking_term_and_logs_it(tmp_path):
    import json

    from conftest import TINY_MODEL_TOML, write_tiny_cohort
    from raoutcome.cohort import load
    from raoutcome.training import train_run

    cohort = load(write_tiny_cohort(tmp_path / "cohort", n_patients=6, n_visits=3))
    cfg = tmp_path / "t.toml"
    cfg.write_text(TINY_MODEL_TOML + f"""[heads]
svdh = false
[loss]
progression_rank = 1.0
[train]
epochs = 1
batch_patients = 3
num_workers = 0
val_fraction = 0.2
[cv]
folds = 1
[readout]
heads = []
[data]
cache_dir = "{tmp_path / 'cache'}"
""")
    run = train_run(cohort, cfg, tmp_path / "run")
    member = json.loads((run / "metrics.json").read_text())["members"][0]
    first = member["history"][0]["train"]
    assert first["rank"] > 0 and "joints" not in first  # ranked: every patient has 3 visits of each view
