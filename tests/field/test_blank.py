"""Zero-filled regions with no data (the blank convention of coadds without NaN)."""

from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from astrostatlearn.field import Field, Window
from astrostatlearn.field.blank import zero_filled, zeros_are_blank


def _noisy(shape=(200, 160), sky: float = 0.0, seed: int = 0) -> np.ndarray:
    return (sky + np.random.default_rng(seed).normal(0.0, 1.0, shape)).astype(np.float32)


def _noiseless(shape=(200, 160)) -> np.ndarray:
    """Gaussian sources on a sky of exactly 0, as a noiseless simulation draws them."""
    y, x = np.mgrid[:shape[0], :shape[1]]
    img = np.zeros(shape)
    for cy, cx, s in ((50, 40, 3.0), (120, 100, 5.0), (170, 30, 2.0)):
        img += 100 * np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * s * s))
    img[img < 1e-3] = 0.0  # drawn on stamps: exactly 0 away from the sources
    return img.astype(np.float32)


def test_zero_filled_marks_regions_not_stray_zeros() -> None:
    img = _noisy()
    img[:, :30] = 0.0  # an edge
    img[100:120, 80:110] = 0.0  # a hole
    img[10, 100] = 0.0  # a sky pixel that happens to be 0
    img[50:54, 60:140] = 0.0  # a line four pixels wide
    blank = zero_filled(img)
    assert blank[:, :30].all() and blank[100:120, 80:110].all()
    assert not blank[10, 100] and not blank[50:54, 60:140].any()
    assert blank.sum() == 200 * 30 + 20 * 30


def test_the_zeros_of_an_integer_sky_are_not_blanks() -> None:
    """Integer counts with a noise of 1 ADU: 38% of the sky is exactly 0, yet only the edge is blank."""
    img = np.round(np.random.default_rng(2).normal(0.0, 1.0, (400, 400))).astype(np.float32)
    img[:, :40] = 0.0
    assert zeros_are_blank(img) and 0.3 < (img[:, 40:] == 0).mean() < 0.45
    blank = zero_filled(img)
    assert blank[:, :40].all() and not blank[:, 45:].any()


def test_zeros_are_blank_only_on_a_noisy_sky() -> None:
    edge = _noisy()
    edge[:, :40] = 0.0
    raw_counts = _noisy(sky=1000.0)
    raw_counts[:60] = 0.0
    assert zeros_are_blank(edge) and zeros_are_blank(raw_counts)
    assert not zeros_are_blank(_noiseless())  # its sky is 0: zeros are values
    assert not zeros_are_blank(_noisy())  # no zeros at all
    few = _noisy()
    few[0, :10] = 0.0  # 10 of 32000 pixels
    assert not zeros_are_blank(few)


def test_a_field_reads_zero_filled_regions_as_nan_window_by_window(tmp_path: Path) -> None:
    img = _noisy()
    img[:, 130:] = 0.0
    img[20:60, 20:70] = 0.0
    fits.PrimaryHDU(img).writeto(tmp_path / "edge.fits")
    fits.PrimaryHDU(_noiseless()).writeto(tmp_path / "noiseless.fits")
    with Field.open(img=tmp_path / "edge.fits") as f:
        assert f.zero_blank
        whole = f.read_img()
        assert np.isnan(whole[:, 130:]).all() and np.isnan(whole[20:60, 20:70]).all()
        assert np.isnan(whole).sum() == 200 * 30 + 40 * 50
        for w in (Window(0, 50, 0, 131), Window(55, 61, 125, 160), Window(59, 60, 0, 160)):  # edges cut the regions
            np.testing.assert_array_equal(f.read_img(w), whole[w.slices], strict=True)
        (row,) = f.read_img_windows([Window(30, 31, 0, 160)])
        np.testing.assert_array_equal(row, whole[30:31])
    with Field.open(img=tmp_path / "noiseless.fits") as f:
        assert not f.zero_blank
        np.testing.assert_array_equal(f.read_img(), _noiseless())


@pytest.mark.parametrize("method", ["sep", "unet"])
def test_a_zero_filled_edge_is_segmented_as_a_nan_edge(tmp_path: Path, method: str) -> None:
    """Zeros at an edge are no data: the segmentation equals that of the same image with NaN
    there, and no object lines the edge, as one does when the zeros are read as sky (the sky at
    20 sigma above 0, as in an image whose background was not subtracted, so that the zeros
    differ from it)."""
    from astrostatlearn.methods import default_segmenter
    from astrostatlearn.segment import segment_field

    img = _noisy((256, 256), sky=20.0, seed=3)
    y, x = np.mgrid[:256, :256]
    for cy, cx in ((60, 150), (180, 200), (128, 100)):
        img += (30 * np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / 18.0)).astype(np.float32)
    zero, nan = img.copy(), img.copy()
    zero[:, :64], nan[:, :64] = 0.0, np.nan
    labels = {}
    for name, data in (("zero", zero), ("nan", nan)):
        fits.PrimaryHDU(data).writeto(tmp_path / f"{name}.fits")
        with Field.open(img=tmp_path / f"{name}.fits") as f:
            segment_field(f, default_segmenter(method), tmp_path / f"{name}-{method}", tile=128,
                          scheduler="threads", score=False)
        labels[name] = fits.getdata(tmp_path / f"{name}-{method}" / "segmentation.fits")
    np.testing.assert_array_equal(labels["zero"], labels["nan"])
    assert not labels["zero"][:, 60:68].any()
    with Field.open(img=tmp_path / "zero.fits") as f:
        f.zero_blank = False  # the zeros read as sky, as a tool without the rule reads them
        segment_field(f, default_segmenter(method), tmp_path / f"as-sky-{method}", tile=128, scheduler="threads",
                      score=False)
    as_sky = fits.getdata(tmp_path / f"as-sky-{method}" / "segmentation.fits")
    assert not np.array_equal(as_sky, labels["nan"])
