"""Progress in a log: lines with a percentage and an ETA once the work has run for a while."""

from __future__ import annotations

import io
import re
import time
from contextlib import redirect_stderr

from astrostatlearn.progress import LogProgress, progress_bar


def test_a_log_gets_a_line_per_few_percent_with_an_eta() -> None:
    err = io.StringIO()
    with redirect_stderr(err):
        bar = progress_bar(total=20, desc="segment sep", unit="tile")
        assert isinstance(bar, LogProgress)  # stderr is not a terminal here
        bar._delay_s = 0.0
        for _ in range(20):
            time.sleep(0.12)
            bar.update()
        bar.close()
    lines = err.getvalue().strip().splitlines()
    assert 2 <= len(lines) <= 21
    for line in lines:
        assert re.fullmatch(r"segment sep: \d+% \(\d+/20 tile\), \d\d:\d\d elapsed, ETA (\d\d:\d\d|\?)", line), line
    percents = [int(re.search(r"(\d+)%", ln).group(1)) for ln in lines]
    assert percents == sorted(percents) and percents[-1] == 100


def test_short_work_stays_quiet_and_disabled_bars_say_nothing() -> None:
    err = io.StringIO()
    with redirect_stderr(err):
        for _ in progress_bar(range(50), desc="quick"):
            pass
        for _ in progress_bar(range(5), desc="off", enabled=False):
            time.sleep(0.01)
    assert err.getvalue() == ""
