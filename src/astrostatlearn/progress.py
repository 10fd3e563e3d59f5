"""Progress of long work: a tqdm bar with an ETA on a terminal, a line per few percent in a log.

:func:`progress_bar` is what every long step uses (scanning, simulating, the background mesh,
segmenting, scoring, cutting patches). When stderr is a terminal it is a normal tqdm bar. When it
is not (a log file, a batch job), it prints one line per ``step`` (default 5%) of the work, with
the elapsed time and an ETA, starting once ``delay_s`` (default 10 s) have passed, so short runs
stay quiet and a 25000² run is never silent for minutes.
"""

from __future__ import annotations

import sys
from typing import Any, Iterable

from tqdm import tqdm


class LogProgress(tqdm):
    """A tqdm that writes plain lines to stderr (``desc: 35% (7/20 tile), 0:42 elapsed, ETA 1:18``)."""

    def __init__(self, *args: Any, step: float = 0.05, delay_s: float = 10.0, **kwargs: Any) -> None:
        self._step, self._delay_s, self._next = step, delay_s, step
        super().__init__(*args, mininterval=1.0, **kwargs)

    def display(self, msg: str | None = None, pos: int | None = None) -> bool:
        total = self.total or 0
        if total and not self.disable and self.n / total >= self._next \
                and self.format_dict["elapsed"] >= self._delay_s:
            self._line()
        return True

    def close(self) -> None:
        """The last line (100%) is printed when the work ends, if any line was due."""
        total = self.total or 0
        if total and not self.disable and self.n >= total and self._next <= 1.0 + 1e-9 \
                and self.format_dict["elapsed"] >= self._delay_s:
            self._line()
        super().close()

    def _line(self) -> None:
        total, elapsed = self.total or 0, self.format_dict["elapsed"]
        fraction = self.n / total
        rate = (self.n - self.initial) / elapsed if elapsed > 0 else 0.0
        eta = self.format_interval((total - self.n) / rate) if rate > 0 else "?"
        print(f"{self.desc}: {100 * fraction:.0f}% ({self.n}/{total} {self.unit}), "
              f"{self.format_interval(elapsed)} elapsed, ETA {eta}", file=sys.stderr, flush=True)
        while self._next <= fraction + 1e-9:
            self._next += self._step


def progress_bar(iterable: Iterable | None = None, *, total: int | None = None, desc: str = "", unit: str = "it",
                 initial: int = 0, enabled: bool = True) -> tqdm:
    """A progress bar over ``iterable`` (or updated by hand): see the module docstring.
    ``enabled=False`` shows nothing."""
    if total is None and iterable is not None and hasattr(iterable, "__len__"):
        total = len(iterable)  # type: ignore[arg-type]
    if not enabled:
        return tqdm(iterable, total=total, disable=True)
    if sys.stderr.isatty():
        return tqdm(iterable, total=total, desc=desc, unit=unit, initial=initial, leave=False)
    return LogProgress(iterable, total=total, desc=desc, unit=unit, initial=initial, file=_Discard(), leave=False)


class _Discard:
    """tqdm's own output (carriage returns) is dropped in a log; :class:`LogProgress` prints lines."""

    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass
