"""Segment significance with empty-aperture noise (methods/significance.py)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from astrostatlearn.methods.significance import aperture_noise_factors, drop_insignificant, segment_snr


def _correlated(shape: tuple[int, int], sigma: float, seed: int) -> np.ndarray:
    x = ndimage.gaussian_filter(np.random.default_rng(seed).standard_normal(shape), sigma)
    return x / x.std()  # unit per-pixel rms, as an rms map would claim


def test_white_noise_has_unit_factors_at_every_aperture() -> None:
    noise = np.random.default_rng(0).standard_normal((600, 600))
    areas, f = aperture_noise_factors(noise, np.ones(noise.shape, bool))
    assert areas.tolist() == [1, 4, 9, 16, 36, 64, 144, 256]
    np.testing.assert_allclose(f, 1.0, atol=0.06)


def test_correlated_noise_factors_grow_with_the_aperture() -> None:
    areas, f = aperture_noise_factors(_correlated((600, 600), 1.0, 1), np.ones((600, 600), bool))
    assert f[0] == pytest.approx(1.0, abs=0.06)
    assert np.all(np.diff(f) > 0) and f[areas == 16][0] > 2.0, f


def test_sky_boxes_touching_sources_are_not_used() -> None:
    noise = np.random.default_rng(2).standard_normal((400, 400))
    sky = np.ones(noise.shape, bool)
    noise[::20, :] += 50.0  # bright rows every 20 pixels, masked out of the sky
    sky[::20, :] = False
    areas, f = aperture_noise_factors(noise, sky)
    assert areas.max() == 16 * 16 and np.all(np.abs(f - 1.0) < 0.08), f
    areas, _ = aperture_noise_factors(noise, np.zeros(noise.shape, bool))
    assert areas.size == 0


def _scene(noise: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    labels = np.zeros(noise.shape, np.int32)
    signal = noise.copy()
    labels[100:104, 100:104] = 1  # 16 px, flux 200: S/N 50
    signal[100:104, 100:104] += 200 / 16
    labels[200:204, 200:204] = 2  # 16 px, flux exactly 26 (noise of zero sum): white S/N 6.5
    blob = noise[200:204, 200:204]
    signal[200:204, 200:204] = blob - blob.mean() + 26 / 16
    labels[300:304, 300:304] = 3  # 16 px of pure noise
    labels[50:54, 300:304] = 7    # negative flux
    signal[50:54, 300:304] -= 3.0
    return labels, signal


def test_faint_and_negative_segments_are_dropped_and_ids_kept() -> None:
    noise = np.random.default_rng(3).standard_normal((400, 400))
    labels, signal = _scene(noise)
    err, valid = np.ones_like(signal), np.ones(signal.shape, bool)
    snr = segment_snr(labels, signal, err, valid)
    assert snr[1] == pytest.approx(50, rel=0.1) and snr[2] == pytest.approx(6.5, rel=0.1) and snr[7] < 0
    kept = drop_insignificant(labels, signal, err, valid, 5.0)
    assert abs(snr[3]) < 4 and set(np.unique(kept)) == {0, 1, 2}
    assert kept.dtype == labels.dtype and np.array_equal(kept[labels == 1], labels[labels == 1])
    assert np.array_equal(drop_insignificant(labels, signal, err, valid, None), labels)


def test_a_noiseless_sky_keeps_every_positive_segment() -> None:
    """A synthetic image with no noise (sky exactly 0) has empty-aperture factors of 0: its
    positive segments are infinitely significant, its negative ones still go."""
    signal = np.zeros((200, 200))
    labels = np.zeros(signal.shape, np.int32)
    for k, (y, x, v) in enumerate([(40, 40, 10.0), (120, 150, 0.5), (160, 50, -3.0)], start=1):
        labels[y - 4:y + 4, x - 4:x + 4], signal[y - 4:y + 4, x - 4:x + 4] = k, v
    snr = segment_snr(labels, signal, np.ones_like(signal), np.ones(signal.shape, bool))
    assert np.isposinf(snr[1]) and np.isposinf(snr[2]) and np.isneginf(snr[3])
    assert set(np.unique(drop_insignificant(labels, signal, np.ones_like(signal), np.ones(signal.shape, bool), 5.0))) == {0, 1, 2}


def test_correlated_noise_lowers_the_significance_of_the_same_blob() -> None:
    """A blob at white-noise S/N 6.5 stays in white noise but goes in noise correlated over 1 px."""
    err, valid = np.ones((400, 400)), np.ones((400, 400), bool)
    white_labels, white_signal = _scene(np.random.default_rng(4).standard_normal((400, 400)))
    corr_labels, corr_signal = _scene(_correlated((400, 400), 1.0, 4))
    assert 2 in drop_insignificant(white_labels, white_signal, err, valid, 5.0)
    kept = drop_insignificant(corr_labels, corr_signal, err, valid, 5.0)
    assert 2 not in kept and 1 in kept


@pytest.mark.parametrize("dtype", [np.float64, np.int32])
def test_box_sums_from_the_integral_image_equal_direct_sums(dtype) -> None:
    from astrostatlearn.methods.significance import _box_sums, _integral

    rng = np.random.default_rng(4)
    x = rng.normal(size=(37, 29)).astype(np.float32) if dtype is np.float64 else rng.random((37, 29)) < 0.6
    for k, step in ((1, 1), (4, 3), (8, 3)):
        got = _box_sums(_integral(x, dtype), k, step)
        want = np.array([[x[y:y + k, c:c + k].sum(dtype=np.float64) for c in range(0, 29 - k + 1, step)]
                         for y in range(0, 37 - k + 1, step)])
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9)
