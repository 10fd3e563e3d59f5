"""Zero-points read from the cards surveys write, and a field's override."""

import math

import pytest
from astropy.io import fits

from astrostatlearn.errors import InputError
from astrostatlearn.field.zeropoint import header_number, header_zeropoint


def test_a_zeropoint_card_is_read_in_the_documented_order_and_junk_is_skipped() -> None:
    h = fits.Header({"ZP": 24.0, "MAGZERO": "n/a", "PHOTZP": 30.1})
    assert header_zeropoint(h) == (30.1, "PHOTZP")  # MAGZERO is not a number: the next card
    assert header_zeropoint(fits.Header({"MAGZP": 27.5})) == (27.5, "MAGZP")
    assert header_zeropoint(fits.Header({"GAIN": 3.0})) is None
    assert header_number({"GAIN": float("nan"), "EGAIN": 2.0}, ("GAIN", "EGAIN")) == 2.0


def test_lsst_fluxmag0_and_hst_photflam_give_ab_zeropoints() -> None:
    zp, card = header_zeropoint(fits.Header({"FLUXMAG0": 10 ** (0.4 * 27.0)}))
    assert card == "FLUXMAG0" and zp == pytest.approx(27.0)
    # ACS/WFC F814W: the STScI AB zero-point for these keywords is 25.94
    zp, card = header_zeropoint(fits.Header({"PHOTFLAM": 7.0724e-20, "PHOTPLAM": 8045.0}))
    assert card == "PHOTFLAM, PHOTPLAM" and zp == pytest.approx(25.94, abs=0.005)
    assert header_zeropoint(fits.Header({"PHOTFLAM": 0.0, "PHOTPLAM": 8045.0})) is None


def test_a_fields_zeropoint_is_the_headers_unless_set(sim_field) -> None:
    from astrostatlearn.field import Field

    with Field.open(sim_field) as f:
        assert f.zeropoint == fits.getheader(sim_field / "img.fits")["MAGZP"]
        f.zeropoint = 25.5
        assert f.zeropoint == 25.5
        with pytest.raises(InputError, match="zero-point"):
            f.zeropoint = math.inf
        f.zeropoint = None
        assert f.zeropoint == fits.getheader(sim_field / "img.fits")["MAGZP"]
