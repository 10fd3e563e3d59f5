"""Render one tile of a simulated field: noiseless models, truth map, noise and rms.

Every quantity is a function of global pixel position and the seed only, so a field comes out
bit-identical whatever the tile size or number of workers:

* each object is drawn into its own stamp, whose bounds depend on the object alone, and stamps
  are summed in ID order;
* noise is drawn in fixed 256x256 blocks, each from its own seed ``(seed, block_y, block_x)``.

**Truth rule.** A pixel belongs to the object whose noiseless, PSF-convolved model is largest
there, counting only models above ``isophote`` x the local sky sigma. Objects with no such pixel
stay in the catalogue (``area_true = 0``) but do not appear in the truth map.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import galsim
import numpy as np

from astrostatlearn.field.windows import Window
from astrostatlearn.simulate.defects import background_offset, has_defects, no_data
from astrostatlearn.simulate.presets import Preset

NOISE_BLOCK = 256
_GSPARAMS = galsim.GSParams(maximum_fft_size=16384, folding_threshold=5e-3)


@dataclass
class TileResult:
    """What one rendered tile sends back: per-object S/N of the objects it owns, truth areas."""

    window: Window
    owned_ids: np.ndarray
    owned_snr: np.ndarray
    area_ids: np.ndarray
    area_counts: np.ndarray


def sky_sigma_map(window: Window, preset: Preset, seed: int) -> np.ndarray:
    """Per-pixel sky sigma: a smooth +-``sky_sigma_variation`` pattern over the field (float64)."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 2]))
    phase_y, phase_x = rng.uniform(0, 2 * math.pi, 2)
    period = 6000.0  # pixels
    y = np.arange(window.y0, window.y1)[:, None]
    x = np.arange(window.x0, window.x1)[None, :]
    pattern = np.sin(2 * math.pi * y / period + phase_y) * np.cos(2 * math.pi * x / period + phase_x)
    return preset.sky_sigma * (1.0 + preset.sky_sigma_variation * pattern)


def unit_noise(window: Window, seed: int) -> np.ndarray:
    """Standard normal noise for ``window``, assembled from fixed seeded 256x256 blocks."""
    return unit_noise_any(window, seed)


def correlated_noise(window: Window, seed: int, sigma_px: float) -> np.ndarray:
    """Unit-variance noise for ``window`` with a Gaussian correlation of ``sigma_px`` pixels: the
    seeded white noise of a grown window (:func:`unit_noise_any`, so tiles agree), convolved
    with a unit-norm kernel. ``sigma_px = 0``: white noise."""
    if sigma_px <= 0:
        return unit_noise(window, seed)
    r = int(math.ceil(4 * sigma_px))
    grown = Window(window.y0 - r, window.y1 + r, window.x0 - r, window.x1 + r)
    white = unit_noise_any(grown, seed)
    x = np.arange(-r, r + 1)
    k = np.exp(-0.5 * (x / sigma_px) ** 2)
    k /= np.sqrt(np.sum(k**2))  # the 2-D kernel outer(k, k) then has unit norm: variance stays 1
    from scipy.ndimage import correlate1d

    # Direct sums (not FFTs), so every pixel is bit-identical whatever the tile that holds it.
    smooth = correlate1d(correlate1d(white, k, axis=0, mode="constant"), k, axis=1, mode="constant")
    return smooth[r:-r, r:-r]


def unit_noise_any(window: Window, seed: int) -> np.ndarray:
    """Standard normal noise for any window, also one reaching beyond the field (negative
    coordinates), from fixed seeded 256x256 blocks ``(seed, 3, block_y, block_x)``."""
    b = NOISE_BLOCK
    out = np.empty(window.shape, dtype=np.float64)
    for by in range(window.y0 // b, (window.y1 - 1) // b + 1):
        for bx in range(window.x0 // b, (window.x1 - 1) // b + 1):
            block = Window(by * b, by * b + b, bx * b, bx * b + b)
            part = block.intersect(window)
            if part is None:
                continue
            rng = np.random.default_rng(np.random.SeedSequence([seed, 3, by % (1 << 31), bx % (1 << 31)]))
            noise = rng.standard_normal((b, b))
            out[part.relative_to(window)] = noise[part.relative_to(block)]
    return out


@lru_cache(maxsize=8)
def _psf(preset: Preset) -> galsim.GSObject:
    if preset.psf_file:
        return psf_profile(read_psf_image(preset.psf_file), preset.pixel_scale)
    return galsim.Moffat(beta=preset.psf_beta, fwhm=preset.psf_fwhm, gsparams=_GSPARAMS)


def read_psf_image(path: str) -> np.ndarray:
    """A PSF image from a FITS file (first image HDU): finite, positive sum, cropped to odd sides,
    normalised to unit sum (float64, ``[y, x]``)."""
    from astrostatlearn.errors import InputError
    from astrostatlearn.field.fitsio import open_image

    with open_image(path, role="PSF") as f:
        img = f.read().astype(np.float64)
    if not np.isfinite(img).all() or img.sum() <= 0:
        raise InputError("PSF image must be finite with a positive sum", path)
    img = img[: img.shape[0] - 1 + img.shape[0] % 2, : img.shape[1] - 1 + img.shape[1] % 2]
    return img / img.sum()


def psf_profile(image: np.ndarray, pixel_scale: float) -> galsim.GSObject:
    """A PSF image (pixel response included: draw with ``method='no_pixel'``) as a GalSim profile
    in arcsec."""
    return galsim.InterpolatedImage(galsim.ImageD(np.asarray(image, np.float64), scale=pixel_scale),
                                    normalization="flux", gsparams=_GSPARAMS)


def image_fwhm(image: np.ndarray) -> float:
    """FWHM in pixels from the area above half the peak (a circle of that area)."""
    return 2.0 * math.sqrt(float(np.count_nonzero(image >= 0.5 * image.max())) / math.pi)


def draw_stamp(obj: dict[str, float], preset: Preset, psf: galsim.GSObject | None = None,
               method: str = "auto") -> tuple[Window, np.ndarray]:
    """The noiseless PSF-convolved model of one object, pixel-integrated, and its stamp window;
    ``psf``: a GalSim profile (arcsec units) instead of the preset's Moffat, with ``method``
    'no_pixel' when it already includes the pixel response (an effective PSF)."""
    r = int(obj["radius"])
    ix, iy = int(math.floor(obj["x"] + 0.5)), int(math.floor(obj["y"] + 0.5))
    win = Window(iy - r, iy + r + 1, ix - r, ix + r + 1)
    if psf is None:
        psf = _psf(preset)
        method = "no_pixel" if preset.psf_file else method
    if obj.get("halo", False):
        from astrostatlearn.simulate.bright import halo_profile

        prof = halo_profile(obj, preset, psf)
    elif obj["is_star"]:
        prof = psf.withFlux(float(obj["flux"]))
    else:
        gal = galsim.Sersic(n=float(obj["sersic_n"]), half_light_radius=float(obj["hlr"]),
                            flux=float(obj["flux"]), gsparams=_GSPARAMS)
        gal = gal.shear(q=float(obj["q"]), beta=float(obj["pa"]) * galsim.radians)
        prof = galsim.Convolve(gal, psf, gsparams=_GSPARAMS)
    # GalSim images are 1-based: 0-based pixel i has its centre at i + 1.
    image = galsim.ImageF(galsim.BoundsI(win.x0 + 1, win.x1, win.y0 + 1, win.y1), scale=preset.pixel_scale)
    prof.drawImage(image=image, center=galsim.PositionD(obj["x"] + 1.0, obj["y"] + 1.0), method=method)
    stamp = image.array.astype(np.float64)
    if obj.get("halo", False):
        from astrostatlearn.simulate.bright import add_spikes, bleed

        add_spikes(stamp, win, obj, preset)
        if preset.saturation > 0:
            bleed(stamp, preset.saturation - preset.sky_level)
    return win, stamp


def render_tile(window: Window, cat: dict[str, np.ndarray], preset: Preset, seed: int,
                field_shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray, TileResult]:
    """Render ``window``: returns (img float32, rms float32, truth int32, TileResult).

    ``cat`` holds (at least) every object whose stamp overlaps the window, in ID order.
    """
    model = np.zeros(window.shape, dtype=np.float64)
    best = np.zeros(window.shape, dtype=np.float64)
    truth = np.zeros(window.shape, dtype=np.int32)
    sigma = sky_sigma_map(window, preset, seed)
    threshold = preset.isophote * sigma
    owned_ids, owned_snr = [], []
    names = list(cat)
    for i in np.argsort(cat["id"], kind="stable"):
        obj = {k: cat[k][i] for k in names}
        stamp_win, stamp = draw_stamp(obj, preset)
        part = stamp_win.intersect(window)
        if window.contains(obj["y"], obj["x"]):
            owned_ids.append(int(obj["id"]))
            owned_snr.append(_optimal_snr(stamp, obj, preset, seed))
        if part is None:
            continue
        s = stamp[part.relative_to(stamp_win)]
        t = part.relative_to(window)
        model[t] += s
        wins = (s > threshold[t]) & (s > best[t])
        best[t] = np.where(wins, s, best[t])
        truth[t] = np.where(wins, np.int32(obj["id"]), truth[t])
    if preset.clusters:
        from astrostatlearn.simulate.bright import icl_light

        model += icl_light(window, preset, seed, field_shape)  # light of no object: background in the truth
    var = sigma**2 + np.maximum(model, 0.0) / preset.gain
    rms = np.sqrt(var)
    img = model + preset.sky_level + rms * correlated_noise(window, seed, preset.noise_correlation)
    if preset.saturation > 0:
        img = np.minimum(img, preset.saturation)
    if has_defects(preset):
        img += background_offset(window, field_shape, preset, seed)
        missing = no_data(window, field_shape, preset, seed)
        img[missing] = np.nan
        truth[missing] = 0
    fg = truth[truth > 0]
    area_ids, area_counts = np.unique(fg, return_counts=True)
    result = TileResult(window, np.asarray(owned_ids, np.int64), np.asarray(owned_snr, np.float64),
                        area_ids.astype(np.int64), area_counts.astype(np.int64))
    return img.astype(np.float32), rms.astype(np.float32), truth, result


def _optimal_snr(stamp: np.ndarray, obj: dict[str, float], preset: Preset, seed: int) -> float:
    """Matched-filter S/N of the noiseless model: sqrt(sum m^2 / (sigma_sky^2 + m/gain))."""
    iy, ix = int(math.floor(obj["y"] + 0.5)), int(math.floor(obj["x"] + 0.5))
    sig = float(sky_sigma_map(Window(iy, iy + 1, ix, ix + 1), preset, seed)[0, 0])
    m = np.maximum(stamp, 0.0)
    return float(math.sqrt(np.sum(m**2 / (sig**2 + m / preset.gain))))
