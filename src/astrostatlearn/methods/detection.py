"""Pieces shared by the thresholding detectors (photutils, sep): kernels and the S/N score."""

from __future__ import annotations

import numpy as np
from astropy.convolution import Gaussian2DKernel
from astropy.stats import gaussian_fwhm_to_sigma


def gaussian_kernel(fwhm: float) -> np.ndarray:
    """Normalised Gaussian detection kernel of ``fwhm`` pixels (odd size, about 3 FWHM)."""
    sigma = fwhm * gaussian_fwhm_to_sigma
    size = int(2 * np.ceil(1.5 * fwhm) + 1)
    k = Gaussian2DKernel(sigma, x_size=size, y_size=size)
    k.normalize()
    return np.asarray(k.array, dtype=np.float32)


def snr_score(filtered: np.ndarray, err: np.ndarray, kernel: np.ndarray, nsigma: float) -> np.ndarray:
    """A per-pixel score in [0, 1]: logistic of the matched-filter S/N minus the detection threshold."""
    noise = err * float(np.sqrt(np.sum(kernel**2)))
    snr = filtered / np.maximum(noise, 1e-30)
    return (1.0 / (1.0 + np.exp(-np.clip(snr - nsigma, -50, 50)))).astype(np.float32)
