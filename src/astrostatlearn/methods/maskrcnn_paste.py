"""Mask R-CNN's post-processing: from scored boxes and 28^2 masks to one int32 label map.

Steps, each with one option of :class:`PasteRule`:

1. **Masks at full resolution** (``foreground_weight`` w): inside its box, an instance's
   probability at a pixel is ``(1 - w) * its mask + w * the U-Net backbone's foreground``. The
   box and mask say which object a pixel may belong to, the full-resolution foreground where its
   edge lies (as PointRend refines a coarse mask with fine features).
2. **Mask scoring** (``foreground_scoring`` a): an instance's score is ``class score^(1 - a) *
   q^a``, q the mean foreground probability over its own pixels (probability >
   ``mask_threshold``), a measure of its mask's quality, as Mask Scoring R-CNN (Huang et al.
   2019) scores masks by their predicted IoU. Scores stay in [0, 1]; ``score_threshold`` applies
   to them.
3. **Overlap rule**: in descending score, an instance takes the pixels of its box whose
   probability is > ``mask_threshold`` and that no higher-scoring instance holds. It is dropped
   when fewer than ``min_area`` pixels are left, or when higher-scoring instances already hold
   more than ``max_occluded`` of its own pixels (Panoptic FPN's rule for duplicates and
   fragments; 1 never drops).

Boxes are (x0, y0, x1, y1) in image pixels (torchvision's order); maps are [y, x]; label IDs
are 1..n in the order instances were kept; 0 is background.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Detections:
    """Detections over an image: ``boxes`` [N, 4] (x0, y0, x1, y1, image pixels), ``scores`` [N],
    ``masks`` [N, 28, 28] (probabilities over each box) and the U-Net backbone's ``foreground``
    probability over the image (None for a galaxy backbone)."""

    boxes: np.ndarray
    scores: np.ndarray
    masks: np.ndarray
    foreground: np.ndarray | None = None

    @classmethod
    def empty(cls, foreground: np.ndarray | None = None) -> "Detections":
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros((0, 28, 28), np.float32), foreground)


@dataclass(frozen=True)
class PasteRule:
    """The post-processing options (see the module notes); the defaults change nothing of the
    network's output but the 0.5 thresholds."""

    score_threshold: float = 0.5
    mask_threshold: float = 0.5
    min_area: int = 5
    foreground_weight: float = 0.0
    foreground_scoring: float = 0.0
    max_occluded: float = 1.0

    def class_score_floor(self) -> float:
        """The lowest class score with which a detection can still be kept: its final score,
        ``class^(1 - a) * q^a`` with q <= 1, is at most ``class^(1 - a)`` (a hair lower, for rounding)."""
        a = self.foreground_scoring
        return 0.0 if a >= 1 else 0.999 * self.score_threshold ** (1.0 / (1.0 - max(a, 0.0)))


@dataclass
class Pasted:
    """The label map [y, x] (int32), the indices of the kept detections (label k + 1 is
    ``kept[k]``), their final scores, and the score map (the highest probability at each pixel)."""

    labels: np.ndarray
    kept: np.ndarray
    scores: np.ndarray
    score_map: np.ndarray


def box_probability(box: np.ndarray, mask: np.ndarray, shape: tuple[int, int], foreground: np.ndarray | None,
                    weight: float) -> tuple[tuple[slice, slice], np.ndarray] | None:
    """(the box's pixel slices, an instance's probability over them) for a ``box`` (x0, y0, x1, y1)
    and its ``mask`` (sampled bilinearly at the pixel centres, as torchvision pastes masks),
    blended with ``foreground`` by ``weight``; None for a box with no pixel in ``shape``."""
    from scipy import ndimage

    ny, nx = shape
    x0, y0, x1, y1 = (float(v) for v in box)
    ix0, iy0 = max(int(np.floor(x0)), 0), max(int(np.floor(y0)), 0)
    ix1, iy1 = min(int(np.ceil(x1)), nx), min(int(np.ceil(y1)), ny)
    if ix1 <= ix0 or iy1 <= iy0:
        return None
    yy = ((np.arange(iy0, iy1) + 0.5 - y0) / max(y1 - y0, 1e-6)) * mask.shape[0] - 0.5
    xx = ((np.arange(ix0, ix1) + 0.5 - x0) / max(x1 - x0, 1e-6)) * mask.shape[1] - 0.5
    prob = ndimage.map_coordinates(mask, np.meshgrid(yy, xx, indexing="ij"), order=1, mode="nearest")
    sl = (slice(iy0, iy1), slice(ix0, ix1))
    if foreground is not None and weight > 0:
        prob = (1.0 - weight) * prob + weight * foreground[sl]
    return sl, prob.astype(np.float32)


def mask_scores(dets: Detections, probs: list, rule: PasteRule) -> np.ndarray:
    """Each detection's final score: ``class score^(1 - a) * q^a`` (a = ``foreground_scoring``; q
    the mean foreground over the instance's own pixels, 0 where it has none); the class score
    alone without a foreground or with a = 0."""
    a = rule.foreground_scoring
    if a <= 0 or dets.foreground is None:
        return dets.scores.astype(np.float32)
    quality = np.zeros(len(dets.scores), np.float64)
    for i, bp in enumerate(probs):
        if bp is not None:
            own = bp[1] > rule.mask_threshold
            if own.any():
                quality[i] = float(dets.foreground[bp[0]][own].mean())
    return (dets.scores.astype(np.float64) ** (1.0 - a) * quality ** a).astype(np.float32)


def paste_instances(dets: Detections, shape: tuple[int, int], rule: PasteRule = PasteRule()) -> Pasted:
    """Resolve overlapping, scored detections into one int32 map of ``shape`` (see the module notes)."""
    w = rule.foreground_weight if dets.foreground is not None else 0.0
    probs = [box_probability(b, m, shape, dets.foreground, w) for b, m in zip(dets.boxes, dets.masks)]
    scores = mask_scores(dets, probs, rule)
    labels = np.zeros(shape, np.int32)
    score_map = np.zeros(shape, np.float32)
    kept: list[int] = []
    for i in np.argsort(-scores, kind="stable"):
        if scores[i] < rule.score_threshold or probs[i] is None:
            continue
        sl, prob = probs[i]
        np.maximum(score_map[sl], prob, out=score_map[sl])
        mine = prob > rule.mask_threshold
        take = mine & (labels[sl] == 0)
        n = int(take.sum())
        if n < rule.min_area or n < (1.0 - rule.max_occluded) * int(mine.sum()):
            continue
        kept.append(int(i))
        labels[sl][take] = len(kept)
    idx = np.asarray(kept, np.int64)
    return Pasted(labels, idx, scores[idx], score_map)
