from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from astrostatlearn.errors import InputError, OutputExistsError
from astrostatlearn.field import FitsImageWriter, Window, open_image, output_header, write_image


def _wcs_header() -> fits.Header:
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [10.0, 20.0]
    w.wcs.crpix = [5.0, 5.0]
    w.wcs.cdelt = [-1e-4, 1e-4]
    h = w.to_header()
    h["OBSERVER"] = "someone"
    return h


def test_reads_windows_from_any_hdu_and_compressed(tmp_path: Path) -> None:
    data = np.arange(40 * 30, dtype=np.float32).reshape(40, 30)
    plain = tmp_path / "ext.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(data, header=_wcs_header())]).writeto(plain)
    comp = tmp_path / "comp.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(data, compression_type="GZIP_2")]).writeto(comp)
    for path in (plain, comp):
        f = open_image(path)
        assert f.hdu_index == 1 and f.shape == (40, 30)
        np.testing.assert_array_equal(f.read(Window(3, 9, 4, 20)), data[3:9, 4:20])
        f.close()
    assert open_image(plain).wcs() is not None
    assert open_image(comp).compressed


def test_scaled_int16_is_read_with_bscale(tmp_path: Path) -> None:
    raw = np.arange(100, dtype=np.int16).reshape(10, 10)
    hdu = fits.PrimaryHDU(raw)
    hdu.header["BSCALE"] = 0.5
    hdu.header["BZERO"] = 10.0
    hdu.writeto(tmp_path / "s.fits")
    f = open_image(tmp_path / "s.fits")
    np.testing.assert_allclose(f.read(), raw * 0.5 + 10.0)
    assert f.dtype == np.float32


def test_several_windows_read_through_one_map_equal_single_reads(tmp_path: Path) -> None:
    raw = np.arange(60 * 50, dtype=np.int16).reshape(60, 50)
    hdu = fits.PrimaryHDU(raw)
    hdu.header["BSCALE"], hdu.header["BZERO"] = 0.5, 10.0  # the scaling applies to every window
    hdu.writeto(tmp_path / "s.fits")
    fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(raw.astype(np.float32))]).writeto(tmp_path / "c.fits")
    windows = [Window(y, y + 1, 0, 50) for y in range(0, 60, 7)] + [Window(5, 20, 3, 9)]
    for name in ("s.fits", "c.fits"):
        f = open_image(tmp_path / name)
        many = f.read_windows(windows)
        assert len(many) == len(windows)
        for w, got in zip(windows, many):
            np.testing.assert_array_equal(got, f.read(w))
            assert got.dtype == f.dtype
        f.close()


@pytest.mark.parametrize("case", ["missing", "directory", "not_fits", "truncated", "corrupt_header", "no_image"])
def test_bad_files_raise_one_line_errors_naming_the_file(tmp_path: Path, case: str) -> None:
    path = tmp_path / "bad.fits"
    if case == "directory":
        path.mkdir()
    elif case == "not_fits":
        path.write_text("hello, not a FITS file\n" * 200)
    elif case == "truncated":
        fits.PrimaryHDU(np.zeros((200, 200), np.float32)).writeto(path)
        path.write_bytes(path.read_bytes()[: 2880 + 50000])
    elif case == "corrupt_header":
        path.write_bytes(b"SIMPLE  =                    T" + b"\x00\xff" * 3000)
    elif case == "no_image":
        table = fits.BinTableHDU.from_columns([fits.Column(name="a", format="E", array=np.zeros(3))])
        fits.HDUList([fits.PrimaryHDU(), table]).writeto(path)
    with pytest.raises(InputError) as err:
        open_image(path)
    msg = str(err.value)
    assert "\n" not in msg and str(path) in msg
    expected = {"missing": "not found", "directory": "directory", "not_fits": "not a FITS file",
                "truncated": "truncated", "corrupt_header": "corrupt", "no_image": "no 2-D image"}[case]
    assert expected in msg


def test_a_cube_of_several_planes_is_refused_with_its_shape_and_what_to_do(tmp_path: Path) -> None:
    """A data cube (bands or frames stacked) is not read as a 2-D image: the error names its shape and how to
    segment one plane. A cube of one plane (NAXIS3 = 1) is an image."""
    path = tmp_path / "cube.fits"
    fits.PrimaryHDU(np.zeros((3, 40, 50), np.float32)).writeto(path)
    for spec in (path, f"{path}[0]"):
        with pytest.raises(InputError) as err:
            open_image(spec)
        msg = str(err.value)
        assert "\n" not in msg and "cube of shape (3, 40, 50)" in msg and "writeto" in msg
    one = tmp_path / "one.fits"
    fits.PrimaryHDU(np.ones((1, 40, 50), np.float32)).writeto(one)
    f = open_image(one)
    assert f.shape == (40, 50)
    f.close()


def test_output_header_keeps_long_eso_keywords_without_warnings(tmp_path: Path) -> None:
    """ESO frames carry HIERARCH keywords (``HIERARCH ESO DET GAIN``): they are copied as they
    are, with none of astropy's per-card VerifyWarnings (hundreds per ESO image)."""
    import warnings

    h = fits.Header()
    h["HIERARCH ESO DET GAIN"] = (1.5, "e-/ADU")
    h["HIERARCH ESO OBS NAME"] = "field 1"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = output_header(h)
        write_image(tmp_path / "o.fits", np.ones((4, 4), np.int32), out)
    back = fits.getheader(tmp_path / "o.fits")
    assert back["ESO DET GAIN"] == 1.5 and back["ESO OBS NAME"] == "field 1"


def test_non_standard_cards_neither_warn_nor_hide_the_wcs() -> None:
    """Old ESO frames log with cards such as ``ESO-LOG 03:04:08>-START EXPO``: astropy warns once
    per card whenever a WCS re-reads the header; they are no WCS, so reading one stays quiet."""
    import warnings

    from astrostatlearn.field.fitsio import header_wcs

    h = _wcs_header()
    h.append(fits.Card.fromstring("ESO-LOG 03:04:08>-START EXPO EMMI RED          / Start exp. on EMMI Red CC"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        wcs = header_wcs(h)
    assert wcs is not None and wcs.has_celestial


def test_output_header_keeps_wcs_and_drops_layout() -> None:
    h = _wcs_header()
    h["BSCALE"] = 2.0
    h["NAXIS1"] = 9
    out = output_header(h, content="segmentation")
    assert "BSCALE" not in out and "NAXIS1" not in out
    assert out["OBSERVER"] == "someone" and out["CONTENT"] == "segmentation"
    assert WCS(out).wcs.crval[0] == pytest.approx(10.0)


def test_write_image_is_atomic_and_refuses_overwrite(tmp_path: Path) -> None:
    p = tmp_path / "out" / "a.fits"
    write_image(p, np.ones((4, 4), np.int32), output_header(_wcs_header()))
    assert fits.getheader(p)["CTYPE1"] == "RA---TAN"
    with pytest.raises(OutputExistsError):
        write_image(p, np.zeros((4, 4), np.int32))
    np.testing.assert_array_equal(fits.getdata(p), 1)
    write_image(p, np.zeros((4, 4), np.int32), overwrite=True)
    np.testing.assert_array_equal(fits.getdata(p), 0)
    assert [q.name for q in p.parent.iterdir()] == ["a.fits"]  # no temp files left


def test_streaming_writer_fills_windows_and_cleans_up_on_error(tmp_path: Path) -> None:
    data = np.random.default_rng(0).normal(size=(37, 53)).astype(np.float32)
    with FitsImageWriter(tmp_path / "s.fits", data.shape, np.float32, _wcs_header()) as w:
        for win in (Window(0, 20, 0, 53), Window(20, 37, 0, 10), Window(20, 37, 10, 53)):
            w.write(win, data[win.slices])
    np.testing.assert_array_equal(fits.getdata(tmp_path / "s.fits"), data)
    assert fits.getheader(tmp_path / "s.fits")["OBSERVER"] == "someone"
    with pytest.raises(RuntimeError):
        with FitsImageWriter(tmp_path / "t.fits", (8, 8), np.int32):
            raise RuntimeError("boom")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.fits"]


def test_outputs_get_normal_permissions(tmp_path: Path) -> None:
    import os
    import stat

    umask = os.umask(0o022)
    try:
        p = write_image(tmp_path / "p.fits", np.zeros((2, 2), np.float32))
    finally:
        os.umask(umask)
    assert stat.S_IMODE(p.stat().st_mode) == 0o644


def test_streaming_writer_allocates_blocks_only_as_rows_are_written(tmp_path: Path) -> None:
    """The data unit starts sparse (reserving it up front made the first write of every row
    convert unwritten extents, 3x slower); unwritten rows read back as zeros. A full disk is
    refused before a run by the output set's free-space check instead."""
    import os

    w = FitsImageWriter(tmp_path / "r.fits", (1000, 1000), np.int32)
    st = os.stat(w.target[0])
    assert st.st_size >= 4_000_000 and st.st_blocks * 512 < 1_000_000
    w.write(Window(10, 20, 0, 1000), np.full((10, 1000), 7, np.int32))
    w.commit()
    data = fits.getdata(tmp_path / "r.fits")
    assert (data[10:20] == 7).all() and not data[:10].any() and not data[20:].any()
