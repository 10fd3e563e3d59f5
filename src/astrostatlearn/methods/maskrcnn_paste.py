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
3. **Overlap rule** (``overlap_rule``): an instance's own pixels are those of its box whose
   probability is > ``mask_threshold``. Where several instances claim a pixel, ``"score"`` gives
   it to the highest-scoring one (in descending score, each takes the pixels no higher-scoring
   instance holds: Panoptic FPN's rule); ``"mask"`` gives it to the one with the highest class
   score × its own 28^2 mask's probability there (Mask2Former's panoptic rule; the mask head's
   probability, not the blend with the shared foreground, which cannot tell neighbours apart),
   so a high-scoring box does not take a neighbour's pixels that its mask head gives to the
   neighbour. Either way an instance is dropped when fewer than ``min_area`` pixels are left to
   it, or when others hold more than ``max_occluded`` of its own pixels (duplicates and
   fragments; 1 never drops); with ``"mask"`` the pixels of dropped instances are then shared
   again among the rest, and a dropped instance whose pixels came free is revived.

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


OVERLAP_RULES = ("score", "mask")


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
    overlap_rule: str = "score"

    def __post_init__(self) -> None:
        if self.overlap_rule not in OVERLAP_RULES:
            raise ValueError(f"overlap_rule must be one of {OVERLAP_RULES}, got {self.overlap_rule!r}")

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


@dataclass
class BoxProbability:
    """An instance's probabilities over its box's pixels ``sl``: ``prob``, its mask blended with
    the foreground (which pixels are its own), and ``mask``, its mask head's alone."""

    sl: tuple[slice, slice]
    prob: np.ndarray
    mask: np.ndarray


def box_probability(box: np.ndarray, mask: np.ndarray, shape: tuple[int, int], foreground: np.ndarray | None,
                    weight: float) -> BoxProbability | None:
    """An instance's probabilities over the pixels of its ``box`` (x0, y0, x1, y1): its ``mask``
    sampled bilinearly at the pixel centres (as torchvision pastes masks), and that blended with
    ``foreground`` by ``weight``; None for a box with no pixel in ``shape``."""
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
    raw = prob.astype(np.float32)
    if foreground is None or weight <= 0:
        return BoxProbability(sl, raw, raw)
    return BoxProbability(sl, ((1.0 - weight) * raw + weight * foreground[sl]).astype(np.float32), raw)


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
            own = bp.prob > rule.mask_threshold
            if own.any():
                quality[i] = float(dets.foreground[bp.sl][own].mean())
    return (dets.scores.astype(np.float64) ** (1.0 - a) * quality ** a).astype(np.float32)


def paste_instances(dets: Detections, shape: tuple[int, int], rule: PasteRule = PasteRule()) -> Pasted:
    """Resolve overlapping, scored detections into one int32 map of ``shape`` (see the module notes)."""
    w = rule.foreground_weight if dets.foreground is not None else 0.0
    probs = [box_probability(b, m, shape, dets.foreground, w) for b, m in zip(dets.boxes, dets.masks)]
    scores = mask_scores(dets, probs, rule)
    order = [int(i) for i in np.argsort(-scores, kind="stable")
             if scores[i] >= rule.score_threshold and probs[i] is not None]
    score_map = np.zeros(shape, np.float32)
    for i in order:
        np.maximum(score_map[probs[i].sl], probs[i].prob, out=score_map[probs[i].sl])
    resolve = by_score if rule.overlap_rule == "score" else by_mask
    labels, kept = resolve(probs, scores, order, shape, rule)
    idx = np.asarray(kept, np.int64)
    return Pasted(labels, idx, scores[idx], score_map)


def keeps(n_free: int, n_own: int, rule: PasteRule) -> bool:
    """Whether an instance with ``n_own`` pixels of its own, ``n_free`` of them left to it, stays."""
    return n_free >= rule.min_area and n_free >= (1.0 - rule.max_occluded) * n_own


def by_score(probs: list, scores: np.ndarray, order: list[int], shape: tuple[int, int],
             rule: PasteRule) -> tuple[np.ndarray, list[int]]:
    """The ``"score"`` overlap rule: in ``order`` (descending score) each instance takes its own
    pixels that no earlier one holds. (labels, kept detection indices)."""
    labels = np.zeros(shape, np.int32)
    kept: list[int] = []
    for i in order:
        bp = probs[i]
        mine = bp.prob > rule.mask_threshold
        take = mine & (labels[bp.sl] == 0)
        if keeps(int(take.sum()), int(mine.sum()), rule):
            kept.append(i)
            labels[bp.sl][take] = len(kept)
    return labels, kept


def by_mask(probs: list, scores: np.ndarray, order: list[int], shape: tuple[int, int],
            rule: PasteRule) -> tuple[np.ndarray, list[int]]:
    """The ``"mask"`` overlap rule: each pixel goes to the instance, among those whose own pixel it
    is, with the highest score × mask-head probability there; then, the lowest-scoring first, an
    instance left with too few pixels is dropped and its pixels go to the next best claimants
    (a drop only gives pixels to others, so one pass settles it); last, :func:`revive`. (labels,
    kept detection indices, in descending score.)"""
    value = {i: np.where(probs[i].prob > rule.mask_threshold, scores[i] * probs[i].mask, -1.0).astype(np.float32)
             for i in order}
    own = {i: int((value[i] >= 0).sum()) for i in order}
    owner = np.full(shape, -1, np.int64)
    claim_pixels(owner, probs, value, order, (slice(0, shape[0]), slice(0, shape[1])))
    counts = np.bincount(owner[owner >= 0], minlength=len(probs))
    ranked = np.asarray(order, np.int64)
    spans = np.array([[probs[i].sl[0].start, probs[i].sl[0].stop, probs[i].sl[1].start, probs[i].sl[1].stop]
                      for i in order], np.int64).reshape(-1, 4)
    alive = np.ones(len(order), bool)
    for k in range(len(order) - 1, -1, -1):
        i = order[k]
        if keeps(int(counts[i]), own[i], rule):
            continue
        alive[k] = False
        sl = probs[i].sl
        freed = owner[sl] == i
        owner[sl][freed] = -1
        near = alive & (spans[:, 0] < sl[0].stop) & (sl[0].start < spans[:, 1]) & (spans[:, 2] < sl[1].stop) \
            & (sl[1].start < spans[:, 3])
        claim_pixels(owner, probs, value, ranked[near].tolist(), sl, only=freed)
        after = owner[sl][freed]
        counts[i] = 0
        counts += np.bincount(after[after >= 0], minlength=len(probs))
    revive(owner, probs, value, ranked, alive, rule)
    kept = ranked[alive].tolist()
    lut = np.zeros(len(probs) + 1, np.int32)
    lut[np.asarray(kept, np.int64) + 1] = np.arange(1, len(kept) + 1, dtype=np.int32)
    return lut[owner + 1], kept


def revive(owner: np.ndarray, probs: list, value: dict, ranked: np.ndarray, alive: np.ndarray, rule: PasteRule) -> None:
    """Give dropped instances, the highest-scoring first, a second chance: one whose own pixels are
    now mostly unheld (an instance that took them from it was dropped later) takes those, and
    stays, under the same test (``owner`` and ``alive`` are updated in place)."""
    for k in np.flatnonzero(~alive):
        i = int(ranked[k])
        sl = probs[i].sl
        mine = value[i] >= 0
        free = mine & (owner[sl] == -1)
        if keeps(int(free.sum()), int(mine.sum()), rule):
            owner[sl][free] = i
            alive[k] = True


def claim_pixels(owner: np.ndarray, probs: list, value: dict, claimants: list[int], region: tuple[slice, slice],
                 only: np.ndarray | None = None) -> None:
    """Give each pixel of ``region`` (where ``only``, if given) to the claimant with the highest
    value there (those whose own pixel it is; ties to the earlier claimant), in ``owner``."""
    ry, rx = region
    best = np.full((ry.stop - ry.start, rx.stop - rx.start), -1.0, np.float32)
    sub = owner[region]
    for i in claimants:
        sy, sx = probs[i].sl
        y0, y1 = max(sy.start, ry.start), min(sy.stop, ry.stop)
        x0, x1 = max(sx.start, rx.start), min(sx.stop, rx.stop)
        if y1 <= y0 or x1 <= x0:
            continue
        v = value[i][y0 - sy.start:y1 - sy.start, x0 - sx.start:x1 - sx.start]
        b = best[y0 - ry.start:y1 - ry.start, x0 - rx.start:x1 - rx.start]
        win = (v >= 0) & (v > b)
        if only is not None:
            win &= only[y0 - ry.start:y1 - ry.start, x0 - rx.start:x1 - rx.start]
        b[win] = v[win]
        sub[y0 - ry.start:y1 - ry.start, x0 - rx.start:x1 - rx.start][win] = i
