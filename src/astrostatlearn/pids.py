"""Whether a process of this machine is still running, by its PID (Linux, with a POSIX fallback)."""

from __future__ import annotations

import os


def alive(pid: int) -> bool:
    """True while process ``pid`` runs: it exists (another user's counts) and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie is dead
    except (OSError, IndexError):  # no /proc: it exists
        return True
