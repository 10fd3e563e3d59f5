"""Helpers for benchmarks: run a Python snippet in a fresh process and report time and peak RSS.

Peak memory is reported as the child's own peak RSS plus the peak RSS of its largest
sub-process (a worker); with W workers the resident total is bounded by main + W x worker.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

_WRAP = """
import json, resource, time
t0 = time.perf_counter()
{body}
wall = time.perf_counter() - t0
self_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
child_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print("@@RESULT@@" + json.dumps({{"wall_s": wall, "main_mb": self_kb / 1024, "worker_mb": child_kb / 1024,
                                "extra": globals().get("extra", {{}})}}))
"""


def scratch_dir(prefix: str) -> Path:
    """A new folder in the system's temporary directory for a benchmark's fields and outputs (an 8192² field and
    its outputs take about 6 GB), removed when the script exits. ``ASTROSTATLEARN_KEEP_SCRATCH=1`` keeps it, to look
    at the outputs."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    if os.environ.get("ASTROSTATLEARN_KEEP_SCRATCH"):
        print(f"scratch folder kept: {path}", flush=True)
    else:
        atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def measure(body: str) -> dict:
    """Run ``body`` in a new interpreter; return wall_s, main_mb, worker_mb and ``extra`` (a dict the body may set)."""
    code = _WRAP.format(body=textwrap.dedent(body))
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(p.stderr[-2000:])
    line = [ln for ln in p.stdout.splitlines() if ln.startswith("@@RESULT@@")][-1]
    return json.loads(line[len("@@RESULT@@"):])


_TIMED = """
import json, resource, subprocess, sys, time
t0 = time.perf_counter()
for cmd in json.loads(sys.argv[1]):
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(cmd[0] + ' failed: ' + p.stderr[-800:])
print(json.dumps([time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024]))
"""


def timed_commands(cmds: list[list[str]]) -> tuple[float, float]:
    """Run commands one after another from a fresh measuring process: (wall s, peak RSS MB of the
    largest process they started, workers included). The disk is synced first (untimed), so no
    step pays for writing back the outputs of the one before (5 GB after a 25000^2 U-Net run)."""
    os.sync()
    p = subprocess.run([sys.executable, "-c", _TIMED, json.dumps(cmds)], capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(p.stderr.strip()[-800:] or "failed")
    wall, peak = json.loads(p.stdout.strip().splitlines()[-1])
    return wall, peak


def machine_cpu_s() -> tuple[float, float] | None:
    """(busy, idle) CPU seconds of the whole machine so far, from ``/proc/stat`` (Linux; None
    elsewhere): their change over a run says how much of the cores' time it used and left idle."""
    try:
        with open("/proc/stat") as fh:
            ticks = [int(v) for v in fh.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    hz = os.sysconf("SC_CLK_TCK")
    idle = ticks[3] + ticks[4]  # idle and iowait
    return (sum(ticks[:8]) - idle) / hz, idle / hz
