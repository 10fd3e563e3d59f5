from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from astrostatlearn.field import Field, Window
from astrostatlearn.preprocess import fit_variant
from astrostatlearn.preprocess.sky_noise import SKY_CONTEXT, sky_rms, source_noise_slope

SKY, GAIN = 0.5, 5.0


def sources_image(shape: tuple[int, int] = (300, 300), seed: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(noiseless model, total rms ``sqrt(SKY² + model / GAIN)``, image) with a grid of round
    Gaussian sources of sigma 2-5 px and peaks of 1-40 sky sigma."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    model = np.zeros(shape)
    for y in range(25, shape[0] - 20, 50):
        for x in range(25, shape[1] - 20, 50):
            s, peak = rng.uniform(2, 5), SKY * rng.uniform(1, 40)
            model += peak * np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / (2 * s * s))
    rms = np.sqrt(SKY**2 + model / GAIN)
    return model, rms, model + rms * rng.standard_normal(shape)


def test_the_slope_is_one_over_the_gain_where_the_map_carries_source_noise() -> None:
    model, rms, img = sources_image()
    slope = source_noise_slope(img, rms, 0.0, SKY)
    assert slope == pytest.approx(1 / GAIN, rel=0.1)


def test_a_sky_only_map_has_no_slope() -> None:
    model, rms, img = sources_image()
    assert source_noise_slope(img, np.full(img.shape, SKY), 0.0, SKY) == 0.0
    step = np.where(np.arange(img.shape[1]) < 150, SKY, 1.3 * SKY)[None, :].repeat(img.shape[0], 0)  # coverage step
    assert source_noise_slope(img, step, 0.0, SKY) == 0.0


def test_sky_rms_takes_the_source_term_off_in_the_sources_only() -> None:
    model, rms, img = sources_image()
    sky = sky_rms(img, rms, 1 / GAIN, 0.0)
    src = model > 0.5 * SKY
    dev, before = np.abs(sky[src] / SKY - 1), np.abs(rms[src] / SKY - 1)
    assert np.percentile(before, 50) > 0.2 and before.max() > 2.0  # up to sqrt(1 + 40 / 2.5) = 4x the sky
    assert np.percentile(dev, 99) < 0.02 and dev.max() < 0.2  # a few pixels at the sources' edges keep theirs
    far = model < 0.01 * SKY  # the sky: unchanged but where noise peaks reach the source level
    assert np.mean(sky[far] == rms[far].astype(np.float32)) > 0.95 and np.abs(sky[far] / rms[far] - 1).max() < 0.01
    assert sky_rms(img, rms, 0.0, 0.0) is not None and np.array_equal(sky_rms(img, rms, 0.0, 0.0), rms.astype(np.float32))


def test_sky_rms_keeps_a_step_in_the_map() -> None:
    """A coverage edge is the sky's, not a source's: it stays, even across a source."""
    model, _, _ = sources_image()
    sky_true = np.where(np.arange(300) < 160, SKY, 2 * SKY)[None, :].repeat(300, 0)
    rms = np.sqrt(sky_true**2 + model / GAIN)
    img = model + rms * np.random.default_rng(3).standard_normal(model.shape)
    sky = sky_rms(img, rms, 1 / GAIN, 0.0)
    dev = np.abs(sky / sky_true - 1)
    assert np.percentile(dev, 99.9) < 0.02 and dev.max() < 0.2


def _write_field(folder: Path, img: np.ndarray, rms: np.ndarray) -> Path:
    folder.mkdir()
    fits.PrimaryHDU(img.astype(np.float32)).writeto(folder / "img.fits")
    fits.PrimaryHDU(rms.astype(np.float32)).writeto(folder / "rms.fits")
    return folder


def test_snr_input_does_not_dim_a_source_by_its_own_noise(tmp_path: Path) -> None:
    """The snr channel with the total rms map equals the channel with the sky rms map, in the
    sources too; and any window read with its context equals the whole field's."""
    model, rms, img = sources_image()
    with Field.open(_write_field(tmp_path / "total", img, rms)) as f:
        pre = fit_variant(f, "snr")
        total = pre.read(f, f.full)[0]
        assert pre.stats.rms_source_slope == pytest.approx(1 / GAIN, rel=0.1) and pre.context == SKY_CONTEXT
        w = Window(101, 181, 43, 297)  # off the 4-px block grid
        np.testing.assert_array_equal(pre.read(f, w)[0], total[w.slices])
    with Field.open(_write_field(tmp_path / "sky", img, np.full_like(rms, SKY))) as f:
        pre_sky = fit_variant(f, "snr")
        assert pre_sky.stats.rms_source_slope == 0.0 and pre_sky.context == 0
        sky = pre_sky.read(f, f.full)[0]
    src = model > 2 * SKY
    assert np.abs(total[src] / sky[src] - 1).max() < 0.05
    assert np.median(np.abs(img[src] / rms[src] / sky[src] - 1)) > 0.2  # dividing by the total rms dims them


def test_a_real_sky_only_rms_map_passes_unchanged(real_dir: Path) -> None:
    """EMMI's rms map is the sky's: no slope, so the snr input is (img - median) / rms, pixel by pixel."""
    emmi = real_dir / "sep-emmi"
    with Field.open(img=emmi / "image.fits", rms=emmi / "rms.fits") as f:
        pre = fit_variant(f, "snr")
        img, rms = f.read_img_rms(f.full)
        snr = pre.read(f, f.full)[0]
    assert pre.stats.rms_source_slope == 0.0 and pre.context == 0
    np.testing.assert_allclose(snr, (img - pre.stats.img_median) / rms, rtol=1e-5, atol=1e-5)
