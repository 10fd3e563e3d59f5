"""Bright objects that real images have and the faint population lacks, as :class:`Preset` options.

- ``bright_stars``: stars per arcmin^2 with magnitudes uniform on ``[bright_star_mag,
  star_mag_bright]``, each drawn as the PSF core plus a **halo** (a Moffat of beta 2 and 8x the
  PSF's FWHM holding ``HALO_FRACTION`` of the flux) and four **diffraction spikes** along the
  axes (``SPIKE_FRACTION`` of the flux, falling as r^-2);
- ``saturation``: the pixel level (image units) where the detector saturates. Pixels are clipped
  there, and a saturated star's excess charge **bleeds** up and down its columns into a trail of
  saturated pixels, as in a CCD;
- ``clusters``: galaxy clusters per arcmin^2, each a large, bright central galaxy (de Vaucouleurs,
  mag uniform on [14, 16], half-light radius 4-10 arcsec) inside an elliptical exponential envelope
  of **intracluster light** (``ICL_FRACTION`` x its flux, scale length 2-5x its half-light
  radius).

Bright stars and central galaxies are catalogue objects, appended after the faint population
(from their own random streams, so a field without them is unchanged), and they are in the truth
map by the usual rule. The intracluster light belongs to no object: it is background in
``true.fits``, light a detector must look through, and it adds source noise.
"""

from __future__ import annotations

import math

import galsim
import numpy as np

from astrostatlearn.field.windows import Window
from astrostatlearn.simulate.presets import Preset

HALO_FRACTION = 0.08
HALO_BETA = 2.0
HALO_FWHM_FACTOR = 8.0
SPIKE_FRACTION = 0.02     # of the flux, all four spikes together
STAR_RADIUS = 384         # stamp half-size of a bright star, pixels
ICL_FRACTION = 1.0
CENTRAL_MAG = (14.0, 16.0)
CENTRAL_HLR = (4.0, 10.0)     # arcsec
ICL_SCALE = (2.0, 5.0)        # scale length over the central galaxy's half-light radius


def _rng(seed: int, stream: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, 11, stream]))


def _area_arcmin2(shape: tuple[int, int], preset: Preset) -> float:
    return shape[0] * shape[1] * (preset.pixel_scale / 60.0) ** 2


def bright_rows(shape: tuple[int, int], preset: Preset, seed: int, first_id: int) -> dict[str, np.ndarray]:
    """Catalogue rows of the bright stars and cluster central galaxies (IDs from ``first_id``),
    with ``halo`` True for the stars drawn with halo and spikes."""
    rs = _rng(seed, 0)
    n_star = int(rs.poisson(preset.bright_stars * _area_arcmin2(shape, preset)))
    clusters = cluster_centres(shape, preset, seed)
    n_cl = len(clusters["x"])
    ny, nx = shape
    star_mag = rs.uniform(preset.bright_star_mag, preset.star_mag_bright, n_star)
    rows = {
        "x": np.concatenate([rs.uniform(-0.5, nx - 0.5, n_star), clusters["x"]]),
        "y": np.concatenate([rs.uniform(-0.5, ny - 0.5, n_star), clusters["y"]]),
        "mag": np.concatenate([star_mag, clusters["mag"]]),
        "is_star": np.r_[np.ones(n_star, bool), np.zeros(n_cl, bool)],
        "halo": np.r_[np.ones(n_star, bool), np.zeros(n_cl, bool)],
        "hlr": np.r_[np.zeros(n_star), clusters["hlr"]],
        "sersic_n": np.r_[np.full(n_star, np.nan), np.full(n_cl, 4.0)],
        "q": np.r_[np.ones(n_star), clusters["q"]],
        "pa": np.r_[np.zeros(n_star), clusters["pa"]],
    }
    rows["flux"] = 10.0 ** (-0.4 * (rows["mag"] - preset.zeropoint))
    rows["id"] = np.arange(first_id, first_id + n_star + n_cl, dtype=np.int64)
    return rows


def cluster_centres(shape: tuple[int, int], preset: Preset, seed: int) -> dict[str, np.ndarray]:
    """Position, magnitude, half-light radius (arcsec), axis ratio, angle and ICL scale length
    (pixels) of each cluster's central galaxy."""
    rng = _rng(seed, 2)
    n = int(rng.poisson(preset.clusters * _area_arcmin2(shape, preset)))
    ny, nx = shape
    hlr = rng.uniform(*CENTRAL_HLR, n)
    return {"x": rng.uniform(0, nx, n), "y": rng.uniform(0, ny, n), "mag": rng.uniform(*CENTRAL_MAG, n),
            "hlr": hlr, "q": rng.uniform(0.6, 0.95, n), "pa": rng.uniform(0, math.pi, n),
            "icl_scale": hlr * rng.uniform(*ICL_SCALE, n) / preset.pixel_scale}


def halo_profile(obj: dict[str, float], preset: Preset, psf: galsim.GSObject) -> galsim.GSObject:
    """The bright star's core and halo (spikes are added on the pixel grid by :func:`add_spikes`)."""
    flux = float(obj["flux"])
    halo = galsim.Moffat(beta=HALO_BETA, fwhm=HALO_FWHM_FACTOR * preset.psf_fwhm, gsparams=psf.gsparams)
    core = 1.0 - HALO_FRACTION - SPIKE_FRACTION
    return psf.withFlux(core * flux) + halo.withFlux(HALO_FRACTION * flux)


def add_spikes(stamp: np.ndarray, win: Window, obj: dict[str, float], preset: Preset) -> None:
    """Four diffraction spikes along +-x and +-y through the star's centre (in place): each
    ``SPIKE_FRACTION / 4`` of the flux, ~ r^-2 beyond one PSF FWHM, a Gaussian PSF-wide across."""
    fwhm = preset.psf_fwhm / preset.pixel_scale
    sig = fwhm / 2.355
    y = np.arange(win.y0, win.y1)[:, None] - obj["y"]
    x = np.arange(win.x0, win.x1)[None, :] - obj["x"]
    along = 1.0 / (1.0 + (np.abs(x) / fwhm) ** 2)
    across = np.exp(-0.5 * (y / sig) ** 2) / (math.sqrt(2 * math.pi) * sig)
    horizontal = along * across / (math.pi * fwhm)  # unit integral over the whole line
    vertical = (1.0 / (1.0 + (np.abs(y) / fwhm) ** 2)) * np.exp(-0.5 * (x / sig) ** 2) \
        / (math.sqrt(2 * math.pi) * sig) / (math.pi * fwhm)
    stamp += float(obj["flux"]) * SPIKE_FRACTION / 2 * (horizontal + vertical)


def bleed(stamp: np.ndarray, level: float) -> None:
    """Move charge above ``level`` along each column into the pixels above and below the column's
    peak, filling each up to ``level`` (in place; charge that would leave the stamp is lost)."""
    for c in np.flatnonzero((stamp > level).any(axis=0)):
        col = stamp[:, c]
        excess = float(np.sum(np.maximum(col - level, 0.0)))
        np.minimum(col, level, out=col)
        peak = int(np.argmax(col))
        step = 1
        while excess > 0 and step < col.size:
            for i in (peak - step, peak + step):
                if 0 <= i < col.size and excess > 0:
                    take = min(level - col[i], excess)
                    col[i] += take
                    excess -= take
            step += 1


def icl_light(window: Window, preset: Preset, seed: int, field_shape: tuple[int, int]) -> np.ndarray:
    """The intracluster light over ``window`` (image units, float64): for each cluster, an
    elliptical exponential of ``ICL_FRACTION`` x its central galaxy's flux, evaluated on pixel
    centres out to 12 scale lengths (no PSF: it is far wider than any PSF)."""
    out = np.zeros(window.shape)
    c = cluster_centres(field_shape, preset, seed)
    y = np.arange(window.y0, window.y1)[:, None]
    x = np.arange(window.x0, window.x1)[None, :]
    for k in range(len(c["x"])):
        h, reach = c["icl_scale"][k], 12 * c["icl_scale"][k]
        if not (c["y"][k] + reach > window.y0 and c["y"][k] - reach < window.y1
                and c["x"][k] + reach > window.x0 and c["x"][k] - reach < window.x1):
            continue
        flux = ICL_FRACTION * 10.0 ** (-0.4 * (c["mag"][k] - preset.zeropoint))
        cos, sin, q = math.cos(c["pa"][k]), math.sin(c["pa"][k]), c["q"][k]
        dx, dy = x - c["x"][k], y - c["y"][k]
        r = np.hypot(dx * cos + dy * sin, (-dx * sin + dy * cos) / q)
        out += flux / (2 * math.pi * h * h * q) * np.exp(-r / h)
    return out
