"""Source catalogue of a segmentation, measured with photutils' SourceCatalog.

Measured per tile on the raw image minus the field's global background level, for the objects
the tile owns; ``x``/``y`` are 0-based field pixel coordinates (photutils convention).
"""

from __future__ import annotations

import numpy as np
from astropy.table import Table, vstack
from astropy.wcs import WCS
from photutils.segmentation import SegmentationImage, SourceCatalog

from astrostatlearn.field import Window
from astrostatlearn.methods.base import Instances, Prediction

COLUMNS = ("id", "x", "y", "ra", "dec", "flux", "flux_err", "area", "semimajor_sigma", "semiminor_sigma",
           "orientation", "ellipticity", "score", "max_score", "box_y0", "box_x0", "box_y1", "box_x1")


def measure(labels: np.ndarray, data: np.ndarray, error: np.ndarray | None, window: Window,
            score: np.ndarray | None = None, instances: Instances | None = None) -> Table:
    """Rows for the objects in ``labels`` (IDs 1..n, window coordinates), in ID order.

    ``score`` (column): the method's per-object score from ``instances`` where it gives one, else
    the mean of the ``score`` map over the object, else NaN; ``max_score``: the map's maximum.
    ``box_*``: the method's own boxes (field pixels, end-exclusive) where it gives them.
    """
    n = int(labels.max()) if labels.size else 0
    if n == 0:
        return empty_catalog()
    cat = SourceCatalog(data, SegmentationImage(labels), error=error)
    t = Table()
    t["id"] = np.asarray(cat.label, np.int64)
    t["x"] = np.asarray(cat.x_centroid, float) + window.x0
    t["y"] = np.asarray(cat.y_centroid, float) + window.y0
    t["flux"] = np.asarray(cat.segment_flux, float)
    t["flux_err"] = np.asarray(cat.segment_flux_err, float) if error is not None else np.full(n, np.nan)
    t["area"] = np.asarray(cat.area.value, float)
    t["semimajor_sigma"] = np.asarray(cat.semimajor_axis.value, float)
    t["semiminor_sigma"] = np.asarray(cat.semiminor_axis.value, float)
    t["orientation"] = np.asarray(cat.orientation.value, float)
    t["ellipticity"] = np.asarray(cat.ellipticity.value, float)
    ids = np.asarray(t["id"])
    t["score"] = Prediction(labels, score, instances).object_scores(ids)
    if score is not None:
        from scipy import ndimage

        t["max_score"] = np.asarray(ndimage.maximum(score, labels, ids), float)
    else:
        t["max_score"] = np.full(n, np.nan)
    if instances is not None and instances.boxes is not None:
        boxes = instances.take(ids).boxes
        for k, c in enumerate(("box_y0", "box_x0", "box_y1", "box_x1")):
            t[c] = boxes[:, k].astype(float)
    return t


def empty_catalog() -> Table:
    t = Table()
    for c in ("id",):
        t[c] = np.zeros(0, np.int64)
    for c in ("x", "y", "flux", "flux_err", "area", "semimajor_sigma", "semiminor_sigma", "orientation",
              "ellipticity", "score", "max_score"):
        t[c] = np.zeros(0, float)
    return t


def finish_catalog(parts: list[Table], wcs: WCS | None, meta: dict) -> Table:
    """Join per-tile tables, add RA/Dec from ``wcs`` (when present), units and metadata."""
    t = vstack(parts, metadata_conflicts="silent") if parts else empty_catalog()
    if len(t) == 0:
        t = empty_catalog()
    if wcs is not None and len(t):
        ra, dec = wcs.wcs_pix2world(np.asarray(t["x"]), np.asarray(t["y"]), 0)
        t["ra"], t["dec"] = ra, dec
        t["ra"].unit = t["dec"].unit = "deg"
    for c, u in (("x", "pix"), ("y", "pix"), ("area", "pix2"), ("semimajor_sigma", "pix"), ("semiminor_sigma", "pix"),
                 ("orientation", "deg")):
        t[c].unit = u
    t = t[[c for c in COLUMNS if c in t.colnames]]
    t.meta.update(meta)
    t.meta["pixel_origin"] = "x, y are 0-based pixel coordinates; the centre of the first pixel is (0, 0)"
    t.meta["columns"] = {
        "id": "segment ID in segmentation.fits", "flux": "sum of (image - global background) over the segment",
        "orientation": "major axis, degrees counter-clockwise from +x", "max_score": "highest per-pixel score",
        "score": "the method's confidence in the object, in [0, 1] (its own per-object score, else the mean per-pixel score)",
    }
    return t
