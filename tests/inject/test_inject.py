from __future__ import annotations

import json
import math
from pathlib import Path

import galsim
import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table
from typer.testing import CliRunner

from astrostatlearn.cli import app
from astrostatlearn.errors import InputError
from astrostatlearn.field import MaskFile
from astrostatlearn.inject import InjectRequest, inject_image
from astrostatlearn.inject.psf import estimate_psf
from astrostatlearn.inject.sources import find_sources

runner = CliRunner()


def star_field(path: Path, fwhm: float = 3.5, n_side: int = 6, shape: int = 400, blank: float | None = None,
               correlation: float = 0.0) -> Path:
    """Noise (sigma 1 per pixel; correlated by a Gaussian of ``correlation`` pixels, as resampling
    does, when > 0) with a grid of isolated Moffat stars of known FWHM (pixels) and a WCS; a box
    with no data (``blank``: NaN, or 0 as zero-filled coadds have) when ``blank`` is given."""
    from scipy import ndimage

    rng = np.random.default_rng(5)
    img = rng.normal(0.0, 1.0, (shape, shape))
    if correlation > 0:
        img = ndimage.gaussian_filter(img, correlation)
        img /= img.std()
    psf = galsim.Moffat(beta=3.0, fwhm=fwhm)
    step = shape // (n_side + 1)
    for i in range(1, n_side + 1):
        for j in range(1, n_side + 1):
            stamp = psf.withFlux(float(rng.uniform(2e3, 6e3))).drawImage(nx=41, ny=41, scale=1.0,
                                                                          offset=rng.uniform(-0.5, 0.5, 2)).array
            y, x = i * step, j * step
            img[y - 20:y + 21, x - 20:x + 21] += stamp
    if blank is not None:
        img[10:90, 300:390] = blank
    header = fits.Header({"CTYPE1": "RA---TAN", "CTYPE2": "DEC--TAN", "CRVAL1": 150.0, "CRVAL2": 2.0,
                          "CRPIX1": 200.0, "CRPIX2": 200.0, "CDELT1": -0.2 / 3600, "CDELT2": 0.2 / 3600,
                          "MAGZERO": 27.0, "GAIN": 4.0})
    fits.PrimaryHDU(img.astype(np.float32), header=header).writeto(path)
    return path


def test_the_psf_is_estimated_from_the_stars(tmp_path: Path) -> None:
    path = star_field(tmp_path / "stars.fits", fwhm=3.5)
    img = fits.getdata(path)
    est = estimate_psf(img, find_sources(img))
    assert est.n_stars >= 20
    truth = galsim.Moffat(beta=3.0, fwhm=3.5).drawImage(nx=25, ny=25, scale=1.0).array
    assert est.image.shape == (25, 25) and est.image.sum() == pytest.approx(1.0, rel=1e-5)
    assert np.abs(est.image - truth / truth.sum()).sum() < 0.1  # within 10% of the true PSF, pixel by pixel summed
    assert abs(est.fwhm_px - 3.5) < 0.6


@pytest.mark.parametrize("blank", [np.nan, 0.0])
def test_injected_fields_carry_the_truth_header_and_flux(tmp_path: Path, blank: float) -> None:
    path = star_field(tmp_path / "stars.fits", blank=blank)
    res = inject_image(path, tmp_path / "inj", InjectRequest(n=12, realisations=2, seed=3))
    d = res.description
    assert d["zeropoint"] == 27.0 and d["gain"] == 4.0 and d["pixel_scale_arcsec"] == pytest.approx(0.2)
    assert d["psf"]["n_stars"] >= 20 and d["mag_range"][1] - d["mag_range"][0] == pytest.approx(5.0)
    original = fits.getdata(path).astype(np.float64)
    truths = []
    for real in res.realisations:
        for name in ("img.fits", "rms.fits", "true.fits", "ignore.fits", "truth.ecsv"):
            assert (real / name).exists(), name
        head = fits.getheader(real / "img.fits")
        assert head["CRVAL1"] == 150.0 and head["CTYPE2"] == "DEC--TAN"  # the WCS carries over
        assert head["MAGZERO"] == 27.0  # truth.ecsv's zero-point: a catalogue of the realisation has its magnitudes
        img, true = fits.getdata(real / "img.fits").astype(np.float64), fits.getdata(real / "true.fits")
        ignore = fits.getdata(real / "ignore.fits") > 0
        cat = Table.read(real / "truth.ecsv")
        assert len(cat) == 12 and set(np.unique(true[true > 0])) <= set(cat["id"])
        assert not (true > 0)[ignore].any(), "an injected object's truth lies on the image's own sources"
        assert ignore[10:90, 300:390].all() and (true[10:90, 300:390] == 0).all()  # no data is never used
        assert np.isnan(img[10:90, 300:390]).all()  # and is NaN in the realisation
        finite = np.isfinite(img)
        assert finite.sum() == img.size - 80 * 90
        added = (img - original)[finite].sum()
        assert added == pytest.approx(float(np.sum(cat["flux"])), rel=0.08)  # the injected flux is there
        assert (fits.getdata(real / "rms.fits")[finite] >= 1.0 * 0.9).all()  # sky rms ~1 plus source noise
        assert np.all(np.diff(cat["mag"][np.argsort(cat["flux"])[::-1]]) >= 0)  # flux follows the zero-point
        assert np.allclose(cat["flux"], 10 ** (-0.4 * (cat["mag"] - 27.0)))
        truths.append(np.c_[cat["x"], cat["y"]])
    assert not np.allclose(truths[0], truths[1])  # realisations differ
    assert json.loads((tmp_path / "inj" / "inject.json").read_text())["realisations"][1]["n_injected"] == 12


def test_a_weight_map_gives_the_noise_and_its_zeros_and_the_mask_are_never_used(tmp_path: Path) -> None:
    path = star_field(tmp_path / "stars.fits")
    weight = np.full(fits.getdata(path).shape, 0.25, np.float32)  # rms 2
    weight[10:90, 300:390] = 0.0
    fits.PrimaryHDU(weight).writeto(tmp_path / "weight.fits")
    bad = np.zeros(weight.shape, np.uint8)
    bad[200:260, 20:120] = 1
    bad[300:340, 20:120] = 4  # a benign flag: not one of the bad bits
    fits.PrimaryHDU(bad).writeto(tmp_path / "mask.fits")
    res = inject_image(path, tmp_path / "inj", InjectRequest(n=10, realisations=1, seed=4),
                       rms=tmp_path / "weight.fits", noise_kind="weight", mask=MaskFile(tmp_path / "mask.fits", 3))
    real = res.realisations[0]
    img, rms = fits.getdata(real / "img.fits"), fits.getdata(real / "rms.fits")
    assert np.isnan(img[10:90, 300:390]).all() and (fits.getdata(real / "true.fits")[10:90, 300:390] == 0).all()
    assert (fits.getdata(real / "ignore.fits")[10:90, 300:390] > 0).all()
    assert np.isnan(img[200:260, 20:120]).all() and (fits.getdata(real / "ignore.fits")[200:260, 20:120] > 0).all()
    assert np.nanmin(rms) >= 2.0 * 0.999  # the weight map's rms, plus source noise
    assert np.isfinite(img[300:340, 20:120]).all()


def test_the_depth_is_that_of_the_noise_the_image_has(tmp_path: Path) -> None:
    """Correlated noise of the same per-pixel rms hides a point source more than white noise: the
    depth and the injected S/N follow the noise measured in empty apertures, not the rms."""
    depth, factor, snr = {}, {}, {}
    for kind, corr in (("white", 0.0), ("correlated", 1.0)):
        path = star_field(tmp_path / f"{kind}.fits", correlation=corr)
        res = inject_image(path, tmp_path / kind, InjectRequest(n=8, realisations=1, psf_fwhm=3.5, seed=2,
                                                                 mag_range=(20.0, 23.0)))
        d = res.description
        depth[kind], factor[kind] = d["depth_5sigma_point"], d["noise_factor_point"]
        cat = Table.read(res.realisations[0] / "truth.ecsv")
        snr[kind] = np.asarray(cat["snr"])
    assert factor["white"] == pytest.approx(1.0, abs=0.1) and factor["correlated"] > 1.5
    # (the two background rms estimates differ by a percent or so)
    assert depth["white"] - depth["correlated"] == pytest.approx(2.5 * math.log10(factor["correlated"] / factor["white"]),
                                                                 abs=0.03)
    assert np.median(snr["correlated"] / snr["white"]) < 1 / 1.4  # the same objects, less significant


def test_without_a_zeropoint_the_realisations_say_which_instrumental_one_their_truth_uses(tmp_path: Path) -> None:
    path = star_field(tmp_path / "stars.fits")
    with fits.open(path, mode="update") as h:
        del h[0].header["MAGZERO"]
    res = inject_image(path, tmp_path / "inj", InjectRequest(n=4, realisations=1, psf_fwhm=3.5, seed=1))
    d = res.description
    assert not d["zeropoint_known"] and any("no zero-point" in n for n in d["notes"])
    head = fits.getheader(res.realisations[0] / "img.fits")
    assert head["MAGZERO"] == pytest.approx(d["zeropoint"]) and "instrumental" in head.comments["MAGZERO"]
    cat = Table.read(res.realisations[0] / "truth.ecsv")
    assert np.allclose(cat["flux"], 10 ** (-0.4 * (cat["mag"] - head["MAGZERO"])))


def test_injection_is_reproducible_from_its_seed(tmp_path: Path) -> None:
    path = star_field(tmp_path / "stars.fits")
    for name in ("a", "b"):
        inject_image(path, tmp_path / name, InjectRequest(n=5, realisations=1, psf_fwhm=3.5, seed=9))
    assert np.array_equal(fits.getdata(tmp_path / "a/real-000/img.fits"), fits.getdata(tmp_path / "b/real-000/img.fits"))


def test_bad_input_is_one_line(tmp_path: Path) -> None:
    blank = tmp_path / "blank.fits"
    fits.PrimaryHDU(np.random.default_rng(1).normal(0, 1, (200, 200)).astype(np.float32)).writeto(blank)
    stars = star_field(tmp_path / "stars.fits")

    def one_line(args: list[str]) -> str:
        r = runner.invoke(app, ["inject", *args])
        lines = [ln for ln in r.output.strip().splitlines() if ln.strip()]
        assert r.exit_code == 2 and len(lines) == 1, r.output
        return lines[0]

    assert "--psf-fwhm" in one_line([str(blank), "-o", str(tmp_path / "o1")])  # no stars, no PSF
    assert "room for only" in one_line([str(stars), "-o", str(tmp_path / "o2"), "--n", "5000"])
    small = tmp_path / "rms.fits"
    fits.PrimaryHDU(np.ones((50, 50), np.float32)).writeto(small)
    assert "differs" in one_line([str(stars), "--rms", str(small), "-o", str(tmp_path / "o3")])
    assert "BRIGHT,FAINT" in one_line([str(stars), "-o", str(tmp_path / "o4"), "--mag-range", "25"])
    assert "not both" in one_line([str(stars), "-o", str(tmp_path / "o5"), "--psf-fwhm", "3", "--psf", str(small)])
    assert "same pixel grid" in one_line([str(stars), "-o", str(tmp_path / "o7"), "--confirm-with", str(small)])
    ok = runner.invoke(app, ["inject", str(stars), "-o", str(tmp_path / "o6"), "--n", "3", "-k", "1"])
    assert ok.exit_code == 0, ok.output
    assert "--overwrite" in one_line([str(stars), "-o", str(tmp_path / "o6")])
    assert not any((tmp_path / f"o{i}").exists() for i in (1, 2, 3, 4, 5, 7))


def test_other_bands_confirm_their_own_sources(tmp_path: Path) -> None:
    """confirm.fits marks what another band sees: the shared stars, and a source only that band
    has, which the image's own detection (ignore.fits) does not know."""
    stars = star_field(tmp_path / "stars.fits")
    img, header = fits.getdata(stars, header=True)
    other = img + np.random.default_rng(9).normal(0.0, 1.0, img.shape).astype(np.float32)
    yy, xx = np.mgrid[:img.shape[0], :img.shape[1]]
    other += (300.0 * np.exp(-((yy - 30) ** 2 + (xx - 200) ** 2) / (2 * 2.0**2))).astype(np.float32)  # that band's own
    fits.PrimaryHDU(other, header).writeto(tmp_path / "other.fits")
    r = runner.invoke(app, ["inject", str(stars), "-o", str(tmp_path / "inj"), "--n", "5", "-k", "1",
                            "--confirm-with", str(tmp_path / "other.fits")])
    assert r.exit_code == 0, r.output
    confirm = fits.getdata(tmp_path / "inj" / "real-000" / "confirm.fits") > 0
    ignore = fits.getdata(tmp_path / "inj" / "real-000" / "ignore.fits") > 0
    step = 400 // 7
    assert all(confirm[i * step, j * step] for i in range(1, 7) for j in range(1, 7))  # every star
    assert confirm[30, 200] and not ignore[30, 200]
    desc = json.loads((tmp_path / "inj" / "inject.json").read_text())
    assert desc["confirm_with"] == [str(tmp_path / "other.fits")]
    assert 0 < desc["confirm_chance"] < 0.05 and desc["confirm_fraction"] == pytest.approx(confirm.mean())


def test_source_poisson_noise_needs_a_gain(tmp_path: Path) -> None:
    """With a gain the injected objects get their Poisson noise in the image; the rms map stays the
    sky's, as the image's own (here estimated from its background) is."""
    path = star_field(tmp_path / "stars.fits")
    inject_image(path, tmp_path / "g", InjectRequest(n=6, realisations=1, psf_fwhm=3.5, mag_range=(20, 21)))
    inject_image(path, tmp_path / "x", InjectRequest(n=6, realisations=1, psf_fwhm=3.5, mag_range=(20, 21), gain=1e12))
    true = fits.getdata(tmp_path / "g/real-000/true.fits") > 0
    img_g, img_x = (fits.getdata(tmp_path / f"{k}/real-000/img.fits").astype(float) for k in ("g", "x"))
    assert np.std((img_g - img_x)[true]) > 0.3  # gain 4: the objects' Poisson noise (about sqrt(model / 4))
    assert np.median(np.abs(img_g - img_x)[~true]) < 1e-3  # none on the sky
    rms_g, rms_x = (fits.getdata(tmp_path / f"{k}/real-000/rms.fits") for k in ("g", "x"))
    np.testing.assert_array_equal(rms_g, rms_x)
    assert "not rms.fits" in " ".join(json.loads((tmp_path / "g/inject.json").read_text())["notes"])


def test_the_rms_map_grows_when_the_image_s_own_carries_source_noise(tmp_path: Path) -> None:
    """An rms map that rises with the stars' signal (their Poisson noise, gain 4): the injected
    objects' rms grows the same way, so they look to the methods as the image's own sources."""
    path = star_field(tmp_path / "stars.fits")
    img = fits.getdata(path).astype(np.float64)
    fits.PrimaryHDU(np.sqrt(1.0 + np.maximum(img, 0.0) / 4.0).astype(np.float32)).writeto(tmp_path / "rms.fits")
    for k, gain in (("g", 4.0), ("x", 1e12)):
        inject_image(path, tmp_path / k, InjectRequest(n=6, realisations=1, psf_fwhm=3.5, mag_range=(20, 21),
                                                       gain=gain), rms=tmp_path / "rms.fits")
    true = fits.getdata(tmp_path / "g/real-000/true.fits") > 0
    rms_g, rms_x = (fits.getdata(tmp_path / f"{k}/real-000/rms.fits") for k in ("g", "x"))
    assert (rms_g[true] > rms_x[true] + 1e-3).mean() > 0.5  # gain 4: the rms grows on the objects
    assert np.median(np.abs(rms_x - rms_g)[~true]) < 1e-3  # and stays the input's off them
