"""From a foreground mask to instances: connected components, optionally split by a watershed."""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from skimage.feature import peak_local_max
from skimage.morphology import h_maxima
from skimage.segmentation import watershed


def remove_small(labels: np.ndarray, min_area: int) -> np.ndarray:
    """Drop segments smaller than ``min_area`` pixels (labels are kept, not renumbered)."""
    if min_area <= 1 or labels.max() == 0:
        return labels
    area = np.bincount(labels.ravel())
    small = area < min_area
    small[0] = False
    return np.where(small[labels], 0, labels).astype(np.int32)


def connected_instances(fg: np.ndarray, min_area: int = 5) -> np.ndarray:
    """8-connected components of ``fg`` as int32 labels 1..n, small ones removed."""
    lab, _ = ndimage.label(fg, structure=np.ones((3, 3), bool))
    return remove_small(lab.astype(np.int32), min_area)


def watershed_instances(fg: np.ndarray, landscape: np.ndarray, min_area: int = 5, min_distance: int = 3,
                        min_peak: float | None = None) -> np.ndarray:
    """Split the components of ``fg`` at the basins of ``landscape`` (high = object centre).

    Markers are the local maxima of ``landscape`` at least ``min_distance`` pixels apart (and above
    ``min_peak``); a component without a marker stays whole.
    """
    comp, n = ndimage.label(fg, structure=np.ones((3, 3), bool))
    if n == 0:
        return comp.astype(np.int32)
    peaks = peak_local_max(landscape, min_distance=min_distance, labels=comp, exclude_border=False,
                           threshold_abs=min_peak)
    markers = np.zeros(fg.shape, np.int32)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
    # Components without any peak get one marker at their maximum.
    has = np.zeros(n + 1, bool)
    has[comp[tuple(peaks.T)]] = True
    missing = np.flatnonzero(~has[1:]) + 1
    if missing.size:
        pos = ndimage.maximum_position(landscape, comp, missing)
        for k, (y, x) in enumerate(pos):
            markers[y, x] = len(peaks) + 1 + k
    lab = watershed(-landscape, markers, mask=fg, connectivity=2)
    return remove_small(lab.astype(np.int32), min_area)


def core_seeded_instances(fg: np.ndarray, centre: np.ndarray, core_level: float = 0.5, min_area: int = 5,
                          min_dynamic: float | None = None) -> np.ndarray:
    """Split ``fg`` with a watershed on ``centre`` seeded by its *cores*.

    ``min_dynamic=None``: a core is a connected region where centre > ``core_level``. A large
    object has one connected core however flat or bumpy its centre-ness plateau, so it is not
    shattered; touching objects have separate cores.

    ``min_dynamic=h``: a core is a regional maximum of ``centre`` (above ``core_level``) that rises
    at least ``h`` above the highest saddle joining it to a higher one (an h-maximum). This also
    splits a small neighbour whose centre-ness merges with a big object's above ``core_level``,
    while bumps on a plateau (dynamic < h) still do not shatter it.

    Components without a core stay whole.
    """
    comp, n = ndimage.label(fg, structure=np.ones((3, 3), bool))
    if n == 0:
        return comp.astype(np.int32)
    landscape = np.where(fg, centre, 0.0).astype(np.float64)
    cores = fg & (landscape > core_level)
    if min_dynamic is not None:
        cores &= h_maxima(landscape, min_dynamic).astype(bool)
    markers, n_seeds = ndimage.label(cores, structure=np.ones((3, 3), bool))
    has = np.zeros(n + 1, bool)
    has[np.unique(comp[markers > 0])] = True
    missing = np.flatnonzero(~has[1:]) + 1
    if missing.size:
        markers = np.where(np.isin(comp, missing), comp + n_seeds, markers)
    lab = watershed(-landscape, markers, mask=fg, connectivity=2)
    return remove_small(lab.astype(np.int32), min_area)
