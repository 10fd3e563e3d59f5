from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from astrostatlearn.errors import InputError
from astrostatlearn.field import Field, Window, tile_grid
from astrostatlearn.preprocess import VARIANTS, fit_variant, preprocess_field


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_tile_by_tile_equals_whole_field(sim_field: Path, variant: str) -> None:
    with Field.open(sim_field) as f:
        pre = fit_variant(f, variant)
        whole = pre.read(f, f.full)
        assert whole.shape == (len(VARIANTS[variant]), 512, 512) and whole.dtype == np.float32
        tiled = np.zeros_like(whole)
        for w in tile_grid(f.shape, 100):  # ragged tiles
            tiled[(slice(None),) + w.slices] = pre.read(f, w)
        np.testing.assert_array_equal(whole, tiled)


def test_definitions(sim_field: Path) -> None:
    with Field.open(sim_field) as f:
        img, rms = f.read_img(), f.read_rms()
        s = fit_variant(f, "soft").stats
        pre_snr = fit_variant(f, "snr")
        snr = pre_snr.read(f, f.full)[0]
        sky = pre_snr.sky_rms(img, rms)  # the simulator's rms carries source noise: less in the sources
        assert pre_snr.stats.rms_source_slope > 0 and np.all(sky <= rms) and np.mean(sky == rms) > 0.8
        np.testing.assert_allclose(snr, (img - s.img_median) / sky, rtol=1e-5, atol=1e-5)
        norm = fit_variant(f, "norm").read(f, f.full)[0]
        assert norm.min() == 0.0 and norm.max() == 1.0
        np.testing.assert_allclose(norm, np.clip((img - s.img_lo) / (s.img_hi - s.img_lo), 0, 1), atol=1e-6)
        summed = fit_variant(f, "summed").read(f, f.full)[0]
        nr = np.clip((rms - s.rms_lo) / (s.rms_hi - s.rms_lo), 0, 1)
        np.testing.assert_allclose(summed, (norm + nr) / 2, atol=1e-6)
        two = fit_variant(f, "soft+rms+log").read(f, f.full)
        lin = fit_variant(f, "soft+rms").read(f, f.full)
        np.testing.assert_array_equal(two[0], lin[0])
        np.testing.assert_allclose(lin[1], nr, atol=1e-6)
        assert np.all(two[1] >= lin[1] - 1e-6)  # the log stretch lifts the low end
        soft = lin[0]
        assert np.all(np.diff(soft.ravel()[np.argsort(img.ravel())]) >= -1e-6)  # monotonic in img


def _unit(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    return np.clip((x.astype(np.float64) - lo) / (hi - lo), 0.0, 1.0)


# The documented stretches, written out (astropy's definitions), not taken from the code under test.
STRETCH_DEFINITIONS = {
    "asinh": lambda x, a: np.arcsinh(x / a) / np.arcsinh(1.0 / a),
    "log": lambda x, a: np.log(x / a + 1.0) / np.log(1.0 / a + 1.0),
    "sqrt": lambda x, a: np.sqrt(x),
    "power": lambda x, a: x ** a,
    "linear": lambda x, a: x,
}


@pytest.mark.parametrize("stretch", list(STRETCH_DEFINITIONS))
def test_soft_follows_its_documented_definition(sim_field: Path, stretch: str) -> None:
    """soft: black point median - 1 sigma, white point median + 100 sigma (at most the maximum),
    then the stretch, in [0, 1]; with the field's own sigma-clipped statistics."""
    from astropy.stats import sigma_clipped_stats

    with Field.open(sim_field) as f:
        img = f.read_img()
        pre = fit_variant(f, "soft", stretch=stretch)
        soft = pre.read(f, f.full)[0]
    _, median, std = sigma_clipped_stats(img[np.isfinite(img)], sigma=3.0, maxiters=10)
    black, white = median - std, min(median + 100 * std, float(np.nanmax(img)))
    expected = STRETCH_DEFINITIONS[stretch](_unit(img, black, white), 0.02)
    np.testing.assert_allclose(soft, expected, atol=2e-5)
    assert soft.min() >= 0.0 and soft.max() <= 1.0


def test_norm_uses_global_statistics_not_per_patch(sim_field: Path) -> None:
    """norm of a 32^2 corner equals the linear map of the *field's* [p0.5, p99.5] interval,
    computed here independently from all pixels."""
    with Field.open(sim_field) as f:
        img = f.read_img()
        a = fit_variant(f, "norm").read(f, Window(0, 32, 0, 32))[0]
    lo, hi = np.percentile(img[np.isfinite(img)], [0.5, 99.5])
    np.testing.assert_allclose(a, _unit(img[:32, :32], lo, hi), atol=1e-5)
    assert a.max() < 1.0 or a.min() > 0.0  # a per-patch min-max would span exactly [0, 1]


def test_without_rms_uses_global_std(sim_field: Path) -> None:
    with Field.open(img=sim_field / "img.fits") as f:
        pre = fit_variant(f, "snr")
        assert not pre.stats.has_rms and pre.stats.rms_median == pytest.approx(pre.stats.img_std)


def test_writes_cube_with_header_and_preview(sim_field: Path, tmp_path: Path) -> None:
    with Field.open(sim_field) as f:
        pre = fit_variant(f, "soft+rms")
        res = preprocess_field(f, pre, tmp_path / "v.fits", block_pixels=512 * 100)
        with pytest.raises(InputError, match="already exists"):
            preprocess_field(f, pre, tmp_path / "v.fits")
    data = fits.getdata(res["fits"])
    np.testing.assert_array_equal(data, pre.read(Field.open(sim_field), Window(0, 512, 0, 512)))
    h = fits.getheader(res["fits"])
    assert h["NAXIS"] == 3 and h["CHNAME1"] == "img" and h["CHNAME2"] == "rms" and h["VARIANT"] == "soft+rms"
    assert WCS(h, naxis=2).has_celestial
    assert h["SOFTBLK"] == pytest.approx(pre.params["soft_black"])
    assert Path(res["png"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_unknown_variant_and_stretch(sim_field: Path) -> None:
    with Field.open(sim_field) as f:
        with pytest.raises(InputError, match="unknown variant"):
            fit_variant(f, "fancy")
        with pytest.raises(InputError, match="unknown stretch"):
            fit_variant(f, "soft", stretch="curvy")


@pytest.mark.parametrize("variant", ["raw", "snr", "soft+rms"])
def test_checked_apply_equals_the_checking_one_on_good_pixels(sim_field: Path, variant: str) -> None:
    """``checked=True`` only skips the finiteness passes: on good pixels the values are the same,
    and on bad pixels the unchecked call still replaces them."""
    with Field.open(sim_field) as f:
        pre = fit_variant(f, variant)
        w = Window(10, 60, 20, 90)
        img, rms = f.read_img(w), f.read_rms(w)
    np.testing.assert_array_equal(pre.apply(img, rms, checked=True), pre.apply(img, rms))
    bad = img.copy()
    bad[3, 4] = np.nan
    assert np.isfinite(pre.apply(bad, rms)).all()


@pytest.mark.parametrize("n", [1, 2, 5, 1000, 1001])
def test_sorted_percentiles_equal_numpy(n: int) -> None:
    from astrostatlearn.preprocess.stats import sorted_percentiles

    x = np.random.default_rng(n).normal(size=n).astype(np.float32)
    q = [0.0, 0.5, 50.0, 99.5, 100.0]
    np.testing.assert_allclose(sorted_percentiles(np.sort(x), q), np.percentile(x, q), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(sorted_percentiles(x, q, presorted=False), np.percentile(x, q), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_image_level_inverts_channel_0_of_the_variants_linear_in_the_image(sim_field: Path, variant: str) -> None:
    """A background in variant units maps back to image units (for the catalogue's photometry)."""
    with Field.open(sim_field) as f:
        pre = fit_variant(f, variant)
        w = Window(100, 164, 200, 264)
        img, rms = f.read_img(w), f.read_rms(w)
    inside = (img > pre.stats.img_lo) & (img < pre.stats.img_hi)  # norm clips outside its interval
    sky = pre.sky_rms(img, rms) if variant == "snr" else None
    back = pre.image_level(pre.apply(img, rms)[0], rms, sky)
    if variant in ("raw", "snr", "norm"):
        np.testing.assert_allclose(back[inside], img[inside], rtol=1e-4, atol=1e-4 * pre.stats.img_std)
    else:
        assert back is None  # a stretch: the catalogue keeps the global level
