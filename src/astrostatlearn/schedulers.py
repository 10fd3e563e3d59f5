"""Where tile tasks run: local threads or guarded processes, or a dask.distributed cluster.

:func:`compute_context` gives every whole-field step (``segment``, ``view``) the same choice:
``'processes'`` (the default: a :func:`~astrostatlearn.processes.process_pool`), ``'threads'``,
``'synchronous'``, or the address of a dask.distributed scheduler (``tcp://host:8786``), whose
workers must see the same files at the same paths.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from astrostatlearn.errors import InputError

LOCAL_SCHEDULERS = ("processes", "threads", "synchronous", "single-threaded")

Compute = Callable[[Sequence[Any]], Sequence[Any]]
Close = Callable[..., None]


def check_scheduler(scheduler: str | None) -> None:
    """Refuse a scheduler that is neither local nor a dask.distributed address (host:port)."""
    if scheduler is not None and scheduler not in LOCAL_SCHEDULERS and ":" not in scheduler:
        raise InputError(f"unknown scheduler {scheduler!r}; use processes, threads, synchronous or a "
                         "dask.distributed address such as tcp://host:8786")


def compute_context(scheduler: str | None, workers: int, preload: Sequence[str] = (),
                    forget: Callable[[str], None] | None = None) -> tuple[Compute, Close]:
    """``(compute, close)``: ``compute(delayed_tasks)`` returns their results in order;
    ``close(run_id, failed=False)`` ends the pool (killing running tasks when ``failed``) or, on a
    cluster, calls ``forget(run_id)`` on every worker so that caches do not outlive the run.
    ``preload``: modules a local process pool imports once."""
    import dask

    if scheduler in (None, "processes"):
        from astrostatlearn.processes import process_pool, stop_pool

        pool = process_pool(workers, preload=list(preload))
        return ((lambda tasks: dask.compute(*tasks, scheduler="processes", pool=pool)),
                (lambda run_id, failed=False: stop_pool(pool, kill=failed)))
    if scheduler in ("threads", "synchronous", "single-threaded"):
        kw = {"num_workers": workers} if scheduler == "threads" else {}
        return (lambda tasks: dask.compute(*tasks, scheduler=scheduler, **kw)), (lambda run_id, failed=False: None)
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

    return (lambda tasks: client.gather(client.compute(list(tasks)))), close
