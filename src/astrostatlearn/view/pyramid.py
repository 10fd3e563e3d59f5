"""The Deep Zoom (DZI) tile pyramid of a field, and how it is cut into blocks of work.

Conventions:

- **Display frame.** Tiles show the field as ds9 does, row 0 of the FITS array at the *bottom*:
  display row ``r`` is array row ``ny - 1 - r``. Display coordinates are continuous, pixel
  ``(x, y)`` (0-based, array frame) covering ``[x, x+1) x [ny-1-y, ny-y)``.
- **Levels.** Level ``max_level = ceil(log2(max(ny, nx)))`` is full resolution; level
  ``max_level - j`` is the field downsampled ``2**j`` times (size ``ceil(n / 2**j)``), down to
  level 0 (1x1), as OpenSeadragon's DZI source expects. Tiles are ``tile`` x ``tile`` with no
  overlap: ``<level>/<col>_<row>.png``.
- **Blocks.** Full-resolution blocks of ``tile * 2**block_levels`` display pixels hold the tiles
  of the ``block_levels + 1`` finest levels whole; each block is one task, and hands back its
  coarsest level, from which the driver builds the remaining levels of the whole field.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from astrostatlearn.field import Window


@dataclass(frozen=True)
class Pyramid:
    """The geometry of a pyramid over a field of ``shape`` (ny, nx)."""

    shape: tuple[int, int]
    tile: int = 256
    block_levels: int = 4

    @property
    def max_level(self) -> int:
        return max(0, math.ceil(math.log2(max(self.shape))))

    @property
    def block(self) -> int:
        """Side of a block of work, in full-resolution pixels."""
        return self.tile << self.block_levels

    @property
    def levels_in_blocks(self) -> int:
        """How many of the finest levels are made inside the blocks (the rest by the driver)."""
        return min(self.block_levels, self.max_level) + 1

    def level_shape(self, level: int) -> tuple[int, int]:
        f = 1 << (self.max_level - level)
        return (-(-self.shape[0] // f), -(-self.shape[1] // f))

    def blocks(self) -> list[Window]:
        """Blocks of work in the display frame, row by row."""
        ny, nx = self.shape
        b = self.block
        return [Window(y0, min(y0 + b, ny), x0, min(x0 + b, nx)) for y0 in range(0, ny, b) for x0 in range(0, nx, b)]

    def n_tiles(self) -> int:
        return sum(-(-h // self.tile) * -(-w // self.tile) for h, w in map(self.level_shape, range(self.max_level + 1)))

    def to_array(self, display: Window) -> Window:
        """The array-frame window holding the rows of a display-frame window."""
        ny = self.shape[0]
        return Window(ny - display.y1, ny - display.y0, display.x0, display.x1)


def read_display(read: Callable[[Window], np.ndarray], pyramid: Pyramid, display: Window) -> np.ndarray:
    """Read a display-frame window with an array-frame reader (rows flipped)."""
    return read(pyramid.to_array(display))[::-1]


def halve(data: np.ndarray, reduce: str) -> np.ndarray:
    """Downsample 2x2 -> 1 (sizes rounded up). ``reduce='mean'``: the mean of the finite values
    (NaN where none is); ``'max'``: the largest value (label maps: no ID is ever averaged, and a
    small object stays visible at every level)."""
    h, w = data.shape[:2]
    pad = ((0, h % 2), (0, w % 2)) + ((0, 0),) * (data.ndim - 2)
    if reduce == "mean":
        data = np.pad(data, pad, constant_values=np.nan)
        quads = data.reshape(data.shape[0] // 2, 2, data.shape[1] // 2, 2, *data.shape[2:])
        finite = np.isfinite(quads)
        n = finite.sum(axis=(1, 3))
        total = np.where(finite, quads, 0).sum(axis=(1, 3), dtype=np.float32)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(n > 0, total / np.maximum(n, 1), np.nan).astype(np.float32)
    if reduce == "max":
        data = np.pad(data, pad)
        return data.reshape(data.shape[0] // 2, 2, data.shape[1] // 2, 2).max(axis=(1, 3))
    raise ValueError(f"unknown reduction {reduce!r}")


def tiles_of(level_data: np.ndarray, origin: tuple[int, int], tile: int) -> Iterator[tuple[int, int, np.ndarray]]:
    """``(col, row, tile_array)`` for the tiles of a tile-aligned level array whose top-left pixel
    is at level pixel ``origin`` (y, x)."""
    oy, ox = origin
    h, w = level_data.shape[:2]
    for y in range(0, h, tile):
        for x in range(0, w, tile):
            yield (ox + x) // tile, (oy + y) // tile, level_data[y:y + tile, x:x + tile]


def tile_path(root: Path, level: int, col: int, row: int, ext: str = "png") -> Path:
    return root / str(level) / f"{col}_{row}.{ext}"
