"""Attribution maps per outcome head: Integrated Gradients, Grad-CAM and Occlusion (Captum).

Every method works on any model that exposes ``forward_single_image(x, view) -> {head: Tensor[B]}``
and (for Grad-CAM) an ``.encoder`` built by timm, and returns one numpy map per image, shaped like
the input image, ``(B, H, W)``.

Methods and their settings (all documented defaults, all overridable):

``integrated_gradients``
    Captum ``IntegratedGradients`` (Sundararajan et al. 2017), Gauss–Legendre quadrature with
    ``n_steps`` points (default 16: for the default-config model on demo phantom images, Captum's
    convergence delta was ~2 % of f(x) − f(baseline) at 8, 16 and 32 points alike), evaluated
    ``internal_batch_size`` images at a time. The baseline is the image the path starts from:

    * ``"black"`` (default): an all-zero image, i.e. no X-ray signal at all — the classical choice.
      Attributions then answer "what in this image, compared with nothing, drives the head".
    * ``"blur"``: the same image under a Gaussian blur with σ = ``blur_sigma`` × image height
      (default 0.05, ≈ 13 px at 256 px). The blurred image keeps the coarse hand silhouette and
      density, so attributions concentrate on fine structure (cortices, joint spaces, trabecular
      texture, erosions) instead of on "there is a hand here".

    Completeness holds: the signed map sums to f(x) − f(baseline) up to Captum's convergence delta
    (see :func:`integrated_gradients` with ``return_delta=True``).
``gradcam``
    Captum ``LayerGradCam`` (Selvaraju et al. 2017) on the last convolutional stage of the encoder,
    found generically by :func:`find_gradcam_layer` (the last module whose 4-D output has the shape of
    the encoder's final feature map, i.e. just before global pooling), then bilinearly upsampled to the
    image. By default ReLU-ed as in the paper (only evidence *for* a higher head value).
``occlusion``
    Captum ``Occlusion``: a square window of ``window`` pixels (default: image height / 8, at least
    2) slides with ``stride`` pixels (default: window / 2) and is replaced by the baseline (black by
    default, or the blurred image); a pixel's attribution is the mean output drop over the windows
    covering it. The default window (height / 8, e.g. 32 px at 256 px, about one joint) gives 15 × 15
    window positions, one forward pass each (batched ``internal_batch_size`` × 4 at a time), so it is
    still the slowest of the three methods.

``signed=False`` (default) returns non-negative magnitudes: ``|attribution|`` for Integrated Gradients
and Occlusion, the ReLU-ed map for Grad-CAM. ``signed=True`` keeps the sign (Grad-CAM without ReLU).

SmoothGrad: ``smoothgrad_samples > 0`` wraps Integrated Gradients or Grad-CAM in Captum's
``NoiseTunnel`` (``nt_type="smoothgrad"``): the attribution is averaged over that many copies of the
image with Gaussian noise of standard deviation ``smoothgrad_sigma`` (in image intensity units, images
being in [0, 1]; default 0.1), then the magnitude is taken. Not offered for Occlusion, whose windows
already average locally.

Ensembles: :func:`attribute_images` averages the maps of the models of a run. For Integrated Gradients
this equals the attribution of the ensemble mean (the method is linear in the model output).
"""
from __future__ import annotations

import math
import weakref
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

import numpy as np
import torch
from torch import nn

METHODS: tuple[str, ...] = ("integrated_gradients", "gradcam", "occlusion")
BASELINES: tuple[str, ...] = ("black", "blur")


@dataclass(frozen=True)
class AttributionSettings:
    """Every knob of the three methods, with the documented defaults (see the module docstring)."""

    method: str = "integrated_gradients"
    baseline: str = "black"
    blur_sigma: float = 0.05
    n_steps: int = 16
    internal_batch_size: int = 16
    window: int | None = None
    stride: int | None = None
    smoothgrad_samples: int = 0
    smoothgrad_sigma: float = 0.1
    signed: bool = False

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"unknown attribution method {self.method!r}; expected one of {', '.join(METHODS)}")
        if self.baseline not in BASELINES:
            raise ValueError(f"unknown baseline {self.baseline!r}; expected one of {', '.join(BASELINES)}")
        if self.n_steps < 2 or self.internal_batch_size < 1:
            raise ValueError("n_steps must be >= 2 and internal_batch_size >= 1")
        if self.smoothgrad_samples < 0 or self.smoothgrad_sigma < 0:
            raise ValueError("smoothgrad_samples and smoothgrad_sigma must be >= 0")
        if self.smoothgrad_samples and self.method == "occlusion":
            raise ValueError("SmoothGrad is offered for integrated_gradients and gradcam, not occlusion")


class HeadOutput(nn.Module):
    """``x -> model.forward_single_image(x, view)[head]`` as a (B,) tensor, the form Captum wants."""

    def __init__(self, model: nn.Module, view: str, head: str):
        super().__init__()
        self.model = model
        self.view = view
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.model.forward_single_image(x, self.view)
        if self.head not in out:
            raise KeyError(f"model has no head {self.head!r} (heads: {', '.join(out)})")
        return out[self.head].reshape(x.shape[0])


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``None`` -> the GPU when one is present, else the CPU."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


#: The Grad-CAM layer found for each encoder (one probe pass per encoder, not per batch).
_GRADCAM_LAYERS: "weakref.WeakKeyDictionary[nn.Module, nn.Module]" = weakref.WeakKeyDictionary()
_POOLING = (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.AvgPool2d, nn.MaxPool2d)


def find_gradcam_layer(encoder: nn.Module, in_chans: int = 1, probe_size: int = 128) -> nn.Module:
    """The last convolutional stage of ``encoder``: the module Grad-CAM should look at.

    Works for any timm CNN (and most other CNNs) without knowing its layer names: one probe forward
    pass with hooks on every sub-module records which ones return a 4-D tensor; the answer is the
    module that finishes last among those whose output has the shape of the encoder's final feature
    map (``forward_features`` when the encoder has it), i.e. the stage just before global pooling.
    Pooling modules are never chosen. Raises ``ValueError`` for encoders without 4-D feature maps
    (e.g. vision transformers).
    """
    records: list[tuple[str, nn.Module, tuple[int, ...]]] = []

    def hook_for(name: str):
        def hook(module, _inp, out):
            if torch.is_tensor(out) and out.ndim == 4 and not isinstance(module, _POOLING):
                records.append((name, module, tuple(out.shape[1:])))
        return hook

    handles = [m.register_forward_hook(hook_for(n)) for n, m in encoder.named_modules() if n]
    was_training = encoder.training
    try:
        param = next(encoder.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
        probe = torch.zeros(1, in_chans, probe_size, probe_size, device=device)
        encoder.eval()
        with torch.no_grad():
            feats = encoder.forward_features(probe) if hasattr(encoder, "forward_features") else encoder(probe)
    finally:
        for h in handles:
            h.remove()
        encoder.train(was_training)
    if not records:
        raise ValueError(f"{type(encoder).__name__} has no module with a 4-D output: Grad-CAM needs a CNN encoder")
    if torch.is_tensor(feats) and feats.ndim == 4:
        final = tuple(feats.shape[1:])
        same = [r for r in records if r[2] == final]
        if same:
            return same[-1][1]
    # No forward_features map: the last 4-D output that still has a spatial extent.
    spatial = [r for r in records if r[2][1] * r[2][2] > 1] or records
    return spatial[-1][1]


def _gaussian_blur(x: torch.Tensor, sigma_px: float) -> torch.Tensor:
    """Separable Gaussian blur of (B,1,H,W) with edge replication."""
    if sigma_px <= 0:
        return x.clone()
    radius = max(1, int(math.ceil(3 * sigma_px)))
    radius = min(radius, max(1, min(x.shape[-2:]) - 1))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-0.5 * (t / sigma_px) ** 2)
    k = k / k.sum()
    c = x.shape[1]
    xp = nn.functional.pad(x, (radius, radius, 0, 0), mode="replicate")
    x = nn.functional.conv2d(xp, k.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    xp = nn.functional.pad(x, (0, 0, radius, radius), mode="replicate")
    return nn.functional.conv2d(xp, k.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)


def make_baseline(x: torch.Tensor, kind: str = "black", blur_sigma: float = 0.05) -> torch.Tensor:
    """The reference image for Integrated Gradients / Occlusion (see the module docstring)."""
    if kind == "black":
        return torch.zeros_like(x)
    if kind == "blur":
        return _gaussian_blur(x, blur_sigma * x.shape[-2])
    raise ValueError(f"unknown baseline {kind!r}; expected one of {', '.join(BASELINES)}")


def _as_batch(images: np.ndarray | torch.Tensor, device: torch.device) -> torch.Tensor:
    x = torch.as_tensor(np.asarray(images) if not torch.is_tensor(images) else images, dtype=torch.float32)
    if x.ndim == 2:
        x = x[None, None]
    elif x.ndim == 3:
        x = x[:, None]
    if x.ndim != 4 or x.shape[1] != 1:
        raise ValueError(f"images must be (H,W), (B,H,W) or (B,1,H,W); got {tuple(x.shape)}")
    return x.to(device)


def integrated_gradients(
    model: nn.Module, images, view: str, head: str, settings: AttributionSettings | None = None,
    device=None, return_delta: bool = False,
):
    """Integrated Gradients of one head for a batch; ``(B,H,W)`` numpy (and the deltas, ``(B,)``)."""
    from captum.attr import IntegratedGradients, NoiseTunnel

    s = settings or AttributionSettings()
    dev = resolve_device(device)
    model = model.to(dev).eval()
    x = _as_batch(images, dev)
    base = make_baseline(x, s.baseline, s.blur_sigma)
    ig = IntegratedGradients(HeadOutput(model, view, head))
    kwargs = dict(baselines=base, n_steps=s.n_steps, internal_batch_size=max(s.internal_batch_size, 1))
    delta = None
    with torch.enable_grad():
        if s.smoothgrad_samples:
            attr = NoiseTunnel(ig).attribute(
                x, nt_type="smoothgrad", nt_samples=s.smoothgrad_samples, stdevs=s.smoothgrad_sigma,
                nt_samples_batch_size=1, **kwargs)
        elif return_delta:
            attr, delta = ig.attribute(x, return_convergence_delta=True, **kwargs)
        else:
            attr = ig.attribute(x, **kwargs)
    out = _finish(attr, s.signed)
    if return_delta:
        return out, (None if delta is None else delta.detach().cpu().numpy())
    return out


def gradcam(
    model: nn.Module, images, view: str, head: str, settings: AttributionSettings | None = None,
    device=None, layer: nn.Module | None = None,
) -> np.ndarray:
    """Grad-CAM of one head on the encoder's last conv stage, upsampled to the image; ``(B,H,W)``."""
    from captum.attr import LayerAttribution, LayerGradCam, NoiseTunnel

    s = settings or AttributionSettings(method="gradcam")
    dev = resolve_device(device)
    model = model.to(dev).eval()
    x = _as_batch(images, dev)
    if layer is None:
        layer = _GRADCAM_LAYERS.get(model.encoder)
        if layer is None:
            layer = _GRADCAM_LAYERS[model.encoder] = find_gradcam_layer(model.encoder, 1, probe_size=x.shape[-1])
    cam = LayerGradCam(HeadOutput(model, view, head), layer)
    relu = not s.signed
    with torch.enable_grad():
        if s.smoothgrad_samples:
            attr = NoiseTunnel(cam).attribute(
                x, nt_type="smoothgrad", nt_samples=s.smoothgrad_samples, stdevs=s.smoothgrad_sigma,
                nt_samples_batch_size=1, relu_attributions=relu)
        else:
            attr = cam.attribute(x, relu_attributions=relu)
    attr = LayerAttribution.interpolate(attr, tuple(x.shape[-2:]), interpolate_mode="bilinear")
    if relu:
        attr = attr.clamp_min(0)  # bilinear upsampling of a ReLU map stays >= 0; keep it exact
    return attr.detach().sum(dim=1).cpu().numpy().astype(np.float32)


def occlusion_window(height: int, window: int | None = None, stride: int | None = None) -> tuple[int, int]:
    """Documented defaults: window = height/8 (>= 2 px), stride = window/2 (>= 1 px)."""
    w = window if window is not None else max(2, int(round(height / 8)))
    st = stride if stride is not None else max(1, w // 2)
    if w < 1 or st < 1:
        raise ValueError("occlusion window and stride must be >= 1 pixel")
    return w, st


def occlusion(
    model: nn.Module, images, view: str, head: str, settings: AttributionSettings | None = None,
    device=None,
) -> np.ndarray:
    """Occlusion attribution of one head (mean output drop when a window is hidden); ``(B,H,W)``."""
    from captum.attr import Occlusion

    s = settings or AttributionSettings(method="occlusion")
    dev = resolve_device(device)
    model = model.to(dev).eval()
    x = _as_batch(images, dev)
    w, st = occlusion_window(x.shape[-2], s.window, s.stride)
    base = make_baseline(x, s.baseline, s.blur_sigma)
    occ = Occlusion(HeadOutput(model, view, head))
    with torch.no_grad():
        attr = occ.attribute(x, sliding_window_shapes=(1, w, w), strides=(1, st, st), baselines=base,
                             perturbations_per_eval=max(1, 4 * s.internal_batch_size))
    return _finish(attr, s.signed)


def _finish(attr: torch.Tensor, signed: bool) -> np.ndarray:
    a = attr.detach().sum(dim=1)
    if not signed:
        a = a.abs()
    return a.cpu().numpy().astype(np.float32)


_FUNCS = {"integrated_gradients": integrated_gradients, "gradcam": gradcam, "occlusion": occlusion}


def attribute_batch(model: nn.Module, images, view: str, head: str,
                    settings: AttributionSettings | None = None, device=None) -> np.ndarray:
    """One method (``settings.method``) for one model, one head and one batch of images of one view."""
    s = settings or AttributionSettings()
    return _FUNCS[s.method](model, images, view, head, s, device=device)


def model_heads(model: nn.Module, view: str, size: int = 64, device=None) -> list[str]:
    """The heads a model answers for ``view`` (one probe forward pass)."""
    dev = resolve_device(device)
    model = model.to(dev).eval()
    with torch.no_grad():
        out = model.forward_single_image(torch.zeros(1, 1, size, size, device=dev), view)
    return list(out)


def attribute_images(
    models: nn.Module | Sequence[nn.Module],
    images: np.ndarray,
    views: Sequence[str] | str,
    heads: Iterable[str],
    settings: AttributionSettings | None = None,
    device=None,
    batch_size: int = 8,
    progress: bool = False,
) -> dict[str, np.ndarray]:
    """Maps for many images and heads: ``{head: (N,H,W)}``, averaged over the models of an ensemble.

    ``images`` is ``(N,H,W)`` or ``(N,1,H,W)`` (model input, e.g. from the image cache), ``views`` one
    view per image (or one for all). Images are batched ``batch_size`` at a time within each view.
    """
    s = settings or AttributionSettings()
    models = [models] if isinstance(models, nn.Module) else list(models)
    if not models:
        raise ValueError("no models to attribute")
    arr = np.asarray(images, dtype=np.float32)
    if arr.ndim == 4:
        arr = arr[:, 0]
    if arr.ndim != 3:
        raise ValueError(f"images must be (N,H,W) or (N,1,H,W); got {arr.shape}")
    n = arr.shape[0]
    views = [views] * n if isinstance(views, str) else list(views)
    if len(views) != n:
        raise ValueError(f"{len(views)} views for {n} images")
    heads = list(heads)
    out = {h: np.zeros_like(arr) for h in heads}
    batches: list[tuple[str, np.ndarray]] = []
    for view in dict.fromkeys(views):
        idx = np.flatnonzero(np.asarray(views) == view)
        batches += [(view, idx[i:i + batch_size]) for i in range(0, len(idx), batch_size)]
    bar = None
    if progress:
        from raoutcome.progress import tqdm
        bar = tqdm(total=len(batches) * len(heads) * len(models), desc=f"attribution ({s.method})", unit="batch")
    for view, idx in batches:
        for head in heads:
            acc = np.zeros((len(idx),) + arr.shape[1:], dtype=np.float64)
            for model in models:
                acc += attribute_batch(model, arr[idx], view, head, s, device=device)
                if bar is not None:
                    bar.update(1)
            out[head][idx] = (acc / len(models)).astype(np.float32)
    if bar is not None:
        bar.close()
    return out


def settings_from(method: str = "integrated_gradients", overrides: Mapping | None = None) -> AttributionSettings:
    """Settings for ``method`` with optional overrides (e.g. from a TOML table)."""
    return AttributionSettings(method=method, **dict(overrides or {}))
