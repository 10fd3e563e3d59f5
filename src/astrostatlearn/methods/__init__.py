"""Segmentation methods behind one interface (:class:`Segmenter`), found by name in a registry.

Classical: ``photutils``, ``sep``, ``kmeans``, ``forest``; learned: ``unet``.
"""

from astrostatlearn.methods.base import (
    SEGMENTERS,
    Prediction,
    Segmenter,
    Tile,
    load_segmenter,
    make_segmenter,
    register,
)
from astrostatlearn.methods import forest, kmeans, photutils_method, sep_method  # noqa: F401  (registration)

# ``unet`` (PyTorch) registers itself when first asked for, so the classical methods never import torch.

__all__ = ["SEGMENTERS", "Prediction", "Segmenter", "Tile", "load_segmenter", "make_segmenter", "register"]
