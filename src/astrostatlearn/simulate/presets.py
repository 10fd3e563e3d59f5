"""Survey presets for the simulator: instrument, noise and population parameters.

Units: angles in arcsec, fluxes in image units with ``flux = 10**(-0.4 * (mag - zeropoint))``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any


@dataclass(frozen=True)
class Preset:
    """Everything that defines a simulated survey, apart from the field size and seed."""

    name: str
    pixel_scale: float = 0.1          # arcsec / pixel
    psf_fwhm: float = 0.17            # arcsec (Moffat)
    psf_beta: float = 3.0             # Moffat beta
    zeropoint: float = 30.0           # AB magnitude of one image unit
    sky_sigma: float = 0.55           # per-pixel sky noise, image units (sets depth)
    sky_sigma_variation: float = 0.1  # fractional large-scale variation of sky_sigma over the field
    sky_level: float = 0.0            # background added to the image (0 = sky-subtracted)
    gain: float = 5.0                 # electrons per image unit, for source Poisson noise
    density: float = 100.0            # objects per arcmin^2 brighter than mag_faint
    mag_bright: float = 18.0          # brightest galaxy
    mag_faint: float = 26.0           # faint limit of the catalogue
    count_slope: float = 0.32         # d log10 N / d mag of galaxy counts
    star_fraction: float = 0.07       # fraction of objects that are stars
    star_mag_bright: float = 17.0
    star_count_slope: float = 0.1     # stars have flat counts at high latitude
    # ln(r_disk / arcsec) = size_ln_a + size_ln_b * (mag - 23), r_half = 1.678 r_disk
    size_ln_a: float = -1.145
    size_ln_b: float = -0.269
    size_ln_scatter: float = 0.45     # lognormal scatter of the size at fixed magnitude
    ellipticity_sigma: float = 0.25   # per-component intrinsic ellipticity dispersion (disks)
    isophote: float = 1.0             # truth isophote, in units of the local sky sigma
    stamp_threshold: float = 0.05     # draw each object out to this fraction of sky sigma
    noise_correlation: float = 0.0    # Gaussian sigma (pixels) of the noise's correlation, as in resampled
    #                                   or coadded images; the per-pixel rms is unchanged (0 = white noise)
    # Real-image defects (astrostatlearn.simulate.defects); all off by default.
    background_gradient: float = 0.0  # sky plane rising by this many sky sigmas across the field
    stripe_sigma: float = 0.0         # per-row offsets, normal with this many sky sigmas
    bad_column_rate: float = 0.0      # fraction of columns with no data (NaN)
    hole_fraction: float = 0.0        # fraction of the field in circular holes with no data (NaN)
    # Bright objects (astrostatlearn.simulate.bright); all off by default.
    bright_stars: float = 0.0         # stars with halos and spikes per arcmin^2, mag bright_star_mag..star_mag_bright
    bright_star_mag: float = 12.0     # brightest of them
    saturation: float = 0.0           # pixel level (image units) where the detector saturates and bleeds (0 = never)
    clusters: float = 0.0             # bright central galaxies with intracluster light, per arcmin^2
    psf_file: str = ""                # a PSF image (FITS, unit sum, at the field's pixel scale) instead of the Moffat

    def with_overrides(self, **changes: Any) -> "Preset":
        return replace(self, **changes)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


PRESETS: dict[str, Preset] = {
    # Euclid VIS-like: 0.1" pixels, 0.17" PSF; depth tuned so 3-6% of pixels are foreground
    # at the 1-sigma isophote (5-sigma point-source depth about 27.9 AB).
    "euclid-vis": Preset(name="euclid-vis"),
    # A ground-based survey like KiDS r: 0.2" pixels, 0.7" seeing, shallower.
    "ground": Preset(name="ground", pixel_scale=0.2, psf_fwhm=0.7, psf_beta=2.5, sky_sigma=6.0,
                     density=60.0, mag_faint=25.0, gain=2.0),
}


def get_preset(name: str) -> Preset:
    """The preset called ``name``; raises ``KeyError`` listing the known names."""
    try:
        return PRESETS[name]
    except KeyError:
        raise KeyError(f"unknown preset {name!r}; choose from {', '.join(PRESETS)}") from None
