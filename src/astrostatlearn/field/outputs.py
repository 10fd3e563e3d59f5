"""One transaction for every command's outputs: stage the set, then commit it whole, under a lock.

A command opens an :class:`OutputSet` for its destination, writes every output into the staging
folder (:meth:`OutputSet.path`), and the set is committed when the block ends without error:

- **Lock.** An exclusive ``flock`` on ``.<key>.lock`` is taken first and held until the end, so a
  second writer to the same outputs is refused at once with one line. The kernel drops the lock
  when its process dies, however it dies (kill -9 included).
- **Refusal.** Existing outputs are refused unless ``overwrite``, checked under the lock, again
  at commit.
- **Commit as a set.** A journal (``.<key>.commit``) lists the renames before they start, so a run
  killed mid-commit is rolled forward by the next writer; a Ctrl-C or SIGTERM that arrives during
  the commit waits for it to finish (:func:`~astrostatlearn.processes.critical`). Outputs of the set that this run does
  not produce (say ``score.fits`` after ``--no-score``) are removed, so the folder never holds
  files from two runs.
- **Debris.** Staging folders of dead runs (``.<key>.staging-*``) are removed by the next writer
  to the same destination, under the lock. A failed run removes its own staging folder, and the
  destination folder too when it made it and it is left empty.
- **Resume.** A ``resumable`` set stages in a fixed ``.<key>.partial`` folder instead, which a run
  killed without warning (kill -9, out of memory, a lost machine) leaves behind: the next run
  continues it with ``resume``, replaces it with ``overwrite``, or is refused in one line. A fresh
  run that fails or is interrupted (Ctrl-C, SIGTERM) removes it like any staging folder; a run
  that resumed it and then fails leaves it (with its own progress) for another try.

Two shapes: a set of ``names`` inside folder ``dest`` (lock, journal and staging live in ``dest``),
or, with ``names=None``, the whole folder ``dest`` (they live beside it, in ``dest.parent``).
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any, Sequence

from astrostatlearn.errors import InputError, OutputExistsError
from astrostatlearn.processes import critical


class OutputBusyError(InputError):
    """Another process holds the lock on the same outputs."""


class OutputWriteError(InputError):
    """The outputs could not be written (disk full, permissions); nothing was committed."""


class PartialRunError(InputError):
    """A killed run left its resumable partial state, and neither resume nor overwrite was asked."""


def _free_bytes(folder: Path) -> int | None:
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


class OutputSet:
    """Stage outputs, then commit them together (see the module docstring).

    ``dest``: the destination folder. ``names``: the output names inside it (files or folders),
    or None for the whole folder. ``expected_bytes``: refuse at once when the file system has less
    free space than this.
    """

    def __init__(self, dest: str | Path, names: Sequence[str] | None, overwrite: bool = False,
                 expected_bytes: int = 0, resumable: bool = False, resume: bool = False) -> None:
        self.dest = Path(dest)
        self.resumable, self.resume = resumable or resume, resume
        self.names = None if names is None else tuple(names)
        self.overwrite = overwrite
        self.expected_bytes = int(expected_bytes)
        if self.names is None:
            self.admin, key = self.dest.parent, self.dest.name
        else:
            self.admin, key = self.dest, self.names[0]
        self.prefix = f".{key}"
        # A resumable set stages in a fixed folder that outlives a killed run (kill -9, out of memory,
        # a lost machine), so that a later run can continue from it; others stage per run.
        self.staging = self.admin / (f"{self.prefix}.partial" if self.resumable else
                                     f"{self.prefix}.staging-{os.getpid()}-{uuid.uuid4().hex[:8]}")
        self.resumed = False
        self._owns_staging = False  # only a staging folder this run made is removed by abort()
        self._lock_fd: int | None = None
        self._made: list[Path] = []

    # -- paths --------------------------------------------------------------------------------
    @property
    def lock_path(self) -> Path:
        return self.admin / f"{self.prefix}.lock"

    @property
    def journal_path(self) -> Path:
        return self.admin / f"{self.prefix}.commit"

    def path(self, name: str = "") -> Path:
        """Where to write output ``name`` (for a whole-folder set: a path inside the folder)."""
        if name and self.names is not None and name.split("/")[0] not in self.names:
            raise ValueError(f"{name!r} is not one of this set's outputs {self.names}")
        return self.staging / name if name else self.staging

    @property
    def scratch_path(self) -> Path:
        return self.admin / f"{self.staging.name}.scratch"

    def scratch(self) -> Path:
        """A private work folder, removed with the staging folder and never committed."""
        self.scratch_path.mkdir(exist_ok=True)
        return self.scratch_path

    def _busy(self) -> OutputBusyError:
        return OutputBusyError("another astrostatlearn run is writing these outputs; wait for it to finish or "
                               "choose another output", self.dest)

    def _partial_left(self) -> PartialRunError:
        return PartialRunError("holds the partial state of a run that was killed; pass --resume to continue it, "
                               "or --overwrite to start again", self.dest)

    # -- lifecycle ----------------------------------------------------------------------------
    def __enter__(self) -> "OutputSet":
        self.open()
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        if exc_type is None:
            # A Ctrl-C or SIGTERM now is held back until the set is committed (a few renames), then
            # raised: an interrupted command never leaves half a set with its journal behind.
            with critical():
                try:
                    self.commit()
                except BaseException as error:
                    self.abort()
                    self._reraise(error)
            return
        self.abort()
        if exc is not None:
            self._reraise(exc)

    def open(self) -> None:
        """Check the destination, take the lock, clear dead runs' debris, make the staging folder."""
        if self.names is not None and self.dest.exists() and not self.dest.is_dir():
            raise InputError("output exists and is not a directory", self.dest)
        self._make_dirs(self.admin)
        self._lock()
        try:
            self._recover()
            shutil.rmtree(self.scratch_path, ignore_errors=True)  # a dead run's
            self._check_existing()
            if self._take_partial():
                return
            free = _free_bytes(self.admin)
            if self.expected_bytes and free is not None and free < self.expected_bytes:
                raise OutputWriteError(f"needs about {self.expected_bytes / 1e9:.2f} GB, but only "
                                       f"{free / 1e9:.2f} GB are free", self.admin)
            self.staging.mkdir()
            self._owns_staging = True
        except BaseException:
            self.abort()
            raise

    def check_partial(self) -> None:
        """Without taking the lock: refuse at once when another run is writing these outputs, or
        when a killed run's partial state is there and neither ``resume`` nor ``overwrite`` was asked."""
        if not self.lock_path.exists() and not (self.resumable and self.staging.exists()):
            return
        try:
            fd = os.open(self.lock_path, os.O_RDWR)
        except FileNotFoundError:
            fd = None
        if fd is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                raise self._busy() from None
            finally:
                os.close(fd)  # closing drops a lock taken here
        if self.resumable and self.staging.exists() and not (self.resume or self.overwrite):
            raise self._partial_left()

    def _take_partial(self) -> bool:
        """For a resumable set: continue a killed run's partial state (``resume``), replace it
        (``overwrite``), or refuse; True when it is continued."""
        if not (self.resumable and self.staging.exists()):
            return False
        if self.resume:
            self.resumed = True
            return True
        if self.overwrite:
            shutil.rmtree(self.staging)
            return False
        raise self._partial_left()

    def commit(self) -> None:
        """Move the staged outputs into place as one set (journalled: see :meth:`_roll_forward`)."""
        self._check_existing()
        if self.names is None:
            plan: dict[str, Any] = {"staging": self.staging.name, "folder": self.dest.name}
        else:
            staged = [n for n in self.names if (self.staging / n).exists() or (self.staging / n).is_symlink()]
            plan = {"staging": self.staging.name, "move": staged,
                    "remove": [n for n in self.names if n not in staged]}
        tmp = self.journal_path.with_name(self.journal_path.name + ".tmp")
        tmp.write_text(json.dumps(plan))
        os.replace(tmp, self.journal_path)
        self._roll_forward(plan)
        shutil.rmtree(self.scratch_path, ignore_errors=True)
        self._release(remove_lock=True)

    def abort(self) -> None:
        """Remove everything this run staged, release the lock, remove folders it made if empty.
        A killed run's partial state that this run resumed is kept, for another try."""
        for p in ([self.staging] if self._owns_staging else []) + [self.scratch_path]:
            shutil.rmtree(p, ignore_errors=True)
        self._release(remove_lock=True)
        for d in reversed(self._made):
            try:
                d.rmdir()
            except OSError:
                pass

    # -- steps --------------------------------------------------------------------------------
    def _make_dirs(self, folder: Path) -> None:
        missing = []
        p = folder
        while not p.exists():
            missing.append(p)
            p = p.parent
        if p.exists() and not p.is_dir():
            raise InputError("output path runs through a file", p)
        for d in reversed(missing):
            d.mkdir()
            self._made.append(d)

    def _lock(self) -> None:
        """Exclusive, non-blocking ``flock``; retried when the lock file was replaced meanwhile."""
        for _ in range(10):
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                os.close(fd)
                if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise self._busy() from None
                raise
            try:
                same = os.fstat(fd).st_ino == os.stat(self.lock_path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                os.ftruncate(fd, 0)
                os.write(fd, f"{os.getpid()}\n".encode())
                self._lock_fd = fd
                return
            os.close(fd)  # the holder finished and removed the file between our open and flock
        raise OutputBusyError("could not take the output lock", self.dest)

    def _release(self, remove_lock: bool) -> None:
        if self._lock_fd is None:
            return
        if remove_lock:
            self.lock_path.unlink(missing_ok=True)
        os.close(self._lock_fd)
        self._lock_fd = None

    def _recover(self) -> None:
        """Under the lock: finish a dead run's interrupted commit, then remove dead runs' staging."""
        if self.journal_path.exists():
            try:
                plan = json.loads(self.journal_path.read_text())
            except (OSError, ValueError):
                plan = None
            if plan is not None:
                self._roll_forward(plan)
            self.journal_path.unlink(missing_ok=True)
        for p in self.admin.glob(f"{self.prefix}.staging-*"):  # a resumable run's .partial stays
            if p != self.staging:
                shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
        self.journal_path.with_name(self.journal_path.name + ".tmp").unlink(missing_ok=True)

    def _check_existing(self) -> None:
        if self.overwrite:
            return
        if self.names is None:
            if self.dest.exists():
                raise OutputExistsError(self.dest)
            return
        for n in self.names:
            if (self.dest / n).exists():
                raise OutputExistsError(self.dest / n)

    def _roll_forward(self, plan: dict[str, Any]) -> None:
        """Apply a journalled commit; each step is safe to repeat after a crash."""
        staging = self.admin / plan["staging"]
        if "folder" in plan:
            dest = self.admin / plan["folder"]
            old = self.admin / f"{plan['staging']}.old"
            if staging.exists():
                if dest.exists() or dest.is_symlink():
                    _remove(old)
                    os.replace(dest, old)
                os.replace(staging, dest)
            _remove(old)
        else:
            for n in plan["move"]:
                src = staging / n
                if src.exists() or src.is_symlink():
                    _replace(src, self.dest / n, staging)
            for n in plan["remove"]:
                _remove(self.dest / n)
            _remove(staging)
        self.journal_path.unlink(missing_ok=True)

    def _reraise(self, exc: BaseException) -> None:
        """Re-raise ``exc``; an OS error becomes one line that names the destination, never the
        staging folder."""
        if isinstance(exc, OSError):
            fname = str(getattr(exc, "filename", "") or "")
            ours = fname.startswith(str(self.admin / self.prefix)) or fname.startswith(str(self.dest))
            if ours or exc.errno in _FULL:
                reason = exc.strerror or str(exc)
                raise OutputWriteError(f"cannot write the outputs: {reason}; nothing was written",
                                       self.dest) from None
        if isinstance(exc, InputError) and str(self.staging) in str(exc):
            text = str(exc).replace(str(self.scratch_path), str(self.dest))
            raise InputError(text.replace(str(self.staging), str(self.dest))) from None
        raise exc


_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS)


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    else:
        p.unlink(missing_ok=True)


def _replace(src: Path, dst: Path, staging: Path) -> None:
    """``os.replace`` that also replaces an existing folder (moved aside into ``staging`` first)."""
    if dst.is_dir() and not dst.is_symlink():
        aside = staging / f".old-{dst.name}"
        _remove(aside)
        os.replace(dst, aside)
    os.replace(src, dst)
