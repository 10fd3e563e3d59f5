"""Kron (AUTO) photometry: photutils' kron_flux on isolated sources, neighbours masked and mirrored
as SExtractor's MASK_TYPE CORRECT does, apertures cut by the border flagged, the same fluxes
whatever the tiling."""

from pathlib import Path

import numpy as np
import pytest
from astropy.table import Table
from scipy import ndimage

from astrostatlearn.field import Window
from astrostatlearn.segment.catalog import FLAG_APER_TRUNC, labelled_pixels, measure_pixels
from astrostatlearn.segment import kron
from astrostatlearn.segment.kron import add_kron_columns, mirrored_neighbour_flux


def _gaussians(shape: tuple[int, int], sources: list[tuple[float, float, float, float]],
               noise: float, isophote: float = 3.0) -> tuple[np.ndarray, np.ndarray]:
    """Elliptical Gaussians (y, x, total flux, sigma along x; sigma along y = 0.6 of it) on white
    noise, and their labels: the ``isophote``-sigma isophote of the noiseless image, one ID each."""
    yy, xx = np.mgrid[: shape[0], : shape[1]].astype(float)
    model = np.zeros(shape)
    for y, x, flux, s in sources:
        model += flux / (2 * np.pi * s * 0.6 * s) * np.exp(-0.5 * (((xx - x) / s) ** 2 + ((yy - y) / (0.6 * s)) ** 2))
    labels, _ = ndimage.label(model > isophote * noise)
    img = model + np.random.default_rng(0).normal(0, noise, shape)
    return img.astype(np.float32), labels.astype(np.int32)


def _rows_with_kron(img: np.ndarray, labels: np.ndarray, noise: float, window: Window | None = None) -> dict:
    window = window or Window(0, img.shape[0], 0, img.shape[1])
    pix, ids = labelled_pixels(labels)
    rows = measure_pixels(pix, ids, labels.shape, img, noise, window)
    rows["flags"] = np.zeros(len(rows["id"]), np.int64)
    add_kron_columns(rows, img, noise, None, labels, pix, ids, window.y0, window.x0)
    return rows


def test_isolated_sources_get_photutils_kron_flux_and_nearly_all_their_light() -> None:
    from photutils.segmentation import SegmentationImage, SourceCatalog

    sources = [(60.0, 60.0, 4000.0, 3.0), (60.0, 180.0, 9000.0, 5.0), (170.0, 110.0, 2500.0, 2.0)]
    img, labels = _gaussians((240, 240), sources, noise=0.5)
    rows = _rows_with_kron(img, labels, 0.5)
    assert len(rows["id"]) == 3
    ref = SourceCatalog(img, SegmentationImage(labels), aperture_mask_method="mask")
    # photutils' default kron_params (2.5, 1.4) clip the radius at 1.4, as SExtractor's
    # PHOT_AUTOPARAMS 2.5, 3.5 do the aperture (3.5 = 2.5 x 1.4); a Gaussian's radius is ~1.25
    np.testing.assert_allclose(np.maximum(rows["kron_radius"], 1.4), ref.kron_radius.value, rtol=0.02)
    assert np.all(np.abs(rows["kron_radius"] - np.sqrt(np.pi / 2)) < 0.08)
    np.testing.assert_allclose(rows["flux_auto"], ref.kron_flux, rtol=0.02)
    true = np.array([f for (_, _, f, _) in sources])
    order = np.argsort(rows["x"] + 1000 * (rows["y"] > 100))  # the sources in the order they were listed
    assert np.all(np.abs(rows["flux_auto"][order] / true - 1) < 0.06)  # a Kron aperture holds ~95-99%
    assert np.all(rows["flux"][order] < rows["flux_auto"][order])  # the isophote misses the wings
    assert (rows["flags"] == 0).all()
    assert np.all(rows["flux_auto_err"] > 0.5 * np.sqrt(np.pi * rows["semimajor_sigma"] * rows["semiminor_sigma"]))


def test_a_neighbours_light_is_masked_and_a_cut_aperture_is_flagged() -> None:
    sources = [(60.0, 60.0, 6000.0, 3.0), (60.0, 78.0, 6000.0, 3.0), (60.0, 236.0, 6000.0, 4.0)]
    img, labels = _gaussians((120, 240), sources, noise=0.3, isophote=30.0)  # two segments, 18 px apart
    rows = _rows_with_kron(img, labels, 0.3)
    assert len(rows["id"]) == 3, "the pair must be two segments"
    left, right, edge = np.argsort(rows["x"])
    for k in (left, right):  # each keeps its own light, its neighbour's pixels masked
        assert 0.9 * 6000 < rows["flux_auto"][k] < 1.1 * 6000, rows["flux_auto"]
    assert rows["flags"][edge] & FLAG_APER_TRUNC and not rows["flags"][left] & FLAG_APER_TRUNC


def test_mirroring_fills_exactly_the_neighbours_pixels_with_usable_mirrors() -> None:
    """On a flat image of ones, the aperture's own and sky pixels (sep's sum with the segmentation map) plus the
    mirrored flux is the whole aperture, when every mirror is usable; a mirror on another object, outside the
    window or without data adds nothing."""
    import sep

    data = np.ones((60, 60), np.float32)
    seg = np.zeros((60, 60), np.int32)
    seg[25:36, 25:36] = 1
    seg[25:36, 36:45] = 2  # a neighbour on the right, inside the aperture
    args = (np.array([30.0]), np.array([30.0]), np.array([3.0]), np.array([2.0]), np.array([0.3]))
    r = np.array([3.0])
    own, _, _ = sep.sum_ellipse(data, *args, r, seg_id=np.array([1], np.int32), segmap=seg, subpix=1)
    whole, _, _ = sep.sum_ellipse(data, *args, r, subpix=1)
    extra, var = mirrored_neighbour_flux(data, 0.5, None, seg, np.array([1], np.int32), *args, r)
    assert extra[0] > 10 and own[0] + extra[0] == pytest.approx(whole[0])
    assert var[0] == pytest.approx(0.25 * extra[0])  # one pixel's variance per mirrored pixel
    blocked = seg.copy()
    blocked[25:36, 15:25] = 3  # the mirrors now lie on a third object
    assert mirrored_neighbour_flux(data, 0.5, None, blocked, np.array([1], np.int32), *args, r)[0][0] == 0
    no_data = np.zeros((60, 60), np.uint8)
    no_data[:, :25] = 1
    assert mirrored_neighbour_flux(data, 0.5, no_data, seg, np.array([1], np.int32), *args, r)[0][0] == 0
    edge = (np.array([0.0]), np.array([30.0]), np.array([3.0]), np.array([2.0]), np.array([0.0]))
    side = np.zeros((60, 60), np.int32)
    side[:, :1], side[:, 1:9] = 1, 2  # centred on the first column: every mirror falls left of the window
    assert mirrored_neighbour_flux(data, 0.5, None, side, np.array([1], np.int32), *edge, r)[0][0] == 0


def test_a_neighbour_segment_over_a_galaxys_wing_is_filled_by_mirroring(monkeypatch) -> None:
    """A neighbour's segment covering a galaxy's right wing (here holding no light of its own): the masked sum
    misses that wing, the mirrored one recovers the isolated galaxy's Kron flux."""
    img, labels = _gaussians((120, 120), [(60.0, 60.0, 3000.0, 3.0)], noise=0.3, isophote=3.0)
    alone = _rows_with_kron(img, labels, 0.3)["flux_auto"][0]
    labels[:, 66:] = 0
    labels[40:80, 66:90] = 2
    mirrored = _rows_with_kron(img, labels, 0.3)["flux_auto"][0]
    monkeypatch.setattr(kron, "mirrored_neighbour_flux", lambda *a: (np.zeros(a[4].size), np.zeros(a[4].size)))
    masked = _rows_with_kron(img, labels, 0.3)["flux_auto"][0]
    assert abs(mirrored - alone) < 0.01 * alone < 0.5 * (alone - masked), (alone, mirrored, masked)


def test_no_objects_and_objects_without_a_shape_get_empty_or_nan_columns() -> None:
    img = np.zeros((40, 40), np.float32)
    labels = np.zeros((40, 40), np.int32)
    rows = _rows_with_kron(img, labels, 1.0)
    assert all(rows[c].size == 0 for c in ("flux_auto", "kron_radius"))
    labels[10:13, 10:13] = 1
    img[10:13, 10:13] = -1.0  # no positive pixel: no centroid
    rows = _rows_with_kron(img, labels, 1.0)
    assert np.isnan(rows["flux_auto"]).all() and rows["flags"][0] == 0


@pytest.mark.parametrize("method", ["sep", "unet"])
def test_kron_fluxes_do_not_depend_on_the_tiling(sim_field: Path, tmp_path: Path, method: str) -> None:
    from astrostatlearn.field import Field
    from astrostatlearn.methods import default_segmenter
    from astrostatlearn.segment import segment_field

    cats = {}
    for tile in (128, 512):
        with Field.open(sim_field) as f:
            seg = default_segmenter(method)
            variant = seg.trained_variant or seg.default_variant
            segment_field(f, seg, tmp_path / str(tile), variant=variant, tile=tile, scheduler="threads", workers=1,
                          kron=True)
        cats[tile] = Table.read(tmp_path / str(tile) / "catalog.ecsv")
    a, b = cats[128], cats[512]
    assert {"flux_auto", "mag_auto", "kron_radius"} <= set(a.colnames)  # mag_auto: the field has a zero-point
    from scipy.spatial import cKDTree

    placed = [np.isfinite(np.asarray(t["x"], float)) for t in (a, b)]
    xy = [np.c_[np.asarray(t["x"], float), np.asarray(t["y"], float)][p] for t, p in zip((a, b), placed)]
    dist, k = cKDTree(xy[1]).query(xy[0])
    area_a, area_b = np.asarray(a["area"])[placed[0]], np.asarray(b["area"])[placed[1]][k]
    same = (dist < 1e-6) & (area_a == area_b)  # the same segment in both runs
    assert same.sum() > 0.7 * len(b)
    fa = np.asarray(a["flux_auto"])[placed[0]][same]
    fb = np.asarray(b["flux_auto"])[placed[1]][k][same]
    close = np.isclose(fa, fb, rtol=1e-3)
    assert close.mean() > 0.95, np.c_[fa, fb][~close][:5]
