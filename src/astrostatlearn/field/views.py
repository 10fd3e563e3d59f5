"""Images read through another map beside them: a weight or variance map read as rms, an image
read through its bad-pixel mask.

- **Noise maps of other kinds.** Survey pipelines ship an inverse-variance weight map beside each
  coadd (SWarp, KiDS, DES, HST's drizzle: ``w = 1 / sigma^2``, 0 where there is no data; SExtractor's
  ``WEIGHT_TYPE MAP_WEIGHT``) or a variance plane (HSC and LSST: ``sigma^2``). A
  :class:`NoiseImage` gives ``rms`` window by window, NaN where the map is <= 0 or not finite, and
  the :class:`~astrostatlearn.field.Field` holding it reads the image as NaN there too.
- **Bad-pixel masks.** A map whose non-zero pixels have no data (HST's DQ, a survey's flag or
  mask map; the Python API's ``mask=``). A :class:`MaskedImage` reads the image as NaN there.
  Bit-plane masks that also flag benign things (LSST's and HSC's ``DETECTED``, HST's DQ bits that
  drizzling ignores) take the bits that mean *bad* (:class:`MaskFile`, :func:`parse_bad_bits`),
  and only those make a pixel no data.

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
    """What another process opens a masked image from: the image's source, the mask's, and the
    mask's bad bits (None: any non-zero value is bad)."""

    image: str | PixelLayout
    mask: str | PixelLayout
    bad_bits: int | None = None


@dataclass(frozen=True)
class MaskFile:
    """A bad-pixel map file and the bits of it that mean no data (``bad_bits``, as
    :func:`parse_bad_bits` reads them; None: any non-zero value).
    ``Field.open(mask=MaskFile("calexp.fits[MASK]", "BAD,SAT,NO_DATA"))``."""

    path: str | Path
    bad_bits: int | str | None = None


def parse_bad_bits(spec: str | int, header: Any = None) -> int:
    """The integer of a bad-bits spec: a sum (``131``, ``0x83``), bit values (``1,2,128`` or
    ``1+2+128``), ``~`` before them for every bit but those (astropy's
    :func:`~astropy.nddata.bitmask.interpret_bit_flags` notation, plus hexadecimal), or the names
    of bits (``BAD,SAT``) that the mask's ``header`` defines in LSST's and HSC's ``MP_<NAME>`` cards.

    Raises InputError for anything else, a name the header lacks, or a spec of no bits.
    """
    from astropy.nddata.bitmask import interpret_bit_flags

    text = str(spec).strip()
    flip, body = text.startswith("~"), text.lstrip("~")
    tokens = [t.strip() for t in body.replace("+", ",").split(",")]
    try:
        if any(t[:1].isalpha() for t in tokens):
            bits = sum(_named_bit(t, header) if t[:1].isalpha() else interpret_bit_flags(t) for t in tokens)
        else:
            bits = int(body, 16) if body.lower().startswith("0x") else interpret_bit_flags(body)
    except (ValueError, TypeError) as exc:
        raise InputError(f"bad mask bits {text!r}: give a sum (131, 0x83), bit values (1,2,128), bit names "
                         f"(BAD,SAT) or ~BITS ({str(exc).splitlines()[0]})") from None
    if not bits:
        raise InputError(f"mask bits {text!r} select no bit")
    return ~int(bits) if flip else int(bits)


def _named_bit(name: str, header: Any) -> int:
    """The value of the bit ``name`` from the ``MP_<NAME>`` card of a mask header (its bit index)."""
    planes = {} if header is None else {k[3:]: int(header[k]) for k in header if str(k).startswith("MP_")}
    if name.upper() not in planes:
        named = f"it names {', '.join(sorted(planes))}" if planes else "it has no MP_* cards"
        raise InputError(f"the mask has no bit named {name!r} ({named})")
    return 1 << planes[name.upper()]


def to_rms(values: np.ndarray, kind: str) -> np.ndarray:
    """float32 rms of a ``kind`` map (``'weight'``: ``1 / sqrt(w)``; ``'variance'``: ``sqrt(v)``);
    NaN where the map is <= 0 or not finite (no data)."""
    v = np.asarray(values, np.float32)
    good = np.isfinite(v) & (v > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        rms = np.float32(1.0) / np.sqrt(v) if kind == "weight" else np.sqrt(v)
    return np.where(good, rms, np.float32(np.nan)).astype(np.float32, copy=False)


def apply_mask(img: np.ndarray, mask: np.ndarray, bad_bits: int | None = None) -> np.ndarray:
    """float32 ``img`` with NaN where ``mask`` is non-zero, or where it has any of ``bad_bits`` set
    (an integer mask); a copy where any pixel is bad."""
    img = np.asarray(img, np.float32)
    bad = np.asarray(mask) != 0 if bad_bits is None else (np.asarray(mask).astype(np.int64) & bad_bits) != 0
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
    """An image file read as NaN where its ``mask`` file (same shape) is non-zero, or has any of
    ``bad_bits`` set (an integer mask)."""

    def __init__(self, base: Any, mask: Any, bad_bits: int | str | None = None) -> None:
        if tuple(mask.shape) != tuple(base.shape):
            raise InputError(f"mask is {mask.shape[0]}x{mask.shape[1]}, the image {base.shape[0]}x{base.shape[1]}",
                             mask.path)
        if bad_bits is not None and not mask.is_integer:
            raise InputError(f"mask bits need an integer mask, this one is {mask.dtype}", mask.path)
        super().__init__(base)
        self.mask = mask
        try:
            header = mask.header if isinstance(bad_bits, str) else None  # names need the MP_* cards
            self.bad_bits = None if bad_bits is None else parse_bad_bits(bad_bits, header)
        except InputError as exc:
            raise InputError(exc.problem, mask.path) from None

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
        return apply_mask(self.base.read(window), self.mask.read(window), self.bad_bits)

    def read_windows(self, windows: Sequence[Window]) -> list[np.ndarray]:
        return [apply_mask(a, m, self.bad_bits)
                for a, m in zip(self.base.read_windows(windows), self.mask.read_windows(windows))]

    def close(self) -> None:
        super().close()
        self.mask.close()

    def __repr__(self) -> str:
        bits = "" if self.bad_bits is None else f", bad_bits={self.bad_bits:#x}"
        return f"MaskedImage({self.base!r}, mask={Path(self.mask.path).name}{bits})"

    @property
    def record(self) -> dict[str, Any]:
        """The mask as a run records it: its path (``file.fits[N]`` where an HDU was chosen) and bad bits."""
        return {"path": reopen_path(self.mask), "bad_bits": self.bad_bits}



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
        return MaskedSource(source_of(im.base), source_of(im.mask), im.bad_bits)
    layout = getattr(im, "layout", None)
    return layout if isinstance(layout, PixelLayout) else reopen_path(im)


def open_view(source: Any, role: str = "image") -> Any:
    """The image of :func:`source_of` (or of a plain path), as a worker opens it."""
    if isinstance(source, NoiseSource):
        return NoiseImage(open_view(source.source, source.kind), source.kind)
    if isinstance(source, MaskedSource):
        base = open_view(source.image, role)
        try:
            return MaskedImage(base, open_view(source.mask, "mask"), source.bad_bits)
        except Exception:
            base.close()
            raise
    return open_source(source, role=role)
