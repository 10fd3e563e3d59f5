"""Inverse-variance weight maps, read as the rms maps the rest of the code takes.

Survey pipelines (SWarp, KiDS, DES, HSC) ship a weight map beside each coadd: ``w = 1 / sigma^2``
per pixel, 0 where there is no data. SExtractor reads it as ``WEIGHT_TYPE MAP_WEIGHT``. A
:class:`WeightImage` gives ``rms = 1 / sqrt(w)`` window by window, NaN where ``w <= 0`` or is not
finite, and the :class:`~astrostatlearn.field.Field` holding it reads the image as NaN there too:
a weight of 0 is no data.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from astrostatlearn.field.rawimage import PixelLayout
from astrostatlearn.field.windows import Window


@dataclass(frozen=True)
class WeightSource:
    """What another process opens a weight map from: its path or its pixel layout."""

    source: str | PixelLayout


def weight_to_rms(weight: np.ndarray) -> np.ndarray:
    """float32 ``1 / sqrt(weight)``; NaN where ``weight`` is <= 0 or not finite (no data)."""
    w = np.asarray(weight, np.float32)
    good = np.isfinite(w) & (w > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(good, np.float32(1.0) / np.sqrt(w), np.float32(np.nan)).astype(np.float32, copy=False)


class WeightImage:
    """A weight-map file (an opened :class:`~astrostatlearn.field.ImageFile` or raw image) read as
    an rms map (:func:`weight_to_rms`); ``path`` and header are the weight file's."""

    is_integer = False
    dtype = np.dtype(np.float32)

    def __init__(self, weights: Any) -> None:
        self.weights = weights

    @property
    def path(self) -> Path:
        return self.weights.path

    @property
    def spec(self) -> str | None:
        """What the weight file is reopened from (:attr:`~astrostatlearn.field.ImageFile.spec`)."""
        return getattr(self.weights, "spec", None)

    @property
    def shape(self) -> tuple[int, int]:
        return self.weights.shape

    @property
    def header(self) -> Any:
        return self.weights.header

    def read(self, window: Window | None = None) -> np.ndarray:
        """The rms of ``window`` (whole map if None), float32, NaN where there is no data."""
        return weight_to_rms(self.weights.read(window))

    def read_windows(self, windows: Sequence[Window]) -> list[np.ndarray]:
        return [weight_to_rms(a) for a in self.weights.read_windows(windows)]

    def wcs(self) -> Any:
        return self.weights.wcs()

    def close(self) -> None:
        self.weights.close()

    def __repr__(self) -> str:
        return f"WeightImage({self.weights!r})"
