"""Models: timm encoder factory (local weights only), view fusion, time-aware
longitudinal aggregator, outcome heads and the multitask loss. Never reads files
(except the weights file a user names for the encoder)."""
from raoutcome.models.encoder import WHEEL_EFFICIENTNET_LITE0, create_encoder
from raoutcome.models.heads import build_head, register_head
from raoutcome.models.losses import MultitaskLoss
from raoutcome.models.multitask import LongitudinalOutcomeModel, ModelSpec

__all__ = ["create_encoder", "WHEEL_EFFICIENTNET_LITE0", "build_head", "register_head", "MultitaskLoss",
           "LongitudinalOutcomeModel", "ModelSpec"]
