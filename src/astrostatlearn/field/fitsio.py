"""FITS reading and writing for fields too large to hold in memory.

Reading: :func:`open_image` finds the image HDU (primary, any extension, or tile-compressed
``CompImageHDU``), checks the file is complete, and returns an :class:`ImageFile` that reads
windows lazily (``pread`` for plain images, per-tile decompression through ``hdu.section`` for
compressed ones up to 4 Mpix; a whole-file gzip, bzip2 or xz file, and a larger tile-compressed
one, through a decompressed copy, :mod:`.decompress`). A plain image's :attr:`ImageFile.layout`
lets a worker read it again with no header and no astropy (:func:`open_source`,
:mod:`.rawimage`); astropy is imported where a header is parsed or written, never at import.

Writing: every output is written to a temporary file in the destination folder and renamed into
place, so a crash never leaves a half-written file under the final name. :class:`FitsImageWriter`
streams windows into a pre-sized file with ``os.pwrite`` so several processes can fill disjoint
windows of one 25k^2 image without any of them holding it in memory.
"""

from __future__ import annotations

import os
import re
import tempfile
import threading
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from astrostatlearn.errors import InputError, OutputExistsError
from astrostatlearn.field.decompress import compression_of, copy_path, plain_copy, release, use
from astrostatlearn.field.rawimage import PixelLayout, RawImage, Scaling, pread_into, read_windows
from astrostatlearn.field.windows import Window

if TYPE_CHECKING:
    from astropy.io import fits
    from astropy.wcs import WCS

# Keywords that describe the data layout of an HDU rather than the sky; never copied to outputs.
_STRUCTURAL = {
    "SIMPLE", "XTENSION", "BITPIX", "NAXIS", "EXTEND", "PCOUNT", "GCOUNT", "BSCALE", "BZERO",
    "BLANK", "CHECKSUM", "DATASUM", "EXTNAME", "EXTVER", "ZIMAGE", "ZBITPIX", "ZCMPTYPE",
    "ZTENSION", "ZPCOUNT", "ZGCOUNT", "ZQUANTIZ", "ZDITHER0", "ZSIMPLE", "ZEXTEND", "ZHECKSUM",
    "ZDATASUM", "ZBLANK", "THEAP", "TFIELDS", "END",
}
_STRUCTURAL_PREFIXES = ("NAXIS", "ZNAXIS", "ZTILE", "ZNAME", "ZVAL", "TTYPE", "TFORM", "TUNIT")

FITS_BLOCK = 2880
# A tile-compressed image of more pixels than this is read from a plain copy: read in place, windows
# and rows decode the same tiles many times over (tiles of whole rows, fpack's default: once per
# column of windows; square tiles: once per row a full-width read takes). On an 8192^2 image, the
# statistics and the windows of 1024^2 tiles took 24.6 s in place against 4.3 s through the copy in
# row tiles, 37.3 s against 2.5 s in 256^2 tiles (benchmarks/bench_compressed_input.py).
COMPRESSED_COPIED_ABOVE = 2048 * 2048
_EXTENSION = re.compile(r"(.+)\[([^\[\]]+)\]")
_DECOMPRESS_LOCK = threading.Lock()


class ImageFile:
    """One 2-D image HDU of a FITS file, read lazily by window.

    Attributes: ``path``, ``hdu_index``, ``shape`` (ny, nx), ``dtype`` (as read, after BSCALE),
    ``header`` (the image header, decompressed view for tile-compressed HDUs).
    """

    def __init__(self, path: Path, hdul: fits.HDUList, hdu_index: int, chosen: bool = False,
                 data_file: Path | None = None) -> None:
        """``path``: the file as the user named it; ``data_file``: the file ``hdul`` was opened from,
        when that is a decompressed copy of ``path`` (:mod:`.decompress`)."""
        from astropy.io import fits

        self.path = path
        self.chosen = chosen  # the HDU was named (``file.fits[N]``), not the first image found
        self._hdul = hdul
        self.hdu_index = hdu_index
        self._hdu = hdul[hdu_index]
        self.header: fits.Header = self._hdu.header
        self.shape: tuple[int, int] = tuple(int(n) for n in self._hdu.shape[-2:])  # type: ignore[assignment]
        self.compressed = isinstance(self._hdu, fits.CompImageHDU)
        lead = (0,) * (len(self._hdu.shape) - 2)
        try:  # probing one pixel gives the stored dtype and catches unreadable data early
            with _DECOMPRESS_LOCK:  # a compressed probe decodes a tile, like any read
                probe = self._hdu.section[lead + (slice(0, 1), slice(0, 1))]
        except Exception as exc:
            raise InputError(f"corrupt FITS data ({_first_line(exc)})", path) from None
        # Files are opened unscaled (so they can be memory-mapped); BSCALE/BZERO/BLANK are
        # applied per window in read().
        blank = self.header.get("BLANK")
        self._scaling = Scaling.of(float(self.header.get("BSCALE", 1.0)), float(self.header.get("BZERO", 0.0)),
                                   None if blank is None else int(blank), np.dtype(probe.dtype).newbyteorder("="))
        self.dtype: np.dtype = self._scaling.dtype
        info = hdul.fileinfo(hdu_index)
        # Plain images are read by pread per window (see read_windows); tile-compressed ones go
        # through astropy's section, which decompresses only the tiles a window touches.
        self.layout: PixelLayout | None = None
        if not self.compressed and info is not None:
            data_file = path if data_file is None else data_file
            st = os.stat(data_file)
            self.layout = PixelLayout(str(Path(data_file).resolve()), int(info["datLoc"]),
                                      np.dtype(probe.dtype).newbyteorder(">"), tuple(int(n) for n in self._hdu.shape),
                                      self._scaling, st.st_size, st.st_mtime_ns)

    @property
    def is_integer(self) -> bool:
        return np.issubdtype(self.dtype, np.integer)

    def read(self, window: Window | None = None) -> np.ndarray:
        """Pixels of ``window`` (whole image if None) as a native-endian array of ``self.dtype``."""
        return self.read_windows([window or Window(0, self.shape[0], 0, self.shape[1])])[0]

    def read_windows(self, windows: Sequence[Window]) -> list[np.ndarray]:
        """Pixels of each of ``windows``, as :meth:`read` gives them. A plain image is read with
        ``pread`` (:func:`~astrostatlearn.field.rawimage.read_windows`) into a buffer in the
        file's byte order, swapped in place: no map of the file, so reading a 25k^2 image strip
        by strip keeps RSS bounded, and no page-table fault per 4 kB (a memory map cost 1.5-2x as
        much per tile window)."""
        lead = (0,) * (len(self._hdu.shape) - 2)
        try:
            if self.layout is not None:
                raw = read_windows(self.layout, windows)
            else:
                with _DECOMPRESS_LOCK:  # cfitsio's decoders (e.g. HCOMPRESS) keep global state
                    raw = [np.asarray(self._hdu.section[lead + w.slices]) for w in windows]
        except (OSError, ValueError, TypeError, IndexError) as exc:
            raise InputError(f"corrupt FITS data ({_first_line(exc)})", self.path) from None
        return [self._scaling.physical(data) for data in raw]

    def wcs(self) -> WCS | None:
        """The celestial WCS of the header, or None when the header has none."""
        return header_wcs(self.header)

    def close(self) -> None:
        self._hdul.close()

    def __enter__(self) -> "ImageFile":
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()

    @property
    def spec(self) -> str:
        """What :func:`open_image` reopens this HDU from, in any process: the absolute path, with
        ``[index]`` when the HDU was chosen."""
        path = str(Path(self.path).resolve())
        return f"{path}[{self.hdu_index}]" if self.chosen else path

    def __getstate__(self) -> dict:
        raise TypeError("ImageFile is not picklable; pass its path and reopen it in the worker")

    def __repr__(self) -> str:
        kind = "compressed " if self.compressed else ""
        return f"ImageFile({self.path}, hdu={self.hdu_index}, {kind}{self.shape[0]}x{self.shape[1]} {self.dtype})"


def header_wcs(header: fits.Header) -> WCS | None:
    """A celestial WCS from ``header``, or None when it has no usable celestial WCS."""
    from astropy.wcs import WCS, FITSFixedWarning  # here: reading pixels never needs it (0.1 s to import)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        # WCS re-parses the header's text: non-standard cards (ESO-LOG ...) warn once each, and carry no WCS
        warnings.filterwarnings("ignore", "The following header keyword is invalid")
        try:
            wcs = WCS(header, naxis=2)
        except Exception:  # astropy raises many types for malformed WCS keywords
            return None
    return wcs if wcs.has_celestial else None


def open_source(source: str | Path | PixelLayout, role: str = "image") -> ImageFile | RawImage:
    """A worker's image: a :class:`~astrostatlearn.field.rawimage.RawImage` from a layout whose
    file is unchanged, else :func:`open_image` of the path (a compressed image, a changed file)."""
    if isinstance(source, PixelLayout):
        if source.unchanged():
            return RawImage(source)
        source = source.path
    return open_image(source, role=role)


def split_extension(path: str | Path) -> tuple[Path, int | str | tuple[str, int] | None]:
    """``(file, hdu)`` of CFITSIO's and SExtractor's notation ``file.fits[1]``, ``file.fits[SCI]``
    or ``file.fits[SCI,2]`` (an index, an EXTNAME, or an EXTNAME and EXTVER); ``(path, None)`` for a
    path without one, or one that exists as it is spelt."""
    text = str(path)
    m = _EXTENSION.fullmatch(text)
    if m is None or Path(text).exists():
        return Path(text), None
    ext = m.group(2).strip()
    if ext.isdigit():
        return Path(m.group(1)), int(ext)
    name, _, version = (part.strip() for part in ext.partition(","))
    if not version:
        return Path(m.group(1)), name
    if not version.isdigit():
        raise InputError(f"bad HDU {ext!r}: use [N], [EXTNAME] or [EXTNAME,EXTVER]", m.group(1))
    return Path(m.group(1)), (name, int(version))


def open_image(path: str | Path, hdu: int | str | tuple[str, int] | None = None, role: str = "image") -> ImageFile:
    """Open the 2-D image HDU of a FITS file, memory-mapped, and check it is complete.

    Parameters
    ----------
    path : str or Path
        The FITS file, optionally with its HDU as CFITSIO and SExtractor spell it:
        ``file.fits[1]``, ``file.fits[SCI]`` or ``file.fits[SCI,2]`` (:func:`split_extension`).
        A gzip-, bzip2- or xz-compressed file (``.fits.gz``), and a tile-compressed image above
        4 Mpix, are read through a plain copy in ``$TMPDIR/astrostatlearn-<uid>``
        (:mod:`.decompress`).
    hdu : int, str or (str, int), optional
        The HDU by index, EXTNAME or (EXTNAME, EXTVER), overriding one in ``path``. Default: the
        first HDU holding a 2-D image (primary, image extension or tile-compressed image).
    role : str
        What the file is (image, rms, weight, mask, truth...), for error messages.

    Returns
    -------
    ImageFile
        The HDU, read lazily by window; ``spec`` reopens it in another process.

    Raises
    ------
    InputError
        Naming the file: missing file, not FITS, truncated or corrupt file, no image HDU, no such HDU.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> import numpy as np
    >>> from astropy.io import fits
    >>> from astrostatlearn.field import Window, open_image
    >>> path = Path(tempfile.mkdtemp()) / "drz.fits"
    >>> fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(np.ones((4, 6), np.float32), name="SCI"),
    ...               fits.ImageHDU(np.full((4, 6), 4.0, np.float32), name="WHT")]).writeto(path)
    >>> with open_image(f"{path}[WHT]", role="weight") as wht:
    ...     wht.hdu_index, wht.shape, float(wht.read(Window(0, 2, 0, 2)).max())
    (2, (4, 6), 4.0)
    >>> with open_image(path) as sci:  # the first image
    ...     sci.hdu_index
    1
    """
    p, named = split_extension(path)
    hdu = named if hdu is None else hdu
    if not p.exists():
        if p.is_symlink():
            raise InputError(f"{role} file is a broken symbolic link (its target does not exist)", p)
        raise InputError(f"{role} file not found", p)
    if p.is_dir():
        raise InputError(f"expected a FITS file for the {role}, got a directory", p)
    data_file, first = p, _head(p)
    if compression_of(first) is not None:  # a whole-file gzip, bzip2 or xz file: read its plain copy
        data_file = plain_copy(p, role)
        first = _head(data_file)
    if not first.startswith(b"SIMPLE  ="):
        raise InputError("not a FITS file (no SIMPLE card at the start)", p)
    from astropy.io import fits
    from astropy.utils.exceptions import AstropyWarning

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", AstropyWarning)  # truncation etc. are reported below
            warnings.simplefilter("error", fits.verify.VerifyWarning)
            warnings.filterwarnings("ignore", message=".*(non-standard|Card is too long|fixed).*")
            hdul = fits.open(data_file, memmap=True, lazy_load_hdus=False, do_not_scale_image_data=True)
    except Exception as exc:  # astropy raises OSError/ValueError/VerifyWarning for damaged files
        raise InputError(f"corrupt or truncated FITS file ({_first_line(exc)})", p) from None
    try:
        index = _pick_image_hdu(hdul, hdu, p)
        _check_complete(hdul, index, data_file, p)
        image = ImageFile(p, hdul, index, chosen=hdu is not None, data_file=data_file)
    except Exception:
        hdul.close()
        raise
    if not image.compressed or image.shape[0] * image.shape[1] <= COMPRESSED_COPIED_ABOVE:
        return image
    with image:
        return _read_through_copy(image, role)


def _read_through_copy(image: ImageFile, role: str) -> ImageFile:
    """``image`` (tile-compressed, above :data:`COMPRESSED_COPIED_ABOVE` pixels) as read from a
    plain copy in ``$TMPDIR/astrostatlearn-<uid>``, decompressed once, 4 Mpix of rows at a time,
    with the physical values and the image header (:func:`~astrostatlearn.field.decompress.copy_path`;
    shared and released as a whole-file compressed file's copy is). It keeps the file's name, HDU
    index and ``compressed``."""
    from astropy.io import fits

    copy = copy_path(image.path, f"hdu{image.hdu_index}")
    use(copy)
    if not copy.exists():
        dtype = _storable(image.dtype)
        rows = max(1, (1 << 22) // image.shape[1])
        try:
            with FitsImageWriter(copy, image.shape, dtype, header=image.header, overwrite=True) as out:
                for y0 in range(0, image.shape[0], rows):
                    w = Window(y0, min(y0 + rows, image.shape[0]), 0, image.shape[1])
                    out.write(w, image.read(w).astype(dtype, copy=False))
        except OSError as exc:
            release(copy)
            raise InputError(f"cannot decompress the {role} file into {copy.parent}: {exc}", image.path) from None
        except BaseException:
            release(copy)
            raise
    hdul = fits.open(copy, memmap=True, lazy_load_hdus=False, do_not_scale_image_data=True)
    plain = ImageFile(image.path, hdul, 0, chosen=image.chosen, data_file=copy)
    plain.hdu_index, plain.compressed = image.hdu_index, True  # the file's, as the user has it
    return plain


def _storable(dtype: np.dtype) -> np.dtype:
    """``dtype``, or the FITS type that holds its values (uint16 -> int32, float16 -> float32)."""
    if dtype in _BITPIX:
        return dtype
    if dtype.kind == "f":
        return np.dtype(np.float32 if dtype.itemsize <= 4 else np.float64)
    return np.dtype(np.int32 if dtype.itemsize <= 2 else np.int64)


def _head(path: Path) -> bytes:
    with open(path, "rb") as fh:
        return fh.read(30)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _pick_image_hdu(hdul: fits.HDUList, hdu: int | str | tuple[str, int] | None, path: Path) -> int:
    from astropy.io import fits

    def is_image(h: Any) -> bool:
        if not isinstance(h, (fits.PrimaryHDU, fits.ImageHDU, fits.CompImageHDU)):
            return False
        shape = h.shape
        return len(shape) >= 2 and all(n == 1 for n in shape[:-2]) and min(shape[-2:]) > 0

    if isinstance(hdu, (str, tuple)):
        try:
            hdu = hdul.index_of(hdu)
        except KeyError:
            names = ", ".join(h.name for h in hdul)
            raise InputError(f"no HDU named {hdu!r} in file (it has {names})", path) from None
    if hdu is not None:
        if not 0 <= hdu < len(hdul):
            raise InputError(f"HDU {hdu} does not exist (file has {len(hdul)})", path)
        if not is_image(hdul[hdu]):
            raise InputError(f"HDU {hdu} is not a 2-D image{_cube_hint(hdul[hdu], ': it is')}", path)
        return hdu
    for i, h in enumerate(hdul):
        if is_image(h):
            return i
    hint = next((f" (HDU {i} is{cube})" for i, h in enumerate(hdul) if (cube := _cube_hint(h, ""))), "")
    raise InputError(f"no 2-D image HDU in file{hint}", path)


def _cube_hint(h: Any, lead: str) -> str:
    """``lead`` + ' a cube of shape (...): write the plane ...' for an image HDU of more than one 2-D
    plane, else ''."""
    shape = getattr(h, "shape", ()) if getattr(h, "is_image", False) else ()
    if len(shape) < 3 or all(n == 1 for n in shape[:-2]):
        return ""
    return (f"{lead} a cube of shape {tuple(shape)} (axes in numpy order, y and x last); write the plane to "
            f"segment to a file of its own, e.g. astropy's fits.writeto('plane.fits', data[k], header)")


def _check_complete(hdul: fits.HDUList, index: int, data_file: Path, path: Path) -> None:
    info = hdul.fileinfo(index)
    if info is None:
        return
    size = data_file.stat().st_size
    needed = int(info["datLoc"]) + int(info["datSpan"])  # for a CompImageHDU: its binary table
    if size < needed:
        raise InputError(f"truncated FITS file: {size} bytes on disk, header says {needed}", path)


def output_header(header: fits.Header | None, **cards: Any) -> fits.Header:
    """A copy of ``header`` without data-layout keywords, plus ``cards``; WCS and metadata survive."""
    from astropy.io import fits

    out = fits.Header()
    if header is not None:
        with warnings.catch_warnings():  # long (ESO) keywords stay HIERARCH cards, as they were in the input
            warnings.simplefilter("ignore", fits.verify.VerifyWarning)
            _copy_cards(header, out)
    for key, value in cards.items():
        out[key.upper()[:8]] = value
    return out


def _copy_cards(header: fits.Header, out: fits.Header) -> None:
    """Append ``header``'s cards to ``out``, less the data-layout ones and any astropy refuses."""
    from astropy.io import fits

    for card in header.cards:
        key = card.keyword
        if key in _STRUCTURAL or key.startswith(_STRUCTURAL_PREFIXES) or key == "":
            continue
        if key in ("COMMENT", "HISTORY"):
            out.add_comment(card.value) if key == "COMMENT" else out.add_history(card.value)
            continue
        try:
            out.append(card.copy() if hasattr(card, "copy") else (key, card.value, card.comment))
        except (ValueError, fits.verify.VerifyError):
            continue


def check_writable(path: str | Path, overwrite: bool) -> Path:
    """Refuse an existing ``path`` unless ``overwrite``, and a path that cannot be written (its
    nearest existing folder is not writable, or a file stands where a folder must be). Returns
    the Path.

    Only checks: folders are made when a file is written (see ``_temp_beside``), so a command
    that fails its later checks leaves nothing on disk.
    """
    p = Path(path)
    if p.exists() and not overwrite:
        raise OutputExistsError(p)
    parent = p.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise InputError("output path runs through a file", parent)
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InputError("cannot write here (permission denied)", parent)
    return p


def _temp_beside(path: Path) -> Path:
    """An empty temporary file next to ``path`` (its folder made if needed), with the permissions a
    normal new file gets."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(name, 0o666 & ~umask)
    return Path(name)


def write_image(path: str | Path, data: np.ndarray, header: fits.Header | None = None,
                overwrite: bool = False) -> Path:
    """Write ``data`` as the primary HDU of ``path`` atomically (temp file + rename)."""
    from astropy.io import fits

    p = check_writable(path, overwrite)
    tmp = _temp_beside(p)
    try:
        fits.PrimaryHDU(data=np.ascontiguousarray(data), header=header).writeto(tmp, overwrite=True)
        os.replace(tmp, p)
    finally:
        tmp.unlink(missing_ok=True)
    return p


def atomic_write_bytes(path: str | Path, payload: bytes, overwrite: bool = False) -> Path:
    """Write ``payload`` to ``path`` atomically (temp file + rename)."""
    p = check_writable(path, overwrite)
    tmp = _temp_beside(p)
    try:
        tmp.write_bytes(payload)
        os.replace(tmp, p)
    finally:
        tmp.unlink(missing_ok=True)
    return p


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def atomic_write_json(path: str | Path, payload: Any, overwrite: bool = False) -> Path:
    """Write ``payload`` as indented JSON (numpy scalars and arrays converted) atomically."""
    import json

    return atomic_write_bytes(path, json.dumps(payload, indent=2, default=_json_default).encode(), overwrite)


_BITPIX = {np.dtype(np.float32): -32, np.dtype(np.float64): -64, np.dtype(np.int32): 32,
           np.dtype(np.int16): 16, np.dtype(np.uint8): 8, np.dtype(np.int64): 64}


class FitsImageWriter:
    """Stream windows into a new 2-D FITS image without holding it in memory.

    The file is created under a temporary name with its header and a zero-filled (sparse) data
    unit of the final size; :meth:`write` puts a window of pixels in place with ``os.pwrite``;
    :meth:`commit` renames it to ``path``. Writes to disjoint windows may come from several
    processes at once: pass :attr:`target` to :func:`write_window` in the worker.
    Use as a context manager: leaving the block with an exception deletes the temporary file.
    """

    def __init__(self, path: str | Path, shape: tuple[int, ...], dtype: Any,
                 header: fits.Header | None = None, overwrite: bool = False,
                 tmp: str | Path | None = None) -> None:
        """``shape`` is (ny, nx) for an image or (C, ny, nx) for a cube. ``tmp``: a fixed temporary
        file to fill instead of a fresh one; when it exists with this header and size (a killed
        run's), it is reopened as it is, so a resumed run keeps the windows already written."""
        from astropy.io import fits

        self.path = check_writable(path, overwrite)
        if len(shape) not in (2, 3):
            raise ValueError(f"shape must be (ny, nx) or (C, ny, nx), got {shape}")
        self.shape = tuple(int(n) for n in shape)
        self.dtype = np.dtype(dtype)
        if self.dtype not in _BITPIX:
            raise ValueError(f"unsupported FITS dtype {self.dtype}")
        hdr = fits.Header()
        hdr["SIMPLE"] = True
        hdr["BITPIX"] = _BITPIX[self.dtype]
        hdr["NAXIS"] = len(self.shape)
        for axis, n in enumerate(reversed(self.shape), start=1):
            hdr[f"NAXIS{axis}"] = n
        hdr["EXTEND"] = True
        if header is not None:
            for card in output_header(header).cards:
                hdr.append(card)
        head = hdr.tostring().encode("ascii")
        nbytes = int(np.prod(self.shape)) * self.dtype.itemsize
        padded = -(-nbytes // FITS_BLOCK) * FITS_BLOCK
        self.resumed = False
        if tmp is not None and Path(tmp).exists() and Path(tmp).stat().st_size == len(head) + padded \
                and _starts_with(Path(tmp), head):
            self.tmp, self.resumed = Path(tmp), True
        else:
            self.tmp = _temp_beside(self.path) if tmp is None else Path(tmp)
            with open(self.tmp, "w+b" if tmp is not None else "r+b") as fh:
                fh.write(head)
                fh.truncate(len(head) + padded)  # sparse: blocks are allocated as rows are written
        self.target = (str(self.tmp), len(head), self.shape, self.dtype.str)
        self._done = False

    def write(self, window: Window, data: np.ndarray) -> None:
        write_window(self.target, window, data)

    def sync(self) -> None:
        """Flush what was written to the disk (``fsync``), so it survives a lost machine."""
        fd = os.open(self.tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def commit(self) -> Path:
        os.replace(self.tmp, self.path)
        self._done = True
        return self.path

    def abort(self) -> None:
        if not self._done:
            self.tmp.unlink(missing_ok=True)
            self._done = True

    def __enter__(self) -> "FitsImageWriter":
        return self

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        if exc_type is None and not self._done:
            self.commit()
        else:
            self.abort()


def _starts_with(path: Path, head: bytes) -> bool:
    with open(path, "rb") as fh:
        return fh.read(len(head)) == head


def write_window(target: tuple[str, int, tuple[int, ...], str], window: Window, data: np.ndarray) -> None:
    """Write ``data`` into the FITS data unit described by ``target``.

    ``data`` is ``window.shape`` for an image, or ``(C,) + window.shape`` for a cube.
    """
    fname, offset, shape, dtype = target
    planes = data[None] if data.ndim == 2 else data
    if planes.shape[1:] != window.shape or (len(shape) == 3 and planes.shape[0] != shape[0]):
        raise ValueError(f"data shape {data.shape} does not match window {window.shape} of {shape}")
    be = np.ascontiguousarray(planes, dtype=np.dtype(dtype).newbyteorder(">"))
    item = be.dtype.itemsize
    ny, nx = shape[-2:]
    fd = os.open(fname, os.O_WRONLY)
    try:
        for c in range(be.shape[0]):
            base = offset + c * ny * nx * item
            if window.x0 == 0 and window.x1 == nx:
                os.pwrite(fd, be[c].tobytes(), base + window.y0 * nx * item)
                continue
            for row in range(window.shape[0]):
                os.pwrite(fd, be[c, row].tobytes(), base + ((window.y0 + row) * nx + window.x0) * item)
    finally:
        os.close(fd)
