"""DETR panoptic: a model built from its config alone, its own losses, the panoptic overlap rule,
windows at the query limit, and the panoptic export as its training input."""

from pathlib import Path

import numpy as np
import pytest
import torch

from astrostatlearn.methods.detr import (GALAXY, SATURATED, VOID, DetrSegmenter, build_detr, paint_by_score,
                                         window_segments)
from astrostatlearn.training.detr import DetrTask, detr_targets, panoptic_instance_maps


def test_model_is_built_from_scratch_for_any_channel_count() -> None:
    net = build_detr(3, window=64, queries=40).eval()
    cfg = net.detr.config
    assert cfg.use_pretrained_backbone is False and cfg.backbone_config.model_type == "resnet"
    assert cfg.num_channels == 3 and cfg.backbone_config.num_channels == 3 and cfg.num_queries == 40
    assert cfg.num_labels == 2 and cfg.auxiliary_loss
    # Every layer trains, with ordinary BatchNorm (transformers freezes both for pretrained backbones).
    assert all(p.requires_grad for p in net.parameters())
    assert not any(type(m).__name__ == "DetrFrozenBatchNorm2d" for m in net.modules())
    with torch.inference_mode():
        out = net(torch.randn(2, 3, 64, 64))
    assert out.logits.shape == (2, 40, 3) and out.pred_boxes.shape == (2, 40, 4)
    assert out.pred_masks.shape == (2, 40, 32, 32)  # no stem max-pool: masks at half resolution


def _targets(n: int, size: int = 64) -> dict:
    inst = np.zeros((size, size), np.int32)
    for k in range(n):
        inst[4 + 12 * k:10 + 12 * k, 5:13] = k + 1
    return detr_targets(inst)


def test_targets_are_galaxies_plus_one_void_segment() -> None:
    t = _targets(3)
    assert t["class_labels"].tolist() == [GALAXY] * 3 + [VOID]
    assert t["masks"].shape == (4, 64, 64) and t["masks"][:3].sum() == 3 * 48
    assert torch.equal(t["masks"][3].bool(), t["instances"] == 0)
    cx, cy, w, h = t["boxes"][0].tolist()
    assert (cx, cy, w, h) == pytest.approx((9 / 64, 7 / 64, 8 / 64, 6 / 64))


def test_model_computes_its_own_hungarian_loss_by_term() -> None:
    torch.manual_seed(0)
    net = build_detr(1, window=64, queries=16, widths=[8, 8, 16, 16], d_model=32).train()
    batch = ([torch.randn(1, 64, 64), torch.randn(1, 64, 64)], [_targets(2), _targets(4)])
    terms = DetrTask().losses(net, batch)
    assert set(terms) == {"ce", "bbox", "giou", "mask", "dice", "aux"}
    assert all(torch.isfinite(v) and v > 0 for v in terms.values())
    sum(terms.values()).backward()
    assert all(p.grad is not None for p in net.detr.mask_head.parameters())


def _logits(classes: list[int], probs: list[float]) -> torch.Tensor:
    """Logits whose softmax gives ``probs[k]`` to ``classes[k]`` (the rest shared by the others)."""
    out = torch.zeros(len(classes), 3)
    for k, (c, p) in enumerate(zip(classes, probs)):
        out[k] = float(np.log((1 - p) / 2))
        out[k, c] = float(np.log(p))
    return out


def test_panoptic_overlap_rule() -> None:
    # Queries: galaxy 0.9 (left block), galaxy 0.7 overlapping it, void 0.95 (everything), no-object, faint galaxy.
    logits = _logits([GALAXY, GALAXY, VOID, 2, GALAXY], [0.9, 0.7, 0.95, 0.9, 0.4])
    masks = torch.full((5, 20, 20), -8.0)
    masks[0, :, :10] = 8.0
    masks[1, :, 5:15] = 8.0
    masks[2, :, 8:] = 0.5  # void (0.95 x 0.62), weaker than the galaxies where they overlap it
    masks[3] = 8.0
    masks[4] = 8.0
    boxes = torch.full((5, 4), 0.5)
    ws = window_segments(logits, boxes, masks, (20, 20), score_threshold=0.5)
    # Kept: the two galaxies and the void; pixels go to the highest class x mask probability.
    assert ws.scores.tolist() == pytest.approx([0.9, 0.7], abs=1e-4)
    assert (ws.labels[:, :10] == 1).all()  # galaxy 0.9 beats galaxy 0.7 and the void
    assert (ws.labels[:, 10:15] == 2).all()  # galaxy 0.7 x 1.0 beats void 0.95 x 0.62
    assert (ws.labels[:, 15:] == 0).all()  # void pixels are background; no-object and faint queries are dropped
    assert not ws.saturated
    # All queries but one kept: the window is at the query limit.
    sat = window_segments(_logits([GALAXY] * 4, [0.9] * 4), torch.full((4, 4), 0.5), torch.full((4, 8, 8), 8.0),
                          (8, 8), score_threshold=0.5)
    assert sat.saturated


def test_paint_by_score_gives_overlaps_to_the_higher_score() -> None:
    a, b, tiny = np.ones((6, 6), bool), np.ones((6, 6), bool), np.ones((2, 2), bool)
    box = np.zeros(4, np.float32)
    labels, kept = paint_by_score((12, 12), [(0.6, 0, 0, a, box), (0.9, 3, 3, b, box), (0.99, 10, 10, tiny, box)])
    assert kept.tolist() == [1, 0]  # descending score; the 4-pixel object is below min_area 5
    assert (labels[3:9, 3:9] == 1).all() and labels[0, 0] == 2 and labels[10, 10] == 0


def test_training_reads_the_panoptic_export(small_dataset: Path, tmp_path: Path) -> None:
    from astrostatlearn.datasets import export_panoptic, iter_shards

    export_panoptic(small_dataset, "val", tmp_path)
    maps = panoptic_instance_maps(tmp_path, "val")
    stored = [lab for shard in iter_shards(small_dataset, "val") for lab in shard["instances"]]
    assert len(maps) == len(stored) > 0
    assert all(np.array_equal(m, s) for m, s in zip(maps, stored))


def test_saturated_windows_are_counted_and_warned(sim_field: Path, tmp_path: Path) -> None:
    """A model whose every query says "galaxy" fills each window: the run counts and warns."""
    import json
    import warnings

    from astrostatlearn.field import Field
    from astrostatlearn.segment.run import prepare_and_segment

    torch.manual_seed(0)
    net = build_detr(1, window=64, queries=4, widths=[8, 8, 16, 16], d_model=32)
    with torch.no_grad():
        net.detr.detr.class_labels_classifier.bias.copy_(torch.tensor([20.0, 0.0, 0.0]))
    seg = DetrSegmenter.from_network(net, "snr", score_threshold=0.0)
    with Field.open(sim_field) as f, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = prepare_and_segment(f, seg, tmp_path / "seg", variant="snr", tile=256, progress=False)
    run = json.loads((tmp_path / "seg" / "run.json").read_text())
    assert run["method_counters"][SATURATED] > 0 and res.run["method_counters"] == run["method_counters"]
    assert any("used all 4 queries" in str(w.message) for w in caught)
    assert "used all 4 queries" in run["method_warnings"][0]
