"""Ownership of objects at tile seams.

A tile is read with a halo around its core. Objects are grouped into *footprints*: connected
regions of detected pixels (8-connectivity), so the deblended children of one blend stay
together. Each footprint has a reference pixel, its rounded centroid; the tile keeps exactly the
footprints whose reference pixel lies in its core, with all their objects. A footprint no larger
than the halo is whole in the tile that keeps it, and a local method segments it identically in
every tile that sees it whole, so each object is kept once and never cut. Footprints that reach
the inner edge of the halo may be cut: their objects are counted so the run can warn that the
halo is too small. A method's per-instance records (scores, boxes) follow their objects: they
are kept, renumbered and moved to field coordinates with the labels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from astrostatlearn.field import Window
from astrostatlearn.methods.base import Instances


@dataclass
class OwnedObjects:
    """The objects a tile keeps: ``labels`` (window-sized, IDs 1..n in reference-pixel order),
    their reference pixels (field coordinates), how many of them lie in footprints that touch
    the halo's edge, and the largest kept footprint's extent in pixels."""

    labels: np.ndarray
    ref_y: np.ndarray
    ref_x: np.ndarray
    n_at_edge: int
    max_extent: int
    source_ids: np.ndarray
    instances: Instances | None = None


def pixel_centroids(labels: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Unweighted centroids (y, x) of the pixels of each ID in ``ids``, as an (n, 2) array: the
    same sums as ``ndimage.center_of_mass(np.ones(...), labels, ids)``, in bincounts over the
    labelled pixels only (``ids`` must be positive)."""
    lab = np.asarray(labels).ravel()
    n = int(max(lab.max(initial=0), ids.max(initial=0))) + 1
    pix = np.flatnonzero(lab)  # labelled pixels only (ID 0 is never asked for)
    lab = lab[pix]
    y, x = np.divmod(pix, np.asarray(labels).shape[1])
    counts = np.bincount(lab, minlength=n)  # pixels per ID
    sum_y = np.bincount(lab, weights=y.astype(np.float64), minlength=n)
    sum_x = np.bincount(lab, weights=x.astype(np.float64), minlength=n)
    count = counts[ids].astype(np.float64)
    return np.stack([sum_y[ids] / count, sum_x[ids] / count], axis=1)


def present_ids(labels: np.ndarray) -> np.ndarray:
    """The positive IDs present in ``labels``, increasing: ``np.unique`` without sorting the map."""
    lab = np.asarray(labels).ravel()
    if lab.size == 0:
        return np.zeros(0, np.int64)
    ids = np.flatnonzero(np.bincount(lab))
    return ids[ids > 0]


def own_objects(labels: np.ndarray, window: Window, core: Window, field_shape: tuple[int, int],
                instances: Instances | None = None) -> OwnedObjects:
    """Keep the objects of ``labels`` (covering ``window``) whose footprint's reference pixel is in
    ``core``; ``instances`` (records aligned with the IDs of ``labels``) are kept with them."""
    ids = present_ids(labels)
    none = np.zeros(0, np.int64)
    empty = OwnedObjects(np.zeros(labels.shape, np.int32), none, none, 0, 0, none,
                         None if instances is None else instances.take(none))
    if ids.size == 0:
        return empty
    foot, n_foot = ndimage.label(labels > 0, structure=np.ones((3, 3), bool))
    fids = np.arange(1, n_foot + 1)
    fcom = pixel_centroids(foot, fids)
    fy = np.floor(fcom[:, 0] + 0.5).astype(np.int64) + window.y0
    fx = np.floor(fcom[:, 1] + 0.5).astype(np.int64) + window.x0
    owned_foot = np.zeros(n_foot + 1, bool)
    owned_foot[1:] = (fy >= core.y0) & (fy < core.y1) & (fx >= core.x0) & (fx < core.x1)
    # Footprints touching a window edge that is not the field edge may extend beyond the window.
    edges = []
    if window.y0 > 0:
        edges.append(foot[0])
    if window.y1 < field_shape[0]:
        edges.append(foot[-1])
    if window.x0 > 0:
        edges.append(foot[:, 0])
    if window.x1 < field_shape[1]:
        edges.append(foot[:, -1])
    at_edge = np.zeros(n_foot + 1, bool)
    if edges:
        at_edge[np.unique(np.concatenate(edges))] = True
    at_edge[0] = False
    keep_pix = owned_foot[foot]
    kept_ids = present_ids(labels[keep_pix])
    if kept_ids.size == 0:
        return empty
    com = pixel_centroids(labels, kept_ids)
    ry = np.floor(com[:, 0] + 0.5).astype(np.int64) + window.y0
    rx = np.floor(com[:, 1] + 0.5).astype(np.int64) + window.x0
    order = np.lexsort((rx, ry))
    kept_ids, ry, rx = kept_ids[order], ry[order], rx[order]
    lut = np.zeros(int(labels.max()) + 1, np.int32)
    lut[kept_ids] = np.arange(1, kept_ids.size + 1, dtype=np.int32)
    kept = np.where(keep_pix, lut[labels], 0).astype(np.int32)
    n_edge = int(present_ids(labels[keep_pix & at_edge[foot]]).size)
    boxes = ndimage.find_objects(np.where(keep_pix, foot, 0))
    extent = max((max(b[0].stop - b[0].start, b[1].stop - b[1].start) for b in boxes if b is not None), default=0)
    kept_inst = None
    if instances is not None:
        kept_inst = instances.take(kept_ids, np.arange(1, kept_ids.size + 1), shift=(window.y0, window.x0))
    return OwnedObjects(kept, ry, rx, n_edge, int(extent), kept_ids.astype(np.int64), kept_inst)
