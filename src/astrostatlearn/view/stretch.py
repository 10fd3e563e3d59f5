"""The display stretch of a field, chosen once from global statistics.

- ``asinh`` (default): Lupton-style. The sky level ``s`` and noise ``sigma`` are the
  sigma-clipped median and standard deviation of a regular sample of rows (at most 2 Mpix, so
  the whole field is never read). Values map linearly to ``x = (v - vmin) / (vmax - vmin)`` with
  ``vmin = s - 2 sigma`` and ``vmax`` the 99.95th percentile of the sample (at least
  ``s + 50 sigma``), then to ``asinh(x / a) / asinh(1 / a)``, with the softening
  ``a = 5 sigma / (vmax - vmin)``: linear up to about 5 sigma above the sky (the noise and
  faint objects stay visible), logarithmic above (bright cores do not saturate).
- ``zscale``: IRAF's zscale limits (astropy's ``ZScaleInterval`` on the same sample), linear.

Non-finite pixels stay NaN: the tiles draw them transparent.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from astrostatlearn.errors import InputError
from astrostatlearn.field import Field
from astrostatlearn.field.windows import sample_rows

STRETCHES = ("asinh", "zscale")


@dataclass(frozen=True)
class Stretch:
    """``kind`` ('asinh' or 'zscale'), limits ``vmin``/``vmax`` in image units and the asinh softening ``a``."""

    kind: str
    vmin: float
    vmax: float
    a: float = 1.0

    def apply(self, img: np.ndarray) -> np.ndarray:
        """Display values in [0, 1] (float32), NaN where ``img`` is not finite."""
        x = (img.astype(np.float32) - np.float32(self.vmin)) / np.float32(self.vmax - self.vmin)
        x = np.clip(x, 0.0, 1.0)
        if self.kind == "asinh":
            x = np.arcsinh(x / np.float32(self.a)) / np.float32(np.arcsinh(1.0 / self.a))
        return x.astype(np.float32, copy=False)

    def to_dict(self) -> dict:
        return asdict(self)


def choose_stretch(field: Field, kind: str = "asinh", max_pixels: int = 2_000_000) -> Stretch:
    """The stretch of ``field`` (see the module docstring), from at most ``max_pixels`` pixels."""
    if kind not in STRETCHES:
        raise InputError(f"unknown stretch {kind!r}; use one of {', '.join(STRETCHES)}")
    sample = np.concatenate([a.ravel() for a in field.read_img_windows(sample_rows(field.shape, max_pixels))])
    if not np.isfinite(sample).any():
        raise InputError("the image has no finite pixel to choose a display stretch from", field.img.path)
    return stretch_from_sample(sample, kind)


def stretch_from_sample(sample: np.ndarray, kind: str = "asinh") -> Stretch:
    """The stretch (see the module docstring) from a sample of image values (NaN ignored)."""
    if kind not in STRETCHES:
        raise InputError(f"unknown stretch {kind!r}; use one of {', '.join(STRETCHES)}")
    sample = np.asarray(sample, np.float32).ravel()
    sample = sample[np.isfinite(sample)]
    if sample.size == 0:
        raise InputError("no finite pixel to choose a display stretch from")
    if kind == "zscale":
        from astropy.visualization import ZScaleInterval

        lo, hi = ZScaleInterval().get_limits(sample)
        return Stretch("zscale", float(lo), float(hi) if hi > lo else float(lo) + 1.0)
    from astropy.stats import sigma_clipped_stats

    _, sky, sigma = sigma_clipped_stats(sample, sigma=3.0, maxiters=5)
    sigma = float(sigma) if sigma > 0 else float(np.std(sample)) or 1.0
    vmin = float(sky) - 2.0 * sigma
    vmax = max(float(np.percentile(sample, 99.95)), float(sky) + 50.0 * sigma)
    return Stretch("asinh", vmin, vmax, a=float(np.clip(5.0 * sigma / (vmax - vmin), 1e-4, 1.0)))
