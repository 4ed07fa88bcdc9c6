"""Local refinement of detected landmarks: a second pass on crops around each coarse landmark, at twice
the coarse detector's resolution.

The coarse detector (:class:`raoutcome.models.landmarks.LandmarkNet`) sees the whole radiograph squeezed
into a 256-px square: on a 910-px hand film one input pixel is 3.6 film pixels and one heatmap cell 14.
Its job is to say *which* joint is *roughly* where. The refiner (:class:`Refiner`) then looks again, for
each landmark, at a ``window`` x ``window`` (coarse-input pixels) crop of the film centred on the coarse
estimate, resampled to ``patch`` x ``patch`` pixels (``patch / window`` = 2: twice the coarse resolution),
and outputs the same channels' heatmaps; the crop's own channel gives the refined position (DARK
sub-pixel decoding, :func:`raoutcome.models.landmarks.decode_heatmaps`). This is the coarse-to-fine
scheme of the hand-landmark literature: Payer et al. 2019 (a local-appearance stage and a
spatial-configuration stage), Zhu et al. 2021 (GU2Net: a global and a local branch), and the cascaded
refinement of Chen et al. 2019 (cephalometric landmarks): the global stage resolves identity, the
local stage precision.

The refiner is a :class:`LandmarkNet` on the crop (a backbone truncated at stride 16, initialised from
the coarse detector's own weights) and ships inside the detector's safetensors file (``refiner.*`` keys,
spec under the ``raoutcome_refiner`` metadata key); files without a refiner load and detect exactly as
before. Refinement runs only on images whose long side is at least ``min_source`` x the coarse input
side: a smaller image has no detail the coarse pass did not see (the coarse input already upsampled it).

Crops are pure similarity maps of the *working image* (the canonical-orientation, contrast-stretched film,
downsampled with anti-aliasing to at most ``patch / window`` x the coarse side): a patch pixel
``u = (u, v)`` samples the working image at ``c + A (u - (P-1)/2)``, ``A = step * scale * R(angle)``
(bilinear, zeros outside), so landmarks map with the same matrix.

References
----------
Payer C, Stern D, Bischof H, Urschler M. Integrating spatial configuration into heatmap regression
based CNNs for landmark localization. Med Image Anal 2019;54:207-219.
Zhu H, Yao Q, Xiao L, Zhou SK. You only learn once: universal anatomical landmark detection (GU2Net).
MICCAI 2021.
Chen R, Ma Y, Chen N, Lee D, Wang W. Cephalometric landmark detection by attentive feature pyramid
fusion and regression-voting. MICCAI 2019.
"""
from __future__ import annotations

__all__ = ["RefineSpec", "Refiner", "working_image", "crop_matrices", "crop_patches", "refine_points",
           "attach_refiner"]

import json
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from raoutcome.errors import ConfigError
from raoutcome.models.landmarks import DetectorSpec, LandmarkNet, decode_heatmaps


@dataclass(frozen=True)
class RefineSpec:
    """The refiner's network and crop geometry.

    ``patch``: crop side in pixels (a multiple of 32); ``window``: the crop's side in pixels of a
    ``reference``-px square holding the whole image (the shipped coarse detector's input side, so
    ``patch / window`` is the zoom over the coarse pass; the geometry does not depend on the coarse model); ``min_source``: refine only images whose long
    side is at least this multiple of the coarse input side; ``min_confidence``: below this refined peak
    probability the coarse position is kept.
    """

    patch: int = 64
    window: float = 32.0
    reference: int = 256
    backbone: str = "efficientnet_lite0"
    out_indices: tuple[int, ...] = (1, 2, 3)
    decoder: int = 48
    sigma: float = 1.25
    min_source: float = 1.0
    min_confidence: float = 0.05

    def __post_init__(self) -> None:
        if self.patch % 32 or self.patch <= 0:
            raise ConfigError(f"refiner patch side must be a positive multiple of 32, got {self.patch}")
        if self.window <= 0:
            raise ConfigError(f"refiner window must be positive, got {self.window}")

    @property
    def zoom(self) -> float:
        """Patch pixels per coarse-input pixel."""
        return self.patch / self.window

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "RefineSpec":
        raw = json.loads(text)
        if "out_indices" in raw:
            raw["out_indices"] = tuple(raw["out_indices"])
        return cls(**raw)


class Refiner(nn.Module):
    """A :class:`LandmarkNet` on ``patch``-px crops with the coarse detector's channels."""

    def __init__(self, rspec: RefineSpec, coarse: DetectorSpec):
        super().__init__()
        self.rspec = rspec
        self.net = LandmarkNet(DetectorSpec(backbone=rspec.backbone, size=rspec.patch, channels=coarse.channels,
                                            decoder=rspec.decoder, out_indices=rspec.out_indices,
                                            sigma=rspec.sigma, contrast=coarse.contrast))
        _truncate(self.net.backbone)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: ``(N, 1, patch, patch)`` crops in [0, 1]; heatmap logits at stride 4."""
        return self.net(x)


def _truncate(backbone: nn.Module) -> None:
    """Drop the backbone blocks after the last feature level used (timm's EfficientNet/MobileNet feature
    models build every block even when ``out_indices`` stops at stride 16): a smaller file, same output."""
    blocks = getattr(backbone, "blocks", None)
    names = backbone.feature_info.module_name()
    if not isinstance(blocks, nn.Sequential) or not names or not names[-1].startswith("blocks."):
        return
    last = int(names[-1].split(".")[1])
    backbone.blocks = blocks[:last + 1]


def attach_refiner(model: LandmarkNet, rspec: RefineSpec = RefineSpec(), copy_weights: bool = True) -> Refiner:
    """Give ``model`` a refiner (``model.refiner``), its tensors copied from ``model`` where names and
    shapes agree (the truncated backbone, laterals, fuse and head), and return it."""
    ref = Refiner(rspec, model.spec)
    if copy_weights:
        own = ref.net.state_dict()
        src = {k: v for k, v in model.state_dict().items() if not k.startswith("refiner.")}
        ref.net.load_state_dict({k: (src[k].clone() if k in src and src[k].shape == v.shape else v)
                                 for k, v in own.items()})
    model.refiner = ref
    return ref


def working_image(pixels: np.ndarray, view: str | None, rspec: RefineSpec,
                  contrast: tuple[float, float] | None) -> tuple[np.ndarray, np.ndarray]:
    """The canonical, contrast-stretched image the crops are cut from, and its downsampling factors
    ``d = (d_x, d_y)`` (working pixel = ``(original + 0.5) / d - 0.5``, ``d >= 1``): the long side is at
    most ``zoom * reference``, so a crop never samples coarser than the working image holds."""
    from raoutcome.imaging.transforms import canonical_orientation, percentile_normalize

    x = canonical_orientation(pixels, view)
    if contrast is not None:
        x = percentile_normalize(x, *contrast)
    x = np.ascontiguousarray(x, dtype=np.float32)
    rows0, cols0 = x.shape
    factor = max(rows0, cols0) / (rspec.zoom * rspec.reference)
    if factor > 1.0:
        rows, cols = max(1, round(rows0 / factor)), max(1, round(cols0 / factor))
        t = torch.from_numpy(x)[None, None]
        x = F.interpolate(t, size=(rows, cols), mode="bilinear", align_corners=False, antialias=True)[0, 0].numpy()
    return x, np.array([cols0 / x.shape[1], rows0 / x.shape[0]])


def crop_matrices(step: float | np.ndarray, n: int, angle: np.ndarray | None = None,
                  scale: np.ndarray | None = None) -> np.ndarray:
    """``(n, 2, 2)`` matrices ``A = step * scale * R(angle)`` (patch pixel -> working pixel offsets)."""
    step = np.broadcast_to(np.asarray(step, float), (n,))
    angle = np.zeros(n) if angle is None else np.asarray(angle, float)
    scale = np.ones(n) if scale is None else np.asarray(scale, float)
    c, s = np.cos(angle), np.sin(angle)
    rot = np.stack([np.stack([c, -s], -1), np.stack([s, c], -1)], -2)
    return rot * (step * scale)[:, None, None]


def crop_patches(image: np.ndarray | torch.Tensor, centres: np.ndarray, mats: np.ndarray, patch: int) -> torch.Tensor:
    """``(n, 1, patch, patch)`` bilinear crops of ``image`` (H, W): patch pixel ``u`` samples
    ``centres[i] + mats[i] @ (u - (patch-1)/2)`` (x, y working pixels; zero outside)."""
    img = torch.as_tensor(image, dtype=torch.float32)
    h, w = img.shape
    n = len(centres)
    r = torch.arange(patch, dtype=torch.float64) - (patch - 1) / 2.0
    gv, gu = torch.meshgrid(r, r, indexing="ij")
    uv = torch.stack([gu, gv], -1).reshape(1, -1, 2)                       # (1, P*P, 2) x, y
    a = torch.as_tensor(mats, dtype=torch.float64)
    pts = uv @ a.transpose(1, 2) + torch.as_tensor(centres, dtype=torch.float64)[:, None, :]
    gx = (2 * pts[..., 0] + 1) / w - 1
    gy = (2 * pts[..., 1] + 1) / h - 1
    grid = torch.stack([gx, gy], -1).reshape(n, patch, patch, 2).float()
    return F.grid_sample(img[None, None].expand(n, 1, h, w), grid, mode="bilinear", padding_mode="zeros",
                         align_corners=False)


@torch.no_grad()
def refine_points(refiner: Refiner, work: np.ndarray, centres: np.ndarray, channels: list[int],
                  step: float) -> tuple[np.ndarray, np.ndarray]:
    """Refined positions (working pixels, ``(n, 2)``) and peak probabilities of the landmarks of
    ``channels`` whose coarse positions are ``centres`` (working pixels); one crop per landmark."""
    p = refiner.rspec.patch
    n = len(centres)
    mats = crop_matrices(step, n)
    x = crop_patches(work, centres, mats, p)
    coords, conf = decode_heatmaps(refiner(x))
    idx = torch.as_tensor(channels)
    own = coords[torch.arange(n), idx].double().numpy() - (p - 1) / 2.0
    out = centres + np.einsum("nij,nj->ni", mats, own)
    return out, conf[torch.arange(n), idx].numpy()
