"""The PSF of injected objects: a Moffat of given FWHM, a PSF image, or one estimated from the
image's stars.

**Estimate** (no ``--psf`` or ``--psf-fwhm``): among the image's own sources (:mod:`.sources`),
star candidates are unflagged, round (b/a > 0.8), far from the edges, with no other source
within half a stamp (plus 3 pixels),
with S/N > 20 and a peak below 80% of the image's maximum (unsaturated); stars are those on the
stellar locus: the half-light radius within 15% of the median of the most compact quarter. At
least ``MIN_STARS`` are needed. photutils' ``EPSFBuilder`` stacks them into an effective PSF
(``STAMP`` pixels, no oversampling), normalised to unit sum.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from astrostatlearn.errors import InputError
from astrostatlearn.inject.sources import ImageSources

MIN_STARS, STAMP = 5, 25


@dataclass
class PSFModel:
    """``image``: the PSF, unit sum, odd size, centred ([y, x]); ``source``: how it was made;
    ``n_stars``: stars stacked (estimates only)."""

    image: np.ndarray
    source: str
    n_stars: int = 0

    @property
    def fwhm_px(self) -> float:
        """FWHM from the area above half the peak (a circle of that area)."""
        from astrostatlearn.simulate.render import image_fwhm

        return image_fwhm(self.image)

    @property
    def noise_area(self) -> float:
        """Noise-equivalent area, pixels: 1 / sum(psf²)."""
        return 1.0 / float(np.sum(self.image.astype(np.float64) ** 2))

    def galsim(self, pixel_scale: float):
        """The PSF as a GalSim profile in arcsec (an interpolated image that already includes the
        pixel response, so objects are drawn with ``method='no_pixel'``)."""
        from astrostatlearn.simulate.render import psf_profile

        return psf_profile(self.image, pixel_scale)


def moffat_psf(fwhm_px: float, beta: float = 3.0) -> PSFModel:
    """A Moffat PSF of ``fwhm_px`` pixels, pixel-integrated, on a stamp of 8 FWHM."""
    import galsim

    if not fwhm_px > 0:
        raise InputError(f"--psf-fwhm must be a positive number of pixels, got {fwhm_px}")
    size = 2 * int(math.ceil(4 * fwhm_px)) + 1
    img = galsim.Moffat(beta=beta, fwhm=fwhm_px).drawImage(nx=size, ny=size, scale=1.0).array
    return PSFModel(_normalised(img), f"moffat fwhm={fwhm_px:g} px beta={beta:g}")


def psf_from_file(path: str | Path) -> PSFModel:
    """A PSF image from a FITS file (first image HDU), normalised to unit sum."""
    from astrostatlearn.simulate.render import read_psf_image

    return PSFModel(_normalised(read_psf_image(str(path))), f"file {Path(path).name}")


def _normalised(img: np.ndarray) -> np.ndarray:
    return (img / img.sum()).astype(np.float32)


def star_candidates(img: np.ndarray, src: ImageSources) -> np.ndarray:
    """Indices into ``src.objects`` of the stars (see the module docstring)."""
    import sep
    from scipy.spatial import cKDTree

    obj = src.objects
    if len(obj) == 0:
        return np.zeros(0, int)
    ny, nx = img.shape
    half = STAMP // 2 + 2
    sub = np.ascontiguousarray(np.where(src.valid, img - src.background, 0.0), dtype=np.float32)
    r50, rflag = sep.flux_radius(sub, obj["x"], obj["y"], 6.0 * obj["a"], 0.5, normflux=obj["flux"], subpix=5)
    snr = obj["flux"] / (np.sqrt(obj["npix"]) * float(np.median(src.rms[src.valid])))  # sky-limited
    near = cKDTree(np.c_[obj["x"], obj["y"]]).query(np.c_[obj["x"], obj["y"]], k=2)[0][:, 1] if len(obj) > 1 \
        else np.full(len(obj), np.inf)
    peak_limit = 0.8 * float(np.nanmax(img - src.background))
    ok = ((obj["flag"] == 0) & (rflag == 0) & (obj["b"] / np.maximum(obj["a"], 1e-6) > 0.8) & (snr > 20)
          & (obj["peak"] < peak_limit) & (near > STAMP // 2 + 3)
          & (obj["x"] > half) & (obj["x"] < nx - half) & (obj["y"] > half) & (obj["y"] < ny - half)
          & np.isfinite(r50) & (r50 > 0))
    idx = np.flatnonzero(ok)
    if idx.size < MIN_STARS:
        return idx[:0]
    compact = np.sort(r50[idx])[: max(MIN_STARS, idx.size // 4)]
    locus = float(np.median(compact))
    return idx[np.abs(r50[idx] - locus) < 0.15 * locus]


def estimate_psf(img: np.ndarray, src: ImageSources, path: Path | None = None) -> PSFModel:
    """The effective PSF of the image's stars; :class:`InputError` when fewer than ``MIN_STARS``."""
    from astropy.nddata import NDData
    from astropy.table import Table
    from photutils.psf import EPSFBuilder, extract_stars

    stars = star_candidates(img, src)
    if stars.size < MIN_STARS:
        raise InputError(f"found {stars.size} isolated unsaturated stars, fewer than the {MIN_STARS} needed to "
                         "estimate the PSF; pass --psf-fwhm PX or --psf PSF.fits", path)
    data = np.where(src.valid, img - src.background, 0.0).astype(np.float64)
    table = Table({"x": src.objects["x"][stars], "y": src.objects["y"][stars]})
    cutouts = extract_stars(NDData(data), table, size=STAMP)
    epsf, _ = EPSFBuilder(oversampling=1, maxiters=5, progress_bar=False)(cutouts)
    image = np.clip(np.asarray(epsf.data, np.float64), 0.0, None)
    return PSFModel(_normalised(image), f"estimated from {len(cutouts)} stars (photutils EPSFBuilder)", len(cutouts))
