"""Whole-file compressed FITS (.fits.gz, .bz2, .xz) reads as the plain file, through one reused copy."""

import bz2
import gzip
import lzma
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

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
def tmpdir_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh ``$TMPDIR`` for this process (no worker pool may start under it: a pool outlives
    the test, and keeps its socket in the ``$TMPDIR`` it started with)."""
    tmp = Path(tempfile.mkdtemp(prefix="asl-"))
    monkeypatch.setenv("TMPDIR", str(tmp))
    monkeypatch.setattr(tempfile, "tempdir", None)  # re-read TMPDIR
    yield tmp
    shutil.rmtree(tmp, ignore_errors=True)


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
    assert copy.parent == decompress.cache_dir() == tmpdir_env / f"astrostatlearn-{os.getuid()}"
    assert copy.read_bytes() == plain.read_bytes()
    made = copy.stat().st_mtime_ns
    with open_image(packed) as f:  # reopened (as a worker does): the same copy, not a new one
        assert f.header["OBSERVER"] == "someone" and Path(f.layout.path) == copy
    assert copy.stat().st_mtime_ns == made and list(copy.parent.glob("[!.]*")) == [copy]
    decompress._release()  # what happens when the process exits
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
    assert not any(decompress.cache_dir().iterdir())
    text = tmp_path / "notes.txt.gz"
    text.write_bytes(gzip.compress(b"not a FITS file at all"))
    with pytest.raises(InputError, match="not a FITS file"):
        open_image(text)


def test_segment_of_a_gzipped_field_equals_the_plain_field_on_worker_processes(sim_field: Path, tmp_path: Path) -> None:
    """``img.fits.gz`` and ``rms.fits.gz`` in a field folder, as an archive serves them. (In the
    system's own ``$TMPDIR``: the worker pool outlives the test, and keeps its socket there.)"""
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


def test_a_large_tile_compressed_image_is_read_from_one_plain_copy(tmp_path: Path, tmpdir_env: Path) -> None:
    """Read in place, windows and rows decode the same tiles many times over, so an image above
    4 Mpix is decompressed once, with its header and its physical values (BSCALE applied); a
    smaller one is still read tile by tile in place."""
    from astrostatlearn.field.fitsio import COMPRESSED_COPIED_ABOVE

    rng = np.random.default_rng(1)
    big = rng.normal(size=(8, COMPRESSED_COPIED_ABOVE // 8 + 1)).astype(np.float32)
    header = fits.Header({"OBSERVER": "someone"})
    lossless = {"compression_type": "GZIP_2", "quantize_level": 0.0}
    fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(big, header=header, **lossless)]).writeto(tmp_path / "big.fz")
    small = big[:, :1000]
    fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(small, tile_shape=(4, 256), **lossless)]).writeto(
        tmp_path / "small.fz")
    raw = rng.integers(-300, 300, size=big.shape).astype(np.int16)
    scaled = fits.CompImageHDU(raw, compression_type="RICE_1")
    scaled.header["BSCALE"], scaled.header["BZERO"] = 0.5, 100.0
    fits.HDUList([fits.PrimaryHDU(), scaled]).writeto(tmp_path / "scaled.fz")
    w = Window(2, 7, 900, 1000)
    with open_image(tmp_path / "big.fz") as f:
        assert f.compressed and f.hdu_index == 1 and f.layout is not None and f.header["OBSERVER"] == "someone"
        assert Path(f.layout.path).parent == decompress.cache_dir()
        assert f.spec == str((tmp_path / "big.fz").resolve())
        np.testing.assert_array_equal(f.read(w), big[w.slices])
    with open_image(tmp_path / "small.fz") as f:
        assert f.compressed and f.layout is None  # read in place
        np.testing.assert_array_equal(f.read(w), small[w.slices])
    with open_image(tmp_path / "scaled.fz") as f:
        assert f.layout is not None
        np.testing.assert_allclose(f.read(w), raw[w.slices] * 0.5 + 100.0)
    assert len(list(decompress.cache_dir().glob("[!.]*"))) == 2
    decompress._release()
    assert not list(decompress.cache_dir().iterdir())


def test_a_copy_lives_while_any_process_uses_it_and_no_longer(tmp_path: Path, tmpdir_env: Path) -> None:
    """Two runs at once on one compressed file share its copy: the first to exit leaves it to the
    other. A copy whose users all died (a killed run) is removed when a copy is next used."""
    import socket
    import subprocess
    import sys

    plain = tmp_path / "img.fits"
    fits.PrimaryHDU(np.ones((20, 30), np.float32)).writeto(plain)
    packed = _compress(plain, "gz")
    with open_image(packed) as f:
        copy = Path(f.layout.path)
    other = copy.with_name(f".{copy.name}.{socket.gethostname()}-{os.getppid()}.use")  # a live process
    other.touch()
    decompress._release()
    assert copy.exists() and not copy.with_name(f".{copy.name}.{socket.gethostname()}-{os.getpid()}.use").exists()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    other.rename(copy.with_name(f".{copy.name}.{socket.gethostname()}-{int(dead.stdout)}.use"))
    second = _compress(tmp_path / "img.fits", "bz2")
    with open_image(second) as f:  # using another copy sweeps the orphan
        assert Path(f.layout.path).exists()
    assert not copy.exists() and not [p for p in copy.parent.iterdir() if p.name.startswith(f".{copy.name}")]
    decompress._release()
    assert not list(copy.parent.iterdir())
