"""An image's photometric zero-point from its FITS header: ``mag = zp - 2.5 log10(flux)``, with
``flux`` in image units (per pixel sum).

The cards surveys and pipelines write, in this order:

- a zero-point in magnitudes: ``MAGZERO``, ``MAGZPT``, ``PHOTZP``, ``ZEROPNT``, ``ZP``, ``MAGZP``
  (SWarp/KiDS, SDSS-like and this project's simulator);
- ``FLUXMAG0``, the flux of a magnitude-0 source (LSST and HSC coadds): ``zp = 2.5 log10(FLUXMAG0)``;
- HST's ``PHOTFLAM`` and ``PHOTPLAM`` (inverse sensitivity, erg/s/cm²/Å per unit, and pivot
  wavelength, Å): the AB zero-point ``-2.5 log10(PHOTFLAM) - 5 log10(PHOTPLAM) - 2.408``.
"""

from __future__ import annotations

import math
from typing import Any

ZEROPOINT_KEYS = ("MAGZERO", "MAGZPT", "PHOTZP", "ZEROPNT", "ZP", "MAGZP")


def header_number(header: Any, keys: tuple[str, ...]) -> float | None:
    """The first of ``keys`` in ``header`` whose value is a finite number, else None."""
    for key in keys:
        if key in header:
            try:
                value = float(header[key])
            except (TypeError, ValueError):
                continue
            if math.isfinite(value):
                return value
    return None


def header_zeropoint(header: Any) -> tuple[float, str] | None:
    """(zero-point in magnitudes, the cards it came from) from ``header``, or None when it has
    none of the cards in the module docstring (or none with a usable value)."""
    for key in ZEROPOINT_KEYS:
        value = header_number(header, (key,))
        if value is not None:
            return value, key
    flux0 = header_number(header, ("FLUXMAG0",))
    if flux0 is not None and flux0 > 0:
        return 2.5 * math.log10(flux0), "FLUXMAG0"
    flam, plam = header_number(header, ("PHOTFLAM",)), header_number(header, ("PHOTPLAM",))
    if flam is not None and plam is not None and flam > 0 and plam > 0:
        return -2.5 * math.log10(flam) - 5.0 * math.log10(plam) - 2.408, "PHOTFLAM, PHOTPLAM"
    return None
