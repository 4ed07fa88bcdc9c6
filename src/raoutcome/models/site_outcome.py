"""Outcome model on sites: per-site embeddings pooled by attention over sites and views, then the longitudinal
aggregator, feeding the HAQ, pain and risk heads.

The same family as the whole-image model (:class:`raoutcome.models.multitask.LongitudinalOutcomeModel`): its
:class:`~raoutcome.models.longitudinal.ViewFusion` pools the items of a visit by attention, here the visit's
site embeddings instead of its images (each with its site identity, ``view:site``, so the pooling can weigh the
left MCP2 and the right wrist differently); the :class:`~raoutcome.models.longitudinal.LongitudinalAggregator`
and the heads (:func:`raoutcome.models.heads.build_head`) are the image model's. With ``counts`` the visit's
predicted JSN and erosion totals (``log1p``) enter the visit embedding and the heads directly, as the image
model's lesion counts do.

Two configurations:

* the *full* model reads the per-site embeddings of a site reader trained on per-joint readings (frozen:
  ``h`` passed in) and its totals (``counts = True``);
* the *no human score* model trains its own site encoder end to end from HAQ, pain and events only, on the
  same posed patches (:class:`raoutcome.models.site_model.SiteModel` passed as ``encoder``; no per-joint
  reading, no total; ``counts = False``).

With ``severity_classes = K`` the model also carries an ordinal head (:class:`SeverityHead`, cumulative link with
increasing thresholds, CORAL loss) on the visit's readout features ``[embedding, pooled]`` that grades the visit's
total into ``K`` severity classes (seeds/002). It is fitted after the model, on its frozen features
(:func:`raoutcome.training.site_outcome_train.fit_site_outcome`), so it never changes what the outcome heads learn.
"""
from __future__ import annotations

__all__ = ["SeverityHead", "SiteOutcomeModel", "SiteOutcomeSpec"]

from dataclasses import asdict, dataclass
from typing import Mapping

import torch
from torch import Tensor, nn

from raoutcome.models.heads import build_head
from raoutcome.models.longitudinal import LongitudinalAggregator, ViewFusion
from raoutcome.models.site_model import OrdinalHead
from raoutcome.outcomes import LEGACY_OUTCOMES, outcomes

#: the heads of a spec that does not name its own (the outcomes every model had before the registry, less the
#: one read site by site: HAQ, pain, risk)
OUTCOME_HEADS: tuple[str, ...] = tuple(o.name for o in outcomes(LEGACY_OUTCOMES) if not o.site_parts)


@dataclass(frozen=True)
class SiteOutcomeSpec:
    n_sites: int
    site_dim: int
    d_model: int = 64
    layers: int = 1
    attention_heads: int = 4
    dropout: float = 0.1
    counts: bool = True
    heads: tuple[str, ...] = OUTCOME_HEADS
    severity_classes: int = 0  # > 0: an ordinal head grading the visit's total into this many classes

    def to_dict(self) -> dict:
        d = asdict(self)
        d["heads"] = list(self.heads)
        return d

    @classmethod
    def from_dict(cls, d: Mapping) -> "SiteOutcomeSpec":
        d = dict(d)
        d["heads"] = tuple(d.get("heads", OUTCOME_HEADS))
        return cls(**d)


class SeverityHead(nn.Module):
    """Ordinal head on standardised visit features: ``K - 1`` threshold logits of the severity class
    (``mean`` / ``scale`` buffers: the standardisation of its training visits)."""

    def __init__(self, in_features: int, n_classes: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(in_features))
        self.register_buffer("scale", torch.ones(in_features))
        self.head = OrdinalHead(in_features, n_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.head((x.float() - self.mean) / self.scale)


class SiteOutcomeModel(nn.Module):
    """``forward(h [N, site_dim], site [N], img_b [N], img_t [N], time [B, T], visit_mask [B, T], log_totals [B, T, 2])``
    -> ``{head: [B, T], "embedding": [B, T, 2 d_model], "pooled": [B, T, site_dim]}`` (``pooled``: the plain mean of
    the visit's site embeddings, for the closed-form readouts)."""

    def __init__(self, spec: SiteOutcomeSpec):
        super().__init__()
        self.spec = spec
        d = spec.d_model
        self.fusion = ViewFusion(spec.site_dim, d, spec.n_sites)
        self.aggregator = LongitudinalAggregator(d, spec.layers, spec.attention_heads, spec.dropout)
        self.count_proj = nn.Linear(2, d) if spec.counts else None
        direct = 2 if spec.counts else 0
        self.heads = nn.ModuleDict({h: build_head(h, 2 * d + direct, d, spec.dropout) for h in spec.heads})
        self.severity = None
        if spec.severity_classes:
            with torch.random.fork_rng():  # built last, off the global RNG: the other modules start as without it
                self.severity = SeverityHead(2 * d + direct + spec.site_dim, spec.severity_classes)

    def forward(self, h: Tensor, site: Tensor, img_b: Tensor, img_t: Tensor, time: Tensor, visit_mask: Tensor,
                log_totals: Tensor | None = None) -> dict[str, Tensor]:
        n_patients, n_visits = time.shape
        visits, has = self.fusion(h, img_b, img_t, site, n_patients, n_visits)
        z_extra = None
        if self.count_proj is not None:
            if log_totals is None:
                raise ValueError("this outcome model reads the visit's predicted totals: pass log_totals")
            lt = torch.where(has[..., None], log_totals.float(), torch.zeros_like(log_totals.float()))
            visits = visits + torch.where(has[..., None], self.count_proj(lt), torch.zeros_like(visits))
            z_extra = lt
        hist, prog = self.aggregator(visits, has, time, visit_mask)
        z = torch.cat([hist, prog], -1)
        zh = torch.cat([z, z_extra], -1) if z_extra is not None else z
        out: dict[str, Tensor] = {}
        for head in self.heads.values():
            out.update(head(zh))
        group = img_b * n_visits + img_t
        total = torch.zeros(n_patients * n_visits, h.shape[1], dtype=h.dtype, device=h.device).index_add(0, group, h)
        count = torch.zeros(n_patients * n_visits, dtype=h.dtype, device=h.device).index_add(
            0, group, torch.ones_like(h[:, 0]))
        out["pooled"] = (total / count.clamp_min(1)[:, None]).view(n_patients, n_visits, -1)
        out["embedding"] = zh
        out["has_image"] = has
        return out
