"""Zero-filled regions with no data: the blank convention of coadds that have no NaN.

SWarp coadds, drizzled HST images and many survey tiles fill their edges, chip gaps and masked
holes with exactly 0 instead of NaN. A detector that reads those pixels as sky finds a rim of
false objects along every edge, and the background and its rms come out wrong nearby. A field
whose sky is noisy treats such regions as missing data, as it does NaN:

- :func:`zeros_are_blank` decides, once per field from a sample of its pixels, whether exact
  zeros are blanks (the sky is noisy, so an exact 0 cannot be a sky value) or values (a
  noiseless image, whose sky is 0);
- :func:`zero_filled` marks, in a window, the exact zeros that fill a 5x5 square or more, so
  sky pixels that happen to be 0 are not taken for a blank: in an integer image with a noise of
  1 ADU, 38% of the sky pixels are 0, and 25 of them in a square happen once in 3e10 pixels.
"""

from __future__ import annotations

import numpy as np

SQUARE = np.ones((5, 5), bool)
MARGIN = SQUARE.shape[0] - 1  # pixels around a window that decide its blanks
MIN_ZERO_FRACTION = 1e-3  # of the sampled pixels; fewer zeros are left as they are
MIN_NEGATIVE = 0.05  # fraction of the non-zero pixels below -sigma/2 that marks a subtracted noisy sky


def zeros_are_blank(values: np.ndarray) -> bool:
    """Whether exact zeros in an image with these finite pixel ``values`` (any shape) mark missing data.

    True when zeros are at least ``MIN_ZERO_FRACTION`` of the values and the non-zero values look
    like a noisy sky (median ``m``, robust sigma ``s`` from their median absolute deviation):
    either at least ``MIN_NEGATIVE`` of them lie below ``-s/2`` (a subtracted sky: noise puts
    about 30% of its pixels there), or ``m - 5 s > 0`` (a sky far above 0, from which 0 is an
    outlier). A noiseless image (sources on a sky of exactly 0) has neither, so its zeros stay values.
    """
    v = np.asarray(values, np.float64).ravel()
    zero = v == 0
    if v.size == 0 or zero.mean() < MIN_ZERO_FRACTION or zero.all():
        return False
    rest = v[~zero]
    median = float(np.median(rest))
    sigma = 1.4826 * float(np.median(np.abs(rest - median)))
    if not sigma > 0:
        return False
    return bool(np.mean(rest < -0.5 * sigma) >= MIN_NEGATIVE or median - 5.0 * sigma > 0)


def zero_filled(img: np.ndarray) -> np.ndarray:
    """bool ``[y, x]``: the exact zeros of ``img`` that lie in a 5x5 square of exact zeros inside it.

    Whether a pixel is blank depends on the pixels within ``MARGIN`` of it, so a window read
    with that margin around it (:meth:`~astrostatlearn.field.Field.read_img` does) gets the
    whole image's answer.
    """
    zero = np.asarray(img) == 0
    if not zero.any():
        return zero
    from scipy import ndimage  # here, not at import: the driver's segment path imports no scipy

    return ndimage.binary_opening(zero, SQUARE)


def blank_to_nan(img: np.ndarray) -> np.ndarray:
    """float32 ``img`` with its zero-filled regions (:func:`zero_filled`) set to NaN (a copy where any are)."""
    from astrostatlearn.field.views import apply_mask

    return apply_mask(img, zero_filled(img))
