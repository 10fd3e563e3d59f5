"""``photutils``: the seed's "Astropy" baseline done properly.

Background and noise come from the whole-field background mesh and the RMS map (see
:mod:`astrostatlearn.segment.background`); the image is convolved with a Gaussian matched filter (:func:`~astrostatlearn.methods.detection.filter_image`),
``detect_sources`` thresholds it at ``nsigma`` x rms, and ``deblend_sources`` splits blends
(multi-threshold + watershed), as in SExtractor.
"""

from __future__ import annotations

import numpy as np
from photutils.segmentation import deblend_sources, detect_sources

from astrostatlearn.methods.base import Prediction, Segmenter, Tile, register
from astrostatlearn.methods.detection import THRESHOLD_OPTIONS, check_threshold, filter_image, gaussian_kernel, snr_score


@register
class PhotutilsSegmenter(Segmenter):
    name = "photutils"
    options = {**THRESHOLD_OPTIONS, "npixels": "fewest connected pixels of a detection",
               "nlevels": "deblending levels", "contrast": "minimum flux fraction of a deblended object"}

    def __init__(self, nsigma: float = 1.0, npixels: int = 5, kernel_fwhm: float = 2.0, deblend: bool = True,
                 nlevels: int = 32, contrast: float = 0.005, halo: int = 64) -> None:
        self.nsigma, self.npixels, self.kernel_fwhm = nsigma, npixels, kernel_fwhm
        self.deblend, self.nlevels, self.contrast, self.halo = deblend, nlevels, contrast, halo

    def check_options(self) -> None:
        check_threshold(self.nsigma, self.kernel_fwhm, self.npixels, self.nlevels, self.contrast)

    def predict(self, tile: Tile) -> Prediction:
        kernel = gaussian_kernel(self.kernel_fwhm)
        conv = filter_image(tile.zero_invalid(tile.signal), kernel)  # edges: nearest (astropy's "extend")
        threshold = self.nsigma * tile.err
        segm = detect_sources(conv, threshold, n_pixels=self.npixels, mask=~tile.valid)
        labels = np.zeros(conv.shape, np.int32)
        if segm is not None:
            if self.deblend and segm.n_labels:
                segm = deblend_sources(conv, segm, n_pixels=self.npixels, n_levels=self.nlevels,
                                       contrast=self.contrast, progress_bar=False)
            labels = segm.data.astype(np.int32)
        return Prediction(labels, snr_score(conv, tile.err, kernel, self.nsigma))
