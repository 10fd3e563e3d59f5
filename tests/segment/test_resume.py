"""``segment --resume``: a run killed (kill -9) in the middle continues from its finished tiles, and
its outputs equal an uninterrupted run's, pixel for pixel."""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from tests.faults import debris, run, start, wait_for, wait_group_gone

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="process checks read /proc")


def _args(field: Path, out: str, *extra: str) -> list[str]:
    return ["segment", str(field), "-m", "photutils", "-o", out, "--tile", "64", "--halo", "64", "--workers", "1",
            "--scheduler", "threads", *extra]


def _progress(out: Path) -> int:
    p = out / ".segmentation.fits.partial" / "progress.json"
    try:
        return json.loads(p.read_text())["done"]
    except (OSError, ValueError, KeyError):
        return 0


@pytest.mark.timeout(400)
def test_a_killed_run_resumes_to_the_uninterrupted_result(sim_field: Path, tmp_path: Path) -> None:
    proc = start(_args(sim_field, "out"), tmp_path)
    assert wait_for(lambda: _progress(tmp_path / "out") >= 8 or proc.poll() is not None, timeout=300)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    assert wait_group_gone(proc.pid) == []
    done = _progress(tmp_path / "out")
    assert 8 <= done < 64, f"killed after {done} of 64 tiles"
    assert not (tmp_path / "out" / "segmentation.fits").exists()

    again = run(_args(sim_field, "out"), tmp_path)  # neither --resume nor --overwrite
    assert again.returncode == 2 and "--resume" in again.stderr and len(again.stderr.strip().splitlines()) == 1
    other = run(_args(sim_field, "out", "--resume") + ["--tile", "128"], tmp_path)
    assert other.returncode == 2 and "tile 128" in other.stderr and "had 64" in other.stderr, other.stderr
    kron = run(_args(sim_field, "out", "--resume", "--kron"), tmp_path)  # other catalogue columns: refused too
    assert kron.returncode == 2 and "kron True" in kron.stderr and "had None" in kron.stderr, kron.stderr

    resumed = run(_args(sim_field, "out", "--resume"), tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    record = json.loads((tmp_path / "out" / "run.json").read_text())
    assert record["resumed_at_tile"] >= done  # it did not start again from zero
    assert debris(tmp_path) == []  # the partial state is gone once the run completes

    ref = run(_args(sim_field, "ref"), tmp_path)
    assert ref.returncode == 0, ref.stderr
    for name in ("segmentation.fits", "score.fits"):
        np.testing.assert_array_equal(fits.getdata(tmp_path / "out" / name), fits.getdata(tmp_path / "ref" / name))
    a, b = Table.read(tmp_path / "out" / "catalog.ecsv"), Table.read(tmp_path / "ref" / "catalog.ecsv")
    assert a.colnames == b.colnames and len(a) == len(b) > 30
    for col in a.colnames:
        np.testing.assert_array_equal(np.asarray(a[col]), np.asarray(b[col]))
