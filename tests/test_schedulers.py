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
