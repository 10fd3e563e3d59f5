"""The tile catalogue's columns equal photutils' SourceCatalog on the same segments and data."""

import numpy as np
import pytest
from photutils.segmentation import SegmentationImage, SourceCatalog
from scipy import ndimage

from astrostatlearn.field import Window
from astrostatlearn.segment.catalog import measure


@pytest.mark.parametrize("seed", range(4))
def test_measure_equals_photutils_source_catalog(seed: int) -> None:
    rng = np.random.default_rng(seed)
    sky = ndimage.gaussian_filter(rng.normal(size=(180, 150)), 2.5)
    labels, n = ndimage.label(sky > 0.04)
    labels[5, 5:9] = n + 7          # a one-pixel-thin object (SExtractor's 1/12 fix)
    labels[150, 140] = n + 8        # a single pixel
    data = sky * 40 + rng.normal(scale=0.3, size=sky.shape)  # some negative pixels inside objects
    data[labels == n + 8] = -1.0    # an object with no positive pixel: no centroid
    error = np.abs(rng.normal(0.5, 0.1, size=sky.shape))
    window = Window(100, 280, 1000, 1150)
    ours = measure(labels.astype(np.int32), data, error, window)
    ref = SourceCatalog(data, SegmentationImage(labels.astype(np.int32)), error=error)
    assert len(ours) == len(ref.label) > 20
    np.testing.assert_array_equal(ours["id"], ref.label)
    np.testing.assert_allclose(ours["x"], ref.x_centroid + window.x0, rtol=0, atol=1e-8)
    np.testing.assert_allclose(ours["y"], ref.y_centroid + window.y0, rtol=0, atol=1e-8)
    pairs = [("flux", ref.segment_flux), ("flux_err", ref.segment_flux_err), ("area", ref.area.value),
             ("semimajor_sigma", ref.semimajor_axis.value), ("semiminor_sigma", ref.semiminor_axis.value),
             ("ellipticity", ref.ellipticity.value)]
    turn = (np.asarray(ours["orientation"], float) - ref.orientation.value + 180) % 360 - 180  # 0 and 360 are one angle
    assert np.nanmax(np.abs(turn)) < 1e-6
    for col, expected in pairs:
        np.testing.assert_allclose(np.asarray(ours[col], float), np.asarray(expected, float), rtol=1e-7, atol=1e-7,
                                   equal_nan=True, err_msg=col)


@pytest.mark.parametrize("variant", ["raw", "snr", "norm", "soft"])
def test_tile_noise_is_the_rms_propagated_through_the_variant(sim_field, variant: str) -> None:
    """raw and snr take their exact noise directly (rms; rms / sky rms, the sky rms fixed); it
    equals |f(img + rms) - f(img - rms)| / 2."""
    from astrostatlearn.field import Field
    from astrostatlearn.preprocess import fit_variant
    from astrostatlearn.segment import BackgroundMesh
    from astrostatlearn.segment.tiles import channel0_noise, sky_of

    with Field.open(sim_field) as f:
        pre = fit_variant(f, variant)
        mesh = BackgroundMesh.from_field(f, pre)
        w = Window(0, 256, 0, 256)
        img, rms = f.read_img(w).astype(np.float32), f.read_rms(w).astype(np.float32)
    mesh_rms = mesh.rms_at(w)
    sky = sky_of(pre, img, rms, w)
    assert (sky is not None) == (variant == "snr")  # the simulator's rms carries source noise
    err = channel0_noise(pre, img, rms, mesh, w, sky)
    ref = np.abs(pre.apply(img + rms, rms, sky=sky)[0] - pre.apply(img - rms, rms, sky=sky)[0]) / 2.0
    ref = np.where(ref > 1e-3 * mesh_rms, ref, mesh_rms)
    np.testing.assert_allclose(err, ref, rtol=1e-5, atol=1e-6 * float(np.abs(ref).max()))
    assert (pre.linear_noise(rms) is not None) == (variant in ("raw", "snr"))


def test_score_columns_equal_ndimage_mean_and_maximum() -> None:
    rng = np.random.default_rng(5)
    labels, n = ndimage.label(ndimage.gaussian_filter(rng.normal(size=(120, 90)), 2) > 0.05)
    labels = labels.astype(np.int32)
    score = rng.random(labels.shape).astype(np.float32)
    t = measure(labels, rng.normal(size=labels.shape), None, Window(0, 120, 0, 90), score)
    ids = np.arange(1, n + 1)
    assert n > 10
    np.testing.assert_allclose(t["score"], ndimage.mean(score, labels, ids), rtol=1e-12)
    np.testing.assert_array_equal(t["max_score"], np.asarray(ndimage.maximum(score, labels, ids), float))


def test_ecsv_writer_round_trips_exactly() -> None:
    import io

    from astropy.table import Table

    from astrostatlearn.segment.catalog import ecsv_bytes, finish_catalog

    rng = np.random.default_rng(2)
    lab = np.zeros((64, 64), np.int32)
    lab[5:9, 5:12], lab[30:40, 20:25], lab[50:52, 50:60] = 1, 2, 3
    t = measure(lab, rng.normal(5, 1, lab.shape), np.ones(lab.shape), Window(100, 164, 7, 71))
    t["x"][0] = 1.0 / 3.0  # digits beyond float32 and repr's shortest form
    cat = finish_catalog([t], None, {"method": "sep"})
    back = Table.read(io.BytesIO(ecsv_bytes(cat)), format="ascii.ecsv")
    assert back.colnames == cat.colnames and back.meta == cat.meta
    for c in cat.colnames:
        assert back[c].dtype == cat[c].dtype and back[c].unit == cat[c].unit
        np.testing.assert_array_equal(np.asarray(back[c]), np.asarray(cat[c]))  # NaN == NaN here
    empty = Table.read(io.BytesIO(ecsv_bytes(cat[:0])), format="ascii.ecsv")
    assert len(empty) == 0 and empty.colnames == cat.colnames


def test_measure_from_the_owned_pixels_equals_measure_from_the_map() -> None:
    """The sparse path (the kept pixels own_objects hands over) gives the same rows as the map."""
    from astrostatlearn.segment import own_objects

    rng = np.random.default_rng(3)
    labels, _ = ndimage.label(ndimage.gaussian_filter(rng.normal(size=(120, 140)), 2.0) > 0.05)
    window, core = Window(40, 160, 300, 440), Window(60, 140, 320, 420)
    owned = own_objects(labels.astype(np.int32), window, core, (1000, 1000))
    assert owned.n_objects > 5 and owned.pixels.size == np.count_nonzero(owned.labels)
    np.testing.assert_array_equal(owned.labels.ravel()[owned.pixels], owned.pixel_ids)
    data, error = rng.normal(3, 1, labels.shape), np.abs(rng.normal(1, 0.1, labels.shape))
    dense = measure(owned.labels, data, error, window)
    sparse = measure(owned.labels, data, error, window, sparse=(owned.pixels, owned.pixel_ids))
    for col in dense.colnames:
        np.testing.assert_array_equal(np.asarray(sparse[col]), np.asarray(dense[col]), err_msg=col)


def _tile_parts(rng: np.random.Generator) -> list[dict[str, np.ndarray]]:
    """Three tiles' rows (two objects each, IDs 1 and 2), with an empty tile second."""
    from astrostatlearn.segment.catalog import empty_rows, labelled_pixels, measure_pixels

    parts = []
    for k in range(3):
        lab = np.zeros((40, 40), np.int32)
        lab[2 + k:9, 5:12], lab[20:30, 20 + k:25] = 1, 2
        pix, ids = labelled_pixels(lab)
        parts.append(measure_pixels(pix, ids, lab.shape, rng.normal(5, 1, lab.shape), np.ones(lab.shape),
                                    Window(40 * k, 40 * k + 40, 0, 40)))
    parts.insert(1, empty_rows())
    return parts


def test_tiles_rows_join_as_their_tables_would() -> None:
    """Workers send plain columns; joined, they give the catalogue vstack gives of the same rows
    as tables (an empty tile among them), and a part with other columns still joins."""
    from astropy.table import Table

    from astrostatlearn.segment.catalog import finish_catalog

    parts = _tile_parts(np.random.default_rng(3))
    rows = finish_catalog(parts, None, {"method": "sep"})
    tables = finish_catalog([Table(p) for p in parts], None, {"method": "sep"})
    assert rows.colnames == tables.colnames and len(rows) == 6
    for c in rows.colnames:
        np.testing.assert_array_equal(np.asarray(rows[c]), np.asarray(tables[c]))
        assert rows[c].unit == tables[c].unit
    boxed = dict(parts[0], box_y0=np.zeros(2))
    mixed = finish_catalog([boxed, parts[2]], None, {})
    assert len(mixed) == 4 and "box_y0" in mixed.colnames


def test_catalog_text_formatted_part_by_part_equals_the_joined_table() -> None:
    """The rows formatted as each tile's part arrives (IDs final, an empty tile among them), with
    RA/Dec from a WCS and without, give the same bytes as the table of all parts; parts of mixed
    columns, and no rows at all, fall back to that table."""
    from astropy.wcs import WCS

    from astrostatlearn.segment.catalog import CatalogText, ecsv_bytes, empty_rows, finish_catalog

    parts = _tile_parts(np.random.default_rng(4))
    for k, part in enumerate(parts):  # the driver's running IDs
        part["id"] += 2 * k
    wcs = WCS(naxis=2)
    wcs.wcs.ctype, wcs.wcs.crval, wcs.wcs.crpix = ["RA---TAN", "DEC--TAN"], [150.0, 2.0], [20.0, 60.0]
    wcs.wcs.cdelt = [-5e-5, 5e-5]
    meta = {"method": "sep", "variant": "raw"}
    calls = []
    for w, zp in ((wcs, None), (None, None), (wcs, 26.5)):
        text = CatalogText(lambda w=w: calls.append(1) or w, zp)
        for n in range(1, len(parts) + 1):  # as the driver does: after each part
            text.format(parts[:n])
        expected = ecsv_bytes(finish_catalog(parts, w, meta, zp))
        assert text.ecsv(parts, meta) == expected
        assert (b"{name: ra," in expected) == (w is not None)
        assert (b"{name: mag, unit: mag," in expected) == (zp is not None)
    assert len(calls) == 3  # the WCS is asked for once per catalogue
    mixed = [dict(parts[0], box_y0=np.zeros(2)), parts[2]]
    text = CatalogText(lambda: wcs)
    text.format(mixed)
    assert text.ecsv(mixed, meta) == ecsv_bytes(finish_catalog(mixed, wcs, meta))
    assert CatalogText(lambda: wcs).ecsv([empty_rows()], meta) == ecsv_bytes(finish_catalog([], wcs, meta))


def test_magnitudes_are_sextractors_iso_magnitudes_and_nan_without_flux() -> None:
    from astrostatlearn.segment.catalog import finish_catalog, magnitudes

    mag, err = magnitudes(np.array([100.0, 1.0, 0.0, -5.0]), np.array([10.0, 0.5, 1.0, 1.0]), 25.0)
    np.testing.assert_allclose(mag[:2], [20.0, 25.0])
    np.testing.assert_allclose(err[:2], [1.0857362 * 0.1, 1.0857362 * 0.5], rtol=1e-6)
    assert np.isnan(mag[2:]).all() and np.isnan(err[2:]).all()
    parts = _tile_parts(np.random.default_rng(5))
    with_zp, without = finish_catalog(parts, None, {}, 30.0), finish_catalog(parts, None, {})
    assert "mag" not in without.colnames and "zeropoint" not in without.meta
    assert with_zp.meta["zeropoint"] == 30.0 and with_zp.colnames.index("mag") == with_zp.colnames.index("flux_err") + 1
    positive = np.asarray(with_zp["flux"]) > 0
    np.testing.assert_allclose(np.asarray(with_zp["mag"])[positive],
                               30.0 - 2.5 * np.log10(np.asarray(with_zp["flux"])[positive]))


def test_without_an_rms_map_flux_err_is_the_sky_rms_summed_over_the_segment(sim_field, tmp_path) -> None:
    """An image alone, as many real images come: each flux_err is sqrt(area) times the image's
    robust sky rms, which is the rms map's own level on a simulated field."""
    from astropy.io import fits
    from astropy.table import Table

    from astrostatlearn.field import Field
    from astrostatlearn.methods import make_segmenter
    from astrostatlearn.segment import segment_field

    rms = fits.getdata(sim_field / "rms.fits")
    with Field.open(img=sim_field / "img.fits") as f:
        segment_field(f, make_segmenter("sep"), tmp_path / "run", workers=1, progress=False)
    cat = Table.read(tmp_path / "run" / "catalog.ecsv")
    sigma = np.asarray(cat["flux_err"]) / np.sqrt(np.asarray(cat["area"]))
    assert len(cat) > 20 and np.isfinite(sigma).all()
    assert np.ptp(sigma) < 1e-6 * sigma[0]  # one rms for every pixel
    assert sigma[0] == pytest.approx(float(np.median(rms)), rel=0.1)
    assert "rms" in cat.meta["columns"]["flux_err"]


@pytest.mark.parametrize("method", ["sep", "unet"])  # variants raw and snr
def test_fluxes_are_measured_above_the_local_background_of_a_gradient(method: str) -> None:
    """Sources of one flux on a sky rising 25 sigma across the image: each catalogue flux is
    measured above the background mesh, so it does not follow the sky (the field's one global
    level would put hundreds of counts of sky into the fluxes on either side). The sources keep
    within the mesh's outermost cell centres, beyond which the mesh is constant."""
    import astrostatlearn

    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[:512, :512]
    img = 0.05 * xx + rng.normal(size=xx.shape)
    centres = [(y, x) for y in range(40, 512, 64) for x in range(40, 480, 64)]
    for y, x in centres:
        img += 500.0 / (2 * np.pi * 4.0) * np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / 8.0)
    res = astrostatlearn.segment(img.astype(np.float32), np.ones(img.shape, np.float32), method=method)
    cx, cy = (np.asarray(getattr(res.catalog[c], "value", res.catalog[c])) for c in ("x", "y"))
    near = [int(np.argmin(np.hypot(cx - x, cy - y))) for y, x in centres]
    ratio = np.asarray(res.catalog["flux"])[near] / 500.0
    assert len(set(near)) == len(centres)
    assert np.all((ratio > 0.75) & (ratio < 1.1)), ratio  # a segment holds most of a source's flux
    assert abs(np.corrcoef([x for _, x in centres], ratio)[0, 1]) < 0.5  # and none of the sky's slope


def test_object_flags_mark_the_border_no_data_and_the_halo_edge() -> None:
    from astrostatlearn.segment.catalog import FLAG_BORDER, FLAG_HALO, FLAG_NO_DATA, object_flags, labelled_pixels

    labels = np.zeros((20, 30), np.int32)
    labels[5:8, 0:3] = 1     # on the field's left border (the window starts at x = 0)
    labels[12:15, 10:13] = 2  # diagonal neighbour of a pixel with no data
    labels[3:6, 20:24] = 3   # clear of both
    labels[16:19, 25:28] = 4  # clear too, but its footprint reached the halo's edge
    invalid = np.zeros(labels.shape, bool)
    invalid[15, 13] = True
    pix, lab = labelled_pixels(labels)
    window = Window(40, 60, 0, 30)
    flags = object_flags(pix, lab, labels.shape, window, (100, 100), invalid, np.array([False, False, False, True]))
    np.testing.assert_array_equal(flags, [FLAG_BORDER, FLAG_NO_DATA, 0, FLAG_HALO])
    far = object_flags(pix, lab, labels.shape, Window(40, 60, 10, 40), (100, 100))  # the same away from the border
    np.testing.assert_array_equal(far, [0, 0, 0, 0])


def test_the_catalogue_flags_objects_beside_no_data_and_at_the_border(sim_field, tmp_path) -> None:
    from astropy.io import fits
    from astropy.table import Table

    from astrostatlearn.field import Field
    from astrostatlearn.methods import make_segmenter
    from astrostatlearn.segment import segment_field

    img = fits.getdata(sim_field / "img.fits").copy()
    img[:, 200:230] = np.nan
    fits.PrimaryHDU(img).writeto(tmp_path / "img.fits")
    with Field.open(img=tmp_path / "img.fits", rms=sim_field / "rms.fits") as f:
        segment_field(f, make_segmenter("sep"), tmp_path / "run", tile=256, workers=1, progress=False)
    seg = fits.getdata(tmp_path / "run" / "segmentation.fits")
    cat = Table.read(tmp_path / "run" / "catalog.ecsv")
    beside = np.unique(seg[:, [199, 230]])
    border = np.unique(np.r_[seg[0], seg[-1], seg[:, 0], seg[:, -1]])
    expected = 1 * np.isin(cat["id"], border) + 2 * np.isin(cat["id"], beside)
    assert np.count_nonzero(expected & 2) >= 1 and np.count_nonzero(expected & 1) >= 3
    np.testing.assert_array_equal(np.asarray(cat["flags"]) & 3, expected)


def test_catalogue_magnitudes_follow_the_header_zeropoint_and_the_truth(sim_field, tmp_path) -> None:
    """On a simulated field (MAGZP in its header), bright isolated objects' isophotal magnitudes
    are their true total magnitudes or a little fainter (the wings below the isophote), as
    SExtractor's MAG_ISO are; `segment --zeropoint` shifts every magnitude by the difference;
    an image with no zero-point card gets no magnitude columns."""
    from astropy.io import fits
    from astropy.table import Table
    from scipy.spatial import cKDTree

    from astrostatlearn.cli import app
    from typer.testing import CliRunner

    run = CliRunner()
    for name, extra in (("header", []), ("given", ["--zeropoint", "27", "--kron"])):
        res = run.invoke(app, ["segment", str(sim_field), "-m", "sep", "-o", str(tmp_path / name), "--workers", "1",
                               *extra])
        assert res.exit_code == 0, res.output
    header, given = (Table.read(tmp_path / n / "catalog.ecsv") for n in ("header", "given"))
    zp = fits.getheader(sim_field / "img.fits")["MAGZP"]
    assert header.meta["zeropoint"] == zp and given.meta["zeropoint"] == 27.0
    np.testing.assert_allclose(np.asarray(given["mag"]) - np.asarray(header["mag"]), 27.0 - zp, atol=1e-9)
    assert "mag_auto" not in header.colnames and {"flux_auto", "mag_auto", "kron_radius"} <= set(given.colnames)
    import json

    assert json.loads((tmp_path / "given" / "run.json").read_text())["kron"] is True
    truth = Table.read(sim_field / "truth.ecsv")
    dist, k = cKDTree(np.c_[truth["x"], truth["y"]]).query(np.c_[header["x"], header["y"]])
    true_mag = np.where((dist < 1.0) & (np.asarray(header["flags"]) == 0), np.asarray(truth["mag"])[k], np.inf)
    bright = np.argsort(true_mag)[:8]  # the eight brightest matched objects
    offset = np.asarray(header["mag"])[bright] - true_mag[bright]
    assert np.isfinite(offset).all()
    assert -0.05 < np.median(offset) < 0.3 and ((offset > -0.1) & (offset < 0.5)).sum() >= 6, offset
    img = fits.getdata(sim_field / "img.fits")
    fits.writeto(tmp_path / "bare.fits", img)  # no header cards at all
    res = run.invoke(app, ["segment", str(tmp_path / "bare.fits"), "-m", "sep", "-o", str(tmp_path / "bare"),
                           "--workers", "1"])
    assert res.exit_code == 0, res.output
    bare = Table.read(tmp_path / "bare" / "catalog.ecsv")
    assert "mag" not in bare.colnames and "zeropoint" not in bare.meta
