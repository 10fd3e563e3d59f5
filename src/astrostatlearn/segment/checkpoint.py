"""The resumable state of a segment run, kept in its partial output folder.

Tiles are merged in raster order, so a run's state after ``done`` tiles is small: the running ID
offset and counters (``progress.json``), the catalogue rows so far (one pickle per batch), and
the two maps being filled (``*.part``, flushed with ``fsync`` before each checkpoint). A resumed
run reopens the maps, restores the rest and continues at tile ``done``; merging a tile twice
writes the same values, so a crash between a merge and its checkpoint changes nothing.

``progress.json`` also holds the run's fingerprint (field, method, model digest, variant, tile,
halo, region, score, Kron photometry): a resume with other settings is refused, naming what differs.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
from pathlib import Path
from typing import Any

from astrostatlearn.errors import InputError

PROGRESS = "progress.json"


def file_digest(path: str | Path) -> str:
    """SHA-256 of a file (the model a run used), read in 1 MB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class Checkpoint:
    """Save and restore the assembly state of one run in ``stage`` (its partial output folder)."""

    def __init__(self, stage: Path, fingerprint: dict[str, Any]) -> None:
        self.stage = stage
        self.fingerprint = json.loads(json.dumps(fingerprint, default=str))  # as it reads back
        self.part_files: list[str] = []

    def load(self) -> tuple[int, dict[str, Any], list[Any]]:
        """(tiles done, assembly counters, catalogue parts) of a killed run; (0, {}, []) if none.
        A different fingerprint is an :class:`InputError` naming the differences."""
        p = self.stage / PROGRESS
        if not p.exists():
            return 0, {}, []
        try:
            saved = json.loads(p.read_text())
        except (OSError, ValueError):
            return 0, {}, []
        diff = [f"{k} {self.fingerprint.get(k)!r} (the killed run had {saved['fingerprint'].get(k)!r})"
                for k in sorted(set(self.fingerprint) | set(saved["fingerprint"]))
                if self.fingerprint.get(k) != saved["fingerprint"].get(k)]
        if diff:
            raise InputError("--resume with other settings than the killed run: " + "; ".join(diff)
                             + "; rerun with those settings, or pass --overwrite to start again")
        parts: list[Any] = []
        self.part_files = list(saved["parts"])
        for name in self.part_files:
            with open(self.stage / name, "rb") as fh:
                parts += pickle.load(fh)
        return int(saved["done"]), saved["state"], parts

    def save(self, done: int, state: dict[str, Any], new_parts: list[Any]) -> None:
        """Record ``done`` tiles: ``new_parts`` (catalogue rows since the last save) go to their
        own pickle, then ``progress.json`` is replaced atomically."""
        names = self.part_files
        if new_parts:
            name = f"parts-{done:07d}.pkl"
            with open(self.stage / name, "wb") as fh:
                pickle.dump(new_parts, fh)
                fh.flush()
                os.fsync(fh.fileno())
            names.append(name)
        tmp = self.stage / (PROGRESS + ".tmp")
        with open(tmp, "w") as fh:
            json.dump({"fingerprint": self.fingerprint, "done": done, "state": state, "parts": names}, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.stage / PROGRESS)
