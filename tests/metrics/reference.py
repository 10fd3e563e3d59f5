"""Independent brute-force references for the metrics: loops over IDs with dense boolean masks."""

from __future__ import annotations

import numpy as np


def confusion(t: np.ndarray, p: np.ndarray) -> tuple[int, int, int, int]:
    tp = fp = fn = tn = 0
    for a, b in zip((t > 0).ravel(), (p > 0).ravel()):
        if a and b:
            tp += 1
        elif b:
            fp += 1
        elif a:
            fn += 1
        else:
            tn += 1
    return tp, fp, fn, tn


def ious(t: np.ndarray, p: np.ndarray) -> dict[tuple[int, int], float]:
    out = {}
    for i in np.unique(t[t > 0]):
        for j in np.unique(p[p > 0]):
            a, b = t == i, p == j
            inter = np.logical_and(a, b).sum()
            if inter:
                out[(int(i), int(j))] = inter / np.logical_or(a, b).sum()
    return out


def panoptic(t: np.ndarray, p: np.ndarray) -> dict[str, dict[str, float]]:
    """panopticapi-style PQ for class galaxy (things) and void (background as one stuff segment)."""
    res = {}
    pairs = {k: v for k, v in ious(t, p).items() if v > 0.5}
    n_t, n_p = len(np.unique(t[t > 0])), len(np.unique(p[p > 0]))
    tp = len(pairs)
    res["galaxy"] = _pq(sum(pairs.values()), tp, n_p - tp, n_t - tp)
    tv, pv = t == 0, p == 0
    if not tv.any() and not pv.any():
        res["void"] = _pq(0.0, 0, 0, 0)
    else:
        iou = np.logical_and(tv, pv).sum() / np.logical_or(tv, pv).sum()
        hit = iou > 0.5
        res["void"] = _pq(iou if hit else 0.0, int(hit), int(pv.any() and not hit), int(tv.any() and not hit))
    return res


def _pq(iou_sum: float, tp: int, fp: int, fn: int) -> dict[str, float]:
    if tp + fp + fn == 0:
        return {"pq": float("nan"), "sq": float("nan"), "rq": float("nan"), "tp": 0, "fp": 0, "fn": 0}
    d = tp + fp / 2 + fn / 2
    return {"pq": iou_sum / d, "sq": iou_sum / tp if tp else 0.0, "rq": tp / d, "tp": tp, "fp": fp, "fn": fn}
