"""The shipped U-Net's recipe: its survey sets are valid presets, and its PSF image is what it says."""

from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from astrostatlearn.simulate import draw_catalog, get_preset
from astrostatlearn.simulate.render import image_fwhm
from astrostatlearn.training.shipped import KOLMOGOROV_PSF, SURVEY_SETS, kolmogorov_psf


def test_the_kolmogorov_psf_has_unit_sum_and_its_seeing(tmp_path: Path) -> None:
    img = fits.getdata(kolmogorov_psf(tmp_path / "psf.fits", pixel_scale=0.2, fwhm=0.8))
    assert img.shape == (41, 41) and img.sum() == pytest.approx(1.0)
    assert np.unravel_index(np.argmax(img), img.shape) == (20, 20)
    assert 3.5 < image_fwhm(img) < 5.5  # 0.8" seeing at 0.2" pixels, widened by the aperture and the pixel


def test_every_survey_set_holds_valid_presets_and_the_real_set_has_real_image_features() -> None:
    real = SURVEY_SETS["real"]
    assert SURVEY_SETS["correlated"] == real[:len(SURVEY_SETS["correlated"])]
    for name, over in real:
        over = {k: v for k, v in over.items() if k != "psf_file" or v != KOLMOGOROV_PSF}
        preset = get_preset(name).with_overrides(**over)
        draw_catalog((256, 256), preset, 0)  # every option draws
    keys = {k for _, over in real for k in over}
    assert {"bright_stars", "saturation", "clusters", "psf_file", "noise_correlation", "stripe_sigma",
            "bad_column_rate", "hole_fraction", "background_gradient"} <= keys
