"""The whole-field background mesh: photutils' Background2D values, one checked pass, holes."""

from __future__ import annotations

import numpy as np
import pytest

from astrostatlearn.errors import InputError
from astrostatlearn.field import Field, Window
from astrostatlearn.field.arrays import ArrayImage
from astrostatlearn.preprocess import fit_variant
from astrostatlearn.segment.background import BackgroundMesh


def _sky(shape: tuple[int, int] = (256, 320), seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    img = 10.0 + 0.01 * xx + 0.02 * yy + rng.normal(0, 1.0, shape)
    img += (rng.random(shape) < 0.03) * rng.exponential(20, shape)
    return img.astype(np.float32)


def _field(img: np.ndarray, rms: np.ndarray | None = None) -> Field:
    return Field(ArrayImage(img), rms=None if rms is None else ArrayImage(rms))


def test_mesh_equals_photutils_background2d() -> None:
    from astropy.stats import SigmaClip
    from photutils.background import Background2D, SExtractorBackground, StdBackgroundRMS

    img = _sky()
    f = _field(img)
    mesh = BackgroundMesh.from_field(f, fit_variant(f, "raw"), box=32, filter_size=1)
    ref = Background2D(img, 32, filter_size=1, sigma_clip=SigmaClip(sigma=3.0, maxiters=10),
                       bkg_estimator=SExtractorBackground(), bkg_rms_estimator=StdBackgroundRMS(),
                       exclude_percentile=50.0)
    np.testing.assert_allclose(mesh.bkg, ref.background_mesh, atol=2e-3)
    np.testing.assert_allclose(mesh.rms, ref.background_rms_mesh, atol=2e-3)


def test_a_sampled_mesh_is_photutils_on_every_second_pixel_and_close_to_the_full_one() -> None:
    from astropy.stats import SigmaClip
    from photutils.background import Background2D, SExtractorBackground, StdBackgroundRMS

    from astrostatlearn.segment.background import sample_step

    img = _sky((512, 640))
    f = _field(img)
    pre = fit_variant(f, "raw")
    sampled = BackgroundMesh.from_field(f, pre, box=64, filter_size=1, sample=2)
    ref = Background2D(img[::2, ::2], 32, filter_size=1, sigma_clip=SigmaClip(sigma=3.0, maxiters=10),
                       bkg_estimator=SExtractorBackground(), bkg_rms_estimator=StdBackgroundRMS(),
                       exclude_percentile=50.0)
    np.testing.assert_allclose(sampled.bkg, ref.background_mesh, atol=2e-3)
    np.testing.assert_allclose(sampled.rms, ref.background_rms_mesh, atol=2e-3)
    full = BackgroundMesh.from_field(f, pre, box=64, sample=1)
    sampled = BackgroundMesh.from_field(f, pre, box=64, sample=2)
    assert sampled.bkg.shape == full.bkg.shape
    diff = np.abs(sampled.bkg - full.bkg)  # sky rms 1, 3% of pixels on sources: 1024 samples per cell
    assert diff.mean() < 0.08 and diff.max() < 0.3
    assert np.abs(sampled.rms / full.rms - 1).max() < 0.05
    assert (sample_step(64, 2), sample_step(45, 2), sample_step(24, 2), sample_step(64, 1)) == (2, 1, 1, 1)


def test_mesh_follows_a_gradient_and_interpolates_smoothly() -> None:
    img = _sky()
    f = _field(img)
    mesh = BackgroundMesh.from_field(f, fit_variant(f, "raw"), box=32)
    bkg, rms = mesh.at(Window(0, 256, 0, 320))
    yy, xx = np.mgrid[:256, :320]
    inner = (slice(48, 208), slice(48, 272))
    truth = 10.0 + 0.01 * xx + 0.02 * yy
    assert np.abs(bkg - truth).max() < 0.3  # the edges too: the filter and the last half cells go on linearly
    assert np.abs(rms[inner] - 1.0).max() < 0.15
    assert np.abs(np.diff(bkg, axis=1)).max() < 0.05  # bilinear: no steps at cell edges


def test_a_hole_of_nan_takes_the_nearest_cells() -> None:
    img = _sky()
    img[64:160, 96:224] = np.nan
    f = _field(img)
    mesh = BackgroundMesh.from_field(f, fit_variant(f, "raw"), box=32, filter_size=1)
    assert np.isfinite(mesh.bkg).all() and np.isfinite(mesh.rms).all()
    assert mesh.bkg[3, 5] == pytest.approx(mesh.bkg[1, 5], abs=0.5)  # filled, on the sky's level


@pytest.mark.parametrize("sample", [1, 2])
def test_a_raw_mesh_needs_no_statistics(sample: int) -> None:
    """``pre=None`` (channel 0 is the image: ``raw``) measures the mesh that the fitted variant
    gives, bit for bit, with a hole of NaN too, so ``segment`` can measure it
    while the statistics are computed; a variant that rescales the image gets another mesh."""
    from astrostatlearn.preprocess import channel0_is_image

    img = _sky((256, 384))
    img[40:90, 100:180] = np.nan
    rms = np.ones_like(img)
    f = _field(img, rms)
    assert channel0_is_image("raw") and not channel0_is_image("norm") and not channel0_is_image("bogus")
    fitted = BackgroundMesh.from_field(f, fit_variant(f, "raw"), box=32, sample=sample, check=True)
    free = BackgroundMesh.from_field(f, None, box=32, sample=sample, check=True)
    np.testing.assert_array_equal(free.bkg, fitted.bkg)
    np.testing.assert_array_equal(free.rms, fitted.rms)
    norm = BackgroundMesh.from_field(f, fit_variant(f, "norm"), box=32, sample=sample)
    assert not np.allclose(norm.bkg, free.bkg)


def test_check_names_a_bad_rms_pixel() -> None:
    img = _sky()
    rms = np.ones_like(img)
    rms[200, 17] = 0.0
    f = _field(img, rms)
    pre = fit_variant(f, "raw")
    BackgroundMesh.from_field(f, pre, box=32)  # no check: the mesh is made
    with pytest.raises(InputError, match="y=200, x=17"):
        BackgroundMesh.from_field(f, pre, box=32, check=True)


def test_at_is_bilinear_between_cell_centres_for_any_window() -> None:
    """Against scipy's order-1 interpolation of the mesh at the pixels' cell coordinates, for an
    offset window that spans partial cells: the rms everywhere (clamped to the outermost centres),
    the background between the outermost centres; beyond them the background goes on linearly,
    so a mesh that is a plane gives that plane at every pixel."""
    from scipy import ndimage

    rng = np.random.default_rng(3)
    mesh = BackgroundMesh(16, rng.normal(5, 1, (7, 9)).astype(np.float32),
                          rng.uniform(1, 2, (7, 9)).astype(np.float32), (112, 144))
    w = Window(5, 101, 13, 140)
    bkg, rms = mesh.at(w)
    yy, xx = np.mgrid[w.y0:w.y1, w.x0:w.x1]
    cy, cx = (yy - 7.5) / 16, (xx - 7.5) / 16
    between = (cy >= 0) & (cy <= 6) & (cx >= 0) & (cx <= 8)
    assert 0 < between.mean() < 1
    for got, cells, where in ((bkg, mesh.bkg, between), (rms, mesh.rms, np.ones_like(between))):
        ref = ndimage.map_coordinates(cells.astype(np.float64), [np.clip(cy, 0, 6), np.clip(cx, 0, 8)], order=1)
        assert got.dtype == np.float32 and got.shape == w.shape
        np.testing.assert_allclose(got[where], ref[where], rtol=1e-5, atol=1e-5)
    cells_y, cells_x = np.mgrid[:7, :9] * 16 + 7.5  # a mesh that is a plane, in field pixels
    plane = BackgroundMesh(16, (3.0 + 0.02 * cells_x - 0.05 * cells_y).astype(np.float32), mesh.rms, (112, 144))
    np.testing.assert_allclose(plane.background_at(Window(0, 112, 0, 144)),
                               3.0 + 0.02 * np.mgrid[:112, :144][1] - 0.05 * np.mgrid[:112, :144][0], atol=1e-4)
    assert rms.max() <= mesh.rms_max(w) <= mesh.rms.max()  # a bound of the window's interpolated rms
    inner = Window(40, 90, 60, 100)  # a pixel's background does not depend on the window holding it
    np.testing.assert_array_equal(mesh.background_at(inner), bkg[35:85, 47:87])


def test_worker_processes_measure_the_same_mesh_and_the_same_bad_pixel(tmp_path) -> None:
    """Blocks measured by a local process pool (a field on disk) equal the threads' mesh exactly;
    a bad rms pixel found in a worker is the same one-line error; an in-memory field, which no
    other process can open, falls back to threads."""
    from astrostatlearn.field import write_image
    from astrostatlearn.schedulers import local_process_pool

    img = _sky((200, 300))
    rms = np.ones_like(img)
    write_image(tmp_path / "img.fits", img)
    write_image(tmp_path / "rms.fits", rms)
    with Field.open(tmp_path) as f:
        assert f.file_paths == (str((tmp_path / "img.fits").resolve()), str((tmp_path / "rms.fits").resolve()))
        pre = fit_variant(f, "raw")
        threads = BackgroundMesh.from_field(f, pre, box=32, check=True)
        with local_process_pool("processes", 2) as pool:
            procs = BackgroundMesh.from_field(f, pre, box=32, check=True, pool=pool)
    np.testing.assert_array_equal(procs.bkg, threads.bkg)
    np.testing.assert_array_equal(procs.rms, threads.rms)
    rms[150, 17] = -1.0
    write_image(tmp_path / "rms.fits", rms, overwrite=True)
    with Field.open(tmp_path) as f, local_process_pool("processes", 2) as pool:
        with pytest.raises(InputError, match="y=150, x=17") as err:
            BackgroundMesh.from_field(f, fit_variant(f, "raw"), box=32, check=True, pool=pool)
    assert "\n" not in str(err.value) and "rms.fits" in str(err.value)
    memory = _field(img)
    assert memory.file_paths is None
    with local_process_pool("processes", 2) as pool:  # used only for fields on disk
        np.testing.assert_array_equal(BackgroundMesh.from_field(memory, fit_variant(memory, "raw"), box=32,
                                                                pool=pool).bkg,
                                      BackgroundMesh.from_field(memory, fit_variant(memory, "raw"), box=32).bkg)


@pytest.mark.parametrize("size", [3, 5, 4])
def test_the_mesh_median_filter_is_scipys(size: int) -> None:
    """The driver's numpy median filter equals ``scipy.ndimage.median_filter`` of the mesh padded
    by odd reflection (an even size, or a mesh too small to reflect: mode nearest), ties and edges
    included, and the driver's segment path imports no scipy."""
    import subprocess
    import sys

    from scipy import ndimage

    from astrostatlearn.segment.background import median_filter

    rng = np.random.default_rng(size)
    for shape in [(1, 1), (2, 7), (37, 29)]:
        mesh = rng.integers(0, 5, shape).astype(np.float32) + rng.normal(0, 1, shape).astype(np.float32) * (shape[0] > 2)
        got = median_filter(mesh, size)
        assert got.dtype == mesh.dtype
        r = size // 2
        if size % 2 and min(shape) > r:
            padded = np.pad(mesh, r, mode="reflect", reflect_type="odd")
            ref = ndimage.median_filter(padded, size, mode="nearest")[r:-r, r:-r]
        else:
            ref = ndimage.median_filter(mesh, size, mode="nearest")
        np.testing.assert_array_equal(got, ref)
    code = ("import sys, astrostatlearn.cli, astrostatlearn.segment.run, astrostatlearn.methods.sep_method; "
            "print('scipy' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60).stdout.strip() == "False"
