"""One block of work: read a display-frame block of each layer's FITS, write the tiles of the
block's levels, and hand back the coarsest level for the driver (see :mod:`.pyramid`).

Memory per task: the block's pixels (``tile * 2**block_levels`` = 4096² by default) in float32
and its RGBA overlay, about 0.4 GB at most, whatever the field size.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from astrostatlearn.field import Window
from astrostatlearn.field.checks import check_label_block
from astrostatlearn.field.fitsio import open_image
from astrostatlearn.view.layers import id_rgb, image_la, overlay_rgba, save_png
from astrostatlearn.view.pyramid import Pyramid, halve, read_display, tile_path, tiles_of
from astrostatlearn.view.stretch import Stretch


@dataclass(frozen=True)
class LayerJob:
    """A layer to render: ``kind`` 'image' (with ``stretch``) or 'labels'; ``source``: its FITS
    file; ``root``: the folder its tiles go to (``<root>/tiles/<level>/...`` and, for labels,
    ``<root>/ids/<col>_<row>.png`` at full resolution)."""

    name: str
    kind: str
    source: str
    root: str
    stretch: Stretch | None = None


def _read_labels(job: LayerJob, pyramid: Pyramid, display: Window) -> np.ndarray:
    with open_image(job.source, role="segmentation") as f:
        raw = read_display(f.read, pyramid, display)
        return check_label_block(raw, pyramid.to_array(display), f.path, role=job.name).astype(np.int32)


def _write_levels(pyramid: Pyramid, block: Window, root: Path, data: np.ndarray, render, reduce: str,
                  halo: tuple[int, int, int, int] = (0, 0, 0, 0)) -> np.ndarray:
    """Write the block's tiles of the finest levels; return its coarsest level (core only)."""
    t, b, l, r = halo
    for j in range(pyramid.levels_in_blocks):
        level = pyramid.max_level - j
        core = data[t:data.shape[0] - b, l:data.shape[1] - r]
        picture = render(data, (t, b, l, r))
        (root / str(level)).mkdir(parents=True, exist_ok=True)
        for col, row, tile in tiles_of(picture, (block.y0 >> j, block.x0 >> j), pyramid.tile):
            save_png(tile_path(root, level, col, row), tile)
        if j == pyramid.levels_in_blocks - 1:
            return core
        data = halve(data, reduce)
        t, b, l, r = t // 2, -(-b // 2), l // 2, -(-r // 2)
    raise AssertionError("unreachable")


def render_block(pyramid: Pyramid, block: Window, jobs: tuple[LayerJob, ...]) -> dict[str, np.ndarray]:
    """Write every tile of ``block`` for each job; return ``{name: coarsest level array}``."""
    out: dict[str, np.ndarray] = {}
    for job in jobs:
        root = Path(job.root)
        if job.kind == "image":
            with open_image(job.source, role="image") as f:
                values = job.stretch.apply(read_display(f.read, pyramid, block))  # type: ignore[union-attr]
            out[job.name] = _write_levels(pyramid, block, root / "tiles", values, lambda d, h: image_la(d), "mean")
            continue
        # A halo of 2**levels pixels leaves >= 1 pixel around the core at every level, for outlines.
        grown = block.grow(1 << (pyramid.levels_in_blocks - 1), pyramid.shape)
        halo = (block.y0 - grown.y0, grown.y1 - block.y1, block.x0 - grown.x0, grown.x1 - block.x1)
        labels = _read_labels(job, pyramid, grown)
        core = labels[halo[0]:labels.shape[0] - halo[1], halo[2]:labels.shape[1] - halo[3]]
        (root / "ids").mkdir(parents=True, exist_ok=True)
        for col, row, tile in tiles_of(id_rgb(core, Path(job.source)), (block.y0, block.x0), pyramid.tile):
            save_png(root / "ids" / f"{col}_{row}.png", tile)
        out[job.name] = _write_levels(pyramid, block, root / "tiles", labels, overlay_rgba, "max", halo)
    return out


def write_top_levels(pyramid: Pyramid, root: Path, data: np.ndarray, kind: str) -> None:
    """The levels coarser than the blocks' from the assembled coarsest block level of the field."""
    render = (lambda d: image_la(d)) if kind == "image" else (lambda d: overlay_rgba(d, (0, 0, 0, 0)))
    level = pyramid.max_level - pyramid.levels_in_blocks + 1
    while level > 0:
        data = halve(data, "mean" if kind == "image" else "max")
        level -= 1
        (root / str(level)).mkdir(parents=True, exist_ok=True)
        for col, row, tile in tiles_of(render(data), (0, 0), pyramid.tile):
            save_png(tile_path(root, level, col, row), tile)
