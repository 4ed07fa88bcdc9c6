"""Synthetic longitudinal RA cohort with a radiograph phantom and known truth.

``simulate(config_path, out_dir, seed=None, image_format=None)`` writes a manifest folder plus
``truth/``; the generative model is documented in :mod:`.course`, :mod:`.outcomes` and
``cohorts/README.md``. Never imported by models, training, evaluation or analysis.
"""
from .config import SimulationConfig, load_config
from .simulator import simulate

__all__ = ["SimulationConfig", "load_config", "simulate"]
