"""The isophote trim of the learned methods' masks (methods/isophote.py)."""

from __future__ import annotations

import numpy as np
import pytest

from astrostatlearn.errors import InputError
from astrostatlearn.methods.isophote import check_isophote, smoothed_signal, trim_to_isophote


def _galaxy(shape: tuple[int, int] = (160, 160), peak: float = 6.0, scale: float = 8.0) -> np.ndarray:
    """A noiseless exponential disc at the centre, in units of the noise sigma."""
    yy, xx = np.indices(shape)
    r = np.hypot(yy - shape[0] / 2, xx - shape[1] / 2)
    return peak * np.exp(-r / scale)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


def test_an_oversized_mask_shrinks_to_the_level_isophote() -> None:
    model = _galaxy()
    truth = model > 1.0  # the truth's rule: the noiseless image above 1 sigma
    rng = np.random.default_rng(0)
    signal = model + rng.standard_normal(model.shape)
    err = np.ones(model.shape)
    yy, xx = np.indices(model.shape)
    labels = (np.hypot(yy - 80, xx - 80) < 3 * np.sqrt(truth.sum() / np.pi)).astype(np.int32) * 7  # 3x the radius
    valid = np.ones(model.shape, bool)
    out = trim_to_isophote(labels, signal, err, valid, 0.5)
    assert set(np.unique(out)) == {0, 7}  # the ID is kept
    assert np.all(out[labels == 0] == 0)  # nothing is added
    assert _iou(labels > 0, truth) < 0.15
    assert _iou(out > 0, model > 0.5) > 0.75  # the mask now ends near the half-sigma isophote,
    assert _iou(out > 0, truth) > 0.45  # (14.3 px against 19.9 px: IoU 0.52 at best)
    assert (out[truth] > 0).mean() > 0.97  # and the true one stays inside it


def test_bright_objects_keep_their_masks_and_none_keeps_everything() -> None:
    model = _galaxy(peak=500.0, scale=3.0)
    labels = (model > 1.0).astype(np.int32)
    signal = model + np.random.default_rng(1).standard_normal(model.shape)
    valid = np.ones(model.shape, bool)
    out = trim_to_isophote(labels, signal, np.ones(model.shape), valid, 0.5)
    assert (out > 0).sum() >= 0.97 * labels.sum()
    assert trim_to_isophote(labels, signal, np.ones(model.shape), valid, None) is labels


def test_an_object_is_trimmed_but_never_emptied() -> None:
    """The significance cut decides which objects exist: an object whose every pixel is below the level
    keeps its mask, while a neighbour's faint wing goes."""
    signal = np.zeros((80, 80))
    signal[10:30, 10:30] = 0.2  # object 1: a faint plateau, every pixel below half a sigma
    signal[50:60, 50:60] = 20.0  # object 2: a bright core, with a wide, empty wing in its mask
    labels = np.zeros((80, 80), np.int32)
    labels[10:30, 10:30] = 1
    labels[40:75, 40:75] = 2
    out = trim_to_isophote(labels, signal, np.ones((80, 80)), np.ones((80, 80), bool), 0.5)
    assert np.array_equal(out == 1, labels == 1)
    assert (out[50:60, 50:60] == 2).all() and 100 <= (out == 2).sum() < 0.5 * (labels == 2).sum()


def test_pixels_without_data_are_never_trimmed_and_nan_does_not_spread() -> None:
    labels = np.ones((60, 60), np.int32)
    signal = np.zeros((60, 60))
    signal[:, :20] = np.nan  # no data on the left
    valid = np.isfinite(signal)
    err = np.ones((60, 60))
    err[40:, 20:] = 0.0  # no usable noise there
    out = trim_to_isophote(labels, signal, err, valid, 0.5)
    assert np.all(out[:, :20] == 1) and np.all(out[40:, 20:] == 1)
    assert np.all(out[:40, 20:] == 0)  # a flat zero signal is below half a sigma everywhere else


def test_smoothing_uses_valid_pixels_only() -> None:
    signal = np.full((40, 40), 3.0)
    valid = np.ones((40, 40), bool)
    valid[:, :10] = False
    signal[:, :10] = -1e6  # junk where there is no data must not leak into its neighbours
    smooth = smoothed_signal(signal, valid)
    np.testing.assert_allclose(smooth[:, 10:], 3.0, rtol=1e-5)
    assert np.all(np.isnan(smooth[:, :3]))  # no valid pixel within the kernel


@pytest.mark.parametrize("level", [0, -1.0, "half", True])
def test_bad_levels_are_refused(level: object) -> None:
    with pytest.raises(InputError, match="isophote"):
        check_isophote(level)  # type: ignore[arg-type]


def test_good_levels_pass() -> None:
    check_isophote(None)
    check_isophote(0.5)
    check_isophote(1)


def test_the_shipped_unet_masks_follow_the_isophote_on_finely_sampled_images(tmp_path) -> None:
    """At 0.03" pixels (finer than any training field) the U-Net paints resolved galaxies far
    beyond the truth's 1-sigma isophote; the trim (the default) brings its masks back to it."""
    from astropy.io import fits

    import astrostatlearn
    from astrostatlearn.simulate import get_preset, simulate_field

    preset = get_preset("euclid-vis").with_overrides(pixel_scale=0.03, psf_fwhm=0.08, density=200.0)
    simulate_field(tmp_path / "f", 1024, seed=12, preset=preset, workers=0, progress=False)
    img, rms, true = (fits.getdata(tmp_path / "f" / f"{n}.fits") for n in ("img", "rms", "true"))
    assert (true > 0).sum() > 5000  # resolved galaxies to segment
    trimmed = astrostatlearn.segment(img, rms, method="unet", tile=1024, workers=1).labels
    untrimmed = astrostatlearn.segment(img, rms, method="unet", tile=1024, workers=1,
                                       options={"isophote": None}).labels
    assert np.all(trimmed[untrimmed == 0] == 0)  # the trim only takes pixels away
    assert _iou(trimmed > 0, true > 0) > _iou(untrimmed > 0, true > 0) + 0.1  # 0.68 against 0.46
