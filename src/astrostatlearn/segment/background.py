"""A whole-field background and noise mesh for channel 0 of an input variant.

photutils' ``Background2D`` (SExtractor estimator, 3-sigma clipping) measures one mesh row per
strip of ``box`` rows, so the field is read once in bounded memory. The mesh is median-filtered
(3x3, like SExtractor's BACK_FILTERSIZE) and interpolated bilinearly at each pixel from global
coordinates, so a pixel gets the same background in every tile that holds it.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from astropy.stats import SigmaClip
from photutils.background import Background2D, SExtractorBackground, StdBackgroundRMS
from scipy import ndimage

from astrostatlearn.field import Field, Window
from astrostatlearn.preprocess import Preprocessor
from astrostatlearn.progress import progress_bar


@dataclass
class BackgroundMesh:
    """Background and rms of channel 0 on a grid of ``box`` x ``box`` cells (variant units)."""

    box: int
    bkg: np.ndarray
    rms: np.ndarray
    shape: tuple[int, int]

    @classmethod
    def from_field(cls, field: Field, pre: Preprocessor, box: int = 64, filter_size: int = 3,
                   progress: bool = False, workers: int = 2) -> "BackgroundMesh":
        ny, nx = field.shape
        box = int(min(box, ny, nx))
        starts = list(range(0, ny, box))

        def strip(y0: int) -> tuple[np.ndarray, np.ndarray]:
            w = Window(y0, min(y0 + box, ny), 0, nx)
            ch0 = pre.read(field, w)[0]
            valid = np.isfinite(field.read_img(w))
            try:
                b = Background2D(ch0, (w.shape[0], box), filter_size=1, mask=~valid,
                                 sigma_clip=SigmaClip(sigma=3.0, maxiters=10), bkg_estimator=SExtractorBackground(),
                                 bkg_rms_estimator=StdBackgroundRMS(), exclude_percentile=50.0)
                return np.atleast_2d(b.background_mesh)[0], np.atleast_2d(b.background_rms_mesh)[0]
            except ValueError:  # a strip with too few valid pixels: filled in below
                n = int(np.ceil(nx / box))
                return np.full(n, np.nan), np.full(n, np.nan)

        # Strips are independent; two threads overlap reading with numpy's clipping work.
        with ThreadPoolExecutor(max_workers=workers) as pool:
            results = progress_bar(pool.map(strip, starts), total=len(starts), desc="background mesh", unit="row",
                                   enabled=progress)
            rows = list(results)
        rows_b = [r[0] for r in rows]
        rows_r = [r[1] for r in rows]
        bkg, rms = np.vstack(rows_b), np.vstack(rows_r)
        for m in (bkg, rms):
            bad = ~np.isfinite(m)
            if bad.all():
                m[:] = 0.0
            elif bad.any():
                m[bad] = np.nanmedian(m)
        if filter_size > 1:
            bkg = ndimage.median_filter(bkg, filter_size, mode="nearest")
            rms = ndimage.median_filter(rms, filter_size, mode="nearest")
        rms = np.where(rms > 0, rms, np.median(rms[rms > 0]) if (rms > 0).any() else 1.0)
        return cls(box, bkg, rms, (ny, nx))

    def at(self, window: Window) -> tuple[np.ndarray, np.ndarray]:
        """(background, rms) of ``window``, float32, bilinear between the mesh cell centres
        (constant beyond the outermost centres). Separable: two 1-D interpolations."""
        wy = _linear_weights(np.arange(window.y0, window.y1), self.box, self.bkg.shape[0])
        wx = _linear_weights(np.arange(window.x0, window.x1), self.box, self.bkg.shape[1])
        return _apply(self.bkg, wy, wx), _apply(self.rms, wy, wx)


def _linear_weights(pix: np.ndarray, box: int, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices i0, i1 and weight of i1 for linear interpolation of pixel centres between cell centres."""
    pos = np.clip((pix - (box - 1) / 2.0) / box, 0.0, n - 1.0)
    i0 = np.floor(pos).astype(np.int64)
    i1 = np.minimum(i0 + 1, n - 1)
    return i0, i1, (pos - i0).astype(np.float64)


def _apply(mesh: np.ndarray, wy: tuple, wx: tuple) -> np.ndarray:
    y0, y1, fy = wy
    x0, x1, fx = wx
    rows = mesh[y0] * (1.0 - fy)[:, None] + mesh[y1] * fy[:, None]
    return (rows[:, x0] * (1.0 - fx)[None, :] + rows[:, x1] * fx[None, :]).astype(np.float32)
