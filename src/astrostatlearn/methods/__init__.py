"""Segmentation methods behind one interface (:class:`Segmenter`), found by name in a registry.

Classical: ``photutils``, ``sep``, ``kmeans``, ``forest``; learned: ``unet``, ``maskrcnn``, ``detr``,
``mask2former``.
Each method declares what the rest of the package asks about it (shipped model, default
variant, trainer, scheduler, options) on its class; see :class:`Segmenter`.
"""

from astrostatlearn.methods.base import (
    BUILTIN_METHODS,
    SEGMENTERS,
    Instances,
    Prediction,
    Segmenter,
    Tile,
    TrainRequest,
    default_segmenter,
    load_segmenter,
    make_segmenter,
    method_class,
    method_names,
    ready_methods,
    resolve_variant,
    register,
)

# Every method's module is imported when the method is first asked for (``method_class``), so a
# run of sep never imports scikit-learn, photutils' deblender or torch.

__all__ = ["BUILTIN_METHODS", "SEGMENTERS", "Instances", "Prediction", "Segmenter", "Tile", "TrainRequest",
           "default_segmenter", "load_segmenter", "make_segmenter", "method_class", "method_names", "ready_methods", "register", "resolve_variant"]
