"""Mask2Former: a model built from its config alone at half resolution, its own losses by term, boxes
from its masks, and windows at the query limit through the shared query-model contract."""

from pathlib import Path

import numpy as np
import pytest
import torch

from astrostatlearn.methods.mask2former import Mask2FormerSegmenter, build_mask2former
from astrostatlearn.methods.query_panoptic import GALAXY, SATURATED, VOID, window_segments
from astrostatlearn.training.mask2former import Mask2FormerTask
from astrostatlearn.training.query_panoptic import panoptic_targets

SMALL = {"window": 64, "widths": [8, 8, 16, 16], "hidden": 32, "decoder_layers": 2, "points": 256}


def test_model_is_built_from_scratch_for_any_channel_count() -> None:
    net = build_mask2former(3, queries=24, **{k: v for k, v in SMALL.items() if k != "window"}).eval()
    cfg = net.m2f.config
    assert cfg.use_pretrained_backbone is False and cfg.backbone_config.model_type == "resnet"
    assert cfg.backbone_config.num_channels == 3 and cfg.num_queries == 24 and cfg.num_labels == 2
    assert all(p.requires_grad for p in net.parameters())
    with torch.inference_mode():
        out = net(torch.randn(2, 3, 64, 64))
    assert out.logits.shape == (2, 24, 3)
    assert out.pred_masks.shape == (2, 24, 32, 32)  # no stem max-pool, common stride 2: half resolution


def _targets(n: int, size: int = 64) -> dict:
    inst = np.zeros((size, size), np.int32)
    for k in range(n):
        inst[4 + 12 * k:10 + 12 * k, 5:13] = k + 1
    return panoptic_targets(inst)


def test_model_computes_its_own_loss_by_term() -> None:
    torch.manual_seed(0)
    net = build_mask2former(1, queries=16, **SMALL).train()
    batch = ([torch.randn(1, 64, 64), torch.randn(1, 64, 64)], [_targets(2), _targets(4)])
    terms = Mask2FormerTask().losses(net, batch)
    assert set(terms) == {"ce", "mask", "dice", "aux"}
    assert all(torch.isfinite(v) and v > 0 for v in terms.values())
    # The logged terms are the model's own loss, split.
    images, targets = batch
    torch.manual_seed(1)
    own = net(torch.stack(images), labels=[{"class_labels": t["class_labels"], "masks": t["masks"]} for t in targets])
    assert own.loss.item() == pytest.approx(sum(own.loss_dict.values()).item())
    sum(terms.values()).backward()
    assert net.m2f.class_predictor.weight.grad is not None and net.m2f.class_predictor.weight.grad.abs().sum() > 0


def test_boxes_come_from_the_masks_without_a_box_head() -> None:
    logits = torch.tensor([[4.0, -4.0, -4.0], [-4.0, 4.0, -4.0], [-4.0, -4.0, 4.0]])  # galaxy, void, no object
    masks = torch.full((3, 16, 16), -8.0)
    masks[0, 2:6, 3:9] = 8.0
    masks[1] = 8.0
    masks[1, 2:6, 3:9] = -8.0
    ws = window_segments(logits, None, masks, (16, 16))
    assert ws.labels.max() == 1 and (ws.labels == 1).sum() == 24
    assert ws.boxes.tolist() == [[2, 3, 6, 9]]  # (y0, x0, y1, x1), half-open
    assert ws.scores[0] == pytest.approx(torch.softmax(logits[0], 0)[GALAXY].item())
    assert GALAXY != VOID


def test_saturated_windows_are_counted_and_warned(sim_field: Path, tmp_path: Path) -> None:
    import json
    import warnings

    from astrostatlearn.field import Field
    from astrostatlearn.segment.run import prepare_and_segment

    torch.manual_seed(0)
    net = build_mask2former(1, queries=4, **SMALL)
    with torch.no_grad():
        net.m2f.class_predictor.bias.copy_(torch.tensor([20.0, 0.0, 0.0]))  # every query says "galaxy"
    seg = Mask2FormerSegmenter.from_network(net, "snr", score_threshold=0.0)
    with Field.open(sim_field) as f, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        prepare_and_segment(f, seg, tmp_path / "seg", variant="snr", tile=256, progress=False)
    run = json.loads((tmp_path / "seg" / "run.json").read_text())
    assert run["method_counters"][SATURATED] > 0
    assert any("mask2former windows used all 4 queries" in str(w.message) for w in caught)


def test_the_shipped_model_loads_and_finds_the_galaxies_of_a_field(sim_field: Path, tmp_path: Path) -> None:
    from importlib import resources

    from astrostatlearn.field import Field, open_image
    from astrostatlearn.methods import default_segmenter
    from astrostatlearn.metrics import evaluate
    from astrostatlearn.segment.run import prepare_and_segment

    path = resources.files("astrostatlearn") / "data" / "mask2former-default.pt"
    assert path.stat().st_size < 30e6
    seg = default_segmenter("mask2former")
    assert seg.is_fitted and seg.trained_variant == "snr" and seg.net_.config["queries"] >= 32
    with Field.open(sim_field) as f:
        res = prepare_and_segment(f, seg, tmp_path / "seg", variant="snr", tile=256, progress=False)
    ev = evaluate(open_image(sim_field / "true.fits"), open_image(tmp_path / "seg" / "segmentation.fits"), coco=False)
    assert res.n_objects > 10 and ev.detection["completeness"] > 0.3 and ev.panoptic["galaxy"]["pq"] > 0.2
