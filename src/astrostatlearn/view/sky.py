"""Sky coordinates for the viewer: a grid of RA/Dec nodes from the field's WCS (astropy), which
the browser interpolates bilinearly under the cursor.

Nodes are every ``step`` pixels (256) and on the last row and column, in the array frame (0-based
pixel centres). Any WCS astropy reads works, distortions included; between nodes the error of
the interpolation is far below a milliarcsecond for survey pixel scales (checked in the tests
against astropy). RA is stored as an offset from the first node's, so fields across RA = 0 work;
near a celestial pole the interpolation of RA breaks down.
"""

from __future__ import annotations

import numpy as np

from astrostatlearn.field import Field


def sky_grid(field: Field, step: int = 256) -> dict | None:
    """``{"xs", "ys", "ra0", "dec0", "dra", "ddec", "frame"}`` (degrees), or None without a celestial WCS."""
    wcs = field.wcs
    if wcs is None or not wcs.has_celestial:
        return None
    wcs = wcs.celestial
    ny, nx = field.shape
    xs = np.unique(np.r_[np.arange(0, nx, step), nx - 1])
    ys = np.unique(np.r_[np.arange(0, ny, step), ny - 1])
    gx, gy = np.meshgrid(xs, ys)
    ra, dec = wcs.pixel_to_world_values(gx.astype(float), gy.astype(float))
    if not (np.isfinite(ra).all() and np.isfinite(dec).all()):
        return None
    ra0, dec0 = float(ra[0, 0]), float(dec[0, 0])
    dra = (ra - ra0 + 180.0) % 360.0 - 180.0
    frame = str(getattr(wcs.wcs, "radesys", "") or "ICRS").strip() or "ICRS"
    return {"xs": xs.tolist(), "ys": ys.tolist(), "ra0": ra0, "dec0": dec0,
            "dra": np.round(dra, 10).tolist(), "ddec": np.round(dec - dec0, 10).tolist(), "frame": frame}
