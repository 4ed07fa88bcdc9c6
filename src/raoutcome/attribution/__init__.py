"""Attribution per outcome head (Captum) and its summary over anatomical regions.

- :mod:`.methods` Integrated Gradients, Grad-CAM (last conv stage of any timm encoder), Occlusion;
  optional SmoothGrad; ensembles averaged. Imports torch.
- :mod:`.regions` region label maps per image: simulator truth, manifest landmarks, or a
  foreground/background fallback; carried into the model's input frame.
- :mod:`.stats` attribution mass and density per region and head, density ratios with patient-bootstrap
  CIs. No torch.

The workflow that ties them to a trained run and a cohort is :func:`raoutcome.workflows.attribute.attribute`
(``raoutcome attribute``). Importing this package is cheap: the submodules load on first use.
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "METHODS": "methods", "AttributionSettings": "methods", "attribute_images": "methods",
    "find_gradcam_layer": "methods", "integrated_gradients": "methods", "gradcam": "methods", "occlusion": "methods",
    "RegionMap": "regions", "regions_from_landmarks": "regions", "regions_from_label_map": "regions",
    "fallback_regions": "regions", "image_regions": "regions", "model_frame_regions": "regions",
    "region_table": "stats", "density_ratio": "stats", "outside_sharp": "stats", "pooled_relative_density": "stats",
    "summarise": "stats",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
