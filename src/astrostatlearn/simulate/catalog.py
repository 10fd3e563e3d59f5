"""The simulated object catalogue, drawn once for the whole field from the seed.

Population model (documented in docs/guide/simulation.md):

* galaxy number counts ``dN/dm ∝ 10**(count_slope * m)`` between ``mag_bright`` and ``mag_faint``,
  normalised to ``density`` objects per arcmin^2 (stars included);
* size–magnitude relation of CFHTLenS (Miller et al. 2013): ``ln(r_d/") = -1.145 - 0.269 (m - 23)``,
  half-light radius ``1.678 r_d``, lognormal scatter; bulge-dominated galaxies are 0.6x smaller;
* Sérsic index: disks n in {0.5, 1, 1.5}, bulges n in {3, 3.5, 4}, bulge fraction rising from 15%
  at the faint end to 35% at the bright end;
* intrinsic ellipticity: Gaussian per component (sigma 0.25 disks, 0.15 bulges), |e| < 0.8;
* stars: flat counts (slope 0.1), point sources convolved with the PSF.

Positions are uniform, 0-based pixel coordinates ``x``, ``y`` (pixel centres at integers).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import gamma

from astrostatlearn.simulate.presets import Preset


def _powerlaw_mags(rng: np.random.Generator, n: int, lo: float, hi: float, slope: float) -> np.ndarray:
    """Magnitudes with dN/dm ∝ 10**(slope m) on [lo, hi], by inverting the CDF."""
    a = math.log(10.0) * slope
    u = rng.random(n)
    return lo + np.log1p(u * np.expm1(a * (hi - lo))) / a


def sersic_b(n: np.ndarray) -> np.ndarray:
    """Ciotti & Bertin (1999) approximation to the Sérsic b_n."""
    return 2.0 * n - 1.0 / 3.0 + 4.0 / (405.0 * n) + 46.0 / (25515.0 * n**2)


def draw_catalog(shape: tuple[int, int], preset: Preset, seed: int) -> dict[str, np.ndarray]:
    """All objects of a field of ``shape`` (ny, nx) as a dict of equal-length arrays.

    Columns: ``id`` (1..N), ``x``, ``y`` (0-based pixels), ``mag``, ``flux``, ``is_star``,
    ``hlr`` (circularised half-light radius before the PSF, arcsec; 0 for stars), ``sersic_n``
    (NaN for stars), ``q`` (axis ratio b/a), ``pa`` (position angle, radians, counter-clockwise
    from +x), ``halo`` (bright stars drawn with halo and spikes, :mod:`.bright`), ``radius``
    (stamp half-size, pixels). Bright stars and cluster galaxies, when the preset asks for them,
    follow the faint population with the next IDs.
    """
    rng = np.random.default_rng(np.random.SeedSequence([seed, 1]))
    ny, nx = shape
    area_arcmin2 = ny * nx * (preset.pixel_scale / 60.0) ** 2
    n = int(rng.poisson(preset.density * area_arcmin2))
    is_star = rng.random(n) < preset.star_fraction
    n_star = int(is_star.sum())
    mag = np.empty(n)
    mag[~is_star] = _powerlaw_mags(rng, n - n_star, preset.mag_bright, preset.mag_faint, preset.count_slope)
    mag[is_star] = _powerlaw_mags(rng, n_star, preset.star_mag_bright, preset.mag_faint, preset.star_count_slope)
    x = rng.uniform(-0.5, nx - 0.5, n)
    y = rng.uniform(-0.5, ny - 0.5, n)
    flux = 10.0 ** (-0.4 * (mag - preset.zeropoint))

    # Morphology (drawn for every row so the random stream does not depend on the star flags).
    sersic_n, hlr, q, pa = galaxy_shapes(rng, mag, preset)
    sersic_n[is_star] = np.nan
    hlr[is_star] = 0.0
    q[is_star] = 1.0
    pa[is_star] = 0.0
    cat = {
        "id": np.arange(1, n + 1, dtype=np.int64), "x": x, "y": y, "mag": mag, "flux": flux,
        "is_star": is_star, "hlr": hlr, "sersic_n": sersic_n, "q": q, "pa": pa,
    }
    cat["halo"] = np.zeros(n, bool)
    if preset.bright_stars or preset.clusters:
        from astrostatlearn.simulate.bright import STAR_RADIUS, bright_rows

        extra = bright_rows(shape, preset, seed, first_id=n + 1)
        cat = {k: np.concatenate([v, extra[k]]) for k, v in cat.items()}
    cat["radius"] = stamp_radius(cat, preset)
    if cat["halo"].any():
        cat["radius"][cat["halo"]] = STAR_RADIUS
    return cat


def galaxy_shapes(rng: np.random.Generator, mag: np.ndarray, preset: Preset,
                  size_mag: np.ndarray | None = None) -> tuple[np.ndarray, ...]:
    """``(sersic_n, hlr, q, pa)`` of galaxies of magnitudes ``mag`` (the population model of the
    module docstring); ``size_mag``: the magnitudes the size relation is read at (default ``mag``)."""
    n = mag.size
    size_mag = mag if size_mag is None else size_mag
    frac_bulge = np.clip(0.35 - 0.2 * (mag - preset.mag_bright) / max(preset.mag_faint - preset.mag_bright, 1e-6), 0.15, 0.35)
    bulge = rng.random(n) < frac_bulge
    n_disk = rng.choice([0.5, 1.0, 1.5], size=n, p=[0.2, 0.6, 0.2])
    n_bulge = rng.choice([3.0, 3.5, 4.0], size=n)
    sersic_n = np.where(bulge, n_bulge, n_disk)
    ln_rd = preset.size_ln_a + preset.size_ln_b * (size_mag - 23.0) + preset.size_ln_scatter * rng.standard_normal(n)
    hlr = 1.678 * np.exp(ln_rd) * np.where(bulge, 0.6, 1.0)
    hlr = np.clip(hlr, 0.3 * preset.pixel_scale, 5.0)
    sig_e = np.where(bulge, 0.15, preset.ellipticity_sigma)
    e = np.hypot(*(rng.standard_normal((2, n)) * sig_e))
    e = np.minimum(e, 0.8)
    q = (1.0 - e) / (1.0 + e)
    pa = rng.uniform(0.0, math.pi, n)
    return sersic_n, hlr, q, pa


def stamp_radius(cat: dict[str, np.ndarray], preset: Preset) -> np.ndarray:
    """Half-size in pixels of each object's drawing stamp.

    The stamp reaches the radius where the PSF-free profile falls to ``stamp_threshold`` sky
    sigma per pixel, plus 2 PSF FWHM, between 4 and 384 pixels.
    """
    s = preset.pixel_scale
    t = preset.stamp_threshold * preset.sky_sigma * (1 - preset.sky_sigma_variation)
    flux = cat["flux"]
    # Moffat PSF (stars and the PSF term of galaxies): I0 = F (beta - 1) / (pi alpha^2).
    beta = preset.psf_beta
    alpha = preset.psf_fwhm / (2.0 * math.sqrt(2.0 ** (1.0 / beta) - 1.0))
    ratio_star = flux * (beta - 1.0) / (math.pi * alpha**2) * s**2 / t
    r_star = alpha * np.sqrt(np.maximum(ratio_star ** (1.0 / beta) - 1.0, 0.0))
    # Sérsic along the major axis: I(R) = I_e exp(-b ((R/a)^(1/n) - 1)), a = r_e / sqrt(q).
    n = np.where(cat["is_star"], 1.0, cat["sersic_n"])
    b = sersic_b(n)
    re = np.maximum(cat["hlr"], 1e-3)
    ie = flux / (2.0 * math.pi * n * np.exp(b) * b ** (-2.0 * n) * gamma(2.0 * n) * re**2)
    ratio = ie * s**2 / t
    with np.errstate(divide="ignore", invalid="ignore"):
        core = np.maximum(1.0 + np.log(np.maximum(ratio, 1e-30)) / b, 0.0)
    r_gal = re / np.sqrt(cat["q"]) * core**n
    r = np.where(cat["is_star"], r_star, np.hypot(r_gal, r_star)) + 2.0 * preset.psf_fwhm
    return np.clip(np.ceil(r / s), 4, 384).astype(np.int64)
