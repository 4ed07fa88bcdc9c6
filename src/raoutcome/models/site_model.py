"""Site-level reader: posed joint patches -> one shared timm patch encoder -> ordinal per-site scores.

Each scored SvdH site of an image is cut out as a posed patch (:mod:`raoutcome.imaging.site_patches`).
One timm encoder reads every patch; a learned identity embedding of the site (``view:site``, so the left
and right MCP2 are two sites) is added to its features; optionally one transformer layer lets the sites
of a visit attend to each other (neighbouring joints, the same joint on the other side). Ordinal heads
then read each site:

* JSN 0-4 (every view), hand erosion 0-5, foot erosion 0-10 (:func:`raoutcome.anatomy.joint_max`).

Each head is a cumulative-link (CORAL-style) ordinal model: one score ``s`` per site and ``K - 1``
increasing thresholds ``theta``, with

    P(y > k) = sigmoid(s - theta_k),   k = 0 .. K-2,

trained with the CORAL loss (the sum of the ``K - 1`` binary cross-entropies; Cao, Mirjalili & Raschka
2020, "Rank consistent ordinal regression for neural networks with application to age estimation",
Pattern Recognit. Lett. 140:325). The thresholds are kept increasing by construction (a first threshold
plus cumulative softplus gaps), so the class probabilities ``P(y = k) = P(y > k-1) - P(y > k)`` are
never negative and the readings are rank-consistent. Missing readings are masked out of the loss, never
taken as 0.

:func:`ordinal_summary` turns threshold logits into class probabilities, the expected score
``E = sum k p_k`` and its SD ``sqrt(sum (k - E)^2 p_k)``.
"""
from __future__ import annotations

__all__ = ["ORDINAL_KINDS", "OrdinalHead", "SiteModel", "SiteSpec", "coral_loss", "ordinal_probabilities",
           "ordinal_summary", "loss_terms"]

from dataclasses import asdict, dataclass
from typing import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from raoutcome import anatomy
from raoutcome.models.encoder import create_encoder

#: The ordinal heads: name -> number of classes (max score + 1).
ORDINAL_KINDS: dict[str, int] = {"jsn": anatomy.MAX_JSN + 1, "erosion_hand": anatomy.MAX_EROSION_HAND + 1,
                                 "erosion_foot": anatomy.MAX_EROSION_FOOT + 1}


@dataclass(frozen=True)
class SiteSpec:
    """Everything needed to rebuild a :class:`SiteModel` (stored in its checkpoint as plain data)."""

    sites: tuple[str, ...] = ()      # site vocabulary (``view:site``); position = identity index
    encoder: str = "resnet10t"
    pretrained: str = ""
    grid: int = 32
    d_model: int = 64
    context: bool = True             # one attention layer over the sites of a visit
    attention_heads: int = 4
    dropout: float = 0.1

    def to_dict(self) -> dict:
        d = asdict(self)
        d["sites"] = list(self.sites)
        return d

    @classmethod
    def from_dict(cls, d: Mapping) -> "SiteSpec":
        d = dict(d)
        d["sites"] = tuple(d.get("sites", ()))
        return cls(**d)


class OrdinalHead(nn.Module):
    """``n_classes - 1`` threshold logits ``s - theta_k`` with increasing thresholds (cumulative link)."""

    def __init__(self, d_model: int, n_classes: int):
        super().__init__()
        if n_classes < 2:
            raise ValueError(f"an ordinal head needs >= 2 classes, got {n_classes}")
        self.n_classes = int(n_classes)
        self.score = nn.Linear(d_model, 1)
        self.first = nn.Parameter(torch.zeros(()))
        self.gaps = nn.Parameter(torch.zeros(n_classes - 2))

    @property
    def thresholds(self) -> Tensor:
        return torch.cat([self.first[None], self.first + torch.cumsum(F.softplus(self.gaps), 0)])

    def init_from_prevalence(self, exceed: Sequence[float]) -> None:
        """Start the thresholds at the training set's ``P(y > k)`` (so an untrained head predicts the
        prevalence instead of 50 % at every threshold; the rare high classes would otherwise take epochs)."""
        p = torch.as_tensor([min(max(float(x), 1e-4), 1 - 1e-4) for x in exceed], dtype=torch.float32)
        theta = -torch.logit(p)
        theta = torch.cummax(theta, 0).values + torch.arange(len(theta)) * 1e-3
        with torch.no_grad():
            self.first.copy_(theta[0])
            gaps = (theta[1:] - theta[:-1]).clamp_min(1e-3)
            self.gaps.copy_(torch.log(torch.expm1(gaps)))

    def forward(self, h: Tensor) -> Tensor:
        return self.score(h).float() - self.thresholds


def ordinal_probabilities(logits: Tensor) -> Tensor:
    """Class probabilities ``[..., K]`` from threshold logits ``[..., K-1]`` (``P(y>k) = sigmoid(logit_k)``)."""
    exceed = torch.sigmoid(logits)
    ones = torch.ones_like(exceed[..., :1])
    upper = torch.cat([ones, exceed], -1)
    lower = torch.cat([exceed, torch.zeros_like(ones)], -1)
    return (upper - lower).clamp_min(0.0)


def ordinal_summary(logits: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(class probabilities ``[..., K]``, expected score ``E = sum k p_k``, SD ``sqrt(sum (k-E)^2 p_k)``)."""
    p = ordinal_probabilities(logits)
    k = torch.arange(p.shape[-1], dtype=p.dtype, device=p.device)
    mean = (p * k).sum(-1)
    var = (p * (k - mean[..., None]) ** 2).sum(-1)
    return p, mean, var.clamp_min(0.0).sqrt()


def coral_loss(logits: Tensor, target: Tensor) -> Tensor:
    """Mean over finite targets of the summed binary cross-entropies of ``P(y > k)``; 0 without any target."""
    ok = torch.isfinite(target)
    if not bool(ok.any()):
        return logits.sum() * 0.0
    y = target[ok]
    levels = torch.arange(logits.shape[-1], device=logits.device, dtype=logits.dtype)
    exceeds = (y[:, None] > levels).to(logits.dtype)
    bce = F.binary_cross_entropy_with_logits(logits[ok], exceeds, reduction="none")
    return bce.sum(-1).mean()


class SiteModel(nn.Module):
    """Ordinal per-site scores (and per-site embeddings) from posed site patches.

    ``forward(patches [N, 1, g, g], site [N] long, group [N] long, position [N] long, n_groups)``: ``group``
    numbers the visit each patch belongs to and ``position`` its place among that visit's patches (for the
    attention over a visit's sites; :func:`raoutcome.training.site_train.visit_layout`). Returns ``h``
    (``[N, d_model]`` per-site embeddings) and the threshold logits of each head (``[N, K-1]``).
    """

    def __init__(self, spec: SiteSpec, load_pretrained: bool = True):
        super().__init__()
        if not spec.sites:
            raise ValueError("a site model needs its site vocabulary (spec.sites)")
        self.spec = spec
        self.encoder = create_encoder(spec.encoder, spec.pretrained if load_pretrained else None)
        d = spec.d_model
        self.proj = nn.Sequential(nn.Linear(self.encoder.out_features, d), nn.LayerNorm(d))
        self.site_embedding = nn.Embedding(len(spec.sites), d)
        nn.init.normal_(self.site_embedding.weight, std=0.02)
        self.context = (nn.TransformerEncoderLayer(d, spec.attention_heads, 2 * d, spec.dropout, activation="gelu",
                                                   batch_first=True, norm_first=True) if spec.context else None)
        self.heads = nn.ModuleDict({k: OrdinalHead(d, n) for k, n in ORDINAL_KINDS.items()})
        foot = torch.tensor([s.split(":", 1)[0] in anatomy.FOOT_VIEWS for s in spec.sites])
        self.register_buffer("is_foot", foot, persistent=False)

    @property
    def embedding_dim(self) -> int:
        return self.spec.d_model

    def encode(self, patches: Tensor) -> Tensor:
        """Pooled encoder features of each patch ``[N, out_features]`` (the bare patch-encoder forward)."""
        return self.encoder(patches)

    def embed(self, patches: Tensor, site: Tensor, group: Tensor, position: Tensor, n_groups: int) -> Tensor:
        h = self.proj(self.encode(patches).float()) + self.site_embedding(site)
        if self.context is None or h.shape[0] == 0:
            return h
        width = int(position.max()) + 1
        dense = h.new_zeros(n_groups, width, h.shape[1])
        dense[group, position] = h
        pad = torch.ones(n_groups, width, dtype=torch.bool, device=h.device)
        pad[group, position] = False
        return self.context(dense, src_key_padding_mask=pad)[group, position]

    def forward(self, patches: Tensor, site: Tensor, group: Tensor, position: Tensor, n_groups: int
                ) -> dict[str, Tensor]:
        h = self.embed(patches, site, group, position, n_groups)
        return {"h": h, **{k: head(h) for k, head in self.heads.items()}}

    def erosion_head(self, site: Tensor) -> Tensor:
        """Per patch: True where its erosion is read by the foot head (0-10)."""
        return self.is_foot[site]


def loss_terms(out: Mapping[str, Tensor], jsn: Tensor, erosion: Tensor, foot: Tensor) -> dict[str, Tensor]:
    """The CORAL loss of each head on its finite targets (JSN; erosion split by hand / foot)."""
    hand_ero = torch.where(foot, torch.full_like(erosion, float("nan")), erosion)
    foot_ero = torch.where(foot, erosion, torch.full_like(erosion, float("nan")))
    return {"jsn": coral_loss(out["jsn"], jsn), "erosion_hand": coral_loss(out["erosion_hand"], hand_ero),
            "erosion_foot": coral_loss(out["erosion_foot"], foot_ero)}

