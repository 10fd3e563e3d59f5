from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from astrostatlearn.view.layers import id_colours, outline_mask
from astrostatlearn.view.pyramid import Pyramid, halve
from tests.view.conftest import NAN_BOX, ONE_PIXEL, SHAPE, make_labels


def read_level(root: Path, level: int, pyr: Pyramid) -> np.ndarray:
    """Reassemble one level of a pyramid from its tiles (each tile checked for its size)."""
    h, w = pyr.level_shape(level)
    out = None
    for ty in range(-(-h // pyr.tile)):
        for tx in range(-(-w // pyr.tile)):
            tile = np.asarray(Image.open(root / str(level) / f"{tx}_{ty}.png"))
            expect = (min(pyr.tile, h - ty * pyr.tile), min(pyr.tile, w - tx * pyr.tile))
            assert tile.shape[:2] == expect, (level, tx, ty)
            if out is None:
                out = np.zeros((h, w) + tile.shape[2:], tile.dtype)
            out[ty * pyr.tile:ty * pyr.tile + expect[0], tx * pyr.tile:tx * pyr.tile + expect[1]] = tile
    return out


def test_level_shapes_are_those_of_deep_zoom() -> None:
    pyr = Pyramid((700, 1100))
    assert pyr.max_level == math.ceil(math.log2(1100)) == 11
    assert pyr.level_shape(11) == (700, 1100) and pyr.level_shape(10) == (350, 550)
    assert pyr.level_shape(9) == (175, 275) and pyr.level_shape(8) == (88, 138) and pyr.level_shape(0) == (1, 1)
    blocks = Pyramid((700, 1100), block_levels=1).blocks()
    assert sum(b.size for b in blocks) == 700 * 1100 and all(b.y0 % 512 == 0 and b.x0 % 512 == 0 for b in blocks)


def test_halve_mean_ignores_nan_and_max_keeps_ids() -> None:
    data = np.array([[1, 3, 5], [np.nan, np.nan, 7]], np.float32)
    assert np.allclose(halve(data, "mean"), [[2.0, 6.0]])
    assert np.isnan(halve(np.full((2, 2), np.nan, np.float32), "mean")).all()
    labels = np.array([[0, 0, 4], [0, 9, 0]], np.int32)
    assert halve(labels, "max").tolist() == [[9, 4]]


def test_id_colours_are_stable_and_distinct() -> None:
    ids = np.arange(1, 2000)
    a, b = id_colours(ids), id_colours(ids.copy())
    assert np.array_equal(a, b) and a.dtype == np.uint8
    step = np.abs(a[1:].astype(int) - a[:-1].astype(int)).max(axis=1)
    assert step.min() > 0 and np.median(step) > 80  # consecutive IDs (often neighbours) clearly differ
    assert (a.max(axis=1) >= 250).all()  # vivid: one channel at full value


def test_outline_mask_marks_object_borders_only() -> None:
    labels = np.zeros((7, 7), np.int32)
    labels[1:6, 1:6] = 3
    edge = outline_mask(labels)
    assert edge[1, 1] and edge[5, 3] and not edge[3, 3] and not edge[0, 0]


def test_id_tiles_give_back_the_label_map_in_the_display_frame(view_site: Path) -> None:
    h, w = SHAPE
    rgb = np.zeros((h, w, 3), np.uint8)
    for ty in range(-(-h // 256)):
        for tx in range(-(-w // 256)):
            tile = np.asarray(Image.open(view_site / "layers" / "truth" / "ids" / f"{tx}_{ty}.png"))
            rgb[ty * 256:ty * 256 + tile.shape[0], tx * 256:tx * 256 + tile.shape[1]] = tile
    decoded = (rgb[..., 0].astype(np.int64) << 16) | (rgb[..., 1].astype(np.int64) << 8) | rgb[..., 2]
    assert np.array_equal(decoded[::-1], make_labels())  # display row r = array row ny-1-r


def test_image_tiles_transparent_where_not_finite(view_site: Path) -> None:
    pyr = Pyramid(SHAPE)
    full = read_level(view_site / "image" / "tiles", pyr.max_level, pyr)[::-1]  # array frame
    assert full.shape == SHAPE + (2,)
    assert (full[NAN_BOX][..., 1] == 0).all()
    rest = np.ones(SHAPE, bool)
    rest[NAN_BOX] = False
    assert (full[rest][:, 1] == 255).all()
    assert full[..., 0][make_labels() > 0].mean() > full[..., 0][rest & (make_labels() == 0)].mean() + 100


def test_a_one_pixel_object_stays_visible_at_every_level(view_site: Path) -> None:
    pyr = Pyramid(SHAPE)
    y, x = SHAPE[0] - 1 - ONE_PIXEL[0], ONE_PIXEL[1]  # display frame
    colour = id_colours(np.array([999]))[0]
    for level in range(pyr.max_level, 5, -1):
        f = 1 << (pyr.max_level - level)
        rgba = read_level(view_site / "layers" / "truth" / "tiles", level, pyr)
        assert rgba[y // f, x // f, 3] == 255 and tuple(rgba[y // f, x // f, :3]) == tuple(colour), level


def test_tiles_do_not_depend_on_the_block_size(view_field: Path, view_site: Path, tmp_path: Path) -> None:
    """One block for the whole field (block_levels=4) against 512-pixel blocks with halos
    (block_levels=1): every tile of every level is the same."""
    from astrostatlearn.view import build_site

    other = tmp_path / "one-block"
    build_site(view_field, other, truth=True, workers=1, scheduler="synchronous", block_levels=4)
    pyr = Pyramid(SHAPE)
    for part in ("image/tiles", "layers/truth/tiles"):
        for level in range(pyr.max_level + 1):
            assert np.array_equal(read_level(view_site / part, level, pyr), read_level(other / part, level, pyr)), \
                (part, level)


def test_catalogue_chunks_hold_each_row(view_field: Path, view_site: Path) -> None:
    from astropy.table import Table

    table = Table.read(view_field / "truth.ecsv")
    chunk = json.loads((view_site / "layers/truth/catalog/0.json").read_text())
    row = chunk["rows"][str(int(table["id"][5]))]
    assert chunk["columns"][:3] == ["id", "x", "y"]
    assert row[0] == int(table["id"][5]) and row[1] == pytest.approx(float(table["x"][5]), rel=1e-6)
    assert len(chunk["rows"]) == len(table)
