"""A whole-field background and noise mesh for channel 0 of an input variant.

SExtractor's estimator on a grid of ``box`` x ``box`` cells: each cell's valid pixels are
sigma-clipped (3 sigma about the median, up to 10 iterations), the background is
``2.5 median - 1.5 mean`` (the median in crowded cells) and the rms their standard deviation
(photutils' ``SExtractorBackground`` and ``StdBackgroundRMS``, which a test checks it against).
The clipping of all cells of a strip is done at once (:func:`~astrostatlearn.preprocess.clipping.clipped_rows`),
one strip of ``box`` rows at a time, so the field is read once in bounded memory. A cell with
half or fewer of its pixels left (masked, non-finite, clipped, or beyond the field's edge) takes
the value of the nearest good cell. The mesh is median-filtered (3x3, like SExtractor's
BACK_FILTERSIZE) and interpolated bilinearly at each pixel from global coordinates, so a pixel
gets the same background in every tile that holds it.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from astrostatlearn.errors import InputError
from astrostatlearn.field import Field, Window
from astrostatlearn.field.checks import check_pixels
from astrostatlearn.preprocess import Preprocessor
from astrostatlearn.preprocess.clipping import clipped_rows
from astrostatlearn.progress import progress_bar


def cell_statistics(values: np.ndarray, box: int) -> tuple[np.ndarray, np.ndarray]:
    """Background and rms of each ``box`` x ``box`` cell of ``values`` (a block of rows, NaN =
    invalid), as ``[cell rows, cell columns]`` maps: SExtractor's clipped mode and the clipped
    standard deviation, NaN where half or fewer of a cell's pixels are left after clipping (a cell
    cut by the field's bottom edge counts its rows inside; one cut by the right edge, a full
    ``box`` columns)."""
    h, nx = values.shape
    ncy, ncx = -(-h // box), -(-nx // box)
    if (h, nx) == (ncy * box, ncx * box):
        padded = np.asarray(values, np.float32)
    else:
        padded = np.full((ncy * box, ncx * box), np.nan, np.float32)
        padded[:h, :nx] = values
    cells = padded.reshape(ncy, box, ncx, box).transpose(0, 2, 1, 3).reshape(ncy * ncx, box * box)
    st = clipped_rows(cells, sigma=3.0, maxiters=10)
    rows_in = np.minimum(box, h - box * np.arange(ncy))  # rows of each cell row inside the block
    bad = (st.n.reshape(ncy, ncx) <= 0.5 * rows_in[:, None] * box)
    return (np.where(bad, np.nan, st.sextractor_mode().reshape(ncy, ncx)),
            np.where(bad, np.nan, st.std.reshape(ncy, ncx)))


def _fill_from_nearest(mesh: np.ndarray) -> np.ndarray:
    """Non-finite cells take the value of the nearest finite cell (0 when there is none)."""
    bad = ~np.isfinite(mesh)
    if bad.all():
        return np.zeros_like(mesh)
    if not bad.any():
        return mesh
    iy, ix = ndimage.distance_transform_edt(bad, return_distances=False, return_indices=True)
    return mesh[iy, ix]


@dataclass
class BackgroundMesh:
    """Background and rms of channel 0 on a grid of ``box`` x ``box`` cells (variant units)."""

    box: int
    bkg: np.ndarray
    rms: np.ndarray
    shape: tuple[int, int]

    @classmethod
    def from_field(cls, field: Field, pre: Preprocessor, box: int = 64, filter_size: int = 3,
                   progress: bool = False, workers: int = 2, check: bool = False) -> "BackgroundMesh":
        """Measure the mesh of ``field`` (one read of the image and rms, ``box`` rows at a time).
        With ``check``, the same pass makes :func:`~astrostatlearn.field.scan_field`'s image and
        rms checks (an :class:`InputError` names the first bad pixel). Memory: a few copies of
        one strip (``box`` x width float32) per worker thread."""
        ny, nx = field.shape
        box = int(min(box, ny, nx))
        # Blocks of whole cell rows, about 4 Mpix each: few enough calls that the clipping's
        # bookkeeping is small beside its sorting (which runs without the GIL).
        rows_per_block = box * max(1, (1 << 22) // (box * nx))
        starts = list(range(0, ny, rows_per_block))

        def block(y0: int) -> tuple[np.ndarray, np.ndarray, int]:
            w = Window(y0, min(y0 + rows_per_block, ny), 0, nx)
            img, rms = field.read_img(w), field.read_rms(w)
            n_bad = check_pixels(field, w, img, rms) if check else 0
            ch0 = pre.apply(img, rms)[0]
            finite = np.isfinite(img)
            return (*cell_statistics(ch0 if finite.all() else np.where(finite, ch0, np.nan), box), n_bad)

        # Blocks are independent; two threads overlap reading with the sorting.
        with ThreadPoolExecutor(max_workers=workers) as pool:
            results = progress_bar(pool.map(block, starts), total=len(starts), desc="background mesh",
                                   unit="block", enabled=progress)
            rows = list(results)
        if check and sum(r[2] for r in rows) == ny * nx:
            raise InputError("every pixel is non-finite (NaN or inf)", field.img.path)
        bkg = _fill_from_nearest(np.vstack([r[0] for r in rows]))
        rms = _fill_from_nearest(np.vstack([r[1] for r in rows]))
        if filter_size > 1:
            bkg = ndimage.median_filter(bkg, filter_size, mode="nearest")
            rms = ndimage.median_filter(rms, filter_size, mode="nearest")
        rms = np.where(rms > 0, rms, np.median(rms[rms > 0]) if (rms > 0).any() else 1.0)
        return cls(box, bkg, rms, (ny, nx))

    def at(self, window: Window) -> tuple[np.ndarray, np.ndarray]:
        """(background, rms) of ``window``, float32, bilinear between the mesh cell centres
        (constant beyond the outermost centres). Separable, so each map is ``Wy @ mesh @ Wx.T``
        with two small interpolation matrices (two nonzeros per row)."""
        wy = _interpolation_matrix(np.arange(window.y0, window.y1), self.box, self.bkg.shape[0])
        wx = _interpolation_matrix(np.arange(window.x0, window.x1), self.box, self.bkg.shape[1])
        return _apply(self.bkg, wy, wx), _apply(self.rms, wy, wx)


def _interpolation_matrix(pix: np.ndarray, box: int, n: int) -> np.ndarray:
    """``[len(pix), n]`` float32 weights of linear interpolation of pixel centres between the
    centres of ``n`` cells of ``box`` pixels."""
    pos = np.clip((pix - (box - 1) / 2.0) / box, 0.0, n - 1.0)
    i0 = np.floor(pos).astype(np.int64)
    i1 = np.minimum(i0 + 1, n - 1)
    f = pos - i0
    w = np.zeros((pix.size, n), np.float64)
    rows = np.arange(pix.size)
    np.add.at(w, (rows, i0), 1.0 - f)
    np.add.at(w, (rows, i1), f)
    return w.astype(np.float32)


def _apply(mesh: np.ndarray, wy: np.ndarray, wx: np.ndarray) -> np.ndarray:
    """Only the mesh rows and columns the window uses enter the products."""
    cy = np.flatnonzero(wy.any(axis=0))
    cx = np.flatnonzero(wx.any(axis=0))
    sub = mesh[np.ix_(cy, cx)].astype(np.float32)
    return np.ascontiguousarray((wy[:, cy] @ sub) @ wx[:, cx].T, dtype=np.float32)
