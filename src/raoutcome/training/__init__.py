"""Training: the loop (AMP, DDP, checkpoint/resume, early stopping), cross-fitting,
ensembles and streaming prediction. No model math here (see :mod:`raoutcome.models`)."""
from raoutcome.training.config import DEFAULTS, TrainConfig, load_config

__all__ = ["train_run", "predict_run", "load_run", "load_config", "TrainConfig", "DEFAULTS"]


def __getattr__(name: str):
    """The run functions load torch: imported on first use, so reading a config stays torch-free."""
    if name in ("train_run", "predict_run", "load_run"):
        from raoutcome.training import run

        return getattr(run, name)
    raise AttributeError(f"module 'raoutcome.training' has no attribute {name!r}")
