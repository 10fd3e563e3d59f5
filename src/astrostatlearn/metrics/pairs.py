"""Sparse label-pair counting, the basis of every instance metric.

For a truth map ``t`` and a prediction ``p`` (int32, 0 = background), :class:`LabelPairs` counts
pixels for each (true ID, predicted ID) pair with at least one non-zero label. From that table
follow every object's area, every overlap and every IoU, without any dense ID x ID matrix. Tables
from separate tiles add up, so a field of any size is scored tile by tile.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_SHIFT = np.int64(32)
_MASK = np.int64(0xFFFFFFFF)


def count_pairs(true: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(keys, counts) of the label pairs in one tile; key = true << 32 | pred, background pairs skipped."""
    t = np.asarray(true)
    p = np.asarray(pred)
    if t.shape != p.shape:
        raise ValueError(f"truth shape {t.shape} != prediction shape {p.shape}")
    fg = (t > 0) | (p > 0)
    keys = (t[fg].astype(np.int64) << _SHIFT) | p[fg].astype(np.int64)
    return np.unique(keys, return_counts=True)


@dataclass
class LabelPairs:
    """Pixel counts of (true ID, pred ID) pairs; 0 stands for background. Add tables with ``+``."""

    true_id: np.ndarray
    pred_id: np.ndarray
    count: np.ndarray

    @classmethod
    def from_maps(cls, true: np.ndarray, pred: np.ndarray) -> "LabelPairs":
        return cls.from_keys(*count_pairs(true, pred))

    @classmethod
    def from_keys(cls, keys: np.ndarray, counts: np.ndarray) -> "LabelPairs":
        return cls((keys >> _SHIFT).astype(np.int64), (keys & _MASK).astype(np.int64), counts.astype(np.int64))

    @classmethod
    def merge(cls, parts: list[tuple[np.ndarray, np.ndarray]]) -> "LabelPairs":
        """Combine per-tile (keys, counts) into one table."""
        if not parts:
            return cls.from_keys(np.zeros(0, np.int64), np.zeros(0, np.int64))
        keys = np.concatenate([k for k, _ in parts])
        counts = np.concatenate([c for _, c in parts])
        uk, inv = np.unique(keys, return_inverse=True)
        return cls.from_keys(uk, np.bincount(inv, weights=counts, minlength=uk.size).astype(np.int64))

    def _areas(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        sel = ids > 0
        u, inv = np.unique(ids[sel], return_inverse=True)
        return u, np.bincount(inv, weights=self.count[sel], minlength=u.size).astype(np.int64)

    def true_areas(self) -> tuple[np.ndarray, np.ndarray]:
        """(IDs, pixel areas) of the true objects."""
        return self._areas(self.true_id)

    def pred_areas(self) -> tuple[np.ndarray, np.ndarray]:
        """(IDs, pixel areas) of the predicted objects."""
        return self._areas(self.pred_id)
