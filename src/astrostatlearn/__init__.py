"""astrostatlearn: find and segment every galaxy in very large astronomical survey images.

Conventions used throughout the package:

* arrays are indexed ``[y, x]`` and 0-based; catalogue ``x``/``y`` columns are 0-based pixel centres;
* instance maps are int32, 0 = background, positive IDs that need not be contiguous;
* scores are float32 in [0, 1]; multi-channel inputs are ``[C, y, x]``.

Notebook API (arrays in, astropy/photutils objects out): ``astrostatlearn.segment(data, rms)``,
``astrostatlearn.simulate(shape)``, ``astrostatlearn.evaluate(true, pred)``,
``astrostatlearn.inject(image)``.

The data flow is one-way: ``field`` (FITS I/O) -> ``simulate`` -> ``preprocess`` -> ``datasets``
-> ``methods`` -> ``segment`` -> ``metrics`` -> ``benchmark``.
"""

from typing import Any

from astrostatlearn.errors import InputError, OutputExistsError

__version__ = "0.1.0"

_LAZY = {"Field": "astrostatlearn.field", "Window": "astrostatlearn.field", "tile_grid": "astrostatlearn.field",
         "evaluate": "astrostatlearn.api.functions", "SegmentationResult": "astrostatlearn.api.results",
         "SimulatedField": "astrostatlearn.api.results", "InjectionResult": "astrostatlearn.api.results"}
# Packages that are also the notebook API's functions (see astrostatlearn._callable).
_CALLABLE_PACKAGES = ("segment", "simulate", "inject")


def __getattr__(name: str) -> Any:
    """Import the heavier names on first use, so ``import astrostatlearn`` (and every worker
    process's start) stays cheap."""
    import importlib

    if name in _CALLABLE_PACKAGES:
        return importlib.import_module(f"astrostatlearn.{name}")
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'astrostatlearn' has no attribute {name!r}")

__all__ = ["Field", "InjectionResult", "InputError", "OutputExistsError", "SegmentationResult", "SimulatedField",
           "Window", "evaluate", "inject", "segment", "simulate", "tile_grid", "__version__"]
