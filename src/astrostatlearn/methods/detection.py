"""Pieces shared by the thresholding detectors (photutils, sep): kernels and the S/N score."""

from __future__ import annotations

import numpy as np

FWHM_TO_SIGMA = 1.0 / (2.0 * np.sqrt(2.0 * np.log(2.0)))


def gaussian_kernel(fwhm: float) -> np.ndarray:
    """Normalised Gaussian detection kernel of ``fwhm`` pixels (odd size, about 3 FWHM), sampled
    at pixel centres: astropy's ``Gaussian2DKernel`` (mode 'center', normalised), which a test
    checks it against, without importing astropy.convolution (1.5 s) in every worker."""
    sigma = fwhm * FWHM_TO_SIGMA
    size = int(2 * np.ceil(1.5 * fwhm) + 1)
    r = np.arange(size) - (size - 1) / 2.0
    g = np.exp(-0.5 * (r / sigma) ** 2)
    k = np.outer(g, g)
    return (k / k.sum()).astype(np.float32)


def filter_image(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """``image`` convolved with the normalised ``kernel`` (edges: nearest), as two 1-D passes when
    the kernel is separable (a Gaussian is), else one 2-D pass; float32."""
    from scipy import ndimage

    k = np.asarray(kernel, np.float64)
    k = k / k.sum()
    u, sv, vt = np.linalg.svd(k)
    img = np.asarray(image, np.float32)
    if sv.size > 1 and sv[1] <= 1e-7 * sv[0]:
        ky, kx = u[:, 0] * np.sqrt(sv[0]), vt[0] * np.sqrt(sv[0])
        out = ndimage.convolve1d(img, ky.astype(np.float32), axis=0, mode="nearest")
        return ndimage.convolve1d(out, kx.astype(np.float32), axis=1, mode="nearest")
    return ndimage.convolve(img, k.astype(np.float32), mode="nearest")


def snr_score(filtered: np.ndarray, err: np.ndarray, kernel: np.ndarray, nsigma: float) -> np.ndarray:
    """A per-pixel score in [0, 1]: logistic of the matched-filter S/N minus the detection threshold."""
    noise = err * float(np.sqrt(np.sum(kernel**2)))
    snr = filtered / np.maximum(noise, 1e-30)
    return (1.0 / (1.0 + np.exp(-np.clip(snr - nsigma, -50, 50)))).astype(np.float32)
