"""Mask R-CNN's post-processing: the overlap rule, masks at full resolution, mask scoring and
the occlusion rule."""

import numpy as np
import pytest

from astrostatlearn.methods.maskrcnn_paste import Detections, PasteRule, paste_instances


def _dets(boxes, scores, masks=None, foreground=None) -> Detections:
    boxes = np.asarray(boxes, np.float32)
    masks = np.ones((len(boxes), 28, 28), np.float32) if masks is None else masks
    return Detections(boxes, np.asarray(scores, np.float32), masks, foreground)


def test_higher_score_owns_overlapping_pixels() -> None:
    p = paste_instances(_dets([[0, 0, 10, 10], [5, 0, 15, 10], [30, 30, 32, 32]], [0.6, 0.9, 0.8]), (20, 40),
                        PasteRule(score_threshold=0.0))
    assert list(p.kept) == [1, 0]  # descending score; the 2x2 instance is below min_area
    np.testing.assert_allclose(p.scores, [0.9, 0.6])
    assert (p.labels[:10, 5:15] == 1).all() and (p.labels[10:] == 0).all()  # the overlap belongs to the 0.9 instance
    assert (p.labels[:10, :5] == 2).all() and (p.labels[:, 15:] == 0).all()
    assert p.score_map[0, 0] == pytest.approx(1.0)


def test_foreground_draws_the_edge_inside_the_box_only() -> None:
    """With the backbone's foreground, an instance takes the foreground's pixels of its box (its
    mask alone would take the whole box) and nothing outside the box."""
    fg = np.zeros((40, 40), np.float32)
    yy, xx = np.mgrid[:40, :40]
    fg[(yy - 15) ** 2 + (xx - 15) ** 2 <= 25] = 1.0  # a disk of radius 5 inside the box
    fg[30:35, 30:35] = 1.0  # foreground outside every box
    masks = np.full((1, 28, 28), 0.6, np.float32)  # an uninformative mask over its box
    alone = paste_instances(_dets([[5, 5, 25, 25]], [0.9], masks), (40, 40)).labels
    assert (alone[5:25, 5:25] == 1).all()
    p = paste_instances(_dets([[5, 5, 25, 25]], [0.9], masks, fg), (40, 40), PasteRule(foreground_weight=0.7))
    assert list(p.kept) == [0]
    np.testing.assert_array_equal(p.labels > 0, (fg > 0) & (yy < 25) & (xx < 25))
    assert p.score_map[15, 15] == pytest.approx(0.3 * 0.6 + 0.7) and p.score_map[6, 6] == pytest.approx(0.18)
    same = paste_instances(_dets([[5, 5, 25, 25]], [0.9], masks, fg), (40, 40), PasteRule(foreground_weight=0.0))
    np.testing.assert_array_equal(same.labels, alone)


def test_mask_scoring_ranks_by_mask_quality_and_the_threshold_applies_after() -> None:
    """Two overlapping boxes: the higher class score sits on weak foreground, the lower on a
    sure object. With mask scoring the sure object ranks first, owns the overlap, and the weak one
    falls under the score threshold; without it, the class scores decide."""
    fg = np.zeros((20, 40), np.float32)
    fg[:, 0:12] = 0.51
    fg[:, 12:30] = 1.0
    boxes = [[0, 0, 14, 10], [10, 0, 30, 10]]
    dets = _dets(boxes, [0.8, 0.6], foreground=fg)
    plain = paste_instances(dets, (20, 40), PasteRule(score_threshold=0.3, foreground_weight=1.0))
    assert list(plain.kept) == [0, 1] and (plain.labels[:10, 12:14] == 1).all()
    rule = PasteRule(score_threshold=0.72, foreground_weight=1.0, foreground_scoring=0.5)
    scored = paste_instances(dets, (20, 40), rule)
    q_weak = (0.51 * 12 + 1.0 * 2) / 14  # mean foreground over each box's own pixels
    q_sure = (0.51 * 2 + 1.0 * 18) / 20
    assert list(scored.kept) == [1]  # sqrt(0.8 * q_weak) = 0.68 < 0.72 <= sqrt(0.6 * q_sure) = 0.76
    np.testing.assert_allclose(scored.scores, [np.sqrt(0.6 * q_sure)], rtol=1e-6)
    assert np.sqrt(0.8 * q_weak) < 0.72
    assert (scored.labels[:10, 10:30] == 1).all() and (scored.labels[:, :10] == 0).all()


def test_an_instance_mostly_held_by_higher_ones_is_dropped() -> None:
    """A duplicate box 70% covered by a higher-scoring one keeps its uncovered pixels unless
    ``max_occluded`` is below 0.7; a neighbour that is only 10% covered stays either way."""
    boxes = [[0, 0, 10, 10], [3, 0, 13, 10], [9, 0, 19, 10]]
    dets = _dets(boxes, [0.9, 0.8, 0.7])
    loose = paste_instances(dets, (10, 30), PasteRule(max_occluded=1.0))
    assert list(loose.kept) == [0, 1, 2]
    strict = paste_instances(dets, (10, 30), PasteRule(max_occluded=0.5))
    assert list(strict.kept) == [0, 2]  # the duplicate goes; the neighbour keeps columns 10-18
    assert (strict.labels[:, 10:19] == 2).all() and (strict.labels[:, :10] == 1).all()


@pytest.mark.parametrize("a", [0.0, 0.5, 0.75])
def test_detections_under_the_class_score_floor_are_never_kept(a: float) -> None:
    """The class score floor lets the network skip the mask head for detections that the rule would
    drop anyway: anything kept has a class score at or above it, and a detection just above it can
    be kept (with a sure mask), so the floor is no higher than it must be."""
    rng = np.random.default_rng(1)
    n = 60
    boxes = np.stack([np.arange(n) * 10 % 200, np.arange(n) * 10 // 200 * 10], 1)
    boxes = np.concatenate([boxes, boxes + 8], 1).astype(np.float32)  # 60 disjoint 8x8 boxes
    fg = rng.uniform(0.5, 1.0, (40, 200)).astype(np.float32)
    rule = PasteRule(score_threshold=0.4, foreground_weight=1.0, foreground_scoring=a)
    floor = rule.class_score_floor()
    assert floor == pytest.approx(0.4 ** (1 / (1 - a)), rel=2e-3) and floor < 0.4 ** (1 / (1 - a))
    scores = rng.uniform(0.0, 1.0, n).astype(np.float32)
    p = paste_instances(_dets(boxes, scores, foreground=fg), (40, 200), rule)
    assert p.kept.size and (scores[p.kept] >= floor).all()
    sure = np.ones((40, 200), np.float32)
    at_floor = paste_instances(_dets(boxes[:1], [min(floor * 1.01, 1.0)], foreground=sure), (40, 200), rule)
    assert list(at_floor.kept) == [0]
    assert PasteRule(foreground_scoring=1.0).class_score_floor() == 0.0


def test_mask_rule_gives_each_object_the_pixels_its_own_mask_claims() -> None:
    """A wide box (0.9) whose mask head sees only the left object, but whose blend with the shared
    foreground covers the right one too, beside the two objects' own boxes (0.8 left, 0.7 right).
    The score rule lets the wide box take both objects (one merged segment); the mask rule gives
    the right object's pixels to its own box, drops the wide box (half its pixels gone) and
    revives the left box, whose pixels then came free: two objects."""
    fg = np.ones((10, 20), np.float32)
    wide = np.ones((28, 28), np.float32)
    wide[:, 14:] = 0.3  # 0.25 * 0.3 + 0.75 * 1 = 0.825 > 0.8: the blend claims the right object too
    masks = np.stack([wide, np.ones((28, 28), np.float32), np.ones((28, 28), np.float32)])
    dets = _dets([[0, 0, 20, 10], [0, 0, 10, 10], [10, 0, 20, 10]], [0.9, 0.8, 0.7], masks, fg)
    rule = dict(score_threshold=0.5, mask_threshold=0.8, foreground_weight=0.75, max_occluded=0.3)
    by_score = paste_instances(dets, (10, 20), PasteRule(**rule, overlap_rule="score"))
    assert list(by_score.kept) == [0] and (by_score.labels == 1).all()
    by_mask = paste_instances(dets, (10, 20), PasteRule(**rule, overlap_rule="mask"))
    assert list(by_mask.kept) == [1, 2]  # descending score
    assert (by_mask.labels[:, :10] == 1).all() and (by_mask.labels[:, 10:] == 2).all()
    np.testing.assert_allclose(by_mask.scores, [0.8, 0.7])


def test_mask_rule_drops_duplicates_and_leaves_lone_objects_as_the_score_rule_does() -> None:
    boxes = [[0, 0, 10, 10], [0, 0, 10, 10], [1, 1, 9, 9], [20, 0, 28, 8]]  # a duplicate, a fragment, a lone object
    dets = _dets(boxes, [0.9, 0.8, 0.85, 0.6])
    for overlap_rule in ("score", "mask"):
        p = paste_instances(dets, (10, 30), PasteRule(max_occluded=0.3, overlap_rule=overlap_rule))
        assert list(p.kept) == [0, 3], overlap_rule
        assert (p.labels[:, :10] == 1).all() and (p.labels[:8, 20:28] == 2).all() and (p.labels[:, 10:20] == 0).all()
    with pytest.raises(ValueError, match="overlap_rule"):
        paste_instances(dets, (10, 30), PasteRule(overlap_rule="area"))
