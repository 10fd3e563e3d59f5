"""Whole-file compressed FITS (``.fits.gz``, ``.fits.bz2``, ``.fits.xz``), read through a plain copy.

Archives often serve images gzip- or bzip2-compressed as whole files (SDSS frames, many archive
downloads). Such a stream cannot be read by window: reaching a window means decompressing every
byte before it, in every worker, for every tile. So the file is decompressed once, in 1 MiB
blocks (memory bounded by the block, not the image), into ``$TMPDIR/astrostatlearn-<uid>/``, and
read from there like any plain FITS file. Tile-compressed ``.fits.fz`` images up to 4 Mpix are read tile
by tile in place; :func:`~astrostatlearn.field.fitsio.open_image` copies larger ones here too, an
HDU at a time (read in place, they would decode the same tiles many times over).

The copy is named by the source's path, size and modification time, so every process that opens
the same file (the workers of a run, a resumed run, two runs at once) finds and reuses one copy.
Each process that uses it leaves a marker beside it (``.<copy>.<host>-<pid>.use``); when the last
live user exits, it deletes the copy. A copy whose users all died (killed runs; worker processes,
which exit without ``atexit``) is removed when a process next uses a copy on this machine. On a
cluster, point ``TMPDIR`` at a folder the workers share, or decompress the file first.
"""

from __future__ import annotations

import atexit
import bz2
import gzip
import hashlib
import lzma
import os
import shutil
import socket
import tempfile
from pathlib import Path
from typing import Callable, IO

from astrostatlearn.errors import InputError
from astrostatlearn.pids import alive

# name -> (magic bytes at the start of the file, opener of a decompressing stream)
_FORMATS: dict[str, tuple[bytes, Callable[[Path], IO[bytes]]]] = {
    "gzip": (b"\x1f\x8b", lambda p: gzip.open(p, "rb")),
    "bzip2": (b"BZh", lambda p: bz2.open(p, "rb")),
    "xz": (b"\xfd7zXZ\x00", lambda p: lzma.open(p, "rb")),
}
_BLOCK = 1 << 20  # bytes decompressed at a time
_USED: list[Path] = []  # copies this process uses, released at exit (see use)


def compression_of(head: bytes) -> str | None:
    """The whole-file compression (``"gzip"``, ``"bzip2"``, ``"xz"``) that a file starting with
    ``head`` uses, or None."""
    for name, (magic, _) in _FORMATS.items():
        if head.startswith(magic):
            return name
    return None


def cache_dir() -> Path:
    """Where decompressed copies are kept: ``$TMPDIR/astrostatlearn-<uid>`` (the system's temporary
    folder when ``TMPDIR`` is not set; one folder per user, as another's cannot be written)."""
    return Path(tempfile.gettempdir()) / f"astrostatlearn-{os.getuid()}"


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
    use(target)
    if target.exists():
        return target
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as out, _FORMATS[kind][1](path) as src:
            shutil.copyfileobj(src, out, _BLOCK)
        os.replace(tmp, target)
    except (OSError, EOFError, lzma.LZMAError) as exc:
        tmp.unlink(missing_ok=True)
        release(target)
        where = f" (copy in {target.parent})" if isinstance(exc, OSError) and exc.errno else ""
        raise InputError(f"cannot decompress the {kind} {role} file{where}: {exc}", path) from None
    return target


def copy_path(path: Path, part: str = "") -> Path:
    """The plain copy's name for ``path`` (and ``part`` of it, an HDU say) in :func:`cache_dir`:
    the file's stem and a hash of its absolute path, size and modification time."""
    st = path.stat()
    key = hashlib.sha1(f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}|{part}".encode()).hexdigest()[:16]
    return cache_dir() / f"{path.name.split('.')[0]}-{key}.fits"


def use(copy: Path) -> None:
    """Mark ``copy`` (made or to be made) as used by this process, before it is read or made: no
    other process deletes it until this one exits. Copies no live process uses are removed."""
    copy.parent.mkdir(parents=True, exist_ok=True)
    if copy not in _USED:
        _marker(copy, _owner()).touch()
        _USED.append(copy)
    for other in [p for p in copy.parent.iterdir() if p.suffix == ".fits" and not p.name.startswith(".")]:
        if other not in _USED and not _live_users(other):
            other.unlink(missing_ok=True)


def _owner() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


def _marker(copy: Path, owner: str) -> Path:
    return copy.with_name(f".{copy.name}.{owner}.use")


def _live_users(copy: Path) -> bool:
    """Whether a live process uses ``copy``; the markers of dead processes of this host are removed
    (another host's are taken as live)."""
    host, live, prefix = socket.gethostname(), False, f".{copy.name}."
    if not copy.parent.is_dir():  # the folder is gone, and the copy with it
        return False
    for mark in [p for p in copy.parent.iterdir() if p.name.startswith(prefix) and p.name.endswith(".use")]:
        owner = mark.name[len(prefix):-len(".use")]
        name, _, pid = owner.rpartition("-")
        if name != host or not pid.isdigit() or alive(int(pid)):
            live = True
        else:
            mark.unlink(missing_ok=True)
    return live


def release(copy: Path) -> None:
    """Drop this process's use of ``copy``, and delete it when no other live process uses it."""
    if copy in _USED:
        _USED.remove(copy)
    _marker(copy, _owner()).unlink(missing_ok=True)
    if not _live_users(copy):
        copy.unlink(missing_ok=True)


@atexit.register
def _release() -> None:
    """Release every copy this process uses (at exit)."""
    while _USED:
        release(_USED[-1])
