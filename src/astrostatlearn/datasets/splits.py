"""Spatially disjoint train/val/test regions separated by guard bands.

The field is cut into three horizontal bands (full width), in the order train, val, test, with
fractions of the *usable* height (default 70/15/15) and a guard band of ``guard`` rows between
neighbours. When a truth map is given, the guard grows until no object touches two splits; the
test region is what every method is scored on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from astrostatlearn.errors import InputError
from astrostatlearn.field import Field, Window, row_blocks

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class SplitPlan:
    """Regions per split (0-based half-open windows) and the guard width in pixels."""

    regions: dict[str, Window]
    guard: int
    fractions: tuple[float, float, float]

    def as_dict(self) -> dict:
        return {"guard": self.guard, "fractions": list(self.fractions),
                "regions": {k: [w.y0, w.y1, w.x0, w.x1] for k, w in self.regions.items()}}

    @classmethod
    def from_dict(cls, d: dict) -> "SplitPlan":
        return cls({k: Window(*v) for k, v in d["regions"].items()}, int(d["guard"]), tuple(d["fractions"]))


def plan_splits(shape: tuple[int, int], fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
                guard: int = 64) -> SplitPlan:
    """Three horizontal bands with ``guard`` rows between them."""
    if len(fractions) != 3 or any(f < 0 for f in fractions) or not np.isclose(sum(fractions), 1.0):
        raise InputError(f"split fractions must be three non-negative numbers summing to 1, got {fractions}")
    if guard < 0:
        raise InputError(f"the guard band must be >= 0 rows, got {guard}")
    ny, nx = shape
    usable = ny - 2 * guard
    if usable <= 0:
        raise InputError(f"field of {ny} rows is too small for two guard bands of {guard} rows")
    h_train = int(round(fractions[0] * usable))
    h_val = int(round(fractions[1] * usable))
    y = 0
    regions = {}
    for name, h in (("train", h_train), ("val", h_val), ("test", usable - h_train - h_val)):
        regions[name] = Window(y, y + h, 0, nx)
        y += h + guard
    return SplitPlan(regions, guard, tuple(float(f) for f in fractions))


def ids_in(field: Field, region: Window, block_pixels: int = 1 << 24) -> np.ndarray:
    """Unique truth IDs in ``region`` (streamed)."""
    ids = np.zeros(0, np.int64)
    for w in row_blocks(region.shape, block_pixels):
        t = field.read_true(Window(region.y0 + w.y0, region.y0 + w.y1, region.x0, region.x1))
        ids = np.union1d(ids, np.unique(t[t > 0]))
    return ids


def leak_free_splits(field: Field, fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
                     guard: int = 64, max_guard: int = 2048) -> SplitPlan:
    """Plan splits and, with a truth map, widen the guard until no object is in two splits."""
    g = guard
    while True:
        plan = plan_splits(field.shape, fractions, g)
        if field.true is None:
            return plan
        sets = [ids_in(field, plan.regions[s]) for s in SPLITS]
        shared = (np.intersect1d(sets[0], sets[1]).size + np.intersect1d(sets[1], sets[2]).size
                  + np.intersect1d(sets[0], sets[2]).size)
        if shared == 0:
            return plan
        if g >= max_guard:
            raise InputError(f"objects still span two splits with a {g}-pixel guard band")
        g = max(2 * g, 16)  # a zero guard grows too
