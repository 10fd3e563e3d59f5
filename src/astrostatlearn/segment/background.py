"""A whole-field background and noise mesh for channel 0 of an input variant.

SExtractor's estimator on a grid of ``box`` x ``box`` cells: each cell's valid pixels are
sigma-clipped (3 sigma about the median, up to 10 iterations), the background is
``2.5 median - 1.5 mean`` (the median in crowded cells) and the rms their standard deviation
(photutils' ``SExtractorBackground`` and ``StdBackgroundRMS``, which a test checks it against;
a method may take every second pixel along each axis instead, ``sample=2``).
The clipping of all cells of a strip is done at once (:func:`~astrostatlearn.preprocess.clipping.clipped_rows`),
one strip of ``box`` rows at a time, so the field is read once in bounded memory. A cell with
half or fewer of its pixels left (masked, non-finite, clipped, or beyond the field's edge) takes
the value of the nearest good cell. The mesh is median-filtered (3x3, like SExtractor's
BACK_FILTERSIZE; beyond its edges it is continued linearly, so a sky gradient does not bias the
edge cells) and interpolated bilinearly at each pixel from global coordinates, so a pixel gets
the same background in every tile that holds it; the background goes on linearly beyond the
outermost cell centres, as SExtractor's spline does, and the rms stays constant there.
"""

from __future__ import annotations

from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np

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


def sample_step(box: int, sample: int) -> int:
    """The pixel step the cells of ``box`` pixels are measured with: ``sample`` when it divides
    ``box`` into at least 16 samples per side, else 1 (every pixel)."""
    return sample if sample > 1 and box % sample == 0 and box // sample >= 16 else 1


def block_statistics(field: Field, pre: Preprocessor | None, window: Window, box: int,
                     check: bool, sample: int = 1) -> tuple[np.ndarray, np.ndarray, int]:
    """:func:`cell_statistics` of channel 0 of ``window`` (whole rows of cells, starting on a
    cell edge) from every ``sample``-th pixel along each axis (:func:`sample_step` of ``box``),
    and, with ``check``, the number of bad pixels among all of them that
    :func:`~astrostatlearn.field.checks.check_pixels` counts there (an :class:`InputError` names
    the first one that is an error). ``pre`` None: channel 0 is the image itself
    (:func:`~astrostatlearn.preprocess.channel0_is_image`)."""
    img, rms = field.read_img_rms(window)
    n_bad = check_pixels(field, window, img, rms) if check else 0
    step = sample_step(box, sample)
    if step > 1:
        img, rms = img[::step, ::step], None if rms is None else rms[::step, ::step]
    if pre is None:
        ch0 = np.asarray(img, np.float32)
    elif rms is None or pre.context == 0:
        ch0 = pre.apply(img, rms)[0]
    else:  # the mesh measures the sky, where the sky rms is the rms map itself: none to compute
        rms = np.where(np.isfinite(rms) & (rms > 0), rms, np.float32(pre.stats.rms_median))
        ch0 = pre.apply(img, rms, sky=rms)[0]
    finite = np.isfinite(img)
    return (*cell_statistics(ch0 if finite.all() else np.where(finite, ch0, np.nan), box // step), n_bad)


def _blocks_in_process(paths: tuple[Any, Any], pre: Preprocessor | None, windows: list[Window], box: int,
                       check: bool, sample: int = 1) -> list[tuple[np.ndarray, np.ndarray, int]]:
    """:func:`block_statistics` of consecutive ``windows`` in a worker process, which opens the
    field once for them (and closes it: nothing outlives the task)."""
    with Field.from_sources(*paths) as field:
        return [block_statistics(field, pre, w, box, check, sample) for w in windows]


def _fill_from_nearest(mesh: np.ndarray) -> np.ndarray:
    """Non-finite cells take the value of the nearest finite cell (0 when there is none)."""
    bad = ~np.isfinite(mesh)
    if bad.all():
        return np.zeros_like(mesh)
    if not bad.any():
        return mesh
    from scipy import ndimage

    iy, ix = ndimage.distance_transform_edt(bad, return_distances=False, return_indices=True)
    return mesh[iy, ix]


def median_filter(mesh: np.ndarray, size: int) -> np.ndarray:
    """A ``size`` x ``size`` median filter of ``mesh`` (odd ``size``), the mesh continued beyond its
    edges by odd reflection (``2 * edge - mirrored``: a plane goes on as a plane, so the edge cells
    of a sky gradient are not pulled towards their inner neighbours, as repeating the edge would
    pull them). In numpy: the mesh is small (a cell per 64^2 pixels), and the driver then never
    imports scipy (0.1 s). An even ``size`` (no centre cell) repeats the edge (scipy's ``nearest``)."""
    if size % 2 == 0:
        from scipy import ndimage

        return ndimage.median_filter(mesh, size, mode="nearest")
    r = size // 2
    if min(mesh.shape) <= r:  # too few cells to reflect about the edge
        padded = np.pad(mesh, r, mode="edge")
    else:
        padded = np.pad(mesh, r, mode="reflect", reflect_type="odd")
    windows = np.lib.stride_tricks.sliding_window_view(padded, (size, size))
    return np.median(windows.reshape(*mesh.shape, size * size), axis=-1).astype(mesh.dtype, copy=False)


@dataclass
class BackgroundMesh:
    """Background and rms of channel 0 on a grid of ``box`` x ``box`` cells (variant units)."""

    box: int
    bkg: np.ndarray
    rms: np.ndarray
    shape: tuple[int, int]

    @classmethod
    def from_field(cls, field: Field, pre: Preprocessor | None, box: int = 64, filter_size: int = 3,
                   progress: bool = False, workers: int = 2, check: bool = False,
                   pool: Executor | None = None, sample: int = 1) -> "BackgroundMesh":
        """Measure the mesh of ``field`` (one read of the image and rms, ``box`` rows at a time).
        Each cell is measured on every ``sample``-th pixel along each axis (:func:`sample_step`);
        1, the default, measures every pixel, as photutils' ``Background2D`` does; 2 a quarter
        of them (1024 of a 64^2 cell) for half the mesh's time, and an estimate about twice as
        noisy (0.03 sigma after the median filter on a simulated field): a method's
        ``background_sample`` says which it takes. With ``check``, the same pass makes
        :func:`~astrostatlearn.field.scan_field`'s image and rms checks on every pixel (an
        :class:`InputError` names the first bad pixel). The blocks of rows are
        measured by ``workers`` threads, or by the processes of ``pool`` (a field on disk only:
        the clipping's bookkeeping holds the GIL, so threads reach about 1.7x on two cores).
        ``pre`` is the fitted variant, or None for one whose channel 0 is the image itself
        (:func:`~astrostatlearn.preprocess.channel0_is_image`): the same mesh, measured before the
        variant's statistics, or while they are. Memory: a few copies of one strip (``box`` x
        width float32) per worker."""
        ny, nx = field.shape
        box = int(min(box, ny, nx))
        # Blocks of whole cell rows, about 4 Mpix each: few enough calls that the clipping's
        # bookkeeping is small beside its sorting (which runs without the GIL).
        rows_per_block = box * max(1, (1 << 22) // (box * nx))
        windows = [Window(y0, min(y0 + rows_per_block, ny), 0, nx) for y0 in range(0, ny, rows_per_block)]
        bar = progress_bar(total=len(windows), desc="background mesh", unit="block", enabled=progress)
        rows = []
        for done in _measure_blocks(field, pre, windows, box, check, workers, pool, sample):
            rows.extend(done)
            bar.update(len(done))
        bar.close()
        if check and sum(r[2] for r in rows) == ny * nx:
            raise InputError("every pixel is non-finite (NaN or inf)", field.img.path)
        bkg = _fill_from_nearest(np.vstack([r[0] for r in rows]))
        rms = _fill_from_nearest(np.vstack([r[1] for r in rows]))
        if filter_size > 1:
            bkg, rms = median_filter(bkg, filter_size), median_filter(rms, filter_size)
        rms = np.where(rms > 0, rms, np.median(rms[rms > 0]) if (rms > 0).any() else 1.0)
        return cls(box, bkg, rms, (ny, nx))

    def at(self, window: Window) -> tuple[np.ndarray, np.ndarray]:
        """(background, rms) of ``window``: :meth:`background_at` and :meth:`rms_at`."""
        return self.background_at(window), self.rms_at(window)

    def background_at(self, window: Window) -> np.ndarray:
        """Background of ``window``, float32, bilinear between the mesh cell centres and linear
        beyond the outermost centres (the last half cell at each edge); each pixel's value depends
        on its field coordinates only, so it is the same in every window that holds it."""
        return self._interpolate(self.bkg, window, extrapolate=True)

    def rms_at(self, window: Window) -> np.ndarray:
        """Rms of ``window``, float32, bilinear as :meth:`background_at` but constant beyond the
        outermost centres (a noise level is never extrapolated towards 0)."""
        return self._interpolate(self.rms, window)

    def rms_max(self, window: Window) -> float:
        """An upper bound of :meth:`rms_at` over ``window`` (the largest rms of the cells it is
        interpolated from), without interpolating."""
        (r0, r1, _), (c0, c1, _) = (_neighbours(np.array([window.y0, window.y1 - 1]), self.box, self.rms.shape[0]),
                                    _neighbours(np.array([window.x0, window.x1 - 1]), self.box, self.rms.shape[1]))
        return float(self.rms[r0[0]:r1[1] + 1, c0[0]:c1[1] + 1].max())

    def _interpolate(self, mesh: np.ndarray, window: Window, extrapolate: bool = False) -> np.ndarray:
        rows = _neighbours(np.arange(window.y0, window.y1), self.box, mesh.shape[0], extrapolate)
        cols = _neighbours(np.arange(window.x0, window.x1), self.box, mesh.shape[1], extrapolate)
        return _bilinear(mesh, rows, cols)


def _neighbours(pix: np.ndarray, box: int, n: int,
                extrapolate: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For pixel centres ``pix``: the two cells (of ``n`` cells of ``box`` pixels) whose centres
    bracket each, and the float32 weight of the second. Beyond the outermost centres the weight
    is clipped to [0, 1] (constant), or with ``extrapolate`` goes on from the two outermost cells
    (below 0 or above 1: linear)."""
    pos = (pix - (box - 1) / 2.0) / box
    if extrapolate and n > 1:
        i0 = np.clip(np.floor(pos), 0, n - 2).astype(np.int64)
        return i0, i0 + 1, (pos - i0).astype(np.float32)
    pos = np.clip(pos, 0.0, n - 1.0)
    i0 = np.floor(pos).astype(np.int64)
    return i0, np.minimum(i0 + 1, n - 1), (pos - i0).astype(np.float32)


def _bilinear(mesh: np.ndarray, rows: tuple[np.ndarray, ...], cols: tuple[np.ndarray, ...]) -> np.ndarray:
    """``mesh`` interpolated to the pixels of ``rows`` x ``cols`` (:func:`_neighbours`), float32.

    Separable: rows first (a small ``[pixels, cells]`` array), then, for each run of columns
    between the same two cell centres, ``a + (b - a) * fx`` written straight into the output: two
    passes over the output and no BLAS call, so tile threads never share (and never deadlock in)
    a threaded BLAS."""
    (r0, r1, fy), (c0, c1, fx) = rows, cols
    if r0.size == 0 or c0.size == 0:
        return np.zeros((r0.size, c0.size), np.float32)
    lo, hi = int(c0[0]), int(c1[-1]) + 1  # the cells the columns need (c0, c1 never decrease)
    m = mesh[:, lo:hi].astype(np.float32)
    along_y = m[r0] * (1 - fy)[:, None] + m[r1] * fy[:, None]
    out = np.empty((r0.size, c0.size), np.float32)
    edges = [0, *(np.flatnonzero(np.diff(c0)) + 1).tolist(), c0.size]
    for s, e in zip(edges[:-1], edges[1:]):  # columns s..e-1 share c0 (and so c1)
        a = along_y[:, c0[s] - lo, None]
        np.multiply(along_y[:, c1[s] - lo, None] - a, fx[None, s:e], out=out[:, s:e])
        out[:, s:e] += a
    return out


def _measure_blocks(field: Field, pre: Preprocessor | None, windows: list[Window], box: int, check: bool, workers: int,
                    pool: Executor | None, sample: int) -> Iterator[list[tuple[np.ndarray, np.ndarray, int]]]:
    """:func:`block_statistics` of every window, in order, in lists as they are done: by the
    processes of ``pool`` (``workers`` of them) in runs of consecutive windows (four per process),
    else by ``workers`` threads."""
    paths = field.sources if pool is not None else None
    if pool is not None and paths is not None:
        n_runs = min(len(windows), 4 * max(1, workers))
        edges = np.linspace(0, len(windows), n_runs + 1).round().astype(int)
        futures = [pool.submit(_blocks_in_process, paths, pre, windows[a:b], box, check, sample)
                   for a, b in zip(edges[:-1], edges[1:]) if b > a]
        for fut in futures:
            yield fut.result()
        return
    # Blocks are independent; threads overlap reading with the sorting (which leaves the GIL).
    with ThreadPoolExecutor(max_workers=workers) as threads:
        for res in threads.map(lambda w: block_statistics(field, pre, w, box, check, sample), windows):
            yield [res]
