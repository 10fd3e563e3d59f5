from pathlib import Path

import numpy as np
import pytest

from astrostatlearn.errors import InputError
from astrostatlearn.methods import SEGMENTERS, Segmenter, load_segmenter, make_segmenter
from astrostatlearn.metrics import evaluate
from astrostatlearn.preprocess import VARIANTS

METHODS = ["photutils", "sep", "kmeans", "forest"]


def test_registry_lists_the_classical_methods() -> None:
    from astrostatlearn.methods import method_class, method_names

    assert set(METHODS) <= set(method_names())
    for name in METHODS:  # each is imported on first use and registers under its name
        assert method_class(name).name == name and SEGMENTERS[name] is method_class(name)
    with pytest.raises(InputError, match="unknown method"):
        make_segmenter("magic")
    with pytest.raises(InputError, match="bad parameters"):
        make_segmenter("sep", colour="red")


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("method", METHODS)
def test_every_method_runs_on_every_variant(tiles_by_variant, method: str, variant: str) -> None:
    train, test = tiles_by_variant[variant]
    seg = make_segmenter(method)
    if method == "forest":
        seg = make_segmenter(method, n_estimators=8, max_depth=8, samples_per_class=4000)
    seg.fit(train)
    pred = seg.predict(test)
    assert pred.labels.dtype == np.int32 and pred.labels.shape == test.valid.shape
    assert pred.labels.min() == 0
    if pred.score is not None:
        assert pred.score.dtype == np.float32 and pred.score.min() >= 0 and pred.score.max() <= 1
    ev = evaluate(test.truth, pred.labels, coco=False)
    # Each method finds real objects on every variant: better than chance by a wide margin.
    assert ev.pixel["iou"] > 0.3, ev.pixel
    assert ev.detection["tp"] >= 3, ev.detection


@pytest.mark.parametrize("method", METHODS)
def test_save_load_roundtrip(tiles_by_variant, method: str, tmp_path: Path) -> None:
    train, test = tiles_by_variant["soft+rms"]
    kw = {"n_estimators": 5, "max_depth": 6, "samples_per_class": 2000} if method == "forest" else {}
    seg = make_segmenter(method, **kw).fit(train)
    path = seg.save(tmp_path / "m.joblib")
    back = load_segmenter(path)
    assert type(back) is type(seg) and back.get_params() == seg.get_params()
    np.testing.assert_array_equal(back.predict(test).labels, seg.predict(test).labels)
    assert Segmenter.load(path).name == method


def test_fitting_rules(tiles_by_variant, tmp_path: Path) -> None:
    train, test = tiles_by_variant["raw"]
    with pytest.raises(InputError, match="not fitted"):
        make_segmenter("forest").predict(test)
    with pytest.raises(InputError, match="not fitted"):
        make_segmenter("kmeans").predict(test)
    no_truth = [type(t)(t.image, t.bkg, t.err, t.valid, t.window, t.channels, None) for t in train]
    with pytest.raises(InputError, match="truth"):
        make_segmenter("forest").fit(no_truth)
    km = make_segmenter("kmeans").fit(no_truth)  # unsupervised: no truth needed
    centers = km.scaler_.inverse_transform(km.kmeans_.cluster_centers_)
    assert km.galaxy_cluster_ == int(np.argmax(centers[:, 0]))  # the brightest (highest S/N) cluster is galaxy
    bad = tmp_path / "junk.joblib"
    bad.write_text("not a model")
    with pytest.raises(InputError, match="not a saved"):
        load_segmenter(bad)


def test_forest_beats_kmeans(tiles_by_variant) -> None:
    train, test = tiles_by_variant["soft+rms"]
    forest = make_segmenter("forest", n_estimators=20, samples_per_class=20000).fit(train)
    km = make_segmenter("kmeans").fit(train)
    f = evaluate(test.truth, forest.predict(test).labels, coco=False)
    k = evaluate(test.truth, km.predict(test).labels, coco=False)
    assert f.pixel["iou"] > k.pixel["iou"]


def test_forest_watershed_separates_touching_objects() -> None:
    """The forest's instance step (a watershed on the probability-weighted signal) splits two
    touching galaxies that one connected foreground region holds."""
    from astrostatlearn.methods.instances import watershed_instances

    y, x = np.mgrid[:64, :64]
    sig = np.exp(-((x - 25) ** 2 + (y - 32) ** 2) / 18.0) + np.exp(-((x - 39) ** 2 + (y - 32) ** 2) / 18.0)
    fg = sig > 0.05
    assert ndimage_label_count(fg) == 1
    lab = watershed_instances(fg, sig, min_area=5, min_distance=3)
    assert len(np.unique(lab[lab > 0])) == 2
    assert lab[32, 25] != lab[32, 39]


def ndimage_label_count(fg: np.ndarray) -> int:
    from scipy import ndimage

    return ndimage.label(fg, structure=np.ones((3, 3), bool))[1]


def test_sep_extracts_a_mostly_detected_window_again_with_a_larger_pixel_stack() -> None:
    """sep's first pixel stack holds an eighth of the window (at least 300 000 pixels); a window
    with more active pixels than that overflows it, and is extracted again with a stack of every
    pixel: the result is the whole object, not an error."""
    import sep

    from astrostatlearn.field import Window
    from astrostatlearn.methods import Tile

    n = 640
    img = np.zeros((n, n), np.float32)
    img[10:630, 10:630] = 20.0  # 384 400 detected pixels: more than the first stack's 300 000
    tile = Tile(img[None], np.zeros((n, n), np.float32), np.ones((n, n), np.float32), np.ones((n, n), bool),
                Window(0, n, 0, n))
    seg = make_segmenter("sep")
    sep.set_extract_pixstack(300_000)
    with pytest.raises(Exception, match="pixel buffer full"):
        sep.extract(img, 1.0, err=np.ones_like(img), segmentation_map=True)
    labels = seg.predict(tile).labels
    assert np.unique(labels).tolist() == [0, 1] and np.count_nonzero(labels) >= 620 * 620


def test_photutils_deblending_splits_blends() -> None:
    from astrostatlearn.field import Window
    from astrostatlearn.methods import Tile

    y, x = np.mgrid[:64, :64]
    img = 50 * np.exp(-((x - 26) ** 2 + (y - 32) ** 2) / 18.0) + 50 * np.exp(-((x - 38) ** 2 + (y - 32) ** 2) / 18.0)
    tile = Tile(img[None].astype(np.float32), np.zeros((64, 64), np.float32), np.ones((64, 64), np.float32),
                np.ones((64, 64), bool), Window(0, 64, 0, 64))
    assert len(np.unique(make_segmenter("photutils", deblend=False).predict(tile).labels)) == 2
    assert len(np.unique(make_segmenter("photutils").predict(tile).labels)) == 3
    assert len(np.unique(make_segmenter("sep").predict(tile).labels)) == 3


@pytest.mark.parametrize("fwhm", [1.5, 2.0, 3.3])
def test_detection_kernel_equals_astropy_gaussian2dkernel(fwhm: float) -> None:
    from astropy.convolution import Gaussian2DKernel

    from astrostatlearn.methods.detection import FWHM_TO_SIGMA, gaussian_kernel

    k = gaussian_kernel(fwhm)
    ref = Gaussian2DKernel(fwhm * FWHM_TO_SIGMA, x_size=k.shape[1], y_size=k.shape[0])
    ref.normalize()
    np.testing.assert_allclose(k, ref.array, atol=1e-7)
    assert k.shape[0] % 2 == 1 and k.sum() == pytest.approx(1.0)


@pytest.mark.parametrize("kernel", [
    "gauss", np.outer([1.0, 2.0, 5.0], [3.0, 1.0, 0.5, 0.2, 0.1]), np.array([[1.0, 2.0], [0.0, 3.0]])],
    ids=["gaussian", "separable-asymmetric", "not-separable"])
def test_filter_image_equals_scipy_convolve_with_nearest_edges(kernel) -> None:
    from scipy import ndimage

    from astrostatlearn.methods.detection import filter_image, gaussian_kernel

    k = gaussian_kernel(2.0) if isinstance(kernel, str) else kernel
    img = np.random.default_rng(0).normal(size=(70, 53)).astype(np.float32)
    ref = ndimage.convolve(img.astype(np.float64), k / k.sum(), mode="nearest")
    got = filter_image(img, k)
    assert got.dtype == np.float32 and got.shape == img.shape
    np.testing.assert_allclose(got, ref, atol=1e-6)


@pytest.mark.parametrize("sigma", [1.0, 2.0, 4.0])
@pytest.mark.parametrize("shape", [(70, 53), (5, 7)])
def test_gaussian_smooth_equals_scipy_gaussian_filter(sigma: float, shape: tuple[int, int]) -> None:
    """Also on an image smaller than the kernel, whose edges repeat as scipy's do."""
    from scipy import ndimage

    from astrostatlearn.methods.detection import gaussian_smooth

    img = np.random.default_rng(1).normal(size=shape).astype(np.float32)
    ref = ndimage.gaussian_filter(img.astype(np.float64), sigma, mode="nearest")
    np.testing.assert_allclose(gaussian_smooth(img, sigma), ref, atol=1e-6)


def test_sep_prefiltered_detection_agrees_with_seps_own_filter(tiles_by_variant) -> None:
    """predict filters the image itself (two 1-D passes) and hands sep the filtered image: the
    footprints must be sep's own, filtering with the kernel, up to the tile's edges (sep pads
    with zeros, we with the nearest pixel) and a rare deblending tie."""
    from astrostatlearn.methods.detection import filter_image

    _, tile = tiles_by_variant["raw"]
    seg = make_segmenter("sep")
    ref_objects, ref = seg.extract(tile)
    objects, got, filtered = seg.detect(tile)
    inner = (slice(4, -4), slice(4, -4))  # beyond the kernel's reach from the edges
    assert ((got > 0) == (ref > 0))[inner].mean() >= 0.999
    assert abs(len(objects) - len(ref_objects)) <= max(1, 0.02 * len(ref_objects))
    k = seg._kernel()
    np.testing.assert_array_equal(filtered, filter_image(seg.detection_image(tile), k / k.sum()))
    np.testing.assert_array_equal(seg.predict(tile).labels, got)


def test_sep_scores_the_image_it_detected_on_and_leaves_it_as_it_was(tiles_by_variant) -> None:
    """The sep score map filters the same detection image sep was given, so sep must not change
    it; with invalid pixels it is the background-subtracted image with 0 there."""
    from astrostatlearn.methods.detection import filter_image, snr_score

    _, tile = tiles_by_variant["raw"]
    seg = make_segmenter("sep")
    data = seg.detection_image(tile)
    before = data.copy()
    seg.extract(tile, data)
    np.testing.assert_array_equal(data, before)
    np.testing.assert_array_equal(data, tile.zero_invalid(tile.signal))
    tile.want_score = True
    kernel = seg._kernel() / seg._kernel().sum()
    expected = snr_score(filter_image(tile.zero_invalid(tile.signal), kernel), tile.err, kernel, seg.nsigma)
    np.testing.assert_array_equal(seg.predict(tile).score, expected)


@pytest.mark.parametrize("name, area", [("sep", "minarea"), ("photutils", "npixels")])
def test_the_thresholding_detectors_take_their_threshold_as_options(tiles_by_variant, name: str, area: str) -> None:
    """``-p nsigma=...`` (and the other SExtractor-like settings) reach the detection: a higher
    threshold or a larger minimum area finds fewer objects; a bad value is refused and leaves the
    segmenter as it was."""
    _, tile = tiles_by_variant["raw"]
    counts = []
    for options in ({}, {"nsigma": "3"}, {"nsigma": "3", area: "40"}):
        seg = make_segmenter(name).set_options(options)
        counts.append(len(np.unique(seg.predict(tile).labels)) - 1)
    assert counts[0] > counts[1] > counts[2] >= 0
    seg = make_segmenter(name)
    for bad in ({"nsigma": "-1"}, {"kernel_fwhm": "0"}, {area: "0"}):
        with pytest.raises(InputError):
            seg.set_options(bad)
        assert seg.nsigma == 1.0 and seg.kernel_fwhm == 2.0 and getattr(seg, area) == 5
