"""Worker pools and the CLI's signal handling around their shutdown."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from astrostatlearn.errors import Terminated
from astrostatlearn.processes import interrupt, process_pool, stop_pool


@pytest.mark.timeout(120)
@pytest.mark.parametrize("kill", [False, True], ids=["graceful", "kill"])
def test_a_signal_while_a_pool_stops_waits_until_it_is_gone(kill: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """A SIGTERM that lands inside ``stop_pool`` (simulated by calling the handler's action there)
    is raised only after every worker has exited, never from the middle of the shutdown."""
    pool = process_pool(2)
    procs = list(pool._processes.values())  # 1 or 2: the executor starts workers on demand
    assert procs
    real_shutdown = pool.shutdown

    def shutdown_hit_by_a_signal(*args, **kwargs):
        interrupt(Terminated)  # what the CLI's SIGTERM handler does
        return real_shutdown(*args, **kwargs)

    monkeypatch.setattr(pool, "shutdown", shutdown_hit_by_a_signal)
    with pytest.raises(Terminated):
        stop_pool(pool, kill=kill)
    for p in procs:
        p.join(timeout=10)
    assert not any(p.is_alive() for p in procs)
    assert all(t is None or not t.is_alive() for t in [pool._executor_manager_thread])


def test_the_console_ignores_a_signal_that_lands_after_the_command() -> None:
    """Once the command is done, a late SIGTERM must neither kill the exiting process (-15) nor
    interrupt its exit hooks: it exits with the command's own status."""
    code = ("import os, signal\nfrom astrostatlearn import cli\n"
            "cli._after_the_command(cli._terminate_like_interrupt(), exiting=True)\n"
            "os.kill(os.getpid(), signal.SIGTERM)\nos.kill(os.getpid(), signal.SIGINT)\nprint('still here')\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert (p.returncode, p.stdout.strip(), p.stderr) == (0, "still here", "")


def test_an_in_process_caller_gets_its_signal_handlers_back() -> None:
    from astrostatlearn.cli import main

    def mine(signum, frame):  # pragma: no cover - never called
        pass

    before = signal.signal(signal.SIGTERM, mine)
    try:
        with pytest.raises(SystemExit) as exc:
            main(["--help"])
        assert exc.value.code == 0
        assert signal.getsignal(signal.SIGTERM) is mine
    finally:
        signal.signal(signal.SIGTERM, before)


@pytest.mark.timeout(120)
def test_a_worker_killed_while_sending_a_result_does_not_hang_the_pool() -> None:
    """Half a message in the result pipe (what a worker killed mid-send leaves) must not keep the
    pool's manager thread, and so the interpreter's exit, waiting for ever."""
    import os
    import struct
    import time

    pool = process_pool(1)
    manager = pool._executor_manager_thread
    writer = pool._result_queue._writer
    os.write(writer.fileno(), struct.pack("!i", 1 << 20) + b"half a result")  # 1 MB announced, 13 B sent
    time.sleep(0.5)  # the manager thread is now waiting for the rest
    assert manager.is_alive()
    stop_pool(pool, kill=True)
    manager.join(timeout=10)
    assert not manager.is_alive(), "the pool's manager thread still waits on the half-sent result"


MAIN_SCRIPT = """
import os, sys
with open(sys.argv[1] if __name__ == "__main__" else os.environ["IMPORTS_LOG"], "a") as log:
    log.write(f"{os.getpid()}\\n")  # each process that runs this script, at import

if __name__ == "__main__":
    os.environ["IMPORTS_LOG"] = sys.argv[1]
    from astrostatlearn.processes import process_pool, skip_main_in_workers, stop_pool
    if sys.argv[2] == "skip":
        skip_main_in_workers("astrostatlearn.__main__")
    pool = process_pool(4)
    pids = {pool.submit(os.getpid).result() for _ in range(8)}
    stop_pool(pool, kill=False)
    print(len(pids))
"""


@pytest.mark.timeout(60)
@pytest.mark.parametrize("as_module", [False, True])
@pytest.mark.parametrize("skip", [True, False])
def test_workers_can_skip_the_main_module(tmp_path, skip: bool, as_module: bool) -> None:
    """multiprocessing re-runs a main script, or re-imports a module run with ``python -m``, in
    each worker it starts (for the command line: the CLI and Typer, 0.06-0.1 s each); after
    ``skip_main_in_workers`` (which the console entry point calls) only the caller runs it, for
    any pool size."""
    script, log = tmp_path / "main_script.py", tmp_path / "imports.log"
    script.write_text(MAIN_SCRIPT)
    run = ["-m", "main_script"] if as_module else [str(script)]
    out = subprocess.run([sys.executable, *run, str(log), "skip" if skip else "run"], capture_output=True,
                         text=True, timeout=50, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert 1 <= int(out.stdout) <= 4  # the tasks ran on the pool
    runs = len(log.read_text().split())  # the caller, and each worker that re-ran it
    assert runs == 1 if skip else runs >= 3
