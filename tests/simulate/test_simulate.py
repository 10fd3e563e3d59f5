from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS
from scipy import ndimage

from astrostatlearn.errors import InputError, OutputExistsError
from astrostatlearn.simulate import draw_catalog, get_preset, simulate_field


def _read(d: Path) -> dict[str, np.ndarray]:
    return {n: fits.getdata(d / f"{n}.fits") for n in ("img", "rms", "true")}


def test_identical_whatever_tile_size_and_workers(tmp_path: Path, sim_field: Path) -> None:
    other = tmp_path / "b"
    simulate_field(other, 512, seed=11, tile=160, workers=2, progress=False)
    a, b = _read(sim_field), _read(other)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    ta, tb = Table.read(sim_field / "truth.ecsv"), Table.read(other / "truth.ecsv")
    for col in ta.colnames:  # NaN-aware (stars have sersic_n = NaN)
        np.testing.assert_array_equal(ta[col], tb[col], err_msg=col)


def test_different_seed_gives_a_different_field(tmp_path: Path, sim_field: Path) -> None:
    simulate_field(tmp_path / "c", 512, seed=12, workers=1, progress=False)
    assert not np.array_equal(_read(sim_field)["img"], _read(tmp_path / "c")["img"])


def test_truth_map_agrees_with_catalogue(sim_field: Path) -> None:
    d = _read(sim_field)
    cat = Table.read(sim_field / "truth.ecsv")
    true = d["true"]
    assert true.dtype.kind == "i" and true.min() >= 0
    counts = np.bincount(true.ravel(), minlength=len(cat) + 1)
    # area_true is exactly the number of truth pixels per ID; IDs in the map are catalogue IDs.
    np.testing.assert_array_equal(counts[cat["id"]], cat["area_true"])
    assert set(np.unique(true[true > 0])) <= set(cat["id"])
    # Truth segments sit where the catalogue says: the brightest truth pixel is within 2 px.
    visible = cat[(cat["area_true"] >= 20) & (cat["snr"] > 10)]
    assert len(visible) >= 15
    peaks = ndimage.maximum_position(d["img"] - 0, true, visible["id"])
    dist = np.hypot([p[1] for p in peaks] - visible["x"], [p[0] for p in peaks] - visible["y"])
    assert np.median(dist) < 1.0 and np.mean(dist < 3) > 0.9
    # Truth pixels are significant on average, background pixels are noise.
    snr = d["img"] / d["rms"]
    assert snr[true > 0].mean() > 1.5  # every truth pixel has model >= 1 sky sigma
    assert abs(np.median(snr[true == 0])) < 0.2
    assert 0.8 < np.std(snr[true == 0]) < 1.3


def test_truth_rule_faint_objects_stay_in_catalogue_only(tmp_path: Path) -> None:
    shallow = get_preset("euclid-vis").with_overrides(sky_sigma=10.0)
    simulate_field(tmp_path / "s", 256, seed=4, preset=shallow, workers=1, progress=False)
    cat = Table.read(tmp_path / "s" / "truth.ecsv")
    true = fits.getdata(tmp_path / "s" / "true.fits")
    hidden = cat[cat["area_true"] == 0]
    assert len(hidden) > 0
    assert not np.isin(hidden["id"], true).any()


def test_catalogue_columns_units_and_population(sim_field: Path) -> None:
    cat = Table.read(sim_field / "truth.ecsv")
    for col in ("id", "x", "y", "flux", "mag", "snr", "half_light_radius", "sersic_n", "axis_ratio",
                "position_angle", "is_star", "ra", "dec", "area_true"):
        assert col in cat.colnames
    assert cat["half_light_radius"].unit == "arcsec" and "0-based" in cat.meta["pixel_origin"]
    assert "largest" in cat.meta["truth_rule"]
    stars = cat[cat["is_star"]]
    assert np.all(stars["half_light_radius"] == 0) and np.all(np.isnan(stars["sersic_n"]))
    gal = cat[~cat["is_star"]]
    assert np.all((gal["axis_ratio"] > 0.1) & (gal["axis_ratio"] <= 1.0))
    assert np.all((gal["sersic_n"] >= 0.5) & (gal["sersic_n"] <= 4.0))
    # Brighter galaxies are larger (magnitude-size relation).
    bright, faint = gal[gal["mag"] < 23], gal[gal["mag"] > 25]
    assert np.median(bright["half_light_radius"]) > np.median(faint["half_light_radius"])


def test_population_statistics_on_a_large_catalogue() -> None:
    p = get_preset("euclid-vis")
    cat = draw_catalog((25000, 25000), p, seed=0)
    n = len(cat["id"])
    assert 160_000 < n < 180_000  # about 100 per arcmin^2 on the 25k^2 reference field
    assert 0.05 <= cat["is_star"].mean() <= 0.10
    # Counts rise with magnitude with the preset slope.
    h, _ = np.histogram(cat["mag"][~cat["is_star"]], bins=[22, 23, 24, 25])
    assert np.log10(h[2] / h[0]) / 2 == pytest.approx(p.count_slope, abs=0.03)


def test_foreground_fraction_matches_reference(sim_field: Path) -> None:
    true = fits.getdata(sim_field / "true.fits")
    assert 0.03 <= (true > 0).mean() <= 0.06


def test_headers_carry_wcs_and_provenance(sim_field: Path) -> None:
    for name in ("img", "rms", "true"):
        h = fits.getheader(sim_field / f"{name}.fits")
        assert WCS(h).has_celestial and h["PRESET"] == "euclid-vis" and h["SIMSEED"] == 11
    assert fits.getdata(sim_field / "true.fits").dtype.kind == "i"


def test_refuses_overwrite_and_bad_arguments(tmp_path: Path, sim_field: Path) -> None:
    before = (sim_field / "img.fits").stat().st_mtime_ns
    with pytest.raises(OutputExistsError):
        simulate_field(sim_field, 64, seed=1, progress=False)
    assert (sim_field / "img.fits").stat().st_mtime_ns == before
    with pytest.raises(InputError, match="unknown preset"):
        simulate_field(tmp_path / "x", 64, preset="hubble", progress=False)
    with pytest.raises(InputError, match="at least 8"):
        simulate_field(tmp_path / "y", 4, progress=False)
    assert not (tmp_path / "x").exists() or not any((tmp_path / "x").iterdir())


def test_correlated_noise_keeps_the_pixel_rms_and_the_tiling(tmp_path: Path) -> None:
    """noise_correlation smooths the noise (as resampling does) with the per-pixel rms unchanged,
    and the field is still identical whatever the tile size."""
    from scipy import ndimage

    from astrostatlearn.simulate import get_preset

    preset = get_preset("euclid-vis").with_overrides(noise_correlation=0.8, density=1.0)
    simulate_field(tmp_path / "a", 300, seed=5, preset=preset, tile=300, workers=1, progress=False)
    simulate_field(tmp_path / "b", 300, seed=5, preset=preset, tile=128, workers=1, progress=False)
    a = fits.getdata(tmp_path / "a" / "img.fits")
    assert np.array_equal(a, fits.getdata(tmp_path / "b" / "img.fits"))
    rms = fits.getdata(tmp_path / "a" / "rms.fits")
    sky = fits.getdata(tmp_path / "a" / "true.fits") == 0
    z = (a / rms)[sky]
    assert abs(z.std() - 1.0) < 0.05  # the rms map still describes each pixel
    white = np.random.default_rng(0).normal(size=a.shape)
    ratio = ndimage.gaussian_filter(a / rms, 1.0)[sky].std() / ndimage.gaussian_filter(white, 1.0).std()
    assert ratio > 1.5  # but smoothed noise is far above the white-noise expectation
    simulate_field(tmp_path / "w", 300, seed=5, preset=preset.with_overrides(noise_correlation=0.0), tile=300,
                   workers=1, progress=False)
    assert not np.array_equal(a, fits.getdata(tmp_path / "w" / "img.fits"))


def test_real_image_defects_are_drawn_from_global_coordinates(tmp_path) -> None:
    """Gradient, stripes, bad columns and holes: present as asked, identical whatever the tiling,
    and no-data pixels are NaN in the image and background in the truth."""
    from astropy.io import fits

    p = get_preset("euclid-vis").with_overrides(background_gradient=20.0, stripe_sigma=0.5, bad_column_rate=0.02,
                                                hole_fraction=0.05)
    simulate_field(tmp_path / "a", 512, seed=3, preset=p, tile=512, workers=1, progress=False)
    simulate_field(tmp_path / "b", 512, seed=3, preset=p, tile=192, workers=1, progress=False)
    plain = tmp_path / "c"
    simulate_field(plain, 512, seed=3, tile=512, workers=1, progress=False)
    img, true = fits.getdata(tmp_path / "a" / "img.fits"), fits.getdata(tmp_path / "a" / "true.fits")
    for name in ("img.fits", "rms.fits", "true.fits"):
        np.testing.assert_array_equal(fits.getdata(tmp_path / "a" / name), fits.getdata(tmp_path / "b" / name))
    nan = ~np.isfinite(img)
    assert nan.all(axis=0).sum() >= 3  # bad columns
    assert 0.02 < nan.mean() < 0.2 and not true[nan].any()
    base = fits.getdata(plain / "img.fits")
    diff = np.where(nan, np.nan, img - base)  # the offsets alone (the objects and noise are the same)
    rows = np.nanmedian(diff, axis=1)
    assert np.nanstd(rows - np.nanmedian(rows)) > 0.1 * p.sky_sigma  # stripes
    assert np.nanmax(diff) - np.nanmin(diff) > 5 * p.sky_sigma  # the gradient across the field
    truth_plain = fits.getdata(plain / "true.fits")
    np.testing.assert_array_equal(true[~nan], truth_plain[~nan])


def test_simulate_refuses_bad_defect_options(tmp_path) -> None:
    from typer.testing import CliRunner

    from astrostatlearn.cli import app

    for args in (["--holes", "1.5"], ["--bad-columns", "-0.1"], ["--stripes", "-1"]):
        r = CliRunner().invoke(app, ["simulate", str(tmp_path / "x"), "--size", "64", *args])
        assert r.exit_code == 2 and "must be >= 0" in r.output, (args, r.output)
        assert not (tmp_path / "x").exists()
