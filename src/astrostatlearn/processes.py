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
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from typing import Any, Iterator, Sequence

from astrostatlearn.allocator import keep_freed_memory
from astrostatlearn.errors import InputError
from astrostatlearn.pids import alive

_MAIN_PID_ENV = "ASTROSTATLEARN_MAIN_PID"
_PR_SET_PDEATHSIG = 1


class WorkerDiedError(InputError):
    """A worker process died (killed, or out of memory); the run stopped and wrote nothing."""

    def __init__(self) -> None:
        super().__init__("a worker process died (killed, or out of memory?); the run stopped and nothing "
                         "was written; retry with fewer --workers or a smaller --tile")


def check_workers(workers: int | None) -> None:
    """Refuse a negative worker count (0 or None: all cores)."""
    if workers is not None and workers < 0:
        raise InputError(f"--workers must be >= 0 (0 = all cores), got {workers}")


def _die_with_parent() -> bool:
    """Ask the kernel to SIGKILL this process when its parent dies (Linux); False elsewhere."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _watch(pid: int, period_s: float = 1.0) -> None:
    def loop() -> None:
        while alive(pid):
            time.sleep(period_s)
        os._exit(1)

    threading.Thread(target=loop, daemon=True, name="astrostatlearn-parent-watch").start()


def _tie_to(parent: int, watch: int) -> None:
    """Die with ``parent`` (parent-death signal; a watchdog on ``watch`` without prctl), and at once
    when it is already gone (it may die before the signal is armed)."""
    if not _die_with_parent():
        _watch(watch)
    if os.getppid() != parent:
        os._exit(1)


def guard_worker(main_pid: int, parent_pid: int | None = None) -> None:
    """Pool initializer: ignore SIGINT; die with the parent (or, without prctl, with ``main_pid``);
    reuse freed memory (:func:`~astrostatlearn.allocator.keep_freed_memory`)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    keep_freed_memory()
    _tie_to(os.getppid() if parent_pid is None else parent_pid, main_pid)
    if not alive(main_pid):  # the run died while this worker started
        os._exit(1)


def _guard_forkserver() -> None:
    """Run on import: in the forkserver that :func:`process_pool` starts, tie it to the main process."""
    main = os.environ.get(_MAIN_PID_ENV)
    if main and main.isdigit() and int(main) != os.getpid() and sys.argv[:1] == ["-c"]:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # discards a Ctrl-C held back since the spawn
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
        _tie_to(int(main), int(main))
        keep_freed_memory()  # the workers fork from here with it


_guard_forkserver()


_critical = 0
_pending: type[BaseException] | None = None


@contextmanager
def critical() -> Iterator[None]:
    """Hold back SIGTERM/SIGINT (see :func:`interrupt`) until the block ends, then raise them."""
    global _critical, _pending
    _critical += 1
    try:
        yield
    finally:
        _critical -= 1
        if not _critical and _pending is not None:
            exc, _pending = _pending, None
            raise exc()


def interrupt(exc: type[BaseException]) -> None:
    """Raise ``exc`` now, or when the current :func:`critical` block ends (called by signal handlers)."""
    global _pending
    if _critical:
        _pending = exc
        return
    raise exc()


def _started() -> int:
    return os.getpid()


def skip_main_in_workers(as_module: str) -> None:
    """Spare local workers the caller's main module. multiprocessing re-runs a main script (a
    ``__main__`` with no module spec), or re-imports a module run with ``python -m``, in every
    worker it starts, for what it might define; only a package's ``__main__`` module is left
    alone. Giving ``__main__`` the spec of ``as_module`` (such a module) makes the caller look so:
    the workers of ``astrostatlearn`` and of ``python -m astrostatlearn.cli`` no longer import the
    command line and Typer (0.06-0.1 s each, at the start of every run). Only for a main module
    that defines nothing the workers use."""
    import importlib.util

    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if main is not None and (spec is None or not spec.name.endswith("__main__")):
        main.__spec__ = importlib.util.find_spec(as_module)


def start_forkserver(preload: Sequence[str] = ()) -> Any:
    """Start the forkserver that local pools fork their workers from, and return its context.

    It returns at once: the server imports ``preload`` in its own process, so a caller that
    starts it early (``segment`` does, before it reads the field) has the workers' imports done
    by the time the pool is made. A running server is kept (with the modules it preloaded)."""
    import multiprocessing as mp
    from multiprocessing import forkserver, resource_tracker

    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(["astrostatlearn.processes", *preload])
    with critical():
        os.environ[_MAIN_PID_ENV] = str(os.getpid())
        # SIGINT is blocked across the spawn, so the server inherits it blocked until it ignores it:
        # a Ctrl-C to the process group while it still imports would print its traceback; ours waits
        # (the resource tracker first: its own start unblocks SIGINT)
        resource_tracker.ensure_running()
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            forkserver.ensure_running()  # from this thread, so the server's parent-death signal is ours
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
            os.environ.pop(_MAIN_PID_ENV, None)
    return ctx


def process_pool(workers: int, preload: Sequence[str] = ()) -> ProcessPoolExecutor:
    """A pool of ``workers`` guarded processes, all started before it is returned (a signal that
    arrives meanwhile is held back, so no worker is ever half-started when the run stops);
    ``preload``: modules the forkserver imports once."""
    ctx = start_forkserver(preload)
    with critical():
        pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=guard_worker,
                                   initargs=(os.getpid(),))
        try:  # one task per worker spawns them all now (the pool spawns a worker per busy submit)
            for fut in [pool.submit(_started) for _ in range(workers)]:
                fut.result()
        except BaseException as exc:
            stop_pool(pool, kill=True)
            if isinstance(exc, BrokenProcessPool):
                raise WorkerDiedError() from None
            raise
    return pool


def stop_pool(pool: ProcessPoolExecutor, kill: bool) -> None:
    """Shut ``pool`` down; with ``kill``, terminate its workers instead of awaiting their tasks.
    A SIGTERM/Ctrl-C meanwhile is held back until the pool is gone (:func:`critical`), so a
    signal never leaves a half-stopped pool for the interpreter's exit to wait on."""
    with critical():
        if kill:
            _kill_pool(pool)
        else:
            pool.shutdown(wait=True)


def pool_processes(pool: ProcessPoolExecutor) -> list[Any]:
    """The pool's worker processes (``multiprocessing.Process``), all started by
    :func:`process_pool` (none once it is shut down); CPython's pool exposes no public handle to
    them."""
    return list((getattr(pool, "_processes", None) or {}).values())


def _kill_pool(pool: ProcessPoolExecutor) -> None:
    """Kill the workers, then end the pool's manager thread. A worker killed while it sends a
    result (a tile's pixels) leaves half a message in the result pipe, and the manager thread
    would wait for its rest for ever, and the interpreter's exit with it. Closing this process's
    end of the pipe's writing side, once no worker is left to write, ends that wait (EOF): the
    pool counts as broken and its thread exits."""
    procs = pool_processes(pool)
    for p in procs:  # killed before the pool's queues go, so no worker meets a half-removed queue
        if p.is_alive():
            p.kill()
    for p in procs:
        p.join(timeout=5)
    manager = getattr(pool, "_executor_manager_thread", None)
    writer = getattr(getattr(pool, "_result_queue", None), "_writer", None)  # shutdown drops the queue
    pool.shutdown(wait=False, cancel_futures=True)
    if manager is not None and writer is not None and not any(p.is_alive() for p in procs):
        writer.close()  # what is already in the pipe is still read; a half-sent result then ends in EOF
        manager.join(timeout=5.0)
