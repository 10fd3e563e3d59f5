"""Zero-filled regions with no data: the blank convention of coadds that have no NaN.

SWarp coadds, drizzled HST images and many survey tiles fill their edges, chip gaps and masked
holes with exactly 0 instead of NaN. A detector that reads those pixels as sky finds a rim of
false objects along every edge, and the background and its rms come out wrong nearby. A field
whose sky is noisy treats such regions as missing data, as it does NaN:

- :func:`zeros_are_blank` decides, once per field from a sample of its pixels, whether exact
  zeros are blanks (the sky is noisy, so an exact 0 cannot be a sky value) or values (a
  noiseless image, whose sky is 0);
- :func:`zero_filled` marks, in a window, the exact zeros that fill a 3x3 square or more, so a
  sky pixel that happens to be 0 (an integer image, say) is never taken for a blank.
"""

from __future__ import annotations

import numpy as np

SQUARE = np.ones((3, 3), bool)
MIN_ZERO_FRACTION = 1e-3  # of the sampled pixels; fewer zeros are left as they are
MIN_LOW_TAIL = 0.01  # fraction of the non-zero pixels below median - 2 sigma: a noisy sky has ~0.023


def zeros_are_blank(values: np.ndarray) -> bool:
    """Whether exact zeros in an image with these finite pixel ``values`` (any shape) mark missing data.

    True when zeros are at least ``MIN_ZERO_FRACTION`` of the values and the non-zero values
    have the lower tail of a noisy sky: at least ``MIN_LOW_TAIL`` of them lie more than 2
    sigma (3-sigma-clipped) below their median, as Gaussian noise puts 2.3%. A noiseless image
    (sources on a sky of exactly 0) has no such tail, so its zeros stay values.
    """
    from astropy.stats import sigma_clipped_stats

    v = np.asarray(values, np.float64).ravel()
    zero = v == 0
    if v.size == 0 or zero.mean() < MIN_ZERO_FRACTION or zero.all():
        return False
    rest = v[~zero]
    _, median, std = sigma_clipped_stats(rest, sigma=3.0, maxiters=10)
    if not std > 0:
        return False
    return bool(np.mean(rest < median - 2.0 * std) >= MIN_LOW_TAIL)


def zero_filled(img: np.ndarray) -> np.ndarray:
    """bool ``[y, x]``: the exact zeros of ``img`` that lie in a 3x3 square of exact zeros.

    Squares may run past the window's edge (pixels outside count as zeros), so a window that
    cuts a blank region is blank to its edge, as the whole image is there.
    """
    zero = np.asarray(img) == 0
    if not zero.any():
        return zero
    from scipy import ndimage  # here, not at import: the driver's segment path imports no scipy

    padded = np.pad(zero, 1, constant_values=True)
    core = ndimage.binary_erosion(padded, SQUARE, border_value=1)
    return ndimage.binary_dilation(core, SQUARE)[1:-1, 1:-1] & zero


def blank_to_nan(img: np.ndarray) -> np.ndarray:
    """float32 ``img`` with its zero-filled regions (:func:`zero_filled`) set to NaN (a copy where any are)."""
    img = np.asarray(img, np.float32)
    blank = zero_filled(img)
    return np.where(blank, np.float32(np.nan), img) if blank.any() else img
