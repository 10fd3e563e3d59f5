"""Segmentation methods behind one interface (:class:`Segmenter`), found by name in a registry.

Classical: ``photutils``, ``sep``, ``kmeans``, ``forest``; learned: ``unet``, ``maskrcnn``, ``detr``,
``mask2former``.
Each method declares what the rest of the package asks about it (shipped model, default
variant, trainer, scheduler, options) on its class; see :class:`Segmenter`.

The names below come from :mod:`.base`, imported on first use: importing this package (or its
light :mod:`.registry`) costs nothing, so the command line starts a run's workers before it
imports numpy and astropy. Every method's own module is imported when the method is first asked
for (``method_class``), so a run of sep never imports scikit-learn, photutils' deblender or torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from astrostatlearn.methods.registry import BUILTIN_METHODS

if TYPE_CHECKING:
    from astrostatlearn.methods.base import (SEGMENTERS, Instances, Prediction, Segmenter, Tile, TrainRequest,
                                             benchmarkable, default_segmenter, load_segmenter, make_segmenter,
                                             method_class, method_names, parse_method_spec, ready_methods, register,
                                             resolve_variant)

__all__ = ["BUILTIN_METHODS", "SEGMENTERS", "Instances", "Prediction", "Segmenter", "Tile", "TrainRequest",
           "benchmarkable", "default_segmenter", "load_segmenter", "make_segmenter", "method_class", "method_names",
           "parse_method_spec", "ready_methods", "register", "resolve_variant"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from astrostatlearn.methods import base

        return getattr(base, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
