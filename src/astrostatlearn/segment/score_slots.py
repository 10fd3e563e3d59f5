"""Tile score maps handed from local worker processes to the driver through shared file pages.

A tile's score core is 16 MB (2048^2 float32). Sent back with its result, it is pickled, written
to a pipe, read and unpickled: about 30 ms of CPU per tile between the two processes, 5 CPU
seconds of a 25000^2 run. Instead, on a local process pool, each task writes its core into one of
a few *slots*, files in the run's scratch folder that the driver and the workers map
(``MAP_SHARED``: the same page-cache pages), and hands back only which slot. The driver copies the
slot into the output band (:mod:`.output_rows`) when it merges the tile.

Slots are reused in a ring: task ``k`` writes slot ``k mod n``. The driver keeps at most
``ahead`` tasks submitted beyond the results it has merged (:func:`~astrostatlearn.schedulers.stream`)
and merges in task order, so with ``n = ahead + 1`` slots, task ``k`` is submitted only after the
result of task ``k - n``, the last one to use its slot, has been merged. Memory: ``n`` slots of a
tile's core (5 x 16 MB at tile 2048 with two workers), in the page cache, shared.
A cluster's workers do not share the driver's disk pages: their scores travel with their results.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

_MAPS: dict[str, np.memmap] = {}  # worker side: slot file -> its map, for the run


@dataclass(frozen=True)
class SlotRef:
    """Where a task left its score core: slot file ``path``, ``shape`` (rows, columns) float32."""

    path: str
    shape: tuple[int, int]


class ScoreSlots:
    """``n`` slot files of ``tile x tile`` float32 in ``folder``, mapped by the driver."""

    def __init__(self, folder: Path, n: int, tile: int) -> None:
        self.paths = [str(Path(folder) / f"score-slot-{k}.f32") for k in range(n)]
        self._maps = []
        for p in self.paths:
            with open(p, "wb") as fh:
                fh.truncate(tile * tile * 4)  # sparse: pages are made at the first write
            self._maps.append(np.memmap(p, np.float32, mode="r+"))
        self._index = {p: k for k, p in enumerate(self.paths)}

    def slot(self, task: int) -> str:
        """The slot file task number ``task`` writes."""
        return self.paths[task % len(self.paths)]

    def view(self, ref: SlotRef) -> np.ndarray:
        """The score core ``ref`` points to (a view of the driver's map: copy it before the slot is
        reused)."""
        h, w = ref.shape
        return self._maps[self._index[ref.path]][:h * w].reshape(h, w)

    def close(self) -> None:
        self._maps.clear()


def write_slot(path: str, score: np.ndarray) -> SlotRef:
    """Worker side: put ``score`` (2-D) into slot file ``path`` and return its reference."""
    mm = _MAPS.get(path)
    if mm is None:
        mm = _MAPS[path] = np.memmap(path, np.float32, mode="r+")
    h, w = score.shape
    mm[:h * w].reshape(h, w)[...] = score
    return SlotRef(path, (h, w))


def forget_slots() -> None:
    """Drop this process's maps of slot files (at the end of a run)."""
    _MAPS.clear()
