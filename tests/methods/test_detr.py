"""DETR panoptic: a model built from its config alone, its own losses, the panoptic overlap rule,
windows at the query limit, and the panoptic export as its training input."""

from pathlib import Path

import numpy as np
import pytest
import torch

from astrostatlearn.methods.detr import (GALAXY, SATURATED, VOID, DetrSegmenter, build_detr, paint_by_score,
                                         window_segments)
from astrostatlearn.errors import InputError
from astrostatlearn.training.detr import (DetrDetectorTask, DetrTask, box_mask_logits, detector_path, detr_targets,
                                          panoptic_instance_maps, train_detr)


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
    # Below 0.5 a query whose most probable class is "no object" is kept too (its galaxy probability counts).
    low = window_segments(_logits([GALAXY, 2], [0.35, 0.6]), boxes[:2], masks[:2], (20, 20), score_threshold=0.3)
    assert low.scores.tolist() == pytest.approx([0.35], abs=1e-4) and (low.labels[:, :10] == 1).all()
    assert (ws.labels[:, 15:] == 0).all()  # void pixels are background; no-object and faint queries are dropped
    assert not ws.saturated
    # All queries but one kept: the window is at the query limit.
    sat = window_segments(_logits([GALAXY] * 4, [0.9] * 4), torch.full((4, 4), 0.5), torch.full((4, 8, 8), 8.0),
                          (8, 8), score_threshold=0.5)
    assert sat.saturated


def test_foreground_draws_the_owner_edge_inside_its_box() -> None:
    """With a first stage's foreground, a galaxy query takes the foreground's pixels of its box
    (its own mask alone, a uniform 0.6, would take the whole box) and nothing outside its box."""
    logits = _logits([GALAXY], [0.9])
    masks = torch.full((1, 20, 20), float(np.log(0.6 / 0.4)))  # mask probability 0.6 everywhere
    boxes = torch.tensor([[0.25, 0.25, 0.5, 0.5]])  # (cx, cy, w, h): pixels 0-9 on both axes
    fg = torch.zeros(20, 20)
    fg[2:6, 3:8] = 1.0
    fg[15:18, 15:18] = 1.0  # outside the box
    alone = window_segments(logits, boxes, masks, (20, 20))
    assert (alone.labels > 0).all()
    ws = window_segments(logits, boxes, masks, (20, 20), foreground=fg, foreground_weight=0.85)
    want = np.zeros((20, 20), bool)
    want[2:6, 3:8] = True
    np.testing.assert_array_equal(ws.labels > 0, want)
    assert ws.prob[3, 4] == pytest.approx(0.9 * (0.15 * 0.6 + 0.85), abs=1e-4)
    same = window_segments(logits, boxes, masks, (20, 20), foreground=fg, foreground_weight=0.0)
    np.testing.assert_array_equal(same.labels, alone.labels)


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


@pytest.mark.parametrize("stride", [4, 8, 16])
def test_token_stride_sets_the_transformer_grid(stride: int) -> None:
    net = build_detr(1, window=64, widths=[8, 8, 16, 16], d_model=32, token_stride=stride).eval()
    with torch.inference_mode():
        out = net(torch.randn(1, 1, 64, 64))
    assert out.encoder_last_hidden_state.shape == (1, (64 // stride) ** 2, 32)
    assert out.pred_masks.shape[-2:] == (32, 32)  # the masks stay at half resolution
    with pytest.raises(InputError, match="token_stride"):
        build_detr(1, token_stride=2)


def test_a_negative_first_stage_is_refused() -> None:
    with pytest.raises(InputError, match="detector_epochs must be >= 0"):
        train_detr([], Path("unused.pt"), detector_epochs=-1)


def test_the_detector_alone_has_no_mask_terms_and_leaves_the_mask_head_untouched() -> None:
    torch.manual_seed(0)
    net = build_detr(1, window=64, queries=16, widths=[8, 8, 16, 16], d_model=32).train()
    batch = ([torch.randn(1, 64, 64), torch.randn(1, 64, 64)], [_targets(2), _targets(4)])
    terms = DetrDetectorTask().losses(net, batch)
    assert set(terms) == {"ce", "bbox", "giou", "aux"} and all(v > 0 for v in terms.values())
    sum(terms.values()).backward()
    assert all(p.grad is None for p in net.detr.mask_head.parameters())
    assert all(p.grad is not None for p in net.detr.detr.bbox_predictor.parameters())
    with torch.inference_mode():
        labels = DetrDetectorTask(score_threshold=0.0).predict_labels(net.eval(), batch[0])
    assert [lab.shape for lab in labels] == [(64, 64)] * 2 and all(lab.dtype == np.int32 for lab in labels)


def test_freezing_the_detector_trains_only_the_mask_head_and_keeps_its_statistics() -> None:
    torch.manual_seed(0)
    net = build_detr(1, window=64, queries=16, widths=[8, 8, 16, 16], d_model=32)
    net.freeze_detector()
    net.train()
    assert not net.detr.detr.training and net.detr.mask_head.training
    trainable = {id(p) for p in net.parameters() if p.requires_grad}
    head = {id(p) for m in (net.detr.mask_head, net.detr.bbox_attention) for p in m.parameters()}
    assert trainable == head
    assert {id(p) for group, _ in net.param_groups_lr() for p in group} == head
    bn = next(m for m in net.detr.detr.modules() if isinstance(m, torch.nn.BatchNorm2d))
    before = bn.running_mean.clone()
    terms = DetrTask().losses(net, ([torch.randn(1, 64, 64) * 5 + 3], [_targets(3)]))
    sum(terms.values()).backward()
    assert torch.equal(bn.running_mean, before)
    assert all(p.grad is None for p in net.detr.detr.parameters())


def test_box_masks_fill_each_box_and_never_the_void() -> None:
    boxes = torch.tensor([[0.5, 0.5, 0.5, 0.25], [0.5, 0.5, 1.0, 1.0]])  # (cx, cy, w, h)
    m = box_mask_logits(boxes, (8, 8), torch.tensor([False, True]))
    assert (m[0] > 0).sum() == 4 * 2 and (m[0] > 0)[3:5, 2:6].all()
    assert (m[1] < 0).all()


def test_two_stages_freeze_the_first_stage_detector(sim_field: Path, tmp_path: Path) -> None:
    """``detector_epochs``: the detector trains alone (chosen by the PQ of its boxes), then the mask
    head trains on it frozen: the final model's detector equals the first stage's, bit for bit."""
    from astrostatlearn.cli import app
    from typer.testing import CliRunner

    out = tmp_path / "m.pt"
    args = ["train", "detr", "--field", str(sim_field), "--out", str(out), "--patch", "64", "--split", "0.6,0.2,0.2",
            "--steps", "2", "--batch", "2", "--epochs", "1", "-p", "window=64", "-p", "widths=8/8/16/16",
            "-p", "d_model=32", "-p", "detector_epochs=2"]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    det = detector_path(out)
    first = [row.split(",") for row in det.with_suffix(".csv").read_text().splitlines()]
    assert len(first) == 3 and first[1][first[0].index("metric")] == "box_pq"
    assert "term_mask" not in first[0]
    second = out.with_suffix(".csv").read_text().splitlines()
    assert len(second) == 2 and "term_mask" in second[0]
    a, b = DetrSegmenter.load_file(det).net_, DetrSegmenter.load_file(out).net_
    sa, sb = a.detr.detr.state_dict(), b.detr.detr.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(x, y) for x, y in zip(a.detr.mask_head.state_dict().values(),
                                                      b.detr.mask_head.state_dict().values()))
    # --resume with one more epoch continues the second stage and does not repeat the finished first.
    r = CliRunner().invoke(app, [*args[:args.index("--epochs")], "--epochs", "2", *args[args.index("--epochs") + 2:],
                                 "--resume"])
    assert r.exit_code == 0, r.output
    assert len(det.with_suffix(".csv").read_text().splitlines()) == 3
    assert len(out.with_suffix(".csv").read_text().splitlines()) == 3
    c = DetrSegmenter.load_file(out).net_.detr.detr.state_dict()
    assert all(torch.equal(sa[k], c[k]) for k in sa)

