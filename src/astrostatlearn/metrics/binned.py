"""Completeness and purity binned by a property of the true objects (magnitude, S/N).

Completeness in a bin: matched true objects / true objects whose catalogue value falls in it.
Purity in a bin: each predicted segment takes the value of the true object it overlaps most;
matched predictions / predictions in the bin. Predictions that overlap no true object have no
catalogue value: they are counted in ``n_pred_unassociated`` and lower the overall purity only.
Mask IoU in a bin: the mean IoU of the matched true objects in it (SQ restricted to the bin).
"""

from __future__ import annotations

import numpy as np

from astrostatlearn.metrics.instance import Matching

MAG_BINS = np.arange(18.0, 28.01, 1.0)
SNR_BINS = np.array([0.0, 3.0, 5.0, 10.0, 20.0, 50.0, 100.0, 1000.0, np.inf])


def _lookup(ids: np.ndarray, cat_ids: np.ndarray, values: np.ndarray) -> np.ndarray:
    order = np.argsort(cat_ids)
    sorted_ids = cat_ids[order]
    pos = np.clip(np.searchsorted(sorted_ids, ids), 0, max(sorted_ids.size - 1, 0))
    out = np.full(ids.shape, np.nan)
    if sorted_ids.size:
        hit = sorted_ids[pos] == ids
        out[hit] = values[order][pos[hit]]
    return out


def binned_detection(m: Matching, cat_ids: np.ndarray, values: np.ndarray, edges: np.ndarray) -> dict:
    """Completeness, purity and mean matched mask IoU per bin of ``values`` (a catalogue column
    indexed by ``cat_ids``)."""
    tv = _lookup(m.true_ids, cat_ids, values)
    t_matched = np.isin(m.true_ids, m.matched_true)
    pv = _lookup(m.pred_best_true, cat_ids, values)
    pv[m.pred_best_true == 0] = np.nan
    p_matched = np.isin(m.pred_ids, m.matched_pred)
    n_true = np.histogram(tv[np.isfinite(tv)], edges)[0]
    n_true_hit = np.histogram(tv[np.isfinite(tv) & t_matched], edges)[0]
    n_pred = np.histogram(pv[np.isfinite(pv)], edges)[0]
    n_pred_hit = np.histogram(pv[np.isfinite(pv) & p_matched], edges)[0]
    mv = _lookup(m.matched_true, cat_ids, values)
    iou_sum = np.histogram(mv[np.isfinite(mv)], edges, weights=m.matched_iou[np.isfinite(mv)])[0]
    with np.errstate(divide="ignore", invalid="ignore"):
        comp = np.where(n_true > 0, n_true_hit / np.maximum(n_true, 1), np.nan)
        mask_iou = np.where(n_true_hit > 0, iou_sum / np.maximum(n_true_hit, 1), np.nan)
        pur = np.where(n_pred > 0, n_pred_hit / np.maximum(n_pred, 1), np.nan)
    return {
        "edges": [float(e) for e in edges], "completeness": comp.tolist(), "purity": pur.tolist(),
        "mask_iou": mask_iou.tolist(),
        "n_true": n_true.tolist(), "n_pred": n_pred.tolist(),
        "n_true_without_value": int(np.count_nonzero(~np.isfinite(tv))),
        "n_pred_unassociated": int(np.count_nonzero(m.pred_best_true == 0)),
    }
