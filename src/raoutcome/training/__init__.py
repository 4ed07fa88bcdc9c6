"""Training: the loop (AMP, DDP, checkpoint/resume, early stopping), cross-fitting,
ensembles and streaming prediction. No model math here (see :mod:`raoutcome.models`)."""
from raoutcome.training.config import DEFAULTS, TrainConfig, load_config
from raoutcome.training.run import load_run, predict_run, train_run

__all__ = ["train_run", "predict_run", "load_run", "load_config", "TrainConfig", "DEFAULTS"]
