"""How one block of each layer becomes tile images: the field's image, and label overlays.

- **Image**: the stretched field as 8-bit grey plus alpha (PNG ``LA``); non-finite pixels are
  transparent. Coarser levels average the stretched values of the finite pixels.
- **Overlay** of a label map (ID 0 = background): each object filled in a translucent colour
  and outlined opaque. The colour is a fixed function of the ID (a hash to a hue), so an object
  keeps its colour at every zoom level and in every build. Coarser levels take the largest ID
  of each 2x2 (never an average of IDs), and outlines are drawn at each level.
- **ID tiles** (full resolution only): the ID of each pixel in 24-bit RGB, ``id = R*65536 +
  G*256 + B``, which the viewer reads back to find the object under a click.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from astrostatlearn.errors import InputError

MAX_ID_TILE = (1 << 24) - 1
FILL_ALPHA, OUTLINE_ALPHA = 70, 255


def id_colours(ids: np.ndarray) -> np.ndarray:
    """Stable vivid RGB colours (uint8, ``ids.shape + (3,)``) for IDs (a hash of the ID to a hue)."""
    h = (ids.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(40)
    hue = (h & np.uint64(0xFFFF)).astype(np.float32) / np.float32(65536.0) * np.float32(6.0)
    k = np.floor(hue)
    f = hue - k
    k = k.astype(np.int8) % 6
    v, p = np.float32(1.0), np.float32(0.15)  # value and the floor of the weakest channel
    q, t = 1.0 - (1.0 - p) * f, p + (1.0 - p) * f
    r = np.choose(k, [v, q, p, p, t, v])
    g = np.choose(k, [t, v, v, q, p, p])
    b = np.choose(k, [p, p, t, v, v, q])
    return (np.stack([r, g, b], axis=-1) * 255 + 0.5).astype(np.uint8)


def outline_mask(labels: np.ndarray) -> np.ndarray:
    """Object pixels with a 4-neighbour of another ID (or the background) inside ``labels``."""
    edge = np.zeros(labels.shape, bool)
    edge[1:, :] |= labels[1:, :] != labels[:-1, :]
    edge[:-1, :] |= labels[:-1, :] != labels[1:, :]
    edge[:, 1:] |= labels[:, 1:] != labels[:, :-1]
    edge[:, :-1] |= labels[:, :-1] != labels[:, 1:]
    return edge & (labels > 0)


def overlay_rgba(labels: np.ndarray, halo: tuple[int, int, int, int]) -> np.ndarray:
    """RGBA (uint8) of the core of ``labels``; ``halo`` = pixels (top, bottom, left, right) around
    the core that only serve to find the outlines at its edges."""
    t, b, l, r = halo
    edge = outline_mask(labels)[t:labels.shape[0] - b, l:labels.shape[1] - r]
    core = labels[t:labels.shape[0] - b, l:labels.shape[1] - r]
    rgba = np.zeros(core.shape + (4,), np.uint8)
    fg = core > 0
    if fg.any():
        rgba[fg, :3] = id_colours(core[fg])
        rgba[..., 3] = np.where(edge, OUTLINE_ALPHA, np.where(fg, FILL_ALPHA, 0))
    return rgba


def image_la(values: np.ndarray) -> np.ndarray:
    """Grey + alpha (uint8, shape + (2,)) of display values in [0, 1]; NaN -> transparent."""
    finite = np.isfinite(values)
    grey = np.where(finite, values * 255 + 0.5, 0).astype(np.uint8)
    return np.stack([grey, np.where(finite, 255, 0).astype(np.uint8)], axis=-1)


def id_rgb(labels: np.ndarray, source: Path) -> np.ndarray:
    """The 24-bit RGB encoding of the IDs (see the module docstring)."""
    top = int(labels.max(initial=0))
    if top > MAX_ID_TILE or int(labels.min(initial=0)) < 0:
        raise InputError(f"object IDs must lie in 0..{MAX_ID_TILE} for the viewer (found up to {top})", source)
    ids = labels.astype(np.uint32)
    return np.stack([(ids >> 16) & 255, (ids >> 8) & 255, ids & 255], axis=-1).astype(np.uint8)


def save_png(path: Path, data: np.ndarray) -> None:
    """Write a uint8 tile (grey+alpha, RGB or RGBA, from the last axis) as PNG (fast compression)."""
    from PIL import Image

    Image.fromarray(np.ascontiguousarray(data)).save(path, format="PNG", compress_level=1)
