"""Instance matching, completeness/purity and panoptic quality (PQ, SQ, RQ).

A true and a predicted segment match when their IoU > 0.5. Because two segments of one map are
disjoint, each segment has at most one partner with IoU > 0.5, so the matching is unique
without any assignment step (Kirillov et al. 2019, panoptic segmentation).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from astrostatlearn.metrics.pairs import LabelPairs
from astrostatlearn.metrics.pixel import Confusion

MATCH_IOU = 0.5


@dataclass
class Matching:
    """The result of :func:`match_instances`.

    ``true_ids``/``true_area`` and ``pred_ids``/``pred_area`` list every segment; ``matched_true``,
    ``matched_pred`` and ``matched_iou`` the matched pairs; ``pred_best_true`` gives, for each
    predicted segment, the true ID it overlaps most (0 when it overlaps only background).
    """

    true_ids: np.ndarray
    true_area: np.ndarray
    pred_ids: np.ndarray
    pred_area: np.ndarray
    matched_true: np.ndarray
    matched_pred: np.ndarray
    matched_iou: np.ndarray
    pred_best_true: np.ndarray

    @property
    def tp(self) -> int:
        return int(self.matched_true.size)

    @property
    def fn(self) -> int:
        return int(self.true_ids.size - self.tp)

    @property
    def fp(self) -> int:
        return int(self.pred_ids.size - self.tp)


def match_instances(pairs: LabelPairs, threshold: float = MATCH_IOU) -> Matching:
    """Match true and predicted segments (IoU > ``threshold``, which must be >= 0.5 for uniqueness)."""
    if threshold < 0.5:
        raise ValueError("matching is unique only for IoU thresholds >= 0.5")
    tid, tarea = pairs.true_areas()
    pid, parea = pairs.pred_areas()
    both = (pairs.true_id > 0) & (pairs.pred_id > 0)
    ti, pi, inter = pairs.true_id[both], pairs.pred_id[both], pairs.count[both]
    at = tarea[np.searchsorted(tid, ti)] if ti.size else np.zeros(0, np.int64)
    ap = parea[np.searchsorted(pid, pi)] if pi.size else np.zeros(0, np.int64)
    iou = inter / (at + ap - inter) if ti.size else np.zeros(0)
    ok = iou > threshold
    return Matching(tid, tarea, pid, parea, ti[ok], pi[ok], iou[ok], largest_overlap(pid, pi, ti, inter))


def largest_overlap(all_ids: np.ndarray, ids: np.ndarray, other: np.ndarray, count: np.ndarray) -> np.ndarray:
    """For each of ``all_ids`` (sorted), the ``other`` ID it shares most pixels with, from the
    label pairs (``ids``, ``other``, pixel ``count``) given; 0 for an ID in no given pair."""
    best = np.zeros(all_ids.size, np.int64)
    if ids.size:
        order = np.lexsort((-count, ids))
        first = np.ones(order.size, bool)
        first[1:] = ids[order][1:] != ids[order][:-1]
        sel = order[first]
        best[np.searchsorted(all_ids, ids[sel])] = other[sel]
    return best


def _safe(a: float, b: float) -> float:
    return a / b if b > 0 else float("nan")


def detection_metrics(m: Matching) -> dict[str, float]:
    """Completeness (recall of objects), purity (precision of objects) and their F1."""
    completeness = _safe(m.tp, m.true_ids.size)
    purity = _safe(m.tp, m.pred_ids.size)
    f1 = _safe(2 * m.tp, m.true_ids.size + m.pred_ids.size)
    return {"completeness": completeness, "purity": purity, "f1": f1, "n_true": int(m.true_ids.size),
            "n_pred": int(m.pred_ids.size), "tp": m.tp, "fp": m.fp, "fn": m.fn}


def pq_terms(iou_sum: float, tp: int, fp: int, fn: int) -> dict[str, float]:
    """PQ = SQ x RQ with SQ = mean IoU of matches and RQ = TP / (TP + FP/2 + FN/2)."""
    denom = tp + 0.5 * fp + 0.5 * fn
    if denom == 0:  # the class is absent from both maps
        return {"pq": float("nan"), "sq": float("nan"), "rq": float("nan"), "tp": 0, "fp": 0, "fn": 0}
    # As panopticapi: SQ is 0 (not undefined) when the class is present but nothing matched.
    return {"pq": iou_sum / denom, "sq": iou_sum / tp if tp else 0.0, "rq": tp / denom,
            "tp": tp, "fp": fp, "fn": fn}


def panoptic_quality(m: Matching, confusion: Confusion) -> dict[str, dict[str, float]]:
    """PQ/SQ/RQ for the ``galaxy`` things and the seed's ``void`` stuff row (background as one segment).

    The void segments are all true and all predicted background pixels: their IoU is
    tn / (tn + fp + fn); they match when it exceeds 0.5. ``all`` averages the two classes, as
    panopticapi does.
    """
    galaxy = pq_terms(float(m.matched_iou.sum()), m.tp, m.fp, m.fn)
    t_void = confusion.tn + confusion.fp  # true background pixels
    p_void = confusion.tn + confusion.fn  # predicted background pixels
    if t_void == 0 and p_void == 0:
        void = pq_terms(0.0, 0, 0, 0)
    else:
        iou = _safe(confusion.tn, t_void + p_void - confusion.tn)
        hit = iou > MATCH_IOU
        void = pq_terms(iou if hit else 0.0, int(hit), int(not hit and p_void > 0), int(not hit and t_void > 0))
    classes = [c for c in (galaxy, void) if c["tp"] + c["fp"] + c["fn"] > 0]
    mean = {k: float(np.mean([c[k] for c in classes])) if classes else float("nan") for k in ("pq", "sq", "rq")}
    return {"galaxy": galaxy, "void": void, "all": mean}
