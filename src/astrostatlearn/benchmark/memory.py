"""Peak resident memory of this process and its children, sampled in a background thread."""

from __future__ import annotations

import threading

import psutil


class PeakMemory:
    """``with PeakMemory() as m: ...`` then ``m.peak_mb``: the largest total RSS (this process plus
    all its children) seen, sampled every ``interval`` seconds; ``m.peak_process_mb``: the largest
    RSS of any one of them (the per-process memory bound)."""

    def __init__(self, interval: float = 0.1) -> None:
        self.interval = interval
        self.peak_mb = 0.0
        self.peak_process_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> float:
        proc = psutil.Process()
        sizes = [proc.memory_info().rss]
        for child in proc.children(recursive=True):
            try:
                sizes.append(child.memory_info().rss)
            except psutil.Error:
                pass
        self.peak_process_mb = max(self.peak_process_mb, max(sizes) / 2**20)
        return sum(sizes) / 2**20

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak_mb = max(self.peak_mb, self._sample())
            except psutil.Error:
                pass
            self._stop.wait(self.interval)

    def __enter__(self) -> "PeakMemory":
        self.peak_mb = self._sample()
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
