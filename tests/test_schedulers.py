"""Local schedulers: results in order, and no import of dask.distributed unless a cluster is used."""

from __future__ import annotations

import subprocess
import sys

import pytest

CODE = """
import sys
import dask
from astrostatlearn.schedulers import compute_context
compute, close = compute_context(sys.argv[1], 2)
print(list(compute([dask.delayed(abs)(-i) for i in range(7)])))
close("run")
print("distributed" in sys.modules)
"""


@pytest.mark.timeout(120)
@pytest.mark.parametrize("scheduler", ["threads", "synchronous", "processes"])
def test_a_local_run_never_imports_distributed(scheduler: str) -> None:
    """dask's check for a distributed client imports ``distributed`` (0.6 s per process) when it is
    given a scheduler's name; the local schedulers hand it the function instead."""
    p = subprocess.run([sys.executable, "-c", CODE, scheduler], capture_output=True, text=True, timeout=100)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split("\n")[:2] == ["[0, 1, 2, 3, 4, 5, 6]", "False"]


def test_threads_run_tiles_with_single_threaded_blas() -> None:
    """Tile threads are the parallelism; a threaded BLAS called from two of them at once can
    deadlock (OpenBLAS GEMM), so the threads scheduler runs them with BLAS limited to 1 thread."""
    import dask
    import numpy as np  # noqa: F401  (loads numpy's BLAS, so threadpoolctl sees it)
    from threadpoolctl import threadpool_info

    from astrostatlearn.schedulers import compute_context

    def blas_threads(_: int) -> list[int]:
        return [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]

    compute, close = compute_context("threads", 2)
    seen = list(compute([dask.delayed(blas_threads)(i) for i in range(4)]))
    close("run")
    assert seen and all(s and set(s) == {1} for s in seen)


@pytest.mark.timeout(60)
def test_a_pool_worker_killed_after_its_last_task_still_stops_the_run() -> None:
    """The mesh's local pool: a worker killed when its work is done is an error when the pool is
    left (its results may be whole, but a run that lost a process must not go on as if not);
    other schedulers get no pool."""
    import os
    import signal

    from astrostatlearn.processes import WorkerDiedError
    from astrostatlearn.schedulers import local_process_pool

    with local_process_pool("threads", 2) as none:
        assert none is None
    with local_process_pool("processes", 2) as pool:
        assert pool.submit(abs, -3).result() == 3
    with pytest.raises(WorkerDiedError):
        with local_process_pool("processes", 2) as pool:
            assert pool.submit(abs, -3).result() == 3
            victim = next(iter(pool._processes.values()))
            os.kill(victim.pid, signal.SIGKILL)
            victim.join(timeout=10)


@pytest.mark.timeout(60)
def test_tiles_take_over_the_runs_pool_and_end_it() -> None:
    """The pool the background mesh used runs the tiles too (the same processes), and the tiles'
    end ends it: no worker is left, and leaving the pool's block afterwards is quiet."""
    import os

    import dask

    from astrostatlearn.processes import pool_processes
    from astrostatlearn.schedulers import compute_context, local_process_pool

    with local_process_pool("processes", 2) as pool:
        procs = pool_processes(pool)
        before = {p.pid for p in procs}
        assert {pool.submit(os.getpid).result() for _ in range(8)} <= before
        compute, close = compute_context("processes", 2, pool=pool)
        pids = set(compute([dask.delayed(os.getpid, pure=False)() for _ in range(6)]))
        close("run")
        assert pids <= before and pids
        assert len(procs) == 2 and not any(p.is_alive() for p in procs)


PLAIN = """
import functools, sys
from astrostatlearn.schedulers import compute_context, local_process_pool

def imported_dask(i):
    return i * i, "dask" in sys.modules

if __name__ == "__main__":
    with local_process_pool(sys.argv[1], 2) as pool:
        compute, close = compute_context(sys.argv[1], 2, pool=pool)
        print(list(compute([functools.partial(imported_dask, i) for i in range(7)])))
        close("run")
    print("dask" in sys.modules)
"""


@pytest.mark.timeout(120)
@pytest.mark.parametrize("scheduler", ["threads", "synchronous", "processes"])
def test_plain_callables_run_in_order_with_no_dask(tmp_path, scheduler: str) -> None:
    """A task may be a zero-argument callable (segment's tiles are ``functools.partial``): each
    local scheduler runs them in order, and neither the caller nor a local worker imports dask."""
    script = tmp_path / "plain.py"
    script.write_text(PLAIN)
    p = subprocess.run([sys.executable, str(script), scheduler], capture_output=True, text=True, timeout=100)
    assert p.returncode == 0, p.stderr
    squares = [(i * i, False) for i in range(7)]
    assert p.stdout.split("\n")[:2] == [str(squares), "False"]

