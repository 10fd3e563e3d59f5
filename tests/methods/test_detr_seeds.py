"""DETR's queries seeded by the shipped U-Net: seeds at its instances, reference boxes, the box
prior of the masks, a model file that carries its U-Net, thread safety, and seed overflow."""

from pathlib import Path

import numpy as np
import pytest
import torch

from astrostatlearn.errors import InputError
from astrostatlearn.methods.detr import DetrSegmenter, build_detr
from astrostatlearn.methods.detr_seeds import MASK_PRIOR, box_logits
from tests.methods.test_detr import _targets


def test_a_box_prior_is_its_inscribed_ellipse() -> None:
    box = torch.tensor([[[0.5, 0.25, 0.5, 0.25]]])  # centre (y, x) = (8, 16) of a 32 x 32 mask; 16 wide, 8 high
    logits = box_logits(box, (32, 32))[0, 0]
    assert logits[8, 16] == pytest.approx(MASK_PRIOR * (1 - (0.5 / 4) ** 2 - (0.5 / 8) ** 2), abs=1e-4)
    assert (logits > 0).sum() == pytest.approx(np.pi * 8 * 4, rel=0.15)  # the ellipse's area, pixels
    assert logits[8, 16] > logits[8, 22] > 0 > logits[8, 25] and logits.min() == -10.0


def test_seeded_queries_start_at_the_unets_object_centres() -> None:
    """``seeds`` = K: the first K queries start at the shipped U-Net's strongest object centres
    (foreground x centre-ness peaks), one per object, zero where a window has fewer; the U-Net's
    two maps join the input; the U-Net stays frozen; K must leave queries free for the void."""
    net = build_detr(1, window=64, queries=8, widths=[8, 8, 16, 16], d_model=32, seeds=5).train()
    assert net.detr.config.num_channels == 3 and net.config["unet"]["in_channels"] == 1
    assert not any(p.requires_grad for p in net.seeder.parameters()) and not net.seeder.training
    torch.manual_seed(0)
    x = torch.randn(2, 1, 64, 64)
    x[0, 0, 10:16, 40:46] += 30.0  # two bright objects in the first window, none in the second
    x[0, 0, 44:50, 8:14] += 30.0
    pixels, queries, overflow = net.inputs(x)
    assert overflow.tolist() == [False, False]  # 2 and 0 objects, 5 seeds
    assert pixels.shape == (2, 3, 64, 64) and queries.shape == (2, 8, 32)
    seeded = queries.abs().sum(-1) > 0
    assert seeded[0].tolist() == [True, True] + [False] * 6 and not seeded[1].any()
    assert not torch.allclose(queries[0, 0], queries[0, 1])  # two places, two contents
    out = net(x, labels=[_targets(2), _targets(1)])
    assert torch.isfinite(out.loss) and out.pred_masks.shape[:2] == (2, 8)
    out.loss.backward()
    assert net.seed_embedding.weight.grad is not None and net.seed_embedding.weight.grad.abs().sum() > 0
    with pytest.raises(InputError, match="seeds"):
        build_detr(1, queries=8, seeds=8)


def test_a_seeded_detr_saves_its_unet_and_loads_without_the_shipped_one(tmp_path: Path) -> None:
    net = build_detr(1, window=64, queries=8, widths=[8, 8, 16, 16], d_model=32, seeds=5).eval()
    with torch.no_grad():
        net.seeder.head.bias.add_(0.5)  # no longer the shipped U-Net: the file must carry its own
    DetrSegmenter.from_network(net, variant="snr").save(tmp_path / "m.pt")
    back = DetrSegmenter.load_file(tmp_path / "m.pt").net_.eval()
    x = torch.randn(1, 1, 64, 64)
    x[0, 0, 30:36, 30:36] += 30.0  # an object, so a query is seeded
    with torch.inference_mode():
        a, b = net(x), back(x)
        assert (back.inputs(x)[1].abs().sum(-1) > 0).sum() == 1 and not back.inputs(x)[2].any()
    assert torch.allclose(a.logits, b.logits, atol=1e-2) and torch.allclose(a.pred_boxes, b.pred_boxes, atol=1e-3)
    assert torch.allclose(net.seeder.head.bias, back.seeder.head.bias, atol=1e-3)  # stored as float16


def test_a_seeded_detr_shared_by_threads_gives_each_window_its_own_boxes() -> None:
    """The tiles of a run share one network across threads: the per-batch reference boxes (and the
    boxes the mask head reads) must not leak from one thread's window into another's."""
    from concurrent.futures import ThreadPoolExecutor

    net = build_detr(1, window=64, queries=8, widths=[8, 8, 16, 16], d_model=32, seeds=5).eval()
    torch.manual_seed(1)
    windows = [torch.randn(1, 1, 64, 64) for _ in range(6)]
    for k, w in enumerate(windows):
        w[0, 0, 5 * k:5 * k + 6, 40:46] += 30.0  # each window's object somewhere else
    with torch.inference_mode():
        alone = [net(w) for w in windows]
        with ThreadPoolExecutor(3) as pool:
            shared = list(pool.map(lambda w: net(w), windows * 3))
    for k, out in enumerate(shared):
        ref = alone[k % len(windows)]
        assert torch.allclose(out.pred_boxes, ref.pred_boxes) and torch.allclose(out.pred_masks, ref.pred_masks)


def test_windows_with_more_unet_objects_than_seeds_are_counted() -> None:
    """A seeded DETR whose U-Net finds more instances in a window than it has seeded queries may
    lose the weakest: such windows count with those at the query limit (never silently)."""
    net = build_detr(1, window=64, queries=4, widths=[8, 8, 16, 16], d_model=32, seeds=2).eval()
    seg = DetrSegmenter.from_network(net, "snr", score_threshold=0.9)
    image = np.random.default_rng(0).normal(size=(1, 64, 128)).astype(np.float32)
    for y, x in ((8, 8), (8, 40), (40, 20)):  # three objects in the left window, none in the right one
        image[0, y:y + 6, x:x + 6] += 30.0
    with torch.inference_mode():
        out = net(torch.from_numpy(image[None, :, :, :64]))
    assert out.seed_overflow.tolist() == [True]
    _, counted = seg.segment_windows(image)
    assert counted >= 1


def test_seeds_are_refused_on_a_variant_the_shipped_unet_does_not_read(small_dataset: Path, tmp_path: Path) -> None:
    from astrostatlearn.training.detr import train_detr

    with pytest.raises(InputError, match="'snr' variant, not 'soft\\+rms'"):
        train_detr([small_dataset], tmp_path / "m.pt", config={"window": 64, "seeds": 4})
    assert not (tmp_path / "m.pt").exists()


def test_masks_only_for_the_queries_the_panoptic_rule_can_keep_change_no_object() -> None:
    """At inference the mask head runs only for queries whose galaxy or void probability reaches
    the score threshold: those masks, and the window's objects, are what every query's masks give."""
    from astrostatlearn.methods.query_panoptic import window_segments

    torch.manual_seed(2)
    net = build_detr(1, window=64, queries=8, widths=[8, 8, 16, 16], d_model=32, seeds=5).eval()
    with torch.no_grad():
        net.detr.detr.class_labels_classifier.bias.copy_(torch.tensor([0.0, -1.0, 0.5]))
    x = torch.randn(2, 1, 64, 64)
    for y0, x0 in ((10, 40), (44, 8), (30, 30)):
        x[0, 0, y0:y0 + 6, x0:x0 + 6] += 30.0
    with torch.inference_mode():
        full = net(x)
        net.detr.mask_head.floor = 0.3
        part = net(x)
    keep = full.logits.softmax(-1)[..., :2].max(-1).values >= 0.3
    assert 0 < int(keep.sum()) < keep.numel()  # some queries skipped, some kept
    assert torch.allclose(part.pred_masks[keep], full.pred_masks[keep], atol=1e-5)
    for j in range(2):
        a = window_segments(full.logits[j], full.pred_boxes[j], full.pred_masks[j], (64, 64), 0.3)
        b = window_segments(part.logits[j], part.pred_boxes[j], part.pred_masks[j], (64, 64), 0.3)
        np.testing.assert_array_equal(a.labels, b.labels)


def test_seeded_detr_hands_back_its_unets_foreground() -> None:
    net = build_detr(1, window=64, queries=8, widths=[8, 8, 16, 16], d_model=32, seeds=5).eval()
    x = torch.randn(2, 1, 64, 64)
    x[0, 0, 20:30, 20:30] += 30.0
    with torch.inference_mode():
        out = net(x)
        want = torch.sigmoid(net.seeder(x))[:, 0]
    assert out.foreground.shape == (2, 64, 64)
    torch.testing.assert_close(out.foreground.float(), want.float())
    assert float(out.foreground[0, 22:28, 22:28].mean()) > float(out.foreground[1].mean())
    plain = build_detr(1, window=64, queries=8, widths=[8, 8, 16, 16], d_model=32).eval()
    with torch.inference_mode():
        assert getattr(plain(x), "foreground", None) is None
