"""The output maps' open rows: tiles' results are merged in memory and written out, in whole
disk blocks, once no later tile can reach them.

Tile results arrive in raster order of their cores, and a tile's objects lie inside its window
(core plus halo). So when a tile whose window starts at row ``y0`` arrives, every row above
``y0`` is final. :class:`OutputRows` holds the map's bytes from the first one not yet written to
the last row a tile has reached: at most one tile plus two halos of rows,
``(tile + 2 halo) x width x 4`` bytes (230 MB at tile 2048, halo 128 and width 25000).

Final rows are written with ``O_DIRECT`` where the file system has it (4 kB-aligned blocks from
an aligned buffer: the band always starts on a block), so the output never passes through the
page cache. Filling fresh page-cache pages cost this process 2-4 ms per MB on the virtual
machines measured (0.9 s of the driver's time at 8192^2; a 25000^2 map is 2.5 GB), on the cores
the workers need; merging into a memory-mapped file paid the same plus a page fault per 4 kB. The bytes
before the data unit (the header's last block) are read once and written back unchanged, and a
last partial block goes through the page cache.
"""

from __future__ import annotations

import os

import numpy as np

from astrostatlearn.field import FitsImageWriter, Window

BLOCK = 4096  # bytes: O_DIRECT alignment (a multiple of every logical block size in use)


class OutputRows:
    """A band of ``writer``'s 4-byte map (int32 labels or float32 scores), element ``k`` of the
    band being file byte ``base + 4 k`` (``base``: the block holding the data unit's start).

    ``resumed``: the file already holds a killed run's rows, so rows entering the band are read
    back from it (a fresh file's rows start at 0 without being read). ``rows``: the most rows a
    window spans, so the band is allocated once at its full size (growing it would hold the old
    and the new buffer at once).
    """

    def __init__(self, writer: FitsImageWriter, resumed: bool = False, rows: int = 0) -> None:
        fname, data_offset, shape, dtype = writer.target
        self.dtype = np.dtype(dtype).newbyteorder(">")  # as FITS stores it: written without a swap
        if self.dtype.itemsize != 4:
            raise ValueError(f"OutputRows holds 4-byte maps, not {self.dtype}")
        self.ny, self.nx = shape[-2:]
        self.resumed = resumed
        self.base = data_offset // BLOCK * BLOCK
        self.head = (data_offset - self.base) // 4  # elements of header bytes before pixel (0, 0)
        self.fd = os.open(fname, os.O_RDWR)
        self.fd_direct = _open_direct(fname)
        self.k0 = 0  # first element held
        self._raw = np.zeros(0, np.uint8)
        self._store = np.zeros(0, self.dtype)
        self._n = 0  # elements held in _store[:_n]
        self._grow(self.head + (min(rows, self.ny) + 1) * self.nx + BLOCK // 4)  # a window, a row and a block
        head = os.pread(self.fd, self.head * 4, self.base)
        self._store[:self.head] = np.frombuffer(head, self.dtype)
        self._n = self.head

    def merge_labels(self, window: Window, pixels: np.ndarray, ids: np.ndarray, offset: int) -> None:
        """Put ``ids + offset`` at ``pixels`` (flat indices into ``window``, increasing) where the
        map is still 0, never over another object; rows above ``window`` are written first.
        Windows must come in non-decreasing order of their first row."""
        self._advance(window)
        if pixels.size == 0:
            return
        self._extend(window.y1)
        y, x = np.divmod(pixels, window.shape[1])
        flat = (y + window.y0) * self.nx + (x + (window.x0 + self.head - self.k0))
        free = self._store[flat] == 0
        self._store[flat[free]] = ids[free] + offset

    def place(self, window: Window, data: np.ndarray) -> None:
        """Put ``data`` at ``window`` (windows in non-decreasing order of their first row)."""
        self._advance(window)
        self._extend(window.y1)
        start = self.head + window.y0 * self.nx - self.k0
        rows = self._store[start:start + window.shape[0] * self.nx].reshape(window.shape[0], self.nx)
        rows[:, window.x0:window.x1] = data

    def flush(self) -> None:
        """Write every element of the band, keeping it (before a checkpoint)."""
        aligned = self._n // (BLOCK // 4) * (BLOCK // 4)
        self._write(0, aligned, direct=True)
        self._write(aligned, self._n, direct=False)

    def close(self) -> None:
        """Write the band and drop it (the map is complete)."""
        self.flush()
        self.discard()

    def discard(self) -> None:
        """Drop the band unwritten (the run failed) and close the file."""
        self._n = 0
        for fd in {self.fd, self.fd_direct}:
            if fd is not None:
                os.close(fd)
        self.fd = self.fd_direct = None  # type: ignore[assignment]

    def _advance(self, window: Window) -> None:
        """Write and drop the whole blocks above ``window``'s first row (final from now on)."""
        final = self.head + window.y0 * self.nx
        if final < self.k0:
            raise ValueError(f"window at row {window.y0} is out of order")
        k = (min(final, self.k0 + self._n) - self.k0) // (BLOCK // 4) * (BLOCK // 4)
        if k > 0:
            self._write(0, k, direct=True)
            self._store[:self._n - k] = self._store[k:self._n]
            self._n -= k
            self.k0 += k

    def _extend(self, y1: int) -> None:
        """Grow the band to hold rows up to ``y1`` (exclusive)."""
        need = self.head + y1 * self.nx - self.k0
        if need <= self._n:
            return
        self._grow(need)
        new = self._store[self._n:need]
        if self.resumed:
            got = os.preadv(self.fd, [memoryview(new).cast("B")], self.base + (self.k0 + self._n) * 4)
            if got != new.nbytes:
                raise OSError(f"short read of a resumed map: {got} of {new.nbytes} bytes")
        else:
            new[...] = 0
        self._n = need

    def _grow(self, n: int) -> None:
        """Make room for ``n`` elements, keeping those held; the store starts on a block."""
        if n <= self._store.size:
            return
        raw = np.empty(n * 4 + BLOCK, np.uint8)
        skip = (-raw.ctypes.data) % BLOCK
        store = raw[skip:skip + n * 4].view(self.dtype)
        store[:self._n] = self._store[:self._n]
        self._raw, self._store = raw, store

    def _write(self, start: int, stop: int, direct: bool) -> None:
        if stop <= start:
            return
        fd = self.fd_direct if direct and self.fd_direct is not None else self.fd
        data = memoryview(self._store[start:stop]).cast("B")
        done = os.pwrite(fd, data, self.base + (self.k0 + start) * 4)
        if done != data.nbytes:
            raise OSError(f"short write: {done} of {data.nbytes} bytes")


def _open_direct(fname: str) -> int | None:
    """A descriptor that bypasses the page cache, or None where the file system refuses it."""
    flag = getattr(os, "O_DIRECT", 0)
    if not flag:
        return None
    try:
        return os.open(fname, os.O_WRONLY | flag)
    except OSError:
        return None
