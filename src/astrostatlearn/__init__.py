"""astrostatlearn: find and segment every galaxy in very large astronomical survey images.

Conventions used throughout the package:

* arrays are indexed ``[y, x]`` and 0-based; catalogue ``x``/``y`` columns are 0-based pixel centres;
* instance maps are int32, 0 = background, positive IDs that need not be contiguous;
* scores are float32 in [0, 1]; multi-channel inputs are ``[C, y, x]``.

The data flow is one-way: ``field`` (FITS I/O) -> ``simulate`` -> ``preprocess`` -> ``datasets``
-> ``methods`` -> ``segment`` -> ``metrics`` -> ``benchmark``.
"""

from typing import Any

from astrostatlearn.errors import InputError, OutputExistsError

__version__ = "0.1.0"

_LAZY = {"Field": "astrostatlearn.field", "Window": "astrostatlearn.field", "tile_grid": "astrostatlearn.field"}


def __getattr__(name: str) -> Any:
    """Import the heavier names on first use, so ``import astrostatlearn`` (and every worker
    process's start) stays cheap."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'astrostatlearn' has no attribute {name!r}")

__all__ = ["Field", "InputError", "OutputExistsError", "Window", "tile_grid", "__version__"]
