"""Helpers for the fault-injection tests: real CLI processes, their process groups, and debris."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

CLI = [sys.executable, "-m", "astrostatlearn"]
DEBRIS_MARKERS = (".staging-", ".partial", ".lock", ".commit", ".tmp", ".building", ".segment-")


def start(args: list[str], cwd: Path) -> subprocess.Popen:
    """Start ``astrostatlearn ARGS`` in its own session, so its whole process tree is one group."""
    return subprocess.Popen(CLI + args, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def run(args: list[str], cwd: Path, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run(CLI + args, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes of process group ``pgid``, from /proc."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            out.append(int(entry.name))
    return out


def wait_group_gone(pgid: int, timeout: float = 10.0) -> list[int]:
    """Wait until no process of ``pgid`` is left; returns the survivors (empty when all died)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = group_members(pgid)
        if not left:
            return []
        time.sleep(0.2)
    left = group_members(pgid)
    for pid in left:  # do not leak them into the rest of the suite
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return left


def wait_for(predicate, timeout: float = 120.0, period: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(period)
    return False


def debris(*folders: Path) -> list[str]:
    """Hidden work files (staging, locks, journals, temp files) left in ``folders`` (recursively)."""
    found = []
    for folder in folders:
        if not folder.exists():
            continue
        for p in folder.rglob(".*"):
            if any(m in p.name for m in DEBRIS_MARKERS):
                found.append(str(p.relative_to(folder)))
    return sorted(found)


def staging_exists(folder: Path) -> bool:
    """The run has begun writing: a staging folder (or a resumable run's partial folder) exists."""
    return folder.exists() and any(".staging-" in p.name or p.name.endswith(".partial") for p in folder.iterdir())


def one_line_error(stderr: str) -> bool:
    lines = [ln for ln in stderr.strip().splitlines() if ln.strip()]
    return len(lines) == 1 and "Traceback" not in stderr
