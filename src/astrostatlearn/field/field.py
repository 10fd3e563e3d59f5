"""The :class:`Field`: a science image, its optional noise map and optional truth map.

A field directory holds ``img.fits`` and optionally ``rms.fits``, ``true.fits`` and
``truth.ecsv`` (``.fits.fz``, ``.fits.gz``, ``.fits.bz2`` and ``.fits.xz`` names are also found).
Files are memory-mapped and read by window; nothing reads a whole image unless asked to.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from astrostatlearn.errors import InputError
from astrostatlearn.field.blank import MARGIN, blank_to_nan, zeros_are_blank
from astrostatlearn.field.fitsio import ImageFile, open_image, split_extension
from astrostatlearn.field.views import (NOISE_KINDS, MaskedImage, MaskFile, NoiseImage, apply_mask, open_view,
                                        reopen_path, source_of)
from astrostatlearn.field.windows import Window, sample_rows
from astrostatlearn.field.zeropoint import header_zeropoint

if TYPE_CHECKING:
    from astropy.io import fits
    from astropy.wcs import WCS

FIELD_FILES = {"img": "img", "rms": "rms", "true": "true"}
CATALOG_NAME = "truth.ecsv"


def _find(directory: Path, stem: str) -> Path | None:
    for suffix in (".fits", ".fits.fz", ".fz", ".fits.gz", ".fits.bz2", ".fits.xz", ".fit"):
        p = directory / f"{stem}{suffix}"
        if p.exists():
            return p
        if p.is_symlink():
            raise InputError("broken symbolic link (its target does not exist)", p)
    return None


def _locate(path: str | Path | None) -> dict[str, Path | None]:
    """The files of a field directory ``path`` (or the image file ``path``), by role."""
    found: dict[str, Path | None] = {"img": None, "rms": None, "true": None, "catalog": None, "mask": None}
    if path is None:
        return found
    d = Path(path)
    if not d.exists() and not split_extension(d)[0].is_file():
        raise InputError("field not found", d)
    if not d.is_dir():  # an image file, perhaps with its HDU (``file.fits[1]``)
        found["img"] = d
        return found
    for key, stem in FIELD_FILES.items():
        found[key] = _find(d, stem)
    found["catalog"] = d / CATALOG_NAME if (d / CATALOG_NAME).exists() else None
    if found["img"] is None:
        raise InputError("field directory has no img.fits", d)
    return found


class Field:
    """A survey field: ``img`` (required), ``rms`` and ``true`` (optional), all the same shape.

    Pixel windows are read lazily with :meth:`read_img`, :meth:`read_rms` and :meth:`read_true`.
    Arrays are ``[y, x]``, 0-based. Use :meth:`open` to build one; close it (or use ``with``).
    Missing data is NaN in the image: NaN in the file, zero-filled regions when the sky is noisy
    (:attr:`zero_blank`), a weight or variance of 0 when the noise comes as such a map, and a
    non-zero bad-pixel mask (:mod:`~astrostatlearn.field.views`).
    """

    BLANK_SAMPLE = 1_000_000  # pixels read to decide :attr:`zero_blank`

    def __init__(self, img: ImageFile | MaskedImage, rms: ImageFile | NoiseImage | None = None,
                 true: ImageFile | None = None,
                 catalog: Path | None = None) -> None:
        self.img, self.rms, self.true, self.catalog = img, rms, true, catalog
        self._zero_blank: bool | None = None
        self._zeropoint: float | None = None
        for other in (rms, true):
            if other is not None and other.shape != img.shape:
                raise InputError(
                    f"shape {other.shape[0]}x{other.shape[1]} differs from "
                    f"{img.path.name} {img.shape[0]}x{img.shape[1]}", other.path)
        if true is not None and not true.is_integer and true.dtype.kind != "f":
            raise InputError(f"truth map has unsupported dtype {true.dtype}", true.path)

    @classmethod
    def open(cls, path: str | Path | None = None, *, img: str | Path | None = None,
             rms: str | Path | None = None, true: str | Path | None = None,
             catalog: str | Path | None = None, noise_kind: str = "rms",
             mask: str | Path | MaskFile | None = None) -> "Field":
        """Open a field directory ``path``, or explicit ``img``/``rms``/``true`` files.

        Explicit files override those found in the directory. ``noise_kind`` says what the
        noise map ``rms`` holds: ``"rms"``, ``"weight"`` (inverse variance, 0 = no data) or
        ``"variance"``. ``mask`` is a bad-pixel map (non-zero = no data), or a
        :class:`~astrostatlearn.field.views.MaskFile` naming the bits that mean bad. Any file may name its
        HDU (``file.fits[SCI]``). Raises :class:`InputError` with a one-line message naming the
        file for every kind of bad input.
        """
        if noise_kind != "rms" and noise_kind not in NOISE_KINDS:
            raise InputError(f"noise_kind must be rms, {' or '.join(NOISE_KINDS)}, got {noise_kind!r}")
        found = _locate(path)
        mask = mask if isinstance(mask, MaskFile) or mask is None else MaskFile(mask)
        for key, value in (("img", img), ("rms", rms), ("true", true), ("catalog", catalog),
                           ("mask", None if mask is None else mask.path)):
            if value is not None:
                found[key] = Path(value)
        if found["img"] is None:
            raise InputError("no image given: pass a field directory or an img file")
        if found["catalog"] is not None and not Path(found["catalog"]).exists():
            raise InputError("catalogue file not found", found["catalog"])
        opened: list[Any] = []

        def opening(key: str, role: str) -> Any:
            f = open_image(found[key], role=role) if found[key] is not None else None
            if f is not None:
                opened.append(f)
            return f

        try:
            im, rm, tr = opening("img", "image"), opening("rms", noise_kind), opening("true", "truth")
            bad = opening("mask", "mask")
            noise = rm if rm is None or noise_kind == "rms" else NoiseImage(rm, noise_kind)
            im = im if mask is None else MaskedImage(im, bad, mask.bad_bits)
            return cls(im, noise, tr, found["catalog"])
        except Exception:
            for f in opened:
                f.close()
            raise

    # -- geometry and metadata -------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int]:
        return self.img.shape

    @property
    def full(self) -> Window:
        return Window(0, self.shape[0], 0, self.shape[1])

    @property
    def file_paths(self) -> tuple[str, str | None] | None:
        """Absolute paths of the image and rms files (``file.fits[N]`` where an HDU was chosen),
        as a record of the run; None when either lives in memory only. A masked image or a weight
        or variance map reopens from :attr:`sources`."""
        images = [self.img] + ([self.rms] if self.rms is not None else [])
        if not all(Path(im.path).is_file() for im in images):
            return None
        return reopen_path(self.img), None if self.rms is None else reopen_path(self.rms)

    @property
    def sources(self) -> tuple[Any, Any] | None:
        """What another process opens this field's image and rms from (:meth:`from_sources`;
        :func:`~astrostatlearn.field.views.source_of`); None when either lives in memory only."""
        if self.file_paths is None:
            return None
        return source_of(self.img), None if self.rms is None else source_of(self.rms)

    @classmethod
    def from_sources(cls, img: Any, rms: Any = None) -> "Field":
        """The field of :attr:`sources` (or of plain paths), as a worker opens it: layouts of
        unchanged files are read directly, anything else through :func:`open_image`."""
        im = open_view(img, role="image")
        try:
            return cls(im, None if rms is None else open_view(rms, role="rms"))
        except Exception:
            im.close()
            raise

    @property
    def noise_kind(self) -> str | None:
        """How the noise map came: ``"rms"``, ``"weight"`` (inverse variance), ``"variance"`` or None (no map)."""
        return None if self.rms is None else self.rms.kind if isinstance(self.rms, NoiseImage) else "rms"

    @property
    def mask(self) -> dict[str, Any] | None:
        """The bad-pixel map as a run records it (``{"path", "bad_bits"}``), or None when there is none."""
        return self.img.record if isinstance(self.img, MaskedImage) else None

    @property
    def header(self) -> fits.Header:
        return self.img.header

    @property
    def wcs(self) -> WCS | None:
        return self.img.wcs()

    @property
    def pixel_scale(self) -> float | None:
        """Pixel scale in arcsec/pixel from the WCS, or None."""
        w = self.wcs
        if w is None:
            return None
        from astropy.wcs.utils import proj_plane_pixel_scales

        return float(np.mean(proj_plane_pixel_scales(w)) * 3600.0)

    @property
    def zeropoint(self) -> float | None:
        """Magnitude zero-point of one image unit, ``mag = zp - 2.5 log10(flux)``: the value set
        here (``segment --zeropoint``), else the header's
        (:func:`~astrostatlearn.field.zeropoint.header_zeropoint`: ``MAGZERO``, ``FLUXMAG0``,
        HST's ``PHOTFLAM``/``PHOTPLAM``...), else None."""
        if self._zeropoint is not None:
            return self._zeropoint
        found = header_zeropoint(self.header)
        return None if found is None else found[0]

    @zeropoint.setter
    def zeropoint(self, value: float | None) -> None:
        if value is not None and not np.isfinite(value):
            raise InputError(f"the zero-point must be a finite number of magnitudes, got {value}")
        self._zeropoint = None if value is None else float(value)

    # -- lazy pixel access ------------------------------------------------------------------
    @property
    def zero_blank(self) -> bool:
        """Whether the image's zero-filled regions are missing data (:mod:`~astrostatlearn.field.blank`),
        decided once from a sample of ``BLANK_SAMPLE`` pixels; the same answer in every process.
        Setting it overrides the decision."""
        if self._zero_blank is None:
            rows = [a.astype(np.float32, copy=False)
                    for a in self.img.read_windows(sample_rows(self.shape, self.BLANK_SAMPLE))]
            values = np.concatenate([a[np.isfinite(a)] for a in rows])
            self._zero_blank = zeros_are_blank(values)
        return self._zero_blank

    @zero_blank.setter
    def zero_blank(self, value: bool) -> None:
        self._zero_blank = bool(value)

    def _read_image(self, window: Window | None) -> np.ndarray:
        """The image of ``window``, its zero-filled regions NaN where :attr:`zero_blank` (decided
        on the window grown by the blank rule's margin, so every window agrees with the whole)."""
        if not self.zero_blank:
            return self.img.read(window).astype(np.float32, copy=False)
        w = window or self.full
        g = w.grow(MARGIN, self.shape)
        data = blank_to_nan(self.img.read(g))
        return data[w.y0 - g.y0:w.y1 - g.y0, w.x0 - g.x0:w.x1 - g.x0]

    def read_img(self, window: Window | None = None) -> np.ndarray:
        """Image pixels of ``window`` as float32: non-finite values kept as they are, no data NaN
        (zero-filled regions where :attr:`zero_blank`, a weight or variance of 0)."""
        if isinstance(self.rms, NoiseImage):  # its zeros are no data
            return self.read_img_rms(window)[0]
        return self._read_image(window)

    def read_img_rms(self, window: Window | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        """``(img, rms)`` of ``window``, as :meth:`read_img` and :meth:`read_rms` give them, each
        file read once."""
        img, rms = self._read_image(window), self.read_rms(window)
        return (apply_mask(img, np.isnan(rms)) if isinstance(self.rms, NoiseImage) else img), rms

    def read_rms(self, window: Window | None = None) -> np.ndarray | None:
        """Noise-map pixels of ``window`` as float32 rms (NaN where a weight or variance map is 0),
        or None when the field has no noise map."""
        return None if self.rms is None else self.rms.read(window).astype(np.float32, copy=False)

    def read_img_windows(self, windows: Sequence[Window]) -> list[np.ndarray]:
        """Image pixels of each of ``windows`` (a sample of rows, say) as float32, in one map of the
        file, blanks as in :meth:`read_img`."""
        if self.zero_blank:
            out = [self._read_image(w) for w in windows]
        else:
            out = [a.astype(np.float32, copy=False) for a in self.img.read_windows(windows)]
        if isinstance(self.rms, NoiseImage):
            out = [apply_mask(a, np.isnan(r)) for a, r in zip(out, self.rms.read_windows(windows))]
        return out

    def read_rms_windows(self, windows: Sequence[Window]) -> list[np.ndarray] | None:
        """Noise-map pixels of each of ``windows`` as float32, or None without an rms map."""
        if self.rms is None:
            return None
        return [a.astype(np.float32, copy=False) for a in self.rms.read_windows(windows)]

    def read_true(self, window: Window | None = None) -> np.ndarray | None:
        """Truth IDs of ``window`` as int32 (0 = background), or None without a truth map."""
        if self.true is None:
            return None
        data = self.true.read(window)
        if data.dtype.kind == "f":
            data = np.nan_to_num(data, nan=0.0)
        return data.astype(np.int32, copy=False)

    def read_masked(self, window: Window | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(img, valid)``: the image with non-finite pixels set to 0, and the mask of finite ones."""
        img = self.read_img(window)
        valid = np.isfinite(img)
        if not valid.all():
            img = np.where(valid, img, np.float32(0.0))
        return img, valid

    def truth_table(self) -> Any:
        """The truth catalogue (astropy Table) or None."""
        if self.catalog is None:
            return None
        from astropy.table import Table

        try:
            return Table.read(self.catalog, format="ascii.ecsv")
        except Exception as exc:
            raise InputError(f"unreadable ECSV catalogue ({exc})", self.catalog) from None

    def close(self) -> None:
        for f in (self.img, self.rms, self.true):
            if f is not None:
                f.close()

    def __enter__(self) -> "Field":
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        parts = [f"img={self.img.path}"]
        if self.rms:
            parts.append(f"rms={self.rms.path}")
        if self.true:
            parts.append(f"true={self.true.path}")
        return f"Field({self.shape[0]}x{self.shape[1]}, {', '.join(parts)})"
