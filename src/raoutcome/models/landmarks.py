"""Landmark detector: heatmap regression on a timm backbone, one network for every hand and foot view.

The network (:class:`LandmarkNet`) is a timm backbone with ``features_only=True`` (strides 4..32) and a
light FPN decoder (lateral 1x1 convolutions, nearest upsampling + sum, one 3x3 conv-BN-ReLU) that returns one
heatmap logit map per landmark channel at stride 4. The channels are the union of the landmark sets of
the body parts it knows (``hand:MCP2``, ..., ``foot:MTP1``; the landmark
templates of the anatomy registry, :func:`raoutcome.anatomy.body_part_spec`), so one forward pass says both *where* each joint is and
*which* body part the image shows: a foot given as a hand lights up the foot channels (Payer et al.
2019 and Zhu et al. 2021 (GU2Net) train one heatmap network over several anatomies the same way).

Training target: a Gaussian bump of SD ``spec.sigma`` heatmap cells at each annotated landmark, zero
maps for the landmarks of the other body part, no loss for the image's unannotated landmarks;
binary cross-entropy on the logits, positives up-weighted (:func:`heatmap_loss`).

Decoding (:func:`decode_heatmaps`): the arg-max cell, refined to sub-cell precision by a local
quadratic (second-order Taylor) fit of the log-probability around it (Zhang et al. 2020, DARK: for a
Gaussian peak the fit is exact); the confidence is the peak's sigmoid probability, in ``[0, 1]``.
Coordinates use pixel centres: cell ``j`` covers input pixels ``4j..4j+3``, so ``x = 4 (j + 0.5) - 0.5``.

An optional second pass on crops around each coarse landmark at twice the resolution
(:mod:`raoutcome.models.landmark_refine`, ``model.refiner``) is saved in the same file.

Weights are saved as safetensors with the :class:`DetectorSpec` as JSON metadata (:func:`save_detector`,
:func:`load_detector`); nothing is ever downloaded. The library's default detector ships in
``raoutcome/data/landmark_detector.safetensors`` (:func:`default_detector_path`, docs/landmarks.md).

References
----------
Payer C, Stern D, Bischof H, Urschler M. Integrating spatial configuration into heatmap regression
based CNNs for landmark localization. Med Image Anal 2019;54:207-219.
Zhang F, Zhu X, Dai H, Ye M, Zhu C. Distribution-aware coordinate representation for human pose
estimation (DARK). CVPR 2020.
"""
from __future__ import annotations

__all__ = ["DetectorSpec", "LandmarkNet", "channel_names", "decode_heatmaps", "gaussian_targets",
           "heatmap_loss", "save_detector", "load_detector", "default_detector_path", "DEFAULT_DETECTOR"]

import json
import os
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from raoutcome.anatomy import body_part_spec
from raoutcome.errors import ConfigError

if TYPE_CHECKING:
    from raoutcome.models.landmark_refine import Refiner

DEFAULT_DETECTOR = "landmark_detector.safetensors"
STRIDE = 4


def channel_names(parts: tuple[str, ...] = ("hand", "foot")) -> tuple[str, ...]:
    """``part:landmark`` for every landmark of each body part's template, in template order."""
    templates = {}
    for p in parts:
        try:
            templates[p] = body_part_spec(p).landmarks
        except KeyError:
            templates[p] = {}
        if not templates[p]:
            raise ConfigError(f"no landmark template for body part {p!r} in the anatomy registry")
    return tuple(f"{p}:{name}" for p in parts for name in templates[p])


@dataclass(frozen=True)
class DetectorSpec:
    """Everything needed to rebuild a detector: backbone, input size, channels, decoder width.

    ``size``: square input side in pixels (images are resized/padded to it, aspect kept);
    ``channels``: ``part:landmark`` names, one heatmap each; ``sigma``: target SD in heatmap cells;
    ``contrast``: percentile stretch applied before resizing (see :mod:`raoutcome.imaging.transforms`).
    """

    backbone: str = "efficientnet_lite0"
    size: int = 256
    channels: tuple[str, ...] = field(default_factory=channel_names)
    decoder: int = 48
    out_indices: tuple[int, ...] = (1, 2, 3, 4)
    sigma: float = 1.25
    contrast: tuple[float, float] = (0.5, 99.5)
    trained_on: str = ""

    def __post_init__(self) -> None:
        if self.size % 32:
            raise ConfigError(f"detector input size must be a multiple of 32, got {self.size}")
        if not self.channels:
            raise ConfigError("detector has no landmark channels")

    @property
    def parts(self) -> tuple[str, ...]:
        """Body parts the detector knows, in channel order."""
        return tuple(dict.fromkeys(c.split(":", 1)[0] for c in self.channels))

    def part_channels(self, part: str) -> list[int]:
        """Indices of the channels of ``part``."""
        return [i for i, c in enumerate(self.channels) if c.split(":", 1)[0] == part]

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "DetectorSpec":
        raw = json.loads(text)
        for key in ("channels", "out_indices", "contrast"):
            if key in raw:
                raw[key] = tuple(raw[key])
        return cls(**raw)


class LandmarkNet(nn.Module):
    """timm ``features_only`` backbone + FPN decoder -> ``(N, K, size/4, size/4)`` heatmap logits."""

    def __init__(self, spec: DetectorSpec, pretrained: str | None = None):
        super().__init__()
        import timm

        self.spec = spec
        if spec.backbone not in timm.list_models():
            raise ConfigError(f"unknown timm architecture {spec.backbone!r}")
        self.backbone = timm.create_model(spec.backbone, pretrained=False, features_only=True, in_chans=1,
                                          out_indices=spec.out_indices)
        if pretrained:
            from raoutcome.models import pretrained as pw
            from raoutcome.models.encoder import WHEEL_EFFICIENTNET_LITE0

            if pretrained == WHEEL_EFFICIENTNET_LITE0:
                pw.efficientnet_lite0_from_wheel(self.backbone, strict=False)
            else:
                pw.load_local_weights(self.backbone, Path(pretrained), strict=False)
        chans = self.backbone.feature_info.channels()
        reductions = self.backbone.feature_info.reduction()
        if reductions[0] != STRIDE:
            raise ConfigError(f"{spec.backbone}: the first feature level must have stride {STRIDE} "
                              f"(out_indices {spec.out_indices} give strides {reductions})")
        d = spec.decoder
        self.lateral = nn.ModuleList(nn.Conv2d(c, d, 1) for c in chans)
        self.fuse = nn.Sequential(nn.Conv2d(d, d, 3, padding=1, bias=False), nn.BatchNorm2d(d), nn.ReLU(inplace=True))
        self.head = nn.Conv2d(d, len(spec.channels), 1)
        nn.init.constant_(self.head.bias, -4.0)  # start near "no landmark here" (p ~ 0.02)
        # optional second, local pass (raoutcome.models.landmark_refine.attach_refiner); not used by forward
        self.refiner: Refiner | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: ``(N, 1, size, size)`` in [0, 1]; returns heatmap logits at stride 4."""
        feats = self.backbone((x - 0.5) / 0.5)
        y = self.lateral[-1](feats[-1])
        for lat, f in zip(reversed(self.lateral[:-1]), reversed(feats[:-1])):
            y = F.interpolate(y, size=f.shape[-2:], mode="nearest") + lat(f)
        return self.head(self.fuse(y))


def gaussian_targets(coords: torch.Tensor, shape: tuple[int, int], sigma: float) -> torch.Tensor:
    """Gaussian heatmaps ``(N, K, H, W)`` peaking at 1 at ``coords`` ``(N, K, 2)`` (input pixels, x, y).

    NaN coordinates give all-zero maps (the landmark is absent or unknown; the loss mask decides which).
    """
    h, w = shape
    c = (coords + 0.5) / STRIDE - 0.5  # heatmap cell coordinates
    gx = torch.arange(w, dtype=coords.dtype).view(1, 1, 1, w)
    gy = torch.arange(h, dtype=coords.dtype).view(1, 1, h, 1)
    cx, cy = c[..., 0, None, None], c[..., 1, None, None]
    g = torch.exp(-((gx - cx) ** 2 + (gy - cy) ** 2) / (2 * sigma ** 2))
    return torch.nan_to_num(g, nan=0.0)


def heatmap_loss(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor, pos_weight: float = 20.0):
    """Mean binary cross-entropy over the masked channels, cells weighted ``1 + pos_weight * target``.

    ``mask`` ``(N, K)``: 1 where the channel is supervised (annotated, or known to be absent), 0 where the
    landmark is simply not annotated on that image.
    """
    w = (1.0 + pos_weight * targets) * mask[..., None, None]
    loss = F.binary_cross_entropy_with_logits(logits, targets, weight=w, reduction="sum")
    return loss / w.sum().clamp_min(1.0)


def decode_heatmaps(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sub-pixel landmark coordinates and confidences from heatmap logits.

    Parameters
    ----------
    logits : (N, K, H, W) tensor, stride-4 heatmap logits.

    Returns
    -------
    coords : (N, K, 2) input-pixel coordinates (x, y), pixel centres at integers.
    confidence : (N, K) the peak's probability ``sigmoid(logit)``.

    The peak cell is refined by the Newton step ``-H^{-1} g`` of the log-probability's quadratic fit on the
    3x3 neighbourhood (central differences), bounded to half a cell; where the fit is not a maximum the
    cell centre is kept.
    """
    n, k, h, w = logits.shape
    logp = F.logsigmoid(logits.float())
    flat = logp.reshape(n, k, -1)
    conf, idx = flat.max(-1)
    iy, ix = idx // w, idx % w
    pad = F.pad(logp, (1, 1, 1, 1), mode="reflect")  # at the border: no offset along that axis

    def at(dy: int, dx: int) -> torch.Tensor:
        return pad.reshape(n, k, -1).gather(-1, ((iy + 1 + dy) * (w + 2) + ix + 1 + dx)[..., None])[..., 0]

    c = at(0, 0)
    dx = 0.5 * (at(0, 1) - at(0, -1))
    dy = 0.5 * (at(1, 0) - at(-1, 0))
    dxx = at(0, 1) - 2 * c + at(0, -1)
    dyy = at(1, 0) - 2 * c + at(-1, 0)
    dxy = 0.25 * (at(1, 1) - at(1, -1) - at(-1, 1) + at(-1, -1))
    det = dxx * dyy - dxy ** 2
    ok = (det > 1e-9) & (dxx < 0)
    safe = torch.where(ok, det, torch.ones_like(det))
    ox = torch.where(ok, -(dyy * dx - dxy * dy) / safe, torch.zeros_like(det)).clamp(-0.5, 0.5)
    oy = torch.where(ok, -(dxx * dy - dxy * dx) / safe, torch.zeros_like(det)).clamp(-0.5, 0.5)
    hx, hy = ix.float() + ox, iy.float() + oy
    coords = torch.stack([STRIDE * (hx + 0.5) - 0.5, STRIDE * (hy + 0.5) - 0.5], dim=-1)
    return coords, conf.exp()


def save_detector(model: LandmarkNet, path: str | Path, half: bool = True) -> Path:
    """Write weights (float16 by default: half the size, no measurable change in the coordinates) and the
    spec (safetensors metadata) atomically."""
    from safetensors.torch import save_file

    from raoutcome.io_utils import atomic_path, current_umask

    path = Path(path)
    state = {k: (v.half() if half and v.is_floating_point() else v).contiguous()
             for k, v in model.state_dict().items()}
    meta = {"raoutcome_detector": model.spec.to_json()}
    if getattr(model, "refiner", None) is not None:
        meta["raoutcome_refiner"] = model.refiner.rspec.to_json()
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata=meta)
        os.chmod(tmp, 0o666 & ~current_umask())  # safetensors writes 0600; a shipped file must be readable
    return path


def load_detector(path: str | Path | None = None) -> LandmarkNet:
    """A detector from a safetensors file written by :func:`save_detector` (``None``: the default one),
    in eval mode. Raises :class:`ConfigError` for a missing or foreign file."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = default_detector_path() if path is None else Path(path)
    if not path.is_file():
        raise ConfigError(f"landmark detector {str(path)!r} not found")
    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
        state = load_file(str(path))
    except Exception as err:  # not safetensors, truncated
        raise ConfigError(f"{path}: cannot read landmark detector ({err})") from err
    if "raoutcome_detector" not in meta:
        raise ConfigError(f"{path}: not a raoutcome landmark detector (no 'raoutcome_detector' metadata)")
    spec = DetectorSpec.from_json(meta["raoutcome_detector"])
    model = LandmarkNet(spec)
    if "raoutcome_refiner" in meta:  # a file with the local refinement pass (models.landmark_refine)
        from raoutcome.models.landmark_refine import RefineSpec, attach_refiner

        attach_refiner(model, RefineSpec.from_json(meta["raoutcome_refiner"]), copy_weights=False)
    target = model.state_dict()
    try:
        model.load_state_dict({k: v.to(target[k].dtype) for k, v in state.items()})
    except (KeyError, RuntimeError) as err:
        raise ConfigError(f"{path}: weights do not fit the detector its spec describes ({err})") from err
    return model.eval()


def default_detector_path() -> Path:
    """The detector shipped in the package (``raoutcome/data/landmark_detector.safetensors``)."""
    return Path(str(resources.files("raoutcome") / "data" / DEFAULT_DETECTOR))
