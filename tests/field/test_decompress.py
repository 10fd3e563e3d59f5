"""Whole-file compressed FITS (.fits.gz, .bz2, .xz) reads as the plain file, through one reused copy."""

import bz2
import gzip
import lzma
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from typer.testing import CliRunner

from astrostatlearn.cli import app
from astrostatlearn.errors import InputError
from astrostatlearn.field import Window, open_image
from astrostatlearn.field import decompress

COMPRESSORS = {"gz": gzip.compress, "bz2": bz2.compress, "xz": lzma.compress}


@pytest.fixture
def tmpdir_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh ``$TMPDIR`` for this process and the workers it starts."""
    tmp = tmp_path / "tmpdir"
    tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp))
    monkeypatch.setattr(tempfile, "tempdir", None)  # re-read TMPDIR
    return tmp


def _compress(path: Path, ext: str) -> Path:
    out = path.with_name(f"{path.name}.{ext}")
    out.write_bytes(COMPRESSORS[ext](path.read_bytes()))
    return out


@pytest.mark.parametrize("ext", sorted(COMPRESSORS))
def test_a_compressed_file_reads_as_the_plain_one_through_one_reused_copy(tmp_path: Path, tmpdir_env: Path,
                                                                          ext: str) -> None:
    data = np.arange(40 * 30, dtype=np.float32).reshape(40, 30)
    plain = tmp_path / "drz.fits"
    header = fits.Header({"OBSERVER": "someone"})
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(data, header=header, name="SCI"),
                  fits.ImageHDU(2 * data, name="WHT")]).writeto(plain)
    packed = _compress(plain, ext)
    with open_image(f"{packed}[WHT]", role="weight") as f:
        assert f.path == packed and f.hdu_index == 2 and f.spec == f"{packed.resolve()}[2]"
        np.testing.assert_array_equal(f.read(Window(3, 9, 4, 20)), 2 * data[3:9, 4:20])
        copy = Path(f.layout.path)
    assert copy.parent == decompress.cache_dir() == tmpdir_env / "astrostatlearn"
    assert copy.read_bytes() == plain.read_bytes()
    made = copy.stat().st_mtime_ns
    with open_image(packed) as f:  # reopened (as a worker does): the same copy, not a new one
        assert f.header["OBSERVER"] == "someone" and Path(f.layout.path) == copy
    assert copy.stat().st_mtime_ns == made and len(list(copy.parent.iterdir())) == 1
    decompress._remove_copies()  # what happens when the process exits
    assert not copy.exists()


def test_a_damaged_compressed_file_is_a_one_line_error_and_leaves_no_copy(tmp_path: Path, tmpdir_env: Path) -> None:
    plain = tmp_path / "img.fits"
    fits.PrimaryHDU(np.random.default_rng(0).normal(size=(50, 50)).astype(np.float32)).writeto(plain)
    cut = tmp_path / "cut.fits.gz"
    whole = gzip.compress(plain.read_bytes())
    cut.write_bytes(whole[: len(whole) // 2])  # a download cut short
    with pytest.raises(InputError, match="cannot decompress the gzip mask file") as err:
        open_image(cut, role="mask")
    assert "\n" not in str(err.value) and str(cut) in str(err.value)
    assert not any((tmpdir_env / "astrostatlearn").iterdir())
    text = tmp_path / "notes.txt.gz"
    text.write_bytes(gzip.compress(b"not a FITS file at all"))
    with pytest.raises(InputError, match="not a FITS file"):
        open_image(text)


def test_segment_of_a_gzipped_field_equals_the_plain_field_on_worker_processes(sim_field: Path, tmp_path: Path,
                                                                                tmpdir_env: Path) -> None:
    """``img.fits.gz`` and ``rms.fits.gz`` in a field folder, as an archive serves them."""
    packed = tmp_path / "packed"
    packed.mkdir()
    for name in ("img", "rms"):
        shutil.copy(sim_field / f"{name}.fits", tmp_path / f"{name}.fits")
        _compress(tmp_path / f"{name}.fits", "gz").rename(packed / f"{name}.fits.gz")
    runner = CliRunner()
    for src, out in ((sim_field, "plain"), (packed, "gz")):
        r = runner.invoke(app, ["segment", str(src), "-m", "sep", "-o", str(tmp_path / out), "--workers", "2",
                                "--tile", "256"])
        assert r.exit_code == 0, r.output
    seg = fits.getdata(tmp_path / "gz" / "segmentation.fits")
    assert seg.max() > 10
    np.testing.assert_array_equal(seg, fits.getdata(tmp_path / "plain" / "segmentation.fits"))
    assert fits.getheader(tmp_path / "gz" / "segmentation.fits")["CRVAL1"] == fits.getheader(sim_field / "img.fits")["CRVAL1"]
