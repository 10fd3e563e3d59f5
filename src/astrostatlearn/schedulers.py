"""Where tile tasks run: local threads or guarded processes, or a dask.distributed cluster.

:func:`compute_context` gives every whole-field step (``segment``, ``view``) the same choice:
``'processes'`` (the default: a :func:`~astrostatlearn.processes.process_pool`), ``'threads'``,
``'synchronous'``, or the address of a dask.distributed scheduler (``tcp://host:8786``), whose
workers must see the same files at the same paths.
"""

from __future__ import annotations

import itertools
import weakref
from collections import deque
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Sequence

from astrostatlearn.errors import InputError

LOCAL_SCHEDULERS = ("processes", "threads", "synchronous", "single-threaded")

Compute = Callable[[Sequence[Any]], Iterator[Any]]
Close = Callable[..., None]


def check_scheduler(scheduler: str | None) -> None:
    """Refuse a scheduler that is neither local nor a dask.distributed address (host:port)."""
    if scheduler is not None and scheduler not in LOCAL_SCHEDULERS and ":" not in scheduler:
        raise InputError(f"unknown scheduler {scheduler!r}; use processes, threads, synchronous or a "
                         "dask.distributed address such as tcp://host:8786")


def local_preload(preload: Sequence[str]) -> list[str]:
    """The modules a local process pool's forkserver imports for a run that needs ``preload``
    (a caller whose tasks are dask collections names ``dask`` among them: each worker would
    otherwise import it at its first task; plain callables need no dask, 0.08 s)."""
    return ["astrostatlearn.schedulers", *preload]


def segment_preload(method_module: str) -> list[str]:
    """What the local workers of a ``segment`` run import once, in the forkserver: the driver's
    tile function, what its ownership step imports on first use, and the method's own module
    (named here, so the command line can start the forkserver before it imports any of them)."""
    return ["astrostatlearn.segment.run", "cc3d", method_module]


def local_get(scheduler: str) -> Callable[..., Any]:
    """Dask's own local scheduler function for ``scheduler`` ('threads', 'synchronous',
    'single-threaded'). Handing dask the function, not its name, spares every call dask's check
    for a distributed client, which imports ``distributed`` (0.6 s) in each process."""
    import dask.local
    import dask.threaded

    return dask.threaded.get if scheduler == "threads" else dask.local.get_sync


def warm_up(scheduler: str | None, preload: Sequence[str] = ()) -> None:
    """Start what :func:`compute_context` will need, without waiting for it: for the local
    process pool, the forkserver, which imports ``preload`` in its own process while the caller
    goes on (reading the field, say). Other schedulers need nothing ahead."""
    if scheduler in (None, "processes"):
        from astrostatlearn.processes import start_forkserver

        start_forkserver(local_preload(preload))


@contextmanager
def local_process_pool(scheduler: str | None, workers: int, preload: Sequence[str] = ()) -> Iterator[Any]:
    """A local process pool of ``workers`` for a whole run, when ``scheduler`` is the local
    processes one; None for any other scheduler (threads stay in this process, and a cluster's
    workers are left to the tiles). The steps before the tiles (the background mesh) use it, and
    :func:`compute_context` can take it over for the tiles, which ends it. Left while still
    running, it is ended by :func:`end_process_pool`: none of its workers outlives the block, and
    one that died (even after its last task) is a :class:`WorkerDiedError`."""
    if scheduler not in (None, "processes"):
        yield None
        return
    from concurrent.futures.process import BrokenProcessPool

    from astrostatlearn.processes import WorkerDiedError, process_pool

    pool = process_pool(workers, preload=local_preload(preload))
    try:
        yield pool
    except BrokenProcessPool:
        end_process_pool(pool, failed=True)
        raise WorkerDiedError() from None
    except BaseException:
        end_process_pool(pool, failed=True)
        raise
    end_process_pool(pool, failed=False)


_ENDED: "weakref.WeakSet[Any]" = weakref.WeakSet()


def end_process_pool(pool: Any, failed: bool) -> None:
    """End a local pool at once: its workers are killed, never awaited (idle ones once every
    result is in, running ones when the step ``failed``), so one that died meanwhile cannot leave
    the shutdown waiting on it. A worker that had died is a :class:`WorkerDiedError` (unless the
    step failed anyway): its results may be whole, but a run that lost a process must not go on
    as if not. A pool already ended is left as it is."""
    from astrostatlearn.processes import WorkerDiedError, pool_processes, stop_pool

    if pool in _ENDED:
        return
    _ENDED.add(pool)
    died = any(p.exitcode is not None for p in pool_processes(pool))  # a live, idle worker has none
    stop_pool(pool, kill=True)
    if died and not failed:
        raise WorkerDiedError()


def stream_ahead(workers: int) -> int:
    """How many tasks :func:`compute_context` keeps submitted beyond the results taken: two per
    worker, so none waits for its next task while the driver merges."""
    return 2 * max(1, workers)


def is_dask_task(task: Any) -> bool:
    """Whether ``task`` is a dask collection (a ``dask.delayed`` call), not a plain callable."""
    return hasattr(task, "__dask_graph__")


def compute_one(task: Any) -> Any:
    """Compute one task where this runs (a worker of a local pool, a thread): a dask collection
    by dask's synchronous scheduler, a plain zero-argument callable (a ``functools.partial``) by
    calling it, with no dask at all."""
    if not is_dask_task(task):
        return task()
    import dask

    return dask.compute(task, scheduler=local_get("synchronous"))[0]


def stream(submit: Callable[[Any], Any], tasks: Sequence[Any], ahead: int) -> Iterator[Any]:
    """The results of ``tasks`` in their order, as soon as each is ready: ``ahead`` tasks are
    kept submitted (``submit(task)`` -> a future; the next goes out as each result is taken), so
    the caller merges results while the workers compute, in bounded memory."""
    pending: deque = deque()
    queue = iter(tasks)
    for task in itertools.islice(queue, max(1, ahead)):
        pending.append(submit(task))
    while pending:
        result = pending.popleft().result()
        task = next(queue, _END)
        if task is not _END:
            pending.append(submit(task))
        yield result


_END = object()


@contextmanager
def _single_threaded_blas() -> Iterator[None]:
    """BLAS single-threaded while tiles run in threads: the tiles are the parallelism, and
    OpenBLAS's threaded GEMM, called from two tile threads at once, can deadlock."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        yield


def _in_threads(tasks: Sequence[Any], workers: int, pool: Any) -> Iterator[Any]:
    """The results of ``tasks`` in order, each computed by :func:`compute_one` in one of the
    threads of ``pool`` (``workers`` of them; None: in this thread, one after another), as soon as
    it and those before it are done, with at most two per worker ahead: the caller merges while
    the threads compute, and holds a few tile results at a time, not a batch of them."""
    with _single_threaded_blas():
        if pool is None:
            for task in tasks:
                yield compute_one(task)
            return
        yield from stream(lambda t: pool.submit(compute_one, t), tasks, stream_ahead(workers))


def compute_context(scheduler: str | None, workers: int, preload: Sequence[str] = (),
                    forget: Callable[[str], None] | None = None, pool: Any = None) -> tuple[Compute, Close]:
    """``(compute, close)``: ``compute(tasks)`` yields their results in order (a task: a
    ``dask.delayed`` call, or a picklable zero-argument callable such as a ``functools.partial``,
    which local workers run with no dask); on a
    process pool or a cluster each as soon as it and those before it are done (tasks are
    dispatched one at a time, up to two per worker ahead), in threads the same way;
    ``close(run_id, failed=False)`` ends the pool (:func:`end_process_pool`: running tasks are
    killed when ``failed``) or, on a cluster, calls ``forget(run_id)`` on every worker so that
    caches do not outlive the run. ``preload``: modules a local process pool imports once.
    ``pool``: the run's :func:`local_process_pool`, already started, which this takes over."""
    ahead = stream_ahead(workers)
    if scheduler in (None, "processes"):
        from astrostatlearn.processes import process_pool

        pool = pool if pool is not None else process_pool(workers, preload=local_preload(preload))
        return ((lambda tasks: stream(lambda t: pool.submit(compute_one, t), tasks, ahead)),
                (lambda run_id, failed=False: end_process_pool(pool, failed)))
    if scheduler in ("threads", "synchronous", "single-threaded"):
        from concurrent.futures import ThreadPoolExecutor

        threads = ThreadPoolExecutor(max(1, workers), thread_name_prefix="tile") if scheduler == "threads" else None

        def close_threads(run_id: str, failed: bool = False) -> None:
            if threads is not None:  # a running tile cannot be stopped: it is awaited, the rest cancelled
                threads.shutdown(wait=True, cancel_futures=True)

        return (lambda tasks: _in_threads(tasks, workers, threads)), close_threads
    from distributed import Client

    try:
        client = Client(scheduler, timeout="20s")
    except OSError as exc:
        raise InputError(f"cannot reach the dask scheduler at {scheduler} ({exc})") from None

    def close(run_id: str, failed: bool = False) -> None:
        try:
            if forget is not None:
                client.run(forget, run_id)  # the workers outlive the run; their caches must not
        finally:
            client.close()

    def submit(task: Any) -> Any:
        return client.compute(task) if is_dask_task(task) else client.submit(task, pure=False)

    return (lambda tasks: stream(submit, tasks, ahead)), close
