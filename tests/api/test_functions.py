"""The notebook API: arrays and NDData in, astropy/photutils objects out, CLI-equal results."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.nddata import CCDData, InverseVariance, NDData, StdDevUncertainty, UnknownUncertainty, VarianceUncertainty
from astropy.table import QTable, Table
from astropy.wcs import WCS
from typer.testing import CliRunner

import astrostatlearn
from astrostatlearn.cli import app
from astrostatlearn.errors import InputError


@pytest.fixture(scope="module")
def arrays(sim_field: Path) -> dict:
    with fits.open(sim_field / "img.fits") as h:
        img, header = h[0].data.astype(np.float32), h[0].header
    return {"img": img, "rms": fits.getdata(sim_field / "rms.fits").astype(np.float32),
            "true": fits.getdata(sim_field / "true.fits"), "wcs": WCS(header)}


def test_segment_on_arrays_equals_the_cli(arrays: dict, sim_field: Path, tmp_path: Path) -> None:
    res = astrostatlearn.segment(arrays["img"], arrays["rms"], method="sep", wcs=arrays["wcs"])
    cli = CliRunner().invoke(app, ["segment", str(sim_field), "-m", "sep", "-o", str(tmp_path / "s"), "--tile", "512",
                                   "--workers", "1"])
    assert cli.exit_code == 0, cli.output
    assert np.array_equal(res.labels, fits.getdata(tmp_path / "s" / "segmentation.fits"))
    assert res.labels.dtype == np.int32 and res.params["one_piece"] and res.params["n_tiles"] == 1
    assert isinstance(res.catalog, QTable) and len(res.catalog) == len(Table.read(tmp_path / "s" / "catalog.ecsv"))
    assert str(res.catalog["x"].unit) == "pix" and "score" in res.catalog.colnames
    sky = res.catalog["sky"][0]
    ra, dec = arrays["wcs"].pixel_to_world_values(res.catalog["x"][0].value, res.catalog["y"][0].value)
    assert sky.ra.deg == pytest.approx(float(ra)) and sky.dec.deg == pytest.approx(float(dec))
    from photutils.segmentation import SegmentationImage

    assert isinstance(res.segm, SegmentationImage) and res.segm.nlabels == res.n_objects
    assert "sep" in repr(res) and "objects" in repr(res)
    html = res._repr_html_()
    assert "<table>" in html and "data:image/png;base64," in html


def test_nddata_brings_its_uncertainty_mask_and_wcs(arrays: dict) -> None:
    img, rms = arrays["img"], arrays["rms"]
    mask = np.zeros(img.shape, bool)
    mask[:, :40] = True
    base = astrostatlearn.segment(img, rms, method="sep", mask=mask, wcs=arrays["wcs"])
    for unc in (StdDevUncertainty(rms), VarianceUncertainty(rms**2), InverseVariance(1 / rms**2)):
        res = astrostatlearn.segment(CCDData(img, unit="adu", uncertainty=unc, mask=mask, wcs=arrays["wcs"]), method="sep")
        assert np.array_equal(res.labels, base.labels), type(unc).__name__
    assert not base.labels[:, :40].any()  # masked pixels are missing data
    weight = (1 / rms**2).astype(np.float32)
    weight[:, :40] = 0.0  # a weight of 0 is no data, as the mask says
    res = astrostatlearn.segment(CCDData(img, unit="adu", uncertainty=InverseVariance(weight), wcs=arrays["wcs"]),
                                 method="sep")
    assert np.array_equal(res.labels, base.labels)
    assert "sky" in base.catalog.colnames
    with pytest.raises(InputError, match="unsupported NDData uncertainty"):
        astrostatlearn.segment(NDData(img, uncertainty=UnknownUncertainty(rms)), method="sep")


def test_a_ccddata_header_zeropoint_gives_magnitudes_and_the_keyword_overrides_it(arrays: dict) -> None:
    img, rms = arrays["img"], arrays["rms"]
    bare = astrostatlearn.segment(img, rms, method="sep")
    assert "mag" not in bare.catalog.colnames
    ccd = CCDData(img, unit="adu", uncertainty=StdDevUncertainty(rms), meta={"MAGZERO": 26.0})
    header, given = (astrostatlearn.segment(ccd, method="sep", zeropoint=zp) for zp in (None, 24.0))
    flux = np.asarray(header.catalog["flux"])
    ok = flux > 0
    np.testing.assert_allclose(np.asarray(header.catalog["mag"])[ok], 26.0 - 2.5 * np.log10(flux[ok]), atol=1e-9)
    np.testing.assert_allclose(np.asarray(given.catalog["mag"]) - np.asarray(header.catalog["mag"]), -2.0, atol=1e-9)
    assert str(header.catalog["mag"].unit) == "mag" and ok.sum() > 20
    kron = astrostatlearn.segment(ccd, method="sep", kron=True).catalog
    assert np.all(np.isfinite(kron["mag_auto"]) == np.isfinite(kron["flux_auto"]))
    assert np.nanmedian(np.asarray(kron["mag_auto"]) - np.asarray(kron["mag"])) < -0.05  # Kron holds the wings


def test_bad_arrays_raise_one_clear_value_error(arrays: dict) -> None:
    img = arrays["img"]
    cases = [((img[0],), {}, "2-D"), ((img.astype(str),), {}, "numbers"), ((img, img[:10]), {}, "rms has shape"),
             ((img,), {"mask": np.zeros((3, 3), bool)}, "mask has shape"), ((img,), {"wcs": "north"}, "astropy WCS"),
             ((img,), {"method": "magic"}, "unknown method"), ((img,), {"options": {"nonsense": 1}}, "no option")]
    for args, kw, text in cases:
        with pytest.raises(ValueError, match=text) as info:
            astrostatlearn.segment(*args, **{"method": "sep", **kw})
        assert isinstance(info.value, InputError) and "\n" not in str(info.value)
    bad_rms = arrays["rms"].copy()
    bad_rms[10, 10] = -1
    with pytest.raises(InputError, match="rms"):  # the same validation layer as the CLI
        astrostatlearn.segment(img, bad_rms, method="sep")


def test_simulate_and_evaluate_in_memory(sim_field: Path) -> None:
    sim = astrostatlearn.simulate(512, seed=11, workers=1)
    assert np.array_equal(sim.img, fits.getdata(sim_field / "img.fits"))  # the same field as the CLI's
    assert np.array_equal(sim.true, fits.getdata(sim_field / "true.fits"))
    assert len(sim.truth) == len(Table.read(sim_field / "truth.ecsv")) and sim.wcs.has_celestial
    res = astrostatlearn.segment(sim.img, sim.rms, method="sep")
    ev = astrostatlearn.evaluate(sim, res, coco=False)
    assert "mag" in ev.binned and 0 < ev.panoptic["galaxy"]["pq"] < 1
    table = ev.to_table()
    row = table[(table["group"] == "panoptic galaxy") & (table["metric"] == "pq")]
    assert float(row["value"][0]) == pytest.approx(ev.panoptic["galaxy"]["pq"])
    assert ev.to_dict()["instance"]["tp"] == ev.detection["tp"] and "PQ" in repr(ev)
    by_snr = astrostatlearn.evaluate(sim.true, res.labels, image=sim.img, rms=sim.rms, coco=False)
    assert "snr" in by_snr.binned and "mag" not in by_snr.binned
    with pytest.raises(InputError):
        astrostatlearn.evaluate(sim.true, res.labels[:100], coco=False)


def test_inject_in_memory(tmp_path: Path) -> None:
    from tests.inject.test_inject import star_field

    path = star_field(tmp_path / "stars.fits")
    res = astrostatlearn.inject(path, n=8, realisations=2, seed=4)
    assert len(res.realisations) == 2 and "InjectionResult" in repr(res)
    first = res.realisations[0]
    assert first.img.shape == (400, 400) and len(first.truth) == 8 and first.params["ignore"].dtype == bool
    assert not (first.true > 0)[first.params["ignore"]].any()
    arr = astrostatlearn.inject(fits.getdata(path), n=4, realisations=1, psf_fwhm=3.5)  # an array works too
    assert arr.description["psf"]["source"].startswith("moffat")
    assert not arr.description["zeropoint_known"]
    data, header = fits.getdata(path, header=True)  # MAGZERO 27 in the header
    ccd = astrostatlearn.inject(CCDData(data, unit="adu", meta=header), n=4, realisations=1, psf_fwhm=3.5)
    assert ccd.description["zeropoint"] == 27.0 and ccd.description["zeropoint_known"]


def test_callable_packages_keep_their_modules() -> None:
    from astrostatlearn.segment import segment_field
    from astrostatlearn.simulate import simulate_field

    assert callable(astrostatlearn.segment) and astrostatlearn.segment.segment_field is segment_field
    assert callable(astrostatlearn.simulate) and astrostatlearn.simulate.simulate_field is simulate_field
