"""On the real ESO/EMMI frame, ``sep`` reproduces SExtractor 2.25's catalogue (image.cat)."""

from pathlib import Path

import numpy as np
import pytest
from astropy.io import ascii, fits
from scipy.spatial import cKDTree

from astrostatlearn.field import Field, Window
from astrostatlearn.methods import Tile, make_segmenter


@pytest.fixture(scope="module")
def emmi(real_dir: Path):
    d = real_dir / "sep-emmi"
    with Field.open(img=d / "image.fits", rms=d / "rms.fits") as f:
        img = f.read_img()
    ref = ascii.read(d / "image.cat", format="sextractor")
    return d, img, ref


def _conv(d: Path) -> list[list[float]]:
    rows = [ln.split() for ln in (d / "default.conv").read_text().splitlines() if ln and not ln.startswith(("CONV", "#"))]
    return [[float(v) for v in r] for r in rows]


def test_sep_matches_sextractor_catalogue(emmi) -> None:
    d, img, ref = emmi
    # Same inputs and configuration as default.sex: SExtractor's own background and rms maps,
    # DETECT_THRESH 1.5, DETECT_MINAREA 5, default.conv, DEBLEND 32 / 1.0, CLEAN Y 1.0.
    bkg = fits.getdata(d / "back.fits").astype(np.float32)
    rms = fits.getdata(d / "rms.fits").astype(np.float32)
    tile = Tile(img[None], bkg, rms, np.ones(img.shape, bool), Window(0, 256, 0, 256))
    seg = make_segmenter("sep", nsigma=1.5, minarea=5, filter_kernel=_conv(d), deblend_nthresh=32,
                         deblend_cont=1.0, clean=True, clean_param=1.0)
    objs, segmap = seg.extract(tile)
    ref_xy = np.c_[ref["X_IMAGE"] - 1.0, ref["Y_IMAGE"] - 1.0]  # SExtractor is 1-based
    dist, _ = cKDTree(np.c_[objs["x"], objs["y"]]).query(ref_xy)
    assert (dist < 1.0).mean() >= 0.98            # match fraction
    assert np.median(dist) < 0.01                 # positions agree to 1/100 px
    assert abs(len(objs) - len(ref)) <= 0.05 * len(ref)
    assert segmap.max() == len(objs)


def test_whole_pipeline_on_real_frame(emmi, tmp_path: Path) -> None:
    """End to end (our own background mesh, tiles, stitching) still agrees with SExtractor."""
    from astropy.table import Table

    from astrostatlearn.segment import segment_field

    d, _, ref = emmi
    with Field.open(img=d / "image.fits", rms=d / "rms.fits") as f:
        segment_field(f, make_segmenter("sep", nsigma=1.5, filter_kernel=_conv(d), deblend_cont=1.0), tmp_path / "s",
                      tile=128, halo=64, scheduler="threads")
    cat = Table.read(tmp_path / "s" / "catalog.ecsv")
    dist, _ = cKDTree(np.c_[cat["x"], cat["y"]]).query(np.c_[ref["X_IMAGE"] - 1.0, ref["Y_IMAGE"] - 1.0])
    assert (dist < 1.5).mean() >= 0.85
    assert abs(len(cat) - len(ref)) <= 0.2 * len(ref)
