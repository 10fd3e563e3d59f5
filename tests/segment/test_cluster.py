"""A real dask.distributed cluster: ``dask scheduler`` and two ``dask worker`` processes on
127.0.0.1. The run equals the local one, and still does when a worker is killed mid-run."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from tests.faults import run, start, wait_for, wait_group_gone

DASK = Path(sys.executable).parent / "dask"
pytestmark = [pytest.mark.skipif(not sys.platform.startswith("linux"), reason="process checks read /proc"),
              pytest.mark.skipif(not DASK.exists() and shutil.which("dask") is None, reason="no dask CLI")]


@pytest.fixture
def cluster(tmp_path: Path):
    """(scheduler address, worker processes) of a scheduler and two single-threaded workers."""
    exe = str(DASK if DASK.exists() else shutil.which("dask"))
    sched_file = tmp_path / "scheduler.json"
    procs = [subprocess.Popen([exe, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                               "--scheduler-file", str(sched_file)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)]
    try:
        assert wait_for(sched_file.exists, timeout=180), "the scheduler did not start"  # slow under load
        address = json.loads(sched_file.read_text())["address"]
        workers = [subprocess.Popen([exe, "worker", "--scheduler-file", str(sched_file), "--nthreads", "1",
                                     "--no-nanny", "--no-dashboard", "--host", "127.0.0.1"],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
                   for _ in range(2)]
        procs += workers
        from distributed import Client

        with Client(address, timeout="30s") as client:
            client.wait_for_workers(2, timeout=180)
        yield address, workers
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
            p.wait()


def _args(field: Path, out: str, scheduler: str) -> list[str]:
    return ["segment", str(field), "-m", "photutils", "-o", out, "--tile", "64", "--halo", "64",
            "--scheduler", scheduler, "--workers", "2"]


def _done(out: Path) -> int:
    try:
        return json.loads((out / ".segmentation.fits.partial" / "progress.json").read_text())["done"]
    except (OSError, ValueError, KeyError):
        return 0


def _same_outputs(a: Path, b: Path) -> None:
    for name in ("segmentation.fits", "score.fits"):
        np.testing.assert_array_equal(fits.getdata(a / name), fits.getdata(b / name))
    assert (a / "catalog.ecsv").read_text().splitlines()[-50:] == (b / "catalog.ecsv").read_text().splitlines()[-50:]


@pytest.mark.timeout(600)
def test_a_real_cluster_equals_the_local_run_even_when_a_worker_dies(cluster, sim_field: Path,
                                                                     tmp_path: Path) -> None:
    address, workers = cluster
    local = run(_args(sim_field, "local", "threads"), tmp_path)
    assert local.returncode == 0, local.stderr
    whole = run(_args(sim_field, "cluster", address), tmp_path)
    assert whole.returncode == 0, whole.stderr
    _same_outputs(tmp_path / "local", tmp_path / "cluster")

    proc = start(_args(sim_field, "killed", address), tmp_path)
    assert wait_for(lambda: _done(tmp_path / "killed") >= 16 or proc.poll() is not None, timeout=300)
    assert proc.poll() is None, "the run ended before a worker could be killed"
    os.killpg(workers[0].pid, signal.SIGKILL)  # one of the two workers dies mid-run
    _, err = proc.communicate(timeout=400)
    assert proc.returncode == 0, err
    assert wait_group_gone(workers[0].pid) == []
    _same_outputs(tmp_path / "local", tmp_path / "killed")
