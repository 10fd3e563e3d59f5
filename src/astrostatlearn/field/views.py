"""Images read through another map beside them: a weight or variance map read as rms, an image
read through its bad-pixel mask.

- **Noise maps of other kinds.** Survey pipelines ship an inverse-variance weight map beside each
  coadd (SWarp, KiDS, DES, HST's drizzle: ``w = 1 / sigma^2``, 0 where there is no data; SExtractor's
  ``WEIGHT_TYPE MAP_WEIGHT``) or a variance plane (HSC and LSST: ``sigma^2``). A
  :class:`NoiseImage` gives ``rms`` window by window, NaN where the map is <= 0 or not finite, and
  the :class:`~astrostatlearn.field.Field` holding it reads the image as NaN there too.
- **Bad-pixel masks.** A map whose non-zero pixels have no data (HST's DQ, a survey's flag or
  mask map; the Python API's ``mask=``). A :class:`MaskedImage` reads the image as NaN there.
  Bit-plane masks that also flag benign things (LSST's and HSC's ``DETECTED``) need a map of
  their bad bits first.

Either way everything downstream sees NaN, the one way the code marks missing data. Another
process reopens a view from a :class:`NoiseSource` or :class:`MaskedSource`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from astrostatlearn.errors import InputError
from astrostatlearn.field.fitsio import open_source
from astrostatlearn.field.rawimage import PixelLayout
from astrostatlearn.field.windows import Window


NOISE_KINDS = ("weight", "variance")


@dataclass(frozen=True)
class NoiseSource:
    """What another process opens a weight or variance map from: its kind and its path or pixel layout."""

    kind: str
    source: str | PixelLayout


@dataclass(frozen=True)
class MaskedSource:
    """What another process opens a masked image from: the image's source and the mask's."""

    image: str | PixelLayout
    mask: str | PixelLayout


def to_rms(values: np.ndarray, kind: str) -> np.ndarray:
    """float32 rms of a ``kind`` map (``'weight'``: ``1 / sqrt(w)``; ``'variance'``: ``sqrt(v)``);
    NaN where the map is <= 0 or not finite (no data)."""
    v = np.asarray(values, np.float32)
    good = np.isfinite(v) & (v > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        rms = np.float32(1.0) / np.sqrt(v) if kind == "weight" else np.sqrt(v)
    return np.where(good, rms, np.float32(np.nan)).astype(np.float32, copy=False)


def apply_mask(img: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """float32 ``img`` with NaN where ``mask`` is non-zero (a copy where any is)."""
    img = np.asarray(img, np.float32)
    bad = np.asarray(mask) != 0
    return np.where(bad, np.float32(np.nan), img) if bad.any() else img


class _View:
    """An opened image file (``base``) read through a transformation; path, shape, header and WCS
    are the base file's, and reads come back as float32."""

    is_integer = False
    dtype = np.dtype(np.float32)

    def __init__(self, base: Any) -> None:
        self.base = base

    @property
    def path(self) -> Path:
        return self.base.path

    @property
    def shape(self) -> tuple[int, int]:
        return self.base.shape

    @property
    def header(self) -> Any:
        return self.base.header

    @property
    def spec(self) -> str | None:
        """What the base file is reopened from (:attr:`~astrostatlearn.field.ImageFile.spec`)."""
        return getattr(self.base, "spec", None)

    def wcs(self) -> Any:
        return self.base.wcs()

    def close(self) -> None:
        self.base.close()


class NoiseImage(_View):
    """A weight or variance map file (``kind``, one of ``NOISE_KINDS``) read as an rms map (:func:`to_rms`)."""

    def __init__(self, base: Any, kind: str) -> None:
        if kind not in NOISE_KINDS:
            raise InputError(f"noise map kind must be one of {', '.join(NOISE_KINDS)}, got {kind!r}")
        super().__init__(base)
        self.kind = kind

    def read(self, window: Window | None = None) -> np.ndarray:
        """The rms of ``window`` (whole map if None), NaN where there is no data."""
        return to_rms(self.base.read(window), self.kind)

    def read_windows(self, windows: Sequence[Window]) -> list[np.ndarray]:
        return [to_rms(a, self.kind) for a in self.base.read_windows(windows)]

    def __repr__(self) -> str:
        return f"NoiseImage({self.base!r}, {self.kind})"


class MaskedImage(_View):
    """An image file read as NaN where its ``mask`` file (same shape) is non-zero."""

    def __init__(self, base: Any, mask: Any) -> None:
        if tuple(mask.shape) != tuple(base.shape):
            raise InputError(f"mask is {mask.shape[0]}x{mask.shape[1]}, the image {base.shape[0]}x{base.shape[1]}",
                             mask.path)
        super().__init__(base)
        self.mask = mask

    @property
    def dtype(self) -> np.dtype:  # type: ignore[override]
        """The image file's own dtype (reads come back as float32)."""
        return self.base.dtype

    @property
    def hdu_index(self) -> int:
        return self.base.hdu_index

    @property
    def compressed(self) -> bool:
        return self.base.compressed

    def read(self, window: Window | None = None) -> np.ndarray:
        """The image of ``window`` (whole image if None), NaN where masked."""
        return apply_mask(self.base.read(window), self.mask.read(window))

    def read_windows(self, windows: Sequence[Window]) -> list[np.ndarray]:
        return [apply_mask(a, m) for a, m in zip(self.base.read_windows(windows), self.mask.read_windows(windows))]

    def close(self) -> None:
        super().close()
        self.mask.close()

    def __repr__(self) -> str:
        return f"MaskedImage({self.base!r}, mask={Path(self.mask.path).name})"



def reopen_path(im: Any) -> str:
    """The absolute path another process reopens ``im`` from: ``file.fits[N]`` where an HDU was chosen."""
    return getattr(im, "spec", None) or str(Path(im.path).resolve())


def source_of(im: Any) -> str | PixelLayout | NoiseSource | MaskedSource:
    """What another process opens ``im`` from (:func:`open_view`): a plain FITS image's
    :class:`~astrostatlearn.field.rawimage.PixelLayout` (read with no header and no astropy), else
    its path; a view wraps its base's (and its mask's)."""
    if isinstance(im, NoiseImage):
        return NoiseSource(im.kind, source_of(im.base))
    if isinstance(im, MaskedImage):
        return MaskedSource(source_of(im.base), source_of(im.mask))
    layout = getattr(im, "layout", None)
    return layout if isinstance(layout, PixelLayout) else reopen_path(im)


def open_view(source: Any, role: str = "image") -> Any:
    """The image of :func:`source_of` (or of a plain path), as a worker opens it."""
    if isinstance(source, NoiseSource):
        return NoiseImage(open_view(source.source, source.kind), source.kind)
    if isinstance(source, MaskedSource):
        base = open_view(source.image, role)
        try:
            return MaskedImage(base, open_view(source.mask, "mask"))
        except Exception:
            base.close()
            raise
    return open_source(source, role=role)
