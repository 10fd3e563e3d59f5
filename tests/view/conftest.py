"""A small hand-made field for the viewer: non-square, NaN patch, a TAN WCS, objects across
block boundaries and a one-pixel object; and a site built from it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS

SHAPE = (700, 1100)  # (ny, nx)
NAN_BOX = (slice(600, 640), slice(40, 90))
ONE_PIXEL = (77, 901)  # (y, x) of an object of one pixel


def _wcs() -> WCS:
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [359.99, -30.0]  # across RA = 0
    w.wcs.crpix = [550.5, 350.5]
    w.wcs.cdelt = [-0.2 / 3600, 0.2 / 3600]
    return w


def make_labels() -> np.ndarray:
    yy, xx = np.mgrid[:SHAPE[0], :SHAPE[1]]
    labels = np.zeros(SHAPE, np.int32)
    rng = np.random.default_rng(3)
    centres = [(300, 512, 30), (511, 200, 12), (100, 1050, 25)] + \
              [(int(rng.integers(20, 680)), int(rng.integers(20, 1080)), int(rng.integers(3, 15))) for _ in range(40)]
    for i, (cy, cx, r) in enumerate(centres, start=1):
        labels[(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = i
    labels[ONE_PIXEL] = 999
    return labels


@pytest.fixture(scope="session")
def view_field(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("viewfield") / "field"
    d.mkdir()
    labels = make_labels()
    rng = np.random.default_rng(1)
    img = rng.normal(0.0, 1.0, SHAPE).astype(np.float32) + 40.0 * (labels > 0)
    img[NAN_BOX] = np.nan
    header = _wcs().to_header()
    fits.PrimaryHDU(img, header=header).writeto(d / "img.fits")
    fits.PrimaryHDU(np.ones(SHAPE, np.float32), header=header).writeto(d / "rms.fits")
    fits.PrimaryHDU(labels, header=header).writeto(d / "true.fits")
    ids = np.unique(labels[labels > 0])
    ys = [float(np.mean(np.nonzero(labels == i)[0])) for i in ids]
    xs = [float(np.mean(np.nonzero(labels == i)[1])) for i in ids]
    Table({"id": ids, "x": xs, "y": ys, "flux": 40.0 * np.array([np.sum(labels == i) for i in ids]),
           "area_true": [int(np.sum(labels == i)) for i in ids]}).write(d / "truth.ecsv")
    return d


@pytest.fixture(scope="session")
def view_site(view_field: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from astrostatlearn.view import build_site

    out = tmp_path_factory.mktemp("viewsite") / "site"
    build_site(view_field, out, truth=True, workers=1, scheduler="synchronous", block_levels=1)
    return out
