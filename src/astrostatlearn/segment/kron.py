"""Kron ("AUTO") photometry of a tile's objects, as SExtractor's ``FLUX_AUTO``, with sep.

For each object, sep's ``kron_radius`` integrates within 6 times its isophotal ellipse (the
catalogue's ``semimajor_sigma``, ``semiminor_sigma`` and ``orientation``, SExtractor's
``A_IMAGE``, ``B_IMAGE``, ``THETA_IMAGE``); the flux is summed in that ellipse scaled by
``max(2.5 r_kron, 3.5)`` (SExtractor's ``PHOT_AUTOPARAMS 2.5, 3.5``), on the image minus the
background mesh. Pixels of other objects (owned by this tile or not) are left out of the radius;
in the flux each is replaced by its mirror image through the object's centre, as SExtractor's
``MASK_TYPE CORRECT`` does (:func:`mirrored_neighbour_flux`), where that pixel is the object's own
or sky, and left out otherwise. Pixels with no data are masked, and sep scales the sum up by the
area they take. An aperture that reaches beyond the tile's window (the field's edge, or rarely its
halo) is flagged (:data:`~astrostatlearn.segment.catalog.FLAG_APER_TRUNC`).
Cost per tile: one float32 and one int32 copy of the window, sep's sums over the apertures, and a
look at each aperture's box for the objects that have neighbours in it.
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
    extra, extra_var = mirrored_neighbour_flux(data, err, mask, seg, ids[ok], *args, scale)
    flux, flux_err = flux + extra, np.sqrt(flux_err ** 2 + extra_var)
    out["kron_radius"][ok], out["flux_auto"][ok], out["flux_auto_err"][ok] = kron, flux, flux_err
    truncated[ok] = ((kflag | fflag) & sep.APER_TRUNC) != 0
    return out, truncated


def mirrored_neighbour_flux(data: np.ndarray, err: np.ndarray | float, mask: np.ndarray | None, seg: np.ndarray,
                            ids: np.ndarray, x: np.ndarray, y: np.ndarray, a: np.ndarray, b: np.ndarray,
                            theta: np.ndarray, r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(flux, variance) per object that SExtractor's ``MASK_TYPE CORRECT`` adds to an elliptical
    aperture (centre ``x``, ``y``; shape ``a``, ``b``, ``theta`` in radians, scaled by ``r``; pixel
    centres inside, as ``sum_ellipse(subpix=1)`` counts them): for each pixel of another object
    (``seg`` neither 0 nor the object's ``ids``), the pixel mirrored through the centre (rounded),
    where that one lies in the window, has data and is the object's own or sky. ``err``: an rms map
    or one value. Objects without neighbours in their aperture get 0."""
    import sep

    n = ids.size
    extra, var = np.zeros(n), np.zeros(n)
    cxx, cyy, cxy = (np.atleast_1d(c) for c in sep.ellipse_coeffs(a, b, theta))
    ca, sa = np.abs(np.cos(theta)), np.abs(np.sin(theta))
    half_x, half_y = r * np.hypot(a * ca, b * sa), r * np.hypot(a * sa, b * ca)  # the ellipse's bounding box
    ny, nx = seg.shape
    for i in range(n):
        x0, x1 = max(int(np.floor(x[i] - half_x[i])), 0), min(int(np.ceil(x[i] + half_x[i])) + 1, nx)
        y0, y1 = max(int(np.floor(y[i] - half_y[i])), 0), min(int(np.ceil(y[i] + half_y[i])) + 1, ny)
        if x1 <= x0 or y1 <= y0:
            continue
        box = seg[y0:y1, x0:x1]
        others = (box != 0) & (box != ids[i])
        if not others.any():
            continue
        py, px = np.nonzero(others)
        dx, dy = px + x0 - x[i], py + y0 - y[i]
        inside = cxx[i] * dx * dx + cyy[i] * dy * dy + cxy[i] * dx * dy <= r[i] * r[i]
        my = np.rint(y[i] - dy[inside]).astype(np.int64)
        mx = np.rint(x[i] - dx[inside]).astype(np.int64)
        usable = (my >= 0) & (my < ny) & (mx >= 0) & (mx < nx)
        my, mx = my[usable], mx[usable]
        usable = (seg[my, mx] == 0) | (seg[my, mx] == ids[i])
        if mask is not None:
            usable &= mask[my, mx] == 0
        my, mx = my[usable], mx[usable]
        extra[i] = float(data[my, mx].sum(dtype=np.float64))
        var[i] = float((err[my, mx].astype(np.float64) ** 2).sum()) if np.ndim(err) else float(err) ** 2 * my.size
    return extra, var


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
