"""Bright stars with halos, spikes and bleeding, clusters with intracluster light, and PSF images
(simulate/bright.py and the preset options that draw them)."""

from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table
from scipy import ndimage

from astrostatlearn.simulate import draw_catalog, get_preset, simulate_field
from astrostatlearn.simulate.bright import SPIKE_FRACTION, add_spikes, bleed, cluster_centres
from astrostatlearn.simulate.render import draw_stamp

BRIGHT = get_preset("ground").with_overrides(bright_stars=0.4, saturation=3000.0, clusters=0.15)


@pytest.fixture(scope="module")
def bright_field(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bright") / "f"
    simulate_field(out, 768, seed=5, preset=BRIGHT, tile=768, workers=1, progress=False)
    return out


def test_bright_objects_follow_the_faint_population_which_stays_unchanged() -> None:
    plain, bright = draw_catalog((768, 768), get_preset("ground"), 5), draw_catalog((768, 768), BRIGHT, 5)
    n = plain["id"].size
    assert bright["id"].size > n and np.array_equal(bright["id"], np.arange(1, bright["id"].size + 1))
    for k in ("x", "y", "mag", "hlr", "radius"):
        np.testing.assert_array_equal(plain[k], bright[k][:n], err_msg=k)
    extra = {k: v[n:] for k, v in bright.items()}
    assert extra["halo"].any() and (extra["mag"][extra["halo"]] < 17).all() and extra["is_star"][extra["halo"]].all()
    assert (extra["hlr"][~extra["halo"]] >= 4.0).all()  # the cluster galaxies are large


def test_saturated_stars_clip_and_bleed_along_columns(bright_field: Path) -> None:
    img, true = fits.getdata(bright_field / "img.fits"), fits.getdata(bright_field / "true.fits")
    assert img.max() == pytest.approx(BRIGHT.saturation)
    sat, n = ndimage.label(img >= BRIGHT.saturation)
    assert n >= 1
    tall = [sl for sl in ndimage.find_objects(sat) if sl[0].stop - sl[0].start > 3 * (sl[1].stop - sl[1].start)]
    assert tall, "no saturated trail runs along a column"
    cat = Table.read(bright_field / "truth.ecsv")
    core = true[sat > 0]
    assert core.min() > 0 and np.all(cat["is_star"][np.unique(core) - 1])  # saturated cores belong to the stars


def test_intracluster_light_is_background_in_the_truth(bright_field: Path, tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    simulate_field(plain, 768, seed=5, preset=get_preset("ground").with_overrides(bright_stars=0.4, saturation=3000.0),
                   tile=768, workers=1, progress=False)
    c = cluster_centres((768, 768), BRIGHT, 5)
    assert len(c["x"]) >= 1
    img, true = fits.getdata(bright_field / "img.fits"), fits.getdata(bright_field / "true.fits")
    base, base_true = fits.getdata(plain / "img.fits"), fits.getdata(plain / "true.fits")
    y, x = np.mgrid[:768, :768]
    near = np.hypot(y - c["y"][0], x - c["x"][0]) < c["icl_scale"][0]
    off = near & (true == 0) & (base_true == 0)
    assert off.sum() > 200
    assert np.median(img[off] - base[off]) > 0.5 * BRIGHT.sky_sigma  # diffuse light where no object is in the truth
    cat = Table.read(bright_field / "truth.ecsv")
    central = cat["id"][(cat["half_light_radius"] >= 4.0) & ~cat["is_star"]]
    changed = true != base_true  # only where a central galaxy now owns the pixel: the ICL owns none
    assert changed.any() and np.isin(true[changed], central).all()


def test_bleeding_conserves_charge_within_the_stamp() -> None:
    stamp = np.zeros((41, 5))
    stamp[20, 2] = 1000.0
    stamp[19:22, 1] = 150.0
    total = stamp.sum()
    bleed(stamp, 100.0)
    assert stamp.max() == pytest.approx(100.0) and stamp.sum() == pytest.approx(total)
    assert (stamp[:, 2] == 100.0).sum() == 10 and (stamp[:, 0] == 0).all()


def test_spikes_hold_their_share_of_the_flux() -> None:
    from astrostatlearn.field.windows import Window

    preset = get_preset("ground")
    stamp = np.zeros((4001, 4001))
    add_spikes(stamp, Window(-2000, 2001, -2000, 2001), {"x": 0.0, "y": 0.0, "flux": 1e6}, preset)
    assert stamp.sum() == pytest.approx(1e6 * SPIKE_FRACTION, rel=0.02)
    assert stamp[2000, 2100] > 10 * stamp[2100, 2100]  # along the axes, not between them


def test_a_psf_image_replaces_the_moffat(tmp_path: Path) -> None:
    """A star drawn with ``psf_file`` is that (pixel-integrated) image, scaled by its flux."""
    y, x = np.mgrid[-12:13, -12:13]
    psf = np.exp(-0.5 * ((x / 1.2) ** 2 + (y / 3.0) ** 2))  # elongated: unlike any Moffat of the preset
    fits.PrimaryHDU(psf).writeto(tmp_path / "psf.fits")
    preset = get_preset("ground").with_overrides(psf_file=str(tmp_path / "psf.fits"))
    star = {"x": 50.0, "y": 50.0, "flux": 1000.0, "is_star": True, "radius": 20}
    win, stamp = draw_stamp(star, preset)
    np.testing.assert_allclose(stamp[8:33, 8:33], 1000.0 * psf / psf.sum(), atol=2e-3 * stamp.max())
    out = tmp_path / "f"
    simulate_field(out, 256, seed=1, preset=preset, workers=1, progress=False)
    header = fits.getheader(out / "img.fits")
    assert header["PSFFWHM"] == pytest.approx(2 * np.sqrt((psf >= 0.5).sum() / np.pi) * 0.2) and header["PSFFILE"] == "psf.fits"


def test_simulate_cli_checks_the_bright_options(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from astrostatlearn.cli import app

    for args, msg in ((["--saturation", "-1"], "must be >= 0"), (["--psf", str(tmp_path / "none.fits")], "no such file")):
        r = CliRunner().invoke(app, ["simulate", str(tmp_path / "x"), "--size", "64", *args])
        assert r.exit_code == 2 and msg in r.output, (args, r.output)
        assert not (tmp_path / "x").exists()
