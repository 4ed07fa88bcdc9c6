"""Reading radiographs (DICOM, PNG, TIFF, JPEG), canonical preprocessing and a preprocessed-image cache.

- :func:`read_image` -> :class:`Radiograph` (float32 pixels in [0, 1], bone bright; whitelisted,
  non-identifying metadata). See :mod:`raoutcome.imaging.dicom` and :mod:`raoutcome.imaging.raster`
  for how each format is normalised.
- :mod:`raoutcome.imaging.transforms`: orientation (right views mirrored), percentile contrast,
  aspect-keeping resize + pad.
- :class:`ImageCache`: decoded + preprocessed arrays on disk, keyed by file content and transform.
"""
from raoutcome.imaging.cache import ImageCache
from raoutcome.imaging.io import META_KEYS, Radiograph, read_image

__all__ = ["ImageCache", "META_KEYS", "Radiograph", "read_image"]
