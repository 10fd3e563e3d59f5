import os
import subprocess
import sys
import time

from astrostatlearn.pids import alive


def test_a_running_process_is_alive_and_an_ended_or_zombie_one_is_not() -> None:
    assert alive(os.getpid())
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    assert not alive(int(done.stdout))  # ended and reaped
    zombie = subprocess.Popen([sys.executable, "-c", "pass"])
    while os.waitid(os.P_PID, zombie.pid, os.WEXITED | os.WNOWAIT | os.WNOHANG) is None:  # ended, not reaped
        time.sleep(0.01)
    assert not alive(zombie.pid)
    zombie.wait()
