"""The sky part of an rms map that also carries the sources' own Poisson noise.

Some noise maps hold the total noise of each pixel, sky plus the source's photon noise
(``rms² = sky² + signal / gain``): the simulator's ``rms.fits``, HST's and JWST's ``ERR`` arrays.
SExtractor detects against the background noise alone and adds the source term only to the flux
errors (its ``GAIN``). The learned methods' ``snr`` input does the same: it is divided by the
**sky rms**, so a faint galaxy's own photon noise does not dim it.

- :func:`source_noise_slope`, once per field from the global statistics' sample of whole rows:
  the variance the map adds per unit of signal above its local level (``1 / gain`` in image
  units; 0 for a map of the sky noise alone, the usual weight or rms map of a survey coadd, which
  then passes through unchanged, whatever its depth changes or pixel-to-pixel scatter).
- :func:`sky_rms`, per window: in the sources (the background-subtracted image, smoothed by a
  2-px Gaussian, above half the pixel's rms: noise alone reaches that in about 2 of 10⁴ pixels),
  the lesser of the rms map and its grey opening over 60 px (on 4-px block minima aligned on the
  field's grid), which removes bumps narrower than that and keeps steps and gradients.

Flux errors, the S/N cut and the isophote trim keep the total noise.
"""

from __future__ import annotations

import warnings

import numpy as np

# Pixels this many rms above the field's median measure the slope: bright enough that the image's
# own noise hardly scatters the ratio.
SLOPE_SNR = 5.0
# The run of a row (pixels) whose median is a pixel's local rms level.
LOCAL_CELL = 64
# A slope whose source term adds less than this fraction to a bright pixel's variance is no slope:
# a sky-only map, whose small depth changes happen to follow a few bright pixels.
MIN_EFFECT = 0.02
# The smoothing and the level (in rms) above which a pixel's source term is taken off.
SMOOTH_SIGMA = 2.0
SIGNAL_LEVEL = 0.5
SOURCE_GROW = 3
# The opening runs on the minima of BLOCK x BLOCK blocks, aligned on the field's grid (so a pixel gets
# the same value in every window that holds it with its context), over OPENING_BLOCKS blocks a side:
# 60 px, wider than all but the largest galaxies' bumps in the rms map; 16x cheaper than per pixel.
BLOCK = 4
OPENING_BLOCKS = 15
# A pixel's sky rms depends on the image and rms within this many pixels (the opening's erosion and
# dilation, each OPENING_BLOCKS // 2 blocks, plus the block it sits in): the halo a tile needs.
SKY_CONTEXT = 2 * (OPENING_BLOCKS // 2) * BLOCK + BLOCK


def local_rms(rms: np.ndarray, cell: int = LOCAL_CELL) -> np.ndarray:
    """Each pixel's local level of ``rms`` (``[rows, x]``, NaN = no data): the median of its row's
    ``cell``-px run, which a source's bump hardly moves and a step in depth moves only in the one
    run across it."""
    h, w = rms.shape
    n = -(-w // cell)
    padded = np.full((h, n * cell), np.nan, np.float32)
    padded[:, :w] = rms
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # runs without data: NaN
        level = np.nanmedian(padded.reshape(h, n, cell), axis=2)
    return np.repeat(level, cell, axis=1)[:, :w]


def source_noise_slope(img: np.ndarray, rms: np.ndarray, median: float, rms_median: float) -> float:
    """Variance per unit signal that ``rms`` adds where ``img`` is bright (``[rows, x]`` arrays, whole
    rows of the field; NaN = no data): the median of ``(rms² - local²) / (img - median)``, ``local``
    the rms map's :func:`local_rms`, over pixels more than :data:`SLOPE_SNR` rms above ``median``;
    0 when fewer than 100 pixels are that bright, the slope is not positive, or its source term is
    below :data:`MIN_EFFECT` of the sky variance ``rms_median²`` at the median bright pixel."""
    rms = np.asarray(rms, np.float32)
    signal = np.asarray(img, np.float64) - median
    with np.errstate(invalid="ignore"):
        bright = np.isfinite(signal) & np.isfinite(rms) & (rms > 0) & (signal > SLOPE_SNR * rms)
    if np.count_nonzero(bright) < 100 or not rms_median > 0:
        return 0.0
    local = local_rms(np.where(np.isfinite(rms) & (rms > 0), rms, np.float32(np.nan)))[bright].astype(np.float64)
    s = signal[bright]
    slope = float(np.nanmedian((rms[bright].astype(np.float64) ** 2 - local**2) / s))
    if not slope > 0 or slope * float(np.median(s)) < MIN_EFFECT * rms_median**2:
        return 0.0
    return slope


def block_opening(rms: np.ndarray, origin: tuple[int, int] = (0, 0)) -> np.ndarray:
    """The grey opening of ``rms`` (``[y, x]``; its first pixel at field position ``origin``)
    over :data:`OPENING_BLOCKS` x :data:`OPENING_BLOCKS` blocks of its :data:`BLOCK`-px block
    minima, back at full resolution (each pixel its block's value): at most ``rms``, it takes
    off bumps narrower than the opening and keeps steps and gradients (to a block)."""
    from scipy import ndimage

    h, w = rms.shape
    oy, ox = origin[0] % BLOCK, origin[1] % BLOCK
    ny, nx = -(-(h + oy) // BLOCK), -(-(w + ox) // BLOCK)
    padded = np.pad(rms, ((oy, ny * BLOCK - h - oy), (ox, nx * BLOCK - w - ox)), mode="edge")
    blocks = padded.reshape(ny, BLOCK, nx, BLOCK).min(axis=(1, 3))
    opened = ndimage.grey_opening(blocks, size=(OPENING_BLOCKS, OPENING_BLOCKS), mode="nearest")
    return np.repeat(np.repeat(opened, BLOCK, axis=0), BLOCK, axis=1)[oy:oy + h, ox:ox + w]


def sky_rms(img: np.ndarray, rms: np.ndarray, slope: float, background: float,
            origin: tuple[int, int] = (0, 0)) -> np.ndarray:
    """float32 sky rms of a window (``img``, ``rms``: finite, ``rms`` > 0, ``[y, x]``; its first
    pixel at field position ``origin``): ``rms`` itself when ``slope`` is 0; else, in the sources
    (where ``img - background`` smoothed by a :data:`SMOOTH_SIGMA`-px Gaussian is above
    :data:`SIGNAL_LEVEL` x ``rms``, grown by :data:`SOURCE_GROW` px), the lesser of ``rms`` and its
    :func:`block_opening`."""
    rms = np.asarray(rms, np.float32)
    if not slope > 0:
        return rms
    from scipy import ndimage

    s = ndimage.gaussian_filter(np.asarray(img, np.float32) - np.float32(background), SMOOTH_SIGMA,
                                mode="nearest", truncate=3.0)
    core = (s > SIGNAL_LEVEL * rms).view(np.uint8)
    if not core.any():
        return rms
    sources = ndimage.maximum_filter(core, size=2 * SOURCE_GROW + 1, mode="constant") > 0
    return np.where(sources, np.minimum(rms, block_opening(rms, origin)), rms).astype(np.float32)
