"""What real images have and an ideal simulation lacks, as options of a :class:`Preset`.

- ``background_gradient``: a sky plane rising by this many sky sigmas across the field, in a
  direction drawn from the seed (left unsubtracted, as a poor background model leaves it);
- ``stripe_sigma``: a constant offset per image row, normal with this many sky sigmas (readout
  and sky-subtraction stripes);
- ``bad_column_rate``: this fraction of the columns holds no data (NaN);
- ``hole_fraction``: about this fraction of the field lies in circular holes with no data (NaN),
  radii 20-200 pixels (masked satellites, chip gaps, edges).

Every draw depends on the seed and global coordinates only, so a field is identical whatever its
tiling. Pixels with no data are NaN in ``img.fits`` and background (0) in ``true.fits``; the rms
keeps its value there.
"""

from __future__ import annotations

import math

import numpy as np

from astrostatlearn.field.windows import Window
from astrostatlearn.simulate.presets import Preset

HOLE_RADII = (20.0, 200.0)  # pixels


def _rng(seed: int, stream: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, 7, stream]))


def has_defects(preset: Preset) -> bool:
    return bool(preset.background_gradient or preset.stripe_sigma or preset.bad_column_rate or preset.hole_fraction)


def background_offset(window: Window, field_shape: tuple[int, int], preset: Preset, seed: int) -> np.ndarray:
    """Gradient plus row stripes over ``window`` (image units, float64)."""
    ny, nx = field_shape
    out = np.zeros(window.shape)
    if preset.background_gradient:
        angle = _rng(seed, 0).uniform(0, 2 * math.pi)
        y = (np.arange(window.y0, window.y1)[:, None] - ny / 2) / max(ny, nx)
        x = (np.arange(window.x0, window.x1)[None, :] - nx / 2) / max(ny, nx)
        out += preset.background_gradient * preset.sky_sigma * (math.cos(angle) * x + math.sin(angle) * y)
    if preset.stripe_sigma:
        rows = _rng(seed, 1).normal(0.0, preset.stripe_sigma * preset.sky_sigma, ny)
        out += rows[window.y0:window.y1, None]
    return out


def no_data(window: Window, field_shape: tuple[int, int], preset: Preset, seed: int) -> np.ndarray:
    """Pixels of ``window`` with no data: bad columns and holes (bool)."""
    ny, nx = field_shape
    mask = np.zeros(window.shape, bool)
    if preset.bad_column_rate:
        bad = _rng(seed, 2).random(nx) < preset.bad_column_rate
        mask |= bad[None, window.x0:window.x1]
    if preset.hole_fraction:
        rng = _rng(seed, 3)
        mean_area = math.pi * np.mean(np.square(np.linspace(*HOLE_RADII, 64)))
        n = rng.poisson(preset.hole_fraction * ny * nx / mean_area)
        cy, cx = rng.uniform(0, ny, n), rng.uniform(0, nx, n)
        r = rng.uniform(*HOLE_RADII, n)
        near = ((cy + r > window.y0) & (cy - r < window.y1) & (cx + r > window.x0) & (cx - r < window.x1))
        y = np.arange(window.y0, window.y1)[:, None]
        x = np.arange(window.x0, window.x1)[None, :]
        for yc, xc, rc in zip(cy[near], cx[near], r[near]):
            mask |= (y - yc) ** 2 + (x - xc) ** 2 < rc**2
    return mask
