"""Per-visit view fusion and the time-aware longitudinal aggregator.

Shapes used throughout (B patients, T visits padded, N images in the batch):

* images ``[N, 1, H, W]`` with their patient ``img_b``, visit ``img_t`` and view ``img_v``
  indices (``[N]`` long each). Only images that exist are passed: a view missing at a
  visit is simply absent, so fusion attends over the *present* views only and nothing
  is ever zero-filled.
* ``time [B, T]`` (years; any origin, only differences to the first visit and between
  visits are used) and ``visit_mask [B, T]`` (True where the visit exists).
"""
from __future__ import annotations

import hashlib
import math
from typing import Sequence

import torch
from torch import Tensor, nn


def named_rows(names: Sequence[str], dim: int, std: float) -> Tensor:
    """One N(0, std²) row per name, drawn from a generator seeded by the name and ``torch.initial_seed()``.

    The global RNG is not touched, so the size of a vocabulary (e.g. the registered views) never shifts the
    initialisation of the other weights, and a name's row is the same whatever other names exist.
    """
    rows = []
    for name in names:
        key = int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "little")
        gen = torch.Generator().manual_seed((key ^ torch.initial_seed()) % (2 ** 63))
        rows.append(torch.randn(dim, generator=gen) * std)
    return torch.stack(rows) if rows else torch.empty(0, dim)


class ViewFusion(nn.Module):
    """Fuse the images of one visit: attention pooling over the views present.

    Each image feature is projected to ``d_model`` and a learned view embedding is added;
    a softmax over the present views of a visit (grouped by ``(patient, visit)``) weights
    them. A visit with no image at all gets a learned ``no_image`` token (and
    ``has_image`` False), never a zero vector that would look like an image.
    """

    def __init__(self, in_features: int, d_model: int, n_views: int, names: Sequence[str] | None = None):
        super().__init__()
        self.proj = nn.Sequential(nn.Linear(in_features, d_model), nn.LayerNorm(d_model))
        if names is None:
            self.view_embedding = nn.Embedding(n_views, d_model)
            nn.init.normal_(self.view_embedding.weight, std=0.02)
        else:  # rows drawn per name: registering another view changes neither them nor any other weight
            self.view_embedding = nn.Embedding(n_views, d_model, _weight=named_rows(names, d_model, std=0.02))
        self.score = nn.Sequential(nn.Linear(d_model, d_model), nn.Tanh(), nn.Linear(d_model, 1))
        self.no_image = nn.Parameter(torch.zeros(d_model))
        nn.init.normal_(self.no_image, std=0.02)

    def forward(self, feats: Tensor, img_b: Tensor, img_t: Tensor, img_v: Tensor,
                n_patients: int, n_visits: int) -> tuple[Tensor, Tensor]:
        d_model = self.no_image.shape[0]
        emb = (self.proj(feats.float()) + self.view_embedding(img_v)).float()  # [N, D]
        score = self.score(emb).squeeze(-1)  # [N]
        group = img_b * n_visits + img_t  # one group per (patient, visit)
        n_groups = n_patients * n_visits
        # softmax within each group, stabilised by the group maximum
        gmax = torch.full((n_groups,), -math.inf, device=score.device, dtype=score.dtype)
        gmax = gmax.scatter_reduce(0, group, score, reduce="amax", include_self=True)
        weight = torch.exp(score - gmax[group])
        denom = torch.zeros(n_groups, device=score.device, dtype=score.dtype).index_add(0, group, weight)
        pooled = torch.zeros(n_groups, d_model, device=emb.device, dtype=emb.dtype)
        pooled = pooled.index_add(0, group, weight[:, None] * emb)
        count = torch.zeros(n_groups, device=emb.device, dtype=emb.dtype).index_add(
            0, group, torch.ones_like(score))
        has_image = count > 0
        pooled = pooled / denom.clamp_min(1e-12)[:, None]
        pooled = torch.where(has_image[:, None], pooled, self.no_image.to(pooled.dtype).expand_as(pooled))
        return pooled.view(n_patients, n_visits, d_model), has_image.view(n_patients, n_visits)


class TimeEncoding(nn.Module):
    """Continuous-time encoding of time since baseline and of the gap to the previous visit.

    Irregular spacing is seen directly: each of ``t - t_0`` and ``Δt`` enters scaled
    (years / 5) and as sines/cosines at periods from 8 years down to 3 months.
    """

    def __init__(self, d_model: int, n_freq: int = 6):
        super().__init__()
        periods = torch.tensor([8.0 / 2**k for k in range(n_freq)])  # years
        self.register_buffer("omega", 2 * math.pi / periods, persistent=False)
        self.proj = nn.Linear(2 + 4 * n_freq, d_model)

    @staticmethod
    def deltas(time: Tensor, visit_mask: Tensor) -> tuple[Tensor, Tensor]:
        """(time since the first visit, gap to the previous visit), zero on padding."""
        since = (time - time[:, :1]) * visit_mask
        gap = torch.zeros_like(since)
        gap[:, 1:] = (since[:, 1:] - since[:, :-1]).clamp_min(0) * visit_mask[:, 1:]
        return since, gap

    def forward(self, since: Tensor, gap: Tensor) -> Tensor:
        a = since[..., None] * self.omega
        b = gap[..., None] * self.omega
        feats = torch.cat([since[..., None] / 5, gap[..., None] / 5,
                           torch.sin(a), torch.cos(a), torch.sin(b), torch.cos(b)], dim=-1)
        return self.proj(feats)


class LongitudinalAggregator(nn.Module):
    """Causal transformer over a patient's visits, aware of the actual visit times.

    Returns per-visit embeddings ``h_t`` that depend only on visits ``<= t`` and a
    progression embedding ``p_t`` built from the change since baseline ``h_t - h_0`` and
    the elapsed time (so a rate can be formed).
    """

    def __init__(self, d_model: int, n_layers: int = 2, n_heads: int = 4, dropout: float = 0.1):
        super().__init__()
        self.time = TimeEncoding(d_model)
        self.image_flag = nn.Embedding(2, d_model)
        nn.init.normal_(self.image_flag.weight, std=0.02)
        layer = nn.TransformerEncoderLayer(d_model, n_heads, dim_feedforward=2 * d_model, dropout=dropout,
                                           activation="gelu", batch_first=True, norm_first=True)
        self.transformer = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)
        self.progression = nn.Sequential(nn.Linear(2 * d_model, d_model), nn.GELU(), nn.Linear(d_model, d_model))

    def forward(self, visits: Tensor, has_image: Tensor, time: Tensor, visit_mask: Tensor) -> tuple[Tensor, Tensor]:
        n_visits = visits.shape[1]
        since, gap = TimeEncoding.deltas(time.float(), visit_mask.float())
        tenc = self.time(since, gap)
        x = visits + tenc + self.image_flag(has_image.long())
        causal = torch.ones(n_visits, n_visits, dtype=torch.bool, device=x.device).triu(1)  # True = hidden
        h = self.transformer(x, mask=causal, src_key_padding_mask=~visit_mask, is_causal=True)
        h = self.norm(h)
        change = h - h[:, :1]
        prog = self.progression(torch.cat([change, tenc], dim=-1))
        return h, prog
