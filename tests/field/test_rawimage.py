"""A worker's reader: a plain image's PixelLayout reads what ImageFile reads, with no astropy."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from astrostatlearn.field import Field, Window, open_image
from astrostatlearn.field.fitsio import open_source
from astrostatlearn.field.rawimage import RawImage

WINDOWS = [Window(0, 40, 0, 30), Window(3, 9, 4, 20), Window(0, 5, 0, 30), Window(35, 60, 25, 50)]


def _write(path: Path, case: str) -> None:
    rng = np.random.default_rng(3)
    if case == "float32":
        hdus = [fits.PrimaryHDU(rng.normal(size=(40, 30)).astype(np.float32))]
    elif case == "extension_float64":
        hdus = [fits.PrimaryHDU(), fits.ImageHDU(rng.normal(size=(40, 30)))]
    elif case == "int16_scaled_blank":
        hdu = fits.PrimaryHDU(rng.integers(-100, 100, (40, 30)).astype(np.int16))
        hdu.header["BSCALE"], hdu.header["BZERO"], hdu.header["BLANK"] = 0.5, 10.0, -100
        hdus = [hdu]
    elif case == "uint16":
        hdus = [fits.PrimaryHDU(rng.integers(0, 60000, (40, 30)).astype(np.uint16))]
    else:  # a cube with one plane: the first plane is the image
        hdus = [fits.PrimaryHDU(rng.normal(size=(1, 40, 30)).astype(np.float32))]
    fits.HDUList(hdus).writeto(path)


@pytest.mark.parametrize("case", ["float32", "extension_float64", "int16_scaled_blank", "uint16", "one_plane_cube"])
def test_a_layout_reads_what_the_image_file_reads(tmp_path: Path, case: str) -> None:
    path = tmp_path / "im.fits"
    _write(path, case)
    with open_image(path) as f:
        layout = pickle.loads(pickle.dumps(f.layout))
        raw = open_source(layout)
        assert isinstance(raw, RawImage) and raw.shape == f.shape and raw.dtype == f.dtype
        for w, got, want in zip(WINDOWS, raw.read_windows(WINDOWS), f.read_windows(WINDOWS)):
            np.testing.assert_array_equal(got, want)  # NaN where BLANK, in the same places
            assert got.dtype == want.dtype, w


def test_a_changed_or_compressed_file_is_opened_from_its_header(tmp_path: Path) -> None:
    path = tmp_path / "im.fits"
    _write(path, "float32")
    with open_image(path) as f:
        layout = f.layout
    data = np.arange(40 * 30, dtype=np.float32).reshape(40, 30)
    fits.PrimaryHDU(np.pad(data, 2)).writeto(path, overwrite=True)  # another image under the same name
    reopened = open_source(layout)
    assert not isinstance(reopened, RawImage) and reopened.shape == (44, 34)
    reopened.close()
    comp = tmp_path / "comp.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(data, compression_type="GZIP_2")]).writeto(comp)
    with Field.open(img=comp) as f:
        assert f.img.layout is None and f.sources == (str(comp.resolve()), None)


def test_workers_read_the_field_from_its_sources_without_importing_astropy(sim_field: Path) -> None:
    with Field.open(sim_field) as f:
        sources, want = f.sources, f.read_rms(Window(10, 50, 20, 90))
    code = ("import pickle, sys; from astrostatlearn.field import Field, Window\n"
            "f = Field.from_sources(*pickle.loads(sys.stdin.buffer.read()))\n"
            "sys.stdout.buffer.write(pickle.dumps((f.read_rms(Window(10, 50, 20, 90)), 'astropy' in sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], input=pickle.dumps(sources), capture_output=True,
                         check=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    got, imported = pickle.loads(out.stdout)
    np.testing.assert_array_equal(got, want)
    assert not imported
