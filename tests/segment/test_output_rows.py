from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from astrostatlearn.field import FitsImageWriter, Window
from astrostatlearn.segment.output_rows import BLOCK, OutputRows


def _writer(tmp_path: Path, shape: tuple[int, int], dtype=np.int32, **kw) -> FitsImageWriter:
    hdr = fits.Header()
    hdr["OBJECT"] = "band test"
    return FitsImageWriter(tmp_path / "m.fits", shape, dtype, hdr, **kw)


def test_merge_writes_only_free_pixels_and_keeps_the_header(tmp_path: Path) -> None:
    """Objects land at their pixels with the running ID offset, never over an earlier object;
    the header (whose last block the band rewrites) and every untouched pixel are unchanged."""
    w = _writer(tmp_path, (30, 40))
    rows = OutputRows(w)
    first = Window(0, 12, 0, 40)
    earlier = np.zeros(first.shape, np.int32)
    earlier[5:9, 5:9] = 3
    pix = np.flatnonzero(earlier.ravel())
    rows.merge_labels(first, pix, earlier.ravel()[pix], offset=0)
    window = Window(4, 20, 6, 30)  # 16 x 24, overlapping the first object
    tile = np.zeros(window.shape, np.int32)
    tile[0:3, 0:4] = 1  # rows 4..6, columns 6..9 of the map
    tile[10, 20] = 2
    pix = np.flatnonzero(tile.ravel())
    rows.merge_labels(window, pix, tile.ravel()[pix], offset=10)
    rows.close()
    w.commit()
    with fits.open(tmp_path / "m.fits") as hdul:
        out, hdr = hdul[0].data, hdul[0].header
    expected = np.zeros((30, 40), np.int32)
    expected[5:9, 5:9] = 3
    sub = expected[window.slices]
    free = (tile > 0) & (sub == 0)
    sub[free] = tile[free] + 10
    np.testing.assert_array_equal(out, expected)
    assert out[14, 26] == 12 and out[5, 6] == 3 and out[4, 6] == 11
    assert hdr["OBJECT"] == "band test"


def test_rows_above_a_window_are_written_in_whole_blocks_as_it_arrives(tmp_path: Path) -> None:
    """The band drops the whole blocks above each new window's first row, so it never holds
    more than about one window of rows, in the one buffer allocated up front; a window above the
    written rows is refused."""
    nx = 1000
    w = _writer(tmp_path, (400, nx))
    rows = OutputRows(w, rows=80)
    buffer = rows._raw
    for y0 in range(0, 400, 50):
        win = Window(y0, min(400, y0 + 80), 0, nx)
        labels = np.zeros(win.shape, np.int32)
        labels[::7, ::5] = 1 + y0
        pix = np.flatnonzero(labels.ravel())
        rows.merge_labels(win, pix, labels.ravel()[pix], offset=0)
        assert rows.k0 * 4 % BLOCK == 0
        assert rows._n <= 80 * nx + BLOCK // 4 + rows.head  # about one window's rows, never the map
        assert rows._raw is buffer  # never grown
    with pytest.raises(ValueError, match="out of order"):
        rows.merge_labels(Window(0, 10, 0, nx), np.array([0]), np.array([1]), offset=0)
    rows.close()
    w.commit()
    out = fits.getdata(tmp_path / "m.fits")
    expected = np.zeros((400, nx), np.int32)
    for y0 in range(0, 400, 50):  # an earlier window's pixels are never overwritten
        block = expected[y0:y0 + 80]
        grid = np.zeros_like(block)
        grid[::7, ::5] = 1 + y0
        block[(block == 0) & (grid > 0)] = grid[(block == 0) & (grid > 0)]
    np.testing.assert_array_equal(out, expected)


def test_scores_are_placed_by_window_and_a_resumed_band_reads_the_file_back(tmp_path: Path) -> None:
    """``place`` writes float windows; after ``flush`` (a checkpoint) a band opened on the same
    file with ``resumed`` keeps what was written and adds to it."""
    part = tmp_path / "m.fits.part"
    w = _writer(tmp_path, (64, 50), np.float32, tmp=part)
    rows = OutputRows(w)
    a = np.arange(32 * 25, dtype=np.float32).reshape(32, 25)
    rows.place(Window(0, 32, 0, 25), a)
    rows.place(Window(0, 32, 25, 50), a + 1000)
    rows.flush()  # a checkpoint: everything so far is on disk, then the run is killed
    rows.discard()
    w2 = _writer(tmp_path, (64, 50), np.float32, tmp=part, overwrite=True)
    assert w2.resumed
    again = OutputRows(w2, resumed=True)
    again.place(Window(32, 64, 0, 50), np.full((32, 50), -1.0, np.float32))
    again.close()
    w2.commit()
    out = fits.getdata(tmp_path / "m.fits")
    np.testing.assert_array_equal(out[:32, :25], a)
    np.testing.assert_array_equal(out[:32, 25:], a + 1000)
    assert (out[32:] == -1).all()


def test_only_four_byte_maps(tmp_path: Path) -> None:
    w = _writer(tmp_path, (8, 8), np.int16)
    with pytest.raises(ValueError, match="4-byte"):
        OutputRows(w)
    w.abort()
