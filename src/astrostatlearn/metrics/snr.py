"""Each true object's S/N from the field itself, for binned completeness without a truth catalogue.

Footprint S/N: ``sum(img - sky) / sqrt(sum(rms²))`` over the object's truth footprint (what
SExtractor calls FLUX_ISO / FLUXERR_ISO, sky-limited), with ``sky`` the image's global
sigma-clipped median; without an rms map, ``rms`` is the global sigma-clipped std. Streamed in
row blocks (memory: one block of the three maps).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from astrostatlearn.errors import InputError
from astrostatlearn.field import Field, Window, robust_stats


def footprint_snr(field: Field, region: Window | None = None, block_pixels: int = 1 << 24) -> Any:
    """Footprint S/N of every true object of a field.

    Parameters
    ----------
    field : Field
        A field with a truth map (and, ideally, an rms map).
    region : Window, optional
        Only this window (footprints are cut at its edges).
    block_pixels : int
        Pixels per streamed row block.

    Returns
    -------
    astropy.table.Table
        ``id``, ``snr``, ``flux_iso`` (image units) and ``area`` (pixels).

    Raises
    ------
    InputError
        A field without a truth map.

    Examples
    --------
    >>> import numpy as np
    >>> from astrostatlearn.field import Field
    >>> from astrostatlearn.field.arrays import ArrayImage
    >>> from astrostatlearn.metrics import footprint_snr
    >>> img = np.zeros((32, 32), np.float32); img[4:8, 4:8] = 1.0
    >>> true = np.zeros((32, 32), np.int32); true[4:8, 4:8] = 3
    >>> rms = np.full((32, 32), 0.5, np.float32)
    >>> t = footprint_snr(Field(ArrayImage(img), ArrayImage(rms), ArrayImage(true)))
    >>> [int(i) for i in t["id"]], [round(float(v), 1) for v in t["snr"]]
    ([3], [8.0])
    """
    from astropy.table import Table

    if field.true is None:
        raise InputError("the field has no truth map; footprint S/N needs true.fits")
    region = region or field.full
    _, sky, sigma = robust_stats(field)
    rows = max(1, block_pixels // max(region.shape[1], 1))
    ids, flux, var, area = [], [], [], []
    for y in range(region.y0, region.y1, rows):
        w = Window(y, min(y + rows, region.y1), region.x0, region.x1)
        t = field.read_true(w)
        fg = t > 0
        if not fg.any():
            continue
        img = field.read_img(w).astype(np.float64)
        rms = field.read_rms(w)
        v = np.where(np.isfinite(img), img - sky, 0.0)[fg]
        e2 = (np.full(v.shape, sigma**2) if rms is None else np.nan_to_num(rms[fg].astype(np.float64) ** 2))
        u, inv = np.unique(t[fg], return_inverse=True)
        ids.append(u)
        flux.append(np.bincount(inv, weights=v, minlength=u.size))
        var.append(np.bincount(inv, weights=e2, minlength=u.size))
        area.append(np.bincount(inv, minlength=u.size))
    if not ids:
        return Table({"id": np.zeros(0, np.int64), "snr": np.zeros(0), "flux_iso": np.zeros(0), "area": np.zeros(0, int)})
    u, inv = np.unique(np.concatenate(ids), return_inverse=True)
    f, e2, a = (np.bincount(inv, weights=np.concatenate(x), minlength=u.size) for x in (flux, var, area))
    snr = np.where(e2 > 0, f / np.sqrt(np.maximum(e2, 1e-300)), 0.0)
    table = Table({"id": u.astype(np.int64), "snr": snr, "flux_iso": f, "area": a.astype(np.int64)})
    table.meta["snr"] = "footprint S/N: sum(img - sky) / sqrt(sum rms^2) over the truth footprint"
    return table
