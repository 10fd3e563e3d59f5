"""astrostatlearn: find and segment every galaxy in very large astronomical survey images.

Conventions used throughout the package:

* arrays are indexed ``[y, x]`` and 0-based; catalogue ``x``/``y`` columns are 0-based pixel centres;
* instance maps are int32, 0 = background, positive IDs that need not be contiguous;
* scores are float32 in [0, 1]; multi-channel inputs are ``[C, y, x]``.

The data flow is one-way: ``field`` (FITS I/O) -> ``simulate`` -> ``preprocess`` -> ``datasets``
-> ``methods`` -> ``segment`` -> ``metrics`` -> ``benchmark``.
"""

from astrostatlearn.errors import InputError, OutputExistsError
from astrostatlearn.field import Field, Window, tile_grid

__version__ = "0.1.0"

__all__ = ["Field", "InputError", "OutputExistsError", "Window", "tile_grid", "__version__"]
