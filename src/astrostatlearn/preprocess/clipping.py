"""Sigma-clipped statistics of many samples at once, from sorted rows.

The same clipping as astropy's ``sigma_clip`` (centre: median, scale: standard deviation with
ddof 0, bounds kept inclusive, iterated until nothing changes or ``maxiters``), computed for every
row of a 2-D array together. Each row is sorted once, so the kept values are always one contiguous
run ``[lo, hi)`` of the sorted row: a clipping step is a vectorised binary search for the two
bounds, and the mean and standard deviation come from prefix sums. This is what makes a
whole-field background mesh cost a sort of the pixels instead of ten passes over them.

NaN marks a missing value (masked or non-finite); NaNs sort last and are never kept.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class ClippedStats:
    """Per-row statistics of the values that survive clipping (float64 arrays of length n)."""

    median: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    n: np.ndarray  # values kept per row (int64)

    def sextractor_mode(self) -> np.ndarray:
        """SExtractor's background estimator: ``2.5 median - 1.5 mean``, or the median when
        ``|mean - median| / std >= 0.3`` (a crowded sample), or the mean when ``std == 0``
        (as photutils' ``SExtractorBackground``). NaN for rows with nothing kept."""
        mode = 2.5 * self.median - 1.5 * self.mean
        with np.errstate(invalid="ignore", divide="ignore"):
            crowded = np.abs(self.mean - self.median) / self.std >= 0.3
        mode = np.where(crowded, self.median, mode)
        return np.where(self.std == 0, self.mean, mode)


def _search(s: np.ndarray, rows: np.ndarray, lo: np.ndarray, hi: np.ndarray, value: np.ndarray,
            right: np.ndarray) -> np.ndarray:
    """For each k, the first index i in [lo[k], hi[k]] with s[rows[k], i] >= value[k] (> where
    ``right[k]``): ``np.searchsorted`` on many sorted runs at once, by bisection."""
    lo, hi = lo.copy(), hi.copy()
    last = s.shape[1] - 1
    while True:
        open_ = lo < hi
        if not open_.any():
            return lo
        mid = (lo + hi) // 2
        probe = s[rows, np.minimum(mid, last)]
        below = np.where(right, probe <= value, probe < value)
        lo = np.where(open_ & below, mid + 1, lo)
        hi = np.where(open_ & ~below, mid, hi)


def _run_median(s: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """The median of each row's run ``s[r, lo:hi]`` (mean of the two middle values when even)."""
    rows = np.arange(s.shape[0])
    last = s.shape[1] - 1
    n = hi - lo
    a = s[rows, np.clip(lo + (n - 1) // 2, 0, last)].astype(np.float64)
    b = s[rows, np.clip(lo + n // 2, 0, last)].astype(np.float64)
    return np.where(n > 0, (a + b) / 2.0, np.nan)


class _RunSums:
    """Sums of ``d`` and ``d**2`` over ``[lo, hi)`` of each row, for runs inside ``[0, n_valid)``
    that only shrink: the whole valid run's sums (float64) less prefix sums of its first and last
    ``ends`` values; a row whose run has moved further in is summed directly."""

    def __init__(self, d: np.ndarray, n_valid: np.ndarray, ends: int = 512) -> None:
        self.d, self.n_valid = d, n_valid
        n_rows, m = d.shape
        self.k = k = min(ends, m)
        finite = np.where(np.arange(m)[None, :] < n_valid[:, None], d, 0) if (n_valid < m).any() else d
        self.t1 = finite.sum(axis=1, dtype=np.float64)
        self.t2 = np.einsum("ij,ij->i", finite, finite, dtype=np.float64)
        # The ends' prefix sums in the data's precision (float32 sums of k shifted values lose
        # less than the whole-row float32 prefix sums did).
        head = d[:, :k]
        if (n_valid < k).any():
            head = np.where(np.arange(k)[None, :] < n_valid[:, None], head, 0)
        self.h1 = np.zeros((n_rows, k + 1), d.dtype)
        self.h2 = np.zeros((n_rows, k + 1), d.dtype)
        np.cumsum(head, axis=1, out=self.h1[:, 1:])
        np.cumsum(head * head, axis=1, out=self.h2[:, 1:])
        # The last k valid values of each row, as suffix sums: s1[:, j] = sum of the values from
        # n_valid - k + j to n_valid (j = 0..k); positions before the row's start count 0.
        if (n_valid == m).all():
            tail = d[:, m - k:]
        else:
            idx = n_valid[:, None] - k + np.arange(k)[None, :]
            tail = np.where(idx >= 0, d[np.arange(n_rows)[:, None], np.maximum(idx, 0)], 0)
        self.s1 = np.zeros((n_rows, k + 1), d.dtype)
        self.s2 = np.zeros((n_rows, k + 1), d.dtype)
        np.cumsum(tail[:, ::-1], axis=1, out=self.s1[:, k - 1::-1])
        np.cumsum((tail * tail)[:, ::-1], axis=1, out=self.s2[:, k - 1::-1])

    def between(self, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        k, rows = self.k, np.arange(lo.size)
        cut = self.n_valid - hi  # values clipped from the top
        near = (lo <= k) & (cut <= k)
        li, ti = np.minimum(lo, k), np.clip(k - cut, 0, k)
        s1 = self.t1 - self.h1[rows, li] - self.s1[rows, ti]  # float64, as t1 and t2
        s2 = self.t2 - self.h2[rows, li] - self.s2[rows, ti]
        for r in np.flatnonzero(~near):  # rare: a run clipped by more than ``k`` at one end
            s1[r], s2[r] = self._far(r, int(lo[r]), int(hi[r]))
        return s1, s2

    def _far(self, r: int, lo: int, hi: int) -> tuple[float, float]:
        """Sums over ``[lo, hi)`` of row ``r``: of the run itself, or the whole valid run's less
        the two clipped ends, whichever reads fewer values (a long row clipped by a few thousand
        values, as a whole-field sample, costs its ends only). No BLAS: safe in tile threads."""
        n_valid = int(self.n_valid[r])
        if hi - lo <= lo + (n_valid - hi):
            run = self.d[r, lo:hi].astype(np.float64)
            return float(run.sum()), float(np.einsum("i,i->", run, run))
        ends = np.concatenate([self.d[r, :lo], self.d[r, hi:n_valid]]).astype(np.float64)
        return float(self.t1[r] - ends.sum()), float(self.t2[r] - np.einsum("i,i->", ends, ends))


def clipped_rows(values: np.ndarray, sigma: float = 3.0, maxiters: int = 10, presorted: bool = False) -> ClippedStats:
    """Sigma-clip every row of ``values`` (n, m) about its median and return the statistics of
    what is kept. NaNs are missing values; ``presorted``: every row is sorted already, NaNs last
    (the sort is skipped). Equals astropy's
    ``sigma_clipped_stats(row, sigma=sigma, maxiters=maxiters)`` row by row, up to the rounding
    of float32 bounds.

    Examples
    --------
    >>> import numpy as np
    >>> from astrostatlearn.preprocess.clipping import clipped_rows
    >>> x = np.array([[1.0, 2.0, 3.0, 4.0, 100.0, np.nan]] * 2)
    >>> st = clipped_rows(x, sigma=1.5)
    >>> st.median.tolist(), st.n.tolist()
    ([2.5, 2.5], [4, 4])
    """
    s = np.asarray(values) if presorted else np.sort(np.asarray(values), axis=1)  # NaN last
    if s.dtype.kind != "f" or s.dtype.itemsize < 4:
        s = s.astype(np.float32)
    n_rows, m = s.shape
    hi = np.count_nonzero(~np.isnan(s), axis=1).astype(np.int64)
    lo = np.zeros(n_rows, np.int64)
    # Values less a per-row shift (the row's median), so the variance does not lose precision on
    # a large sky level. The kept run only shrinks, so its sums are the whole row's less the two
    # clipped ends (:class:`_RunSums`): one reduction over the row, and prefix sums over its ends
    # only, a quarter of a short row at each (a sampled mesh cell's 1024 values: a cell clipped by
    # more, behind a bright galaxy, is summed directly; 512 covered the whole row twice).
    shift = np.nan_to_num(_run_median(s, lo, hi))
    sums = _RunSums(s - shift[:, None].astype(s.dtype), hi.copy(), ends=min(512, max(64, m // 4)))
    rows = np.arange(n_rows)

    def stats() -> ClippedStats:
        n = hi - lo
        s1, s2 = sums.between(lo, hi)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = s1 / n
            var = np.maximum(s2 / n - mean * mean, 0.0)
        return ClippedStats(_run_median(s, lo, hi), mean + shift, np.sqrt(var), n)

    active = np.flatnonzero(hi > lo)  # rows still changing: a row whose run stops changing has converged
    for _ in range(maxiters):
        if active.size == 0:
            break
        st = stats()
        med, std = st.median[active], st.std[active]
        k = active.size
        # Both bounds in one bisection: rows [0, k) look for the lower bound, [k, 2k) the upper.
        found = _search(s, np.concatenate([active, active]), np.concatenate([lo[active], lo[active]]),
                        np.concatenate([hi[active], hi[active]]),
                        np.concatenate([med - sigma * std, med + sigma * std]), np.repeat([False, True], k))
        new_lo, new_hi = found[:k], np.maximum(found[k:], found[:k])
        changed = (new_lo != lo[active]) | (new_hi != hi[active])
        lo[active], hi[active] = new_lo, new_hi
        active = active[changed]
    return stats()
