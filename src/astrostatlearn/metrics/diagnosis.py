"""Where panoptic quality is lost: PQ's shortfall split into mask quality, false and missed objects,
and each error sorted by what went wrong.

With ``D = TP + FP/2 + FN/2``, ``1 - PQ = (TP - sum IoU)/D + (FP/2)/D + (FN/2)/D``: the three
terms are ``loss_sq`` (imperfect masks of matched objects), ``loss_fp`` and ``loss_fn``. Since
``PQ = SQ x RQ`` and ``RQ <= 1``, ``sq`` (the mean IoU of matched masks) bounds PQ from above:
a method with perfect detection and these masks would score PQ = SQ.

Missed true objects (FN) are sorted by what covers most of their pixels: ``fn_missed``
(background: not detected), ``fn_merged`` (a prediction matched to another true object: a blend
left unsplit) or ``fn_poor_mask`` (an unmatched prediction: found, but with IoU <= 0.5).
False predictions (FP) are sorted by the true object they overlap most: ``fp_background`` (none:
spurious), ``fp_fragment`` (one matched to another prediction: a piece of an over-split object)
or ``fp_on_unmatched`` (an unmatched one: mostly the same event as ``fn_poor_mask``).
"""

from __future__ import annotations

import numpy as np

from astrostatlearn.metrics.instance import Matching, largest_overlap, match_instances, pq_terms
from astrostatlearn.metrics.pairs import LabelPairs


def pq_loss_breakdown(pairs: LabelPairs, m: Matching | None = None) -> dict[str, float | int]:
    """PQ's loss terms and error counts (see the module docstring) from a label-pair table
    (``LabelPairs.from_maps(true, pred)`` for two instance maps); ``m``: its matching, if already made."""
    m = match_instances(pairs) if m is None else m
    denom = m.tp + 0.5 * m.fp + 0.5 * m.fn
    iou_sum = float(m.matched_iou.sum())
    fn_ids = np.setdiff1d(m.true_ids, m.matched_true)
    on_true = pairs.true_id > 0  # background counts as a cover here
    cover = largest_overlap(m.true_ids, pairs.true_id[on_true], pairs.pred_id[on_true], pairs.count[on_true])
    cover = cover[np.searchsorted(m.true_ids, fn_ids)]
    fn_merged = np.isin(cover, m.matched_pred) & (cover > 0)
    fp_ids = np.setdiff1d(m.pred_ids, m.matched_pred)
    under = m.pred_best_true[np.searchsorted(m.pred_ids, fp_ids)]
    fp_fragment = np.isin(under, m.matched_true) & (under > 0)
    nan = float("nan")
    terms = pq_terms(iou_sum, m.tp, m.fp, m.fn)
    return {
        "pq": terms["pq"], "sq": terms["sq"],
        "loss_sq": (m.tp - iou_sum) / denom if denom else nan,
        "loss_fp": 0.5 * m.fp / denom if denom else nan,
        "loss_fn": 0.5 * m.fn / denom if denom else nan,
        "tp": m.tp, "fp": m.fp, "fn": m.fn,
        "fn_missed": int((cover == 0).sum()),
        "fn_merged": int(fn_merged.sum()),
        "fn_poor_mask": int(((cover > 0) & ~fn_merged).sum()),
        "fp_background": int((under == 0).sum()),
        "fp_fragment": int(fp_fragment.sum()),
        "fp_on_unmatched": int(((under > 0) & ~fp_fragment).sum()),
    }
