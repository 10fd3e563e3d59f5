"""Whole-file compressed FITS (``.fits.gz``, ``.fits.bz2``, ``.fits.xz``), read through a plain copy.

Archives often serve images gzip- or bzip2-compressed as whole files (SDSS frames, many archive
downloads). Such a stream cannot be read by window: reaching a window means decompressing every
byte before it, in every worker, for every tile. So the file is decompressed once, in 1 MiB
blocks (memory bounded by the block, not the image), into ``$TMPDIR/astrostatlearn/``, and read
from there like any plain FITS file. Tile-compressed ``.fits.fz`` images up to 4 Mpix are read tile
by tile in place; :func:`~astrostatlearn.field.fitsio.open_image` copies larger ones here too, an
HDU at a time (read in place, they would decode the same tiles many times over).

The copy is named by the source's path, size and modification time, so every process that opens
the same file (the workers of a run, a resumed run) finds and reuses one copy. The process that
made it deletes it when it exits; a killed run leaves it for the next run to reuse. On a cluster,
point ``TMPDIR`` at a folder the workers share, or decompress the file first.
"""

from __future__ import annotations

import atexit
import bz2
import gzip
import hashlib
import lzma
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable, IO

from astrostatlearn.errors import InputError

# name -> (magic bytes at the start of the file, opener of a decompressing stream)
_FORMATS: dict[str, tuple[bytes, Callable[[Path], IO[bytes]]]] = {
    "gzip": (b"\x1f\x8b", lambda p: gzip.open(p, "rb")),
    "bzip2": (b"BZh", lambda p: bz2.open(p, "rb")),
    "xz": (b"\xfd7zXZ\x00", lambda p: lzma.open(p, "rb")),
}
_BLOCK = 1 << 20  # bytes decompressed at a time
_MADE: list[Path] = []  # copies this process made, deleted at exit


def compression_of(head: bytes) -> str | None:
    """The whole-file compression (``"gzip"``, ``"bzip2"``, ``"xz"``) that a file starting with
    ``head`` uses, or None."""
    for name, (magic, _) in _FORMATS.items():
        if head.startswith(magic):
            return name
    return None


def cache_dir() -> Path:
    """Where decompressed copies are kept: ``$TMPDIR/astrostatlearn`` (the system's temporary folder
    when ``TMPDIR`` is not set)."""
    return Path(tempfile.gettempdir()) / "astrostatlearn"


def plain_copy(path: Path, role: str = "image") -> Path:
    """A plain FITS copy of the whole-file compressed ``path``, made on first use and reused after.

    Raises InputError naming ``path`` when it is not a valid compressed stream (damaged or cut
    short) or the copy cannot be written (no space in ``$TMPDIR``).
    """
    with open(path, "rb") as fh:
        head = fh.read(8)
    kind = compression_of(head)
    if kind is None:
        raise ValueError(f"{path} is not gzip, bzip2 or xz compressed")
    target = copy_path(path)
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as out, _FORMATS[kind][1](path) as src:
            shutil.copyfileobj(src, out, _BLOCK)
        os.replace(tmp, target)
    except (OSError, EOFError, lzma.LZMAError) as exc:
        tmp.unlink(missing_ok=True)
        where = f" (copy in {target.parent})" if isinstance(exc, OSError) and exc.errno else ""
        raise InputError(f"cannot decompress the {kind} {role} file{where}: {exc}", path) from None
    made(target)
    return target


def copy_path(path: Path, part: str = "") -> Path:
    """The plain copy's name for ``path`` (and ``part`` of it, an HDU say) in :func:`cache_dir`:
    the file's stem and a hash of its absolute path, size and modification time."""
    st = path.stat()
    key = hashlib.sha1(f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}|{part}".encode()).hexdigest()[:16]
    return cache_dir() / f"{path.name.split('.')[0]}-{key}.fits"


def made(copy: Path) -> None:
    """Delete ``copy`` when this process exits (it made it)."""
    _MADE.append(copy)


@atexit.register
def _remove_copies() -> None:
    while _MADE:
        _MADE.pop().unlink(missing_ok=True)
