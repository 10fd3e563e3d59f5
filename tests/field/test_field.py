from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from astrostatlearn.errors import InputError
from astrostatlearn.field import Field, Window, robust_stats, scan_field


def _write(path: Path, data: np.ndarray) -> Path:
    fits.PrimaryHDU(data).writeto(path, overwrite=True)
    return path


@pytest.fixture
def good(tmp_path: Path) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    img = rng.normal(0.0, 2.0, (64, 48)).astype(np.float32)
    rms = np.full_like(img, 2.0)
    true = np.zeros(img.shape, np.int32)
    true[10:20, 10:20] = 7
    true[30:33, 5:9] = 100
    for name, arr in (("img", img), ("rms", rms), ("true", true)):
        _write(tmp_path / f"{name}.fits", arr)
    return {"img": img, "rms": rms, "true": true}


def test_open_directory_reads_windows_and_reports(tmp_path: Path, good: dict) -> None:
    with Field.open(tmp_path) as f:
        assert f.shape == (64, 48)
        np.testing.assert_array_equal(f.read_img(Window(5, 9, 2, 7)), good["img"][5:9, 2:7])
        assert f.read_true().dtype == np.int32
        r = scan_field(f, block_pixels=500)  # many small blocks
        assert r.n_objects == 2 and r.max_id == 100
        assert r.n_foreground == 100 + 12
        _, median, std = robust_stats(f)
        assert std == pytest.approx(2.0, rel=0.1)


def test_explicit_paths_override_directory(tmp_path: Path, good: dict) -> None:
    other = _write(tmp_path / "other_rms.fits", np.full((64, 48), 3.0, np.float32))
    with Field.open(tmp_path, rms=other) as f:
        assert f.read_rms()[0, 0] == 3.0


def test_shape_mismatch(tmp_path: Path, good: dict) -> None:
    _write(tmp_path / "rms.fits", np.ones((64, 47), np.float32))
    with pytest.raises(InputError, match=r"rms.fits: shape 64x47 differs from img.fits 64x48"):
        Field.open(tmp_path)


def test_nonfinite_pixels_are_counted_and_masked(tmp_path: Path, good: dict) -> None:
    img = good["img"].copy()
    img[0, :5] = np.nan
    img[3, 3] = np.inf
    _write(tmp_path / "img.fits", img)
    rms = good["rms"].copy()
    rms[0, :5] = np.nan  # allowed: the image is not finite there
    _write(tmp_path / "rms.fits", rms)
    with Field.open(tmp_path) as f:
        assert scan_field(f).n_nonfinite == 6
        data, valid = f.read_masked()
        assert (~valid).sum() == 6 and np.isfinite(data).all() and data[3, 3] == 0


def test_all_nonfinite_is_fatal(tmp_path: Path, good: dict) -> None:
    _write(tmp_path / "img.fits", np.full((64, 48), np.nan, np.float32))
    _write(tmp_path / "rms.fits", np.full((64, 48), np.nan, np.float32))
    with Field.open(tmp_path) as f, pytest.raises(InputError, match="every pixel is non-finite"):
        scan_field(f)


@pytest.mark.parametrize("bad", [0.0, -1.0, np.nan])
def test_bad_rms_where_image_is_finite(tmp_path: Path, good: dict, bad: float) -> None:
    rms = good["rms"].copy()
    rms[40, 17] = bad
    _write(tmp_path / "rms.fits", rms)
    with Field.open(tmp_path) as f, pytest.raises(InputError) as err:
        scan_field(f)
    assert "rms.fits" in str(err.value) and "y=40, x=17" in str(err.value)


def test_truth_must_be_integral_and_non_negative(tmp_path: Path, good: dict) -> None:
    t = good["true"].astype(np.float32)
    _write(tmp_path / "true.fits", t)  # integral floats are accepted
    with Field.open(tmp_path) as f:
        assert scan_field(f).n_objects == 2
    t[0, 0] = 0.5
    _write(tmp_path / "true.fits", t)
    with Field.open(tmp_path) as f, pytest.raises(InputError, match="not integer"):
        scan_field(f)
    neg = good["true"].copy()
    neg[1, 1] = -3
    _write(tmp_path / "true.fits", neg)
    with Field.open(tmp_path) as f, pytest.raises(InputError, match="negative IDs"):
        scan_field(f)


def test_missing_directory_and_missing_image(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="field not found"):
        Field.open(tmp_path / "nope")
    with pytest.raises(InputError, match="no img.fits"):
        Field.open(tmp_path)


def test_real_compressed_kids_frame(real_dir: Path) -> None:
    with Field.open(img=real_dir / "kids-r" / "r.fits", true=real_dir / "kids-r" / "r.sextractor.seg.fits") as f:
        assert f.img.compressed and f.shape == (2600, 2600)
        assert scan_field(f).n_objects == 2688
        assert f.read_img(Window(100, 110, 100, 110)).shape == (10, 10)


def test_concurrent_reads_of_a_compressed_image_are_safe(real_dir: Path, tmp_path: Path) -> None:
    """cfitsio's HCOMPRESS decoder keeps global state: threads (each with its own handle) must not
    decode at once, including the one-pixel probe when a file is opened. (A 2000^2 cut of the KiDS
    frame, in its own tiles of 16 rows: small enough to be read in place, not through a copy.)"""
    from concurrent.futures import ThreadPoolExecutor

    from astropy.io import fits

    data = fits.getdata(real_dir / "kids-r" / "r.fits")[:2000, :2000]
    path = tmp_path / "r.fits.fz"
    fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(data, compression_type="HCOMPRESS_1",
                                                       tile_shape=(16, 2000))]).writeto(path)
    windows = [Window(y, y + 300, x, x + 300) for y in (0, 700, 1400) for x in (0, 800, 1600)]
    with Field.open(img=path) as f:
        assert f.img.layout is None  # decoded in place
        serial = [f.read_img(w) for w in windows]

    def job(k: int) -> bool:
        with Field.open(img=path) as g:  # a fresh open (and probe) in every thread
            return all(np.array_equal(g.read_img(w), s) for w, s in zip(windows[k % 3:], serial[k % 3:]))

    with ThreadPoolExecutor(max_workers=4) as pool:
        assert all(pool.map(job, range(12)))


def test_a_broken_symlink_is_named_not_ignored(sim_field: Path, tmp_path: Path) -> None:
    import shutil

    d = tmp_path / "f"
    d.mkdir()
    shutil.copy(sim_field / "img.fits", d / "img.fits")
    (d / "true.fits").symlink_to(tmp_path / "gone.fits")
    with pytest.raises(InputError, match="broken symbolic link"):
        Field.open(d)
