"""Uncertainty of panoptic quality: a paired spatial-block bootstrap.

A test region holds a few hundred to a few thousand objects, so PQ differences of a few hundredths
can be noise. :func:`block_pq_terms` splits the region into square blocks and gives, per block, the
PQ sums (matched IoU, TP, FP, FN), each segment counted in the block of its centroid: the blocks
partition the objects, so their sums give back exactly the PQ of the whole region.
:func:`bootstrap_pq` resamples blocks with replacement, the same draw for every method, and
returns percentile intervals for each method's PQ and for each method's PQ relative to a
reference. Blocks, not objects, are resampled because neighbouring objects (blends) are not
independent.
"""

from __future__ import annotations

import numpy as np

from astrostatlearn.metrics.instance import match_instances
from astrostatlearn.metrics.pairs import LabelPairs


def _segment_blocks(labels: np.ndarray, ids: np.ndarray, block: int) -> np.ndarray:
    """Block index (row-major over the region's ``block``-pixel grid) of each segment's centroid."""
    ys, xs = np.nonzero(labels)
    lab = labels[ys, xs].astype(np.int64)
    n = np.bincount(lab, minlength=int(ids.max(initial=0)) + 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        cy = np.bincount(lab, weights=ys, minlength=n.size) / n
        cx = np.bincount(lab, weights=xs, minlength=n.size) / n
    nbx = -(-labels.shape[1] // block)
    return (cy[ids] // block).astype(np.int64) * nbx + (cx[ids] // block).astype(np.int64)


def block_pq_terms(true: np.ndarray, pred: np.ndarray, block: int = 256) -> np.ndarray:
    """``[n_blocks, 4]`` float array of (matched IoU sum, TP, FP, FN) per ``block``² block.

    ``true`` and ``pred`` are instance maps of one region (``[y, x]``, 0 = background). True
    segments (matched or not) are placed by their own centroid, unmatched predictions by theirs.
    """
    if true.shape != pred.shape:
        raise ValueError(f"truth shape {true.shape} != prediction shape {pred.shape}")
    if block < 1:
        raise ValueError(f"block must be >= 1 pixel, got {block}")
    m = match_instances(LabelPairs.from_maps(true, pred))
    ny, nx = true.shape
    nb = -(-ny // block) * -(-nx // block)
    terms = np.zeros((nb, 4))
    tb = _segment_blocks(true, m.true_ids, block)
    matched = np.isin(m.true_ids, m.matched_true)
    iou = np.zeros(m.true_ids.size)
    iou[np.searchsorted(m.true_ids, m.matched_true)] = m.matched_iou
    terms[:, 0] = np.bincount(tb, weights=iou, minlength=nb)
    terms[:, 1] = np.bincount(tb[matched], minlength=nb)
    terms[:, 3] = np.bincount(tb[~matched], minlength=nb)
    pb = _segment_blocks(pred, m.pred_ids, block)
    terms[:, 2] = np.bincount(pb[~np.isin(m.pred_ids, m.matched_pred)], minlength=nb)
    return terms


def _pq(sums: np.ndarray) -> np.ndarray:
    denom = sums[..., 1] + 0.5 * sums[..., 2] + 0.5 * sums[..., 3]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, sums[..., 0] / denom, np.nan)


def bootstrap_pq(terms: dict[str, np.ndarray], reference: str | None = None, n: int = 2000,
                 level: float = 0.95, seed: int = 0) -> dict[str, dict[str, float]]:
    """Paired block-bootstrap intervals of PQ for several methods scored on the same blocks.

    ``terms`` maps a method name to its :func:`block_pq_terms` (same region and block size for
    all). Returns, per method, ``pq`` (the whole-region value), ``lo`` and ``hi`` (the central
    ``level`` percentile interval over ``n`` resamples) and, when ``reference`` names one of
    them, ``ratio``, ``ratio_lo`` and ``ratio_hi`` of its PQ over the reference's.
    """
    shapes = {t.shape for t in terms.values()}
    if len(shapes) != 1:
        raise ValueError(f"methods were scored on different block grids: {sorted(shapes)}")
    if reference is not None and reference not in terms:
        raise ValueError(f"reference {reference!r} is not among {sorted(terms)}")
    nb = shapes.pop()[0]
    draw = np.random.default_rng(seed).integers(0, nb, size=(n, nb))
    q = (1 - level) / 2 * 100, (1 + level) / 2 * 100
    boot = {k: _pq(t[draw].sum(axis=1)) for k, t in terms.items()}
    whole = {k: float(_pq(t.sum(axis=0))) for k, t in terms.items()}
    out: dict[str, dict[str, float]] = {}
    for k in terms:
        lo, hi = np.nanpercentile(boot[k], q)
        out[k] = {"pq": whole[k], "lo": float(lo), "hi": float(hi)}
        if reference is not None:
            r_lo, r_hi = np.nanpercentile(boot[k] / boot[reference], q)
            out[k].update(ratio=whole[k] / whole[reference], ratio_lo=float(r_lo), ratio_hi=float(r_hi))
    return out
