"""Rectangular windows on a 2-D field and the tile grids that cover it.

A :class:`Window` is a half-open box ``[y0, y1) x [x0, x1)`` in 0-based pixel coordinates,
axis order ``(y, x)``, like a numpy slice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator


@dataclass(frozen=True, order=True)
class Window:
    """Half-open pixel box ``[y0, y1) x [x0, x1)`` (0-based, axis order y, x)."""

    y0: int
    y1: int
    x0: int
    x1: int

    def __post_init__(self) -> None:
        if self.y1 < self.y0 or self.x1 < self.x0:
            raise ValueError(f"empty or inverted window {self}")

    @property
    def shape(self) -> tuple[int, int]:
        return (self.y1 - self.y0, self.x1 - self.x0)

    @property
    def size(self) -> int:
        return (self.y1 - self.y0) * (self.x1 - self.x0)

    @property
    def slices(self) -> tuple[slice, slice]:
        """Slices that cut this window out of the full field array."""
        return (slice(self.y0, self.y1), slice(self.x0, self.x1))

    def grow(self, halo: int, shape: tuple[int, int] | None = None) -> "Window":
        """This window grown by ``halo`` pixels on every side, clipped to ``shape`` if given."""
        y0, y1, x0, x1 = self.y0 - halo, self.y1 + halo, self.x0 - halo, self.x1 + halo
        if shape is not None:
            y0, x0 = max(y0, 0), max(x0, 0)
            y1, x1 = min(y1, shape[0]), min(x1, shape[1])
        return Window(y0, y1, x0, x1)

    def intersect(self, other: "Window") -> "Window | None":
        y0, y1 = max(self.y0, other.y0), min(self.y1, other.y1)
        x0, x1 = max(self.x0, other.x0), min(self.x1, other.x1)
        if y1 <= y0 or x1 <= x0:
            return None
        return Window(y0, y1, x0, x1)

    def relative_to(self, outer: "Window") -> tuple[slice, slice]:
        """Slices that cut this window out of an array holding ``outer``."""
        return (
            slice(self.y0 - outer.y0, self.y1 - outer.y0),
            slice(self.x0 - outer.x0, self.x1 - outer.x0),
        )

    def contains(self, y: float, x: float) -> bool:
        """Whether the pixel holding the 0-based position (y, x) lies inside this window."""
        iy, ix = int(round(y)), int(round(x))
        return self.y0 <= iy < self.y1 and self.x0 <= ix < self.x1


def tile_grid(shape: tuple[int, int], tile: int | tuple[int, int]) -> list[Window]:
    """Cover a field of ``shape`` (ny, nx) with non-overlapping tiles of at most ``tile`` pixels.

    Tiles are listed row by row; edge tiles are smaller when ``tile`` does not divide the shape.
    """
    ty, tx = (tile, tile) if isinstance(tile, int) else tile
    if ty <= 0 or tx <= 0:
        raise ValueError(f"tile size must be positive, got {tile}")
    ny, nx = shape
    return [
        Window(y0, min(y0 + ty, ny), x0, min(x0 + tx, nx))
        for y0 in range(0, ny, ty)
        for x0 in range(0, nx, tx)
    ]


def row_blocks(shape: tuple[int, int], max_pixels: int = 1 << 24) -> Iterator[Window]:
    """Full-width horizontal strips of at most ``max_pixels`` pixels, for streaming scans."""
    ny, nx = shape
    rows = max(1, max_pixels // max(nx, 1))
    for y0 in range(0, ny, rows):
        yield Window(y0, min(y0 + rows, ny), 0, nx)


def sample_rows(shape: tuple[int, int], max_pixels: int = 4_000_000, max_block_rows: int = 256) -> list[Window]:
    """A regular subsample of whole rows with at most ``max_pixels`` pixels, as windows: runs of
    consecutive sampled rows (all rows of a small field) are read together, up to
    ``max_block_rows`` at a time, which gives the same pixels with far fewer reads."""
    ny, nx = shape
    n_rows = max(1, min(ny, max_pixels // max(nx, 1)))
    step = max(1, ny // n_rows)
    if step > 1:
        return [Window(y, y + 1, 0, nx) for y in range(0, ny, step)]
    return [Window(y, min(y + max_block_rows, ny), 0, nx) for y in range(0, ny, max_block_rows)]
