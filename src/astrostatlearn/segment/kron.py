"""Kron ("AUTO") photometry of a tile's objects, as SExtractor's ``FLUX_AUTO``, with sep.

For each object, sep's ``kron_radius`` integrates within 6 times its isophotal ellipse (the
catalogue's ``semimajor_sigma``, ``semiminor_sigma`` and ``orientation``, SExtractor's
``A_IMAGE``, ``B_IMAGE``, ``THETA_IMAGE``); the flux is summed in that ellipse scaled by
``max(2.5 r_kron, 3.5)`` (SExtractor's ``PHOT_AUTOPARAMS 2.5, 3.5``), on the image minus the
background mesh. Pixels of other objects (owned by this tile or not) are left out of both sums
(photutils' ``aperture_mask_method="mask"``; SExtractor mirrors the object's own pixels into them
instead); pixels with no data are masked, and sep scales the sum up by the area they take. An aperture that reaches beyond the tile's window
(the field's edge, or rarely its halo) is flagged (:data:`~astrostatlearn.segment.catalog.FLAG_APER_TRUNC`).
Cost per tile: one float32 and one int32 copy of the window, and sep's sums over the apertures.
"""

from __future__ import annotations

import numpy as np

KRON_WINDOW, KRON_FACTOR, MIN_RADIUS = 6.0, 2.5, 3.5


def kron_photometry(data: np.ndarray, error: np.ndarray | float, invalid: np.ndarray | None,
                    labels: np.ndarray, ids: np.ndarray, rows: dict[str, np.ndarray],
                    y0: int, x0: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """(columns ``kron_radius``, ``flux_auto``, ``flux_auto_err``; a bool per row: the aperture
    is truncated) for the catalogue ``rows`` of a window starting at field pixel (``y0``, ``x0``).

    ``data``: the window minus its background (float32 [y, x]); ``error``: its rms (a map or one
    value); ``invalid``: True where there is no data (or None); ``labels``: int32 window map where
    the rows' objects carry ``ids`` (one per row) and other objects any other non-zero value.
    Objects without a centroid or shape (NaN) get NaN."""
    import sep

    n = ids.size
    out = {c: np.full(n, np.nan) for c in ("kron_radius", "flux_auto", "flux_auto_err")}
    a, b = np.asarray(rows["semimajor_sigma"], float), np.asarray(rows["semiminor_sigma"], float)
    x, y = np.asarray(rows["x"], float) - x0, np.asarray(rows["y"], float) - y0
    ok = np.isfinite(x) & np.isfinite(y) & np.isfinite(a) & np.isfinite(b) & (b > 0)
    truncated = np.zeros(n, bool)
    if not ok.any():
        return out, truncated
    theta = np.radians((np.asarray(rows["orientation"], float)[ok] + 90.0) % 180.0 - 90.0)
    data = np.ascontiguousarray(data, dtype=np.float32)
    seg = np.ascontiguousarray(labels, dtype=np.int32)
    mask = None if invalid is None else np.ascontiguousarray(invalid, dtype=np.uint8)
    err = error if np.isscalar(error) else np.ascontiguousarray(error, dtype=np.float32)
    args = (x[ok], y[ok], a[ok], b[ok], theta)
    kron, kflag = sep.kron_radius(data, *args, KRON_WINDOW, mask=mask, seg_id=ids[ok], segmap=seg)
    scale = np.maximum(KRON_FACTOR * np.nan_to_num(kron, nan=0.0), MIN_RADIUS)
    flux, flux_err, fflag = sep.sum_ellipse(data, *args, scale, err=err, mask=mask, seg_id=ids[ok], segmap=seg,
                                            subpix=1)
    out["kron_radius"][ok], out["flux_auto"][ok], out["flux_auto_err"][ok] = kron, flux, flux_err
    truncated[ok] = ((kflag | fflag) & sep.APER_TRUNC) != 0
    return out, truncated


def add_kron_columns(rows: dict[str, np.ndarray], data: np.ndarray, error: np.ndarray | float,
                     invalid: np.ndarray | None, labels: np.ndarray, pixels: np.ndarray, pixel_ids: np.ndarray,
                     y0: int, x0: int) -> None:
    """Add :func:`kron_photometry`'s columns to a tile's catalogue ``rows`` (one per ID, in
    increasing order, with ``flags``) and OR ``FLAG_APER_TRUNC`` into their flags. ``labels``: the
    method's map of the whole window; ``pixels``/``pixel_ids``: the flat indices and IDs of the
    objects the tile owns (the rows)."""
    from astrostatlearn.segment.catalog import FLAG_APER_TRUNC

    ids = np.asarray(rows["id"], np.int32)
    if ids.size == 0:
        rows.update({c: np.zeros(0) for c in ("kron_radius", "flux_auto", "flux_auto_err")})
        return
    seg = np.where(labels > 0, np.int32(ids.max() + 1), np.int32(0)).astype(np.int32)  # others: one foreign ID
    seg.ravel()[pixels] = pixel_ids
    columns, truncated = kron_photometry(data, error, invalid, seg, ids, rows, y0, x0)
    rows.update(columns)
    rows["flags"] = np.asarray(rows["flags"]) | np.where(truncated, FLAG_APER_TRUNC, 0)
