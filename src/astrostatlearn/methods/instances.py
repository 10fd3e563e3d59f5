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


def h_maxima_in(landscape: np.ndarray, comp: np.ndarray, ids: np.ndarray, h: float) -> np.ndarray:
    """skimage's ``h_maxima(landscape, h)`` on the components ``ids`` of ``comp``, one at a time.

    ``landscape`` is 0 outside the components, and 8-connected components touch only through
    background, so the saddle between two of them is 0 and each component's h-maxima depend on its
    own pixels alone: on a component whose peak exceeds ``h`` the result equals the whole-image
    transform (tested), without sorting every pixel of the tile. Other pixels are False.
    """
    out = np.zeros(landscape.shape, bool)
    boxes = ndimage.find_objects(comp)
    ny, nx = landscape.shape
    for k in ids:
        ys, xs = boxes[k - 1]
        sl = (slice(max(ys.start - 1, 0), min(ys.stop + 1, ny)), slice(max(xs.start - 1, 0), min(xs.stop + 1, nx)))
        own = comp[sl] == k
        out[sl] |= h_maxima(np.where(own, landscape[sl], 0.0), h).astype(bool) & own
    return out


def multi_peaked(landscape: np.ndarray, comp: np.ndarray, n: int, level: float) -> np.ndarray:
    """IDs of the components with two or more separate local-maximum plateaus above ``level``:
    the only ones a core-seeded watershed can split (a component with one such plateau has at most
    one core, and one marker floods all of it)."""
    local_max = (landscape == ndimage.maximum_filter(landscape, size=3)) & (landscape > level)
    plateaus, n_plateaus = ndimage.label(local_max, structure=np.ones((3, 3), bool))
    if n_plateaus == 0:
        return np.zeros(0, np.int64)
    # A plateau lies inside one component (both are 8-connected, the plateau within the foreground),
    # so any of its pixels names its owner: a scatter, not a per-label sort of the tile.
    on = plateaus > 0
    owner = np.zeros(n_plateaus + 1, np.int64)
    owner[plateaus[on]] = comp[on]
    counts = np.bincount(owner[1:], minlength=n + 1)
    return np.flatnonzero(counts >= 2)


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
    if min_dynamic is not None and core_level >= min_dynamic:
        # h-maxima matter only where a component has several peaks above the core level; elsewhere
        # any core gives the same single object (tested against the whole-image transform).
        split = multi_peaked(landscape, comp, n, core_level)
        cores &= h_maxima_in(landscape, comp, split, min_dynamic) | ~_member(comp, split, n)
    elif min_dynamic is not None:
        cores &= h_maxima(landscape, min_dynamic).astype(bool)
    markers, n_seeds = ndimage.label(cores, structure=np.ones((3, 3), bool))
    has = np.bincount(comp[markers > 0], minlength=n + 1) > 0
    missing = np.flatnonzero(~has[1:]) + 1
    if missing.size:
        markers = np.where(_member(comp, missing, n), comp + n_seeds, markers)
    lab = watershed(-landscape, markers, mask=fg, connectivity=2)
    return remove_small(lab.astype(np.int32), min_area)


def _member(comp: np.ndarray, ids: np.ndarray, n: int) -> np.ndarray:
    """``np.isin(comp, ids)`` for labels 0..n, by a lookup table."""
    table = np.zeros(n + 1, bool)
    table[ids] = True
    return table[comp]
