"""Local worker processes that die with the run that started them.

:func:`process_pool` gives a ``ProcessPoolExecutor`` whose workers fork from a clean forkserver
(never from the caller, which may hold live OpenMP/torch thread pools). Its guards:

- the forkserver gets ``SIGKILL`` when the main process dies (Linux ``PR_SET_PDEATHSIG``), and each
  worker when the forkserver dies, so kill -9 of the main process leaves no orphan; elsewhere a
  watchdog thread in each worker polls the main process;
- workers and the forkserver ignore ``SIGINT``: Ctrl-C is handled once, by the main process;
- :func:`stop_pool` ends a pool at once on an error or interrupt (running tasks are killed,
  not awaited).

A worker that dies anyway (killed, out of memory) surfaces as :class:`WorkerDiedError`.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Sequence

from astrostatlearn.errors import InputError

_MAIN_PID_ENV = "ASTROSTATLEARN_MAIN_PID"
_PR_SET_PDEATHSIG = 1


class WorkerDiedError(InputError):
    """A worker process died (killed, or out of memory); the run stopped and wrote nothing."""

    def __init__(self) -> None:
        super().__init__("a worker process died (killed, or out of memory?); the run stopped and nothing "
                         "was written; retry with fewer --workers or a smaller --tile")


def _die_with_parent() -> bool:
    """Ask the kernel to SIGKILL this process when its parent dies (Linux); False elsewhere."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie is dead
    except (OSError, IndexError):
        return True


def _watch(pid: int, period_s: float = 1.0) -> None:
    def loop() -> None:
        while _alive(pid):
            time.sleep(period_s)
        os._exit(1)

    threading.Thread(target=loop, daemon=True, name="astrostatlearn-parent-watch").start()


def guard_worker(main_pid: int) -> None:
    """Pool initializer: ignore SIGINT; die with the parent (or, without prctl, with ``main_pid``)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if not _die_with_parent():
        _watch(main_pid)


def _guard_forkserver() -> None:
    """Run on import: in the forkserver that :func:`process_pool` starts, tie it to the main process."""
    main = os.environ.get(_MAIN_PID_ENV)
    if main and main.isdigit() and os.getppid() == int(main) and sys.argv[:1] == ["-c"]:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if not _die_with_parent():
            _watch(int(main))


_guard_forkserver()


def process_pool(workers: int, preload: Sequence[str] = ()) -> ProcessPoolExecutor:
    """A pool of ``workers`` guarded processes; ``preload``: modules the forkserver imports once."""
    import multiprocessing as mp
    from multiprocessing import forkserver

    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(["astrostatlearn.processes", *preload])
    os.environ[_MAIN_PID_ENV] = str(os.getpid())
    try:
        forkserver.ensure_running()  # from this thread, so the server's parent-death signal is ours
    finally:
        os.environ.pop(_MAIN_PID_ENV, None)
    return ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=guard_worker,
                               initargs=(os.getpid(),))


def stop_pool(pool: ProcessPoolExecutor, kill: bool) -> None:
    """Shut ``pool`` down; with ``kill``, terminate its workers instead of awaiting their tasks."""
    if not kill:
        pool.shutdown(wait=True)
        return
    procs = list(getattr(pool, "_processes", {}).values())  # CPython's pool exposes no public handle
    for p in procs:  # killed before the pool's queues go, so no worker meets a half-removed queue
        if p.is_alive():
            p.kill()
    for p in procs:
        p.join(timeout=5)
    pool.shutdown(wait=False, cancel_futures=True)
