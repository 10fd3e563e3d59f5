"""Where injected objects go: away from the image's own sources, off non-finite pixels, inside
the image, and apart from each other.

The **ignore mask** is the image's own sources (sep's segmentation, :mod:`.sources`) and its
non-finite pixels, dilated by ``dilate`` pixels. An object of truth radius ``r`` (pixels) is
placed where the distance to the mask and to the image edge is at least ``r``, and at least
``r_i + r_j`` from every other injected object, by rejection sampling.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from astrostatlearn.errors import InputError


def ignore_mask(segmap: np.ndarray, valid: np.ndarray, dilate: int) -> np.ndarray:
    """Own sources and non-finite pixels, dilated by ``dilate`` pixels (a disc)."""
    mask = (segmap > 0) | ~valid
    if dilate > 0:
        yy, xx = np.mgrid[-dilate:dilate + 1, -dilate:dilate + 1]
        mask = ndimage.binary_dilation(mask, structure=(yy**2 + xx**2) <= dilate**2)
    return mask


def free_distance(mask: np.ndarray) -> np.ndarray:
    """Distance (pixels) of each pixel to the mask or to the image edge."""
    padded = np.pad(~mask, 1, constant_values=False)
    return ndimage.distance_transform_edt(padded)[1:-1, 1:-1].astype(np.float32)


def place_objects(distance: np.ndarray, radii: np.ndarray, rng: np.random.Generator,
                  tries_per_object: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """Positions ``(x, y)`` (0-based pixels) for objects of truth radii ``radii`` (pixels), the
    largest first; :class:`InputError` when the image has no room for all of them."""
    order = np.argsort(-radii, kind="stable")
    xs, ys = np.full(radii.size, np.nan), np.full(radii.size, np.nan)
    placed: list[int] = []
    candidates: dict[float, tuple[np.ndarray, np.ndarray]] = {}  # radii repeat: one scan per distinct radius
    for k, i in enumerate(order):
        r = float(radii[i])
        if r not in candidates:
            candidates[r] = np.nonzero(distance >= r)
        cand_y, cand_x = candidates[r]
        if cand_y.size == 0:
            raise InputError(f"the image has room for only {k} of the {radii.size} objects asked for away from its "
                             "own sources; lower --n (and use more --realisations)")
        for _ in range(tries_per_object):
            j = int(rng.integers(cand_y.size))
            x, y = cand_x[j] + rng.uniform(-0.5, 0.5), cand_y[j] + rng.uniform(-0.5, 0.5)
            if not placed or np.all(np.hypot(xs[placed] - x, ys[placed] - y) >= radii[placed] + r):
                xs[i], ys[i] = x, y
                placed.append(int(i))
                break
        else:
            raise InputError(f"the image has room for only {k} of the {radii.size} objects asked for away from its "
                             "own sources and each other; lower --n (and use more --realisations)")
    return xs, ys
