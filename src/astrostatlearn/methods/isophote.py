"""Isophote trim: take out of the learned methods' masks the pixels that lie plainly outside the
truth's isophote.

The truth is a 1-sigma isophote: a pixel belongs to a galaxy where its noiseless image exceeds
the local sky sigma. A network that reads a whole window sees a resolved, low-surface-brightness
galaxy as one object and can paint its mask far beyond that isophote, where each pixel holds much
less than one sigma (on finely sampled images, 0.03" pixels, the U-Net's pixel precision was 0.46).
This step estimates the noiseless image by smoothing the background-subtracted signal with a
Gaussian of :data:`SMOOTH_SIGMA` pixels (its noise is then about 1/7 of a pixel's for white
noise) and drops the mask pixels where that estimate is below ``level`` times the pixel's own
noise. At ``level`` 0.5 a pixel of the true isophote is kept unless the smoothed noise dips
several of its own sigmas; what the step drops are wings of a fraction of a sigma.

It runs after the significance cut (:mod:`~astrostatlearn.methods.significance`): that cut decides
which objects exist, this one only trims their masks, so no object is added or lost (an object
whose every pixel is below ``level``, a compact source near the cut on coarse pixels, keeps its
mask as predicted). IDs are kept. Arrays are ``[y, x]``; ID 0 is
background; pixels without data (or without a positive, finite noise) are never trimmed.
Cost per tile: two Gaussian filters of its size (one when every pixel is valid).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage

if TYPE_CHECKING:
    from astrostatlearn.methods.base import Tile

SMOOTH_SIGMA = 2.0  # pixels: the Gaussian that estimates the noiseless image
# The default level of the learned methods, in units of the pixel's noise: the best mean pixel IoU and
# PQ of none, 0.25, 0.5 and 1 over the two validation fields and fresh seeds of the six
# surveys outside the training range (benchmarks/tune_isophote.py). At 0.03" pixels 0.5 raises the
# U-Net's pixel IoU from 0.32 to 0.59; elsewhere PQ moves by at most 0.001. At 1 (the isophote itself)
# the smoothing's own blur takes true pixels and PQ falls (0.547 -> 0.460 on the mean).
ISOPHOTE: float | None = 0.5
OPTION_HELP = ("trim mask pixels where the image, smoothed by a 2-px Gaussian, is below this many sigma of the "
               "pixel's noise (the truth's rule is a 1-sigma isophote; none: keep the masks as predicted)")


def smoothed_signal(signal: np.ndarray, valid: np.ndarray, sigma: float = SMOOTH_SIGMA) -> np.ndarray:
    """``signal`` smoothed by a Gaussian of ``sigma`` pixels over the valid pixels only (a
    normalised convolution: each output is the weighted mean of its valid neighbours; NaN where
    there are none). float32 ``[y, x]``."""
    data = np.where(valid, signal, 0.0).astype(np.float32)
    smooth = ndimage.gaussian_filter(data, sigma, mode="nearest", truncate=3.0)
    if bool(np.all(valid)):
        return smooth
    weight = ndimage.gaussian_filter(valid.astype(np.float32), sigma, mode="nearest", truncate=3.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(weight > 1e-3, smooth / weight, np.nan).astype(np.float32)


def trim_to_isophote(labels: np.ndarray, signal: np.ndarray, err: np.ndarray, valid: np.ndarray,
                     level: float | None, sigma: float = SMOOTH_SIGMA) -> np.ndarray:
    """``labels`` without the pixels where ``signal`` smoothed over ``sigma`` pixels
    (:func:`smoothed_signal`) is below ``level`` x ``err`` (``signal``: background-subtracted
    image; ``err``: its 1-sigma noise per pixel, same units). ``None`` keeps every pixel; so do
    pixels without data or without a positive, finite ``err``, and every pixel of an object that
    would lose them all. Returns ``labels`` itself when nothing is trimmed."""
    if level is None or not labels.any():
        return labels
    sel = labels > 0
    smooth = smoothed_signal(signal, valid & np.isfinite(signal), sigma)
    with np.errstate(invalid="ignore"):
        faint = sel & valid & np.isfinite(err) & (err > 0) & (smooth < level * err)
    if not faint.any():
        return labels
    n = int(labels.max()) + 1
    kept = np.bincount(labels[sel & ~faint], minlength=n)
    faint &= kept[labels] > 0  # an object the trim would empty keeps its mask
    return np.where(faint, 0, labels).astype(labels.dtype)


def cut_then_trim(labels: np.ndarray, tile: "Tile", min_snr: float | None, level: float | None) -> np.ndarray:
    """The learned methods' two cuts of ``labels`` on ``tile``, in their order: the significance cut
    (:func:`~astrostatlearn.methods.significance.drop_insignificant` at ``min_snr``) decides which
    objects exist, then :func:`trim_to_isophote` at ``level`` trims the masks of the rest. Returns
    ``labels`` itself when neither changes anything."""
    from astrostatlearn.methods.significance import drop_insignificant

    signal = tile.signal
    labels = drop_insignificant(labels, signal, tile.err, tile.valid, min_snr)
    return trim_to_isophote(labels, signal, tile.err, tile.valid, level)


def check_isophote(level: float | None) -> None:
    """Raise :class:`~astrostatlearn.errors.InputError` unless ``level`` is None or a positive number."""
    from astrostatlearn.methods.base import check_positive_or_none

    check_positive_or_none("isophote", level)
