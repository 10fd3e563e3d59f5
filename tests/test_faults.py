"""Fault injection with real processes: kill -9 / SIGTERM / Ctrl-C at random points, concurrent
writers, a worker that dies, a disk that fills. After each: no orphan process, no debris once a
later run completes, and never a final file of one run beside a final file of another."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from astropy.io import fits
from astropy.table import Table

from tests.faults import debris, group_members, one_line_error, run, staging_exists, start, wait_for, wait_group_gone

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="process checks read /proc")

SEGMENT_SET = ("segmentation.fits", "score.fits", "catalog.ecsv", "run.json")
SIM_SET = ("img.fits", "rms.fits", "true.fits", "truth.ecsv")


def _commands(field: Path) -> dict[str, tuple[list[str], str, tuple[str, ...]]]:
    """name -> (CLI args writing to ./out, folder holding the staging, final outputs)."""
    return {
        "segment": (["segment", str(field), "-m", "sep", "-o", "out", "--tile", "128", "--workers", "2"], "out",
                    SEGMENT_SET),
        "simulate": (["simulate", "out", "--size", "768", "--tile", "128", "--workers", "2", "--seed", "3"], "out",
                     SIM_SET),
        "dataset": (["dataset", str(field), "-v", "snr", "-o", "out", "--patch", "64", "--split", "0.6,0.2,0.2",
                     "--guard", "16"], ".", ("out",)),
    }


def _assert_one_run(out: Path, names: tuple[str, ...]) -> None:
    """``out`` holds the complete set of one run (the segment set agrees with itself)."""
    present = [n for n in names if (out / n).exists()] if names != ("out",) else (["out"] if out.exists() else [])
    assert present in ([], list(names)), f"a partial set: {present}"
    if names == SEGMENT_SET and present:
        run_json = json.loads((out / "run.json").read_text())
        assert fits.getheader(out / "segmentation.fits")["METHOD"] == run_json["method"]
        assert fits.getheader(out / "score.fits")["METHOD"] == run_json["method"]
        assert Table.read(out / "catalog.ecsv").meta["method"] == run_json["method"]
        assert len(Table.read(out / "catalog.ecsv")) == run_json["n_objects"]


@pytest.mark.timeout(400)
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["kill-9", "sigterm"])
@pytest.mark.parametrize("command", ["segment", "simulate", "dataset"])
def test_killed_run_leaves_no_orphans_and_a_rerun_no_debris(command: str, sig: int, sim_field: Path,
                                                          tmp_path: Path) -> None:
    args, admin, names = _commands(sim_field)[command]
    rng = random.Random(f"{command}-{sig}")
    proc = start(args, tmp_path)
    # A random point of the work: once its outputs are being staged, plus 0-1.5 s.
    assert wait_for(lambda: staging_exists(tmp_path / admin) or proc.poll() is not None), "the run never started"
    time.sleep(rng.uniform(0.0, 1.5))
    os.kill(proc.pid, sig)
    _, err = proc.communicate(timeout=60)
    assert wait_group_gone(proc.pid) == [], "worker processes outlived the killed run"
    if proc.returncode != 0:  # killed before it finished
        assert proc.returncode == (-signal.SIGKILL if sig == signal.SIGKILL else 143), err
        if sig == signal.SIGTERM:
            assert err.strip() == "terminated", err
            assert debris(tmp_path) == [], "SIGTERM must clean up like Ctrl-C"
    out = tmp_path / "out"
    _assert_one_run(out, names)
    again = run(args + ["--overwrite"], tmp_path)
    assert again.returncode == 0, again.stderr
    assert debris(tmp_path) == [], "a completed rerun leaves no debris of the killed run"
    _assert_one_run(out, names)
    assert all((out / n).exists() for n in names if n != "out") and out.exists()


@pytest.mark.timeout(300)
def _forkserver_started(pgid: int) -> bool:
    """A multiprocessing forkserver of the run exists (it may still be importing)."""
    for pid in group_members(pgid):
        try:
            if b"forkserver" in Path(f"/proc/{pid}/cmdline").read_bytes():
                return True
        except OSError:
            continue
    return False


@pytest.mark.parametrize("when", ["mid-run", "pool-start", "pool-start+10ms", "pool-start+20ms"])
def test_ctrl_c_is_one_line_without_traceback(when: str, sim_field: Path, tmp_path: Path) -> None:
    """Ctrl-C mid-run, or just as the worker pool's forkserver is spawned (while it still imports,
    it must not print a traceback of its own)."""
    args = _commands(sim_field)["segment"][0]
    proc = start(args, tmp_path)
    if when == "mid-run":
        assert wait_for(lambda: staging_exists(tmp_path / "out") or proc.poll() is not None)
        time.sleep(0.5)
    else:
        assert wait_for(lambda: _forkserver_started(proc.pid) or proc.poll() is not None, period=0.001)
        time.sleep(int(when.partition("+")[2].removesuffix("ms") or 0) / 1000)
    os.killpg(proc.pid, signal.SIGINT)  # a terminal's Ctrl-C reaches the whole process group
    _, err = proc.communicate(timeout=60)
    assert wait_group_gone(proc.pid) == []
    if proc.returncode != 0:
        assert proc.returncode == 130 and err.strip() == "interrupted", err
        assert debris(tmp_path) == []
        # Before the commit nothing is written; a Ctrl-C that lands during the commit waits for the
        # whole set (tests/field/test_outputs.py), so it is never half there.
        _assert_one_run(tmp_path / "out", SEGMENT_SET)


@pytest.mark.timeout(400)
def test_concurrent_writers_to_one_folder(sim_field: Path, tmp_path: Path) -> None:
    """Two segment runs (sep, photutils) into one folder at once: one wins, the other is refused in
    one line, and the folder holds exactly the winner's set."""
    common = [str(sim_field), "-o", "out", "--tile", "128", "--workers", "1"]
    procs = [start(["segment", *common, "-m", m], tmp_path) for m in ("sep", "photutils")]
    results = [p.communicate(timeout=300) + (p.returncode,) for p in procs]
    for p in procs:
        assert wait_group_gone(p.pid) == []
    codes = sorted(r[2] for r in results)
    assert codes == [0, 2], results
    loser = next(r for r in results if r[2] == 2)
    assert one_line_error(loser[1]) and ("another astrostatlearn run" in loser[1] or "already exists" in loser[1])
    winner = json.loads((tmp_path / "out" / "run.json").read_text())["method"]
    assert winner == ("sep", "photutils")[[r[2] for r in results].index(0)]
    _assert_one_run(tmp_path / "out", SEGMENT_SET)
    assert debris(tmp_path) == []


def _worker_pids(pgid: int, main_pid: int) -> list[int]:
    """Pool workers of a run: group members started by the forkserver (not the main process or the
    forkserver/resource tracker it started itself)."""
    found = []
    for pid in group_members(pgid):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(stat[1]) not in (main_pid, 1) and pid != main_pid:
            found.append(pid)
    return found


@pytest.mark.timeout(300)
def test_a_worker_that_dies_stops_the_run_in_one_line(sim_field: Path, tmp_path: Path) -> None:
    proc = start(["segment", str(sim_field), "-m", "sep", "-o", "out", "--tile", "64", "--workers", "2"], tmp_path)
    workers: list[int] = []

    def seen() -> bool:  # the pids as first seen: the mesh's pool may be gone by a second look
        workers[:] = _worker_pids(proc.pid, proc.pid)
        return bool(workers) or proc.poll() is not None

    assert wait_for(seen, timeout=120)
    if not workers:
        pytest.fail("the run ended before its workers could be seen")
    os.kill(workers[0], signal.SIGKILL)
    _, err = proc.communicate(timeout=120)
    assert wait_group_gone(proc.pid) == []
    assert proc.returncode == 2, err
    assert one_line_error(err) and "worker process died" in err, err
    assert not (tmp_path / "out" / "segmentation.fits").exists()
    assert debris(tmp_path) == []


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 2 MB tmpfs at tmp_path/disk; skipped where this test cannot mount one (not root, no tmpfs)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("needs root to mount a small tmpfs")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(disk)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.decode().strip()}")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], capture_output=True)


@pytest.mark.timeout(300)
def test_a_disk_that_fills(sim_field: Path, small_disk: Path) -> None:
    # segment knows its size up front (8 bytes per pixel of a 512^2 field > 2 MB): refused at once.
    seg = run(["segment", str(sim_field), "-m", "sep", "-o", str(small_disk / "seg"), "--workers", "1"], small_disk)
    assert seg.returncode == 2 and one_line_error(seg.stderr) and "GB are free" in seg.stderr, seg.stderr
    # dataset does not: its shards fill the disk midway, which is one line and leaves nothing behind.
    ds = run(["dataset", str(sim_field), "-v", "soft+rms+log", "-o", str(small_disk / "ds"), "--patch", "32",
              "--split", "0.6,0.2,0.2", "--guard", "16", "--keep-empty"], small_disk)
    assert ds.returncode == 2, ds.stderr
    assert one_line_error(ds.stderr) and "No space left" in ds.stderr and ".staging" not in ds.stderr, ds.stderr
    assert sorted(p.name for p in small_disk.iterdir()) == []
    # segment with just more room than its maps (the up-front check passes) fills the disk with its
    # catalogue and run record: one line, nothing committed, no partial state left.
    st = os.statvfs(small_disk)
    need = 512 * 512 * 4 + 8192  # the map and its header, not the catalogue
    (small_disk / "filler").write_bytes(b"\0" * max(0, st.f_bavail * st.f_frsize - need))
    seg = run(["segment", str(sim_field), "-m", "sep", "-o", str(small_disk / "seg"), "--workers", "1",
               "--no-score"], small_disk)
    assert seg.returncode == 2 and one_line_error(seg.stderr) and "No space left" in seg.stderr, seg.stderr
    assert not (small_disk / "seg" / "segmentation.fits").exists()
    assert [p.name for p in small_disk.rglob("*") if p.name != "filler" and p.is_file()] == []
