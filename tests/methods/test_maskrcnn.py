"""Mask R-CNN: model composition, the overlap rule, windowed inference and seam-free stitching."""

from pathlib import Path

import numpy as np
import pytest
import torch
from astropy.io import fits
from scipy import ndimage

import astrostatlearn.methods.maskrcnn as mr
from astrostatlearn.errors import InputError
from astrostatlearn.methods import load_segmenter
from astrostatlearn.methods.maskrcnn import (MaskRCNNSegmenter, build_maskrcnn, detect, share_bounds, unet_proposals,
                                             window_starts)
from astrostatlearn.methods.maskrcnn_paste import paste_instances


def test_model_is_sized_for_crowded_windows_and_never_rescales() -> None:
    net = build_maskrcnn(2, window=128).eval()
    assert net.roi_heads.detections_per_img >= 400
    assert net.rpn._post_nms_top_n["testing"] >= net.roi_heads.detections_per_img  # a proposal for every detection
    sizes = [s for level in net.rpn.anchor_generator.sizes for s in level]
    assert min(sizes) <= 4 and max(sizes) >= 48
    images, _ = net.transform([torch.zeros(2, 128, 128)])
    assert tuple(images.tensors.shape[-2:]) == (128, 128)  # min_size = max_size = window: no rescaling
    with torch.inference_mode():
        dets = detect(net, torch.randn(1, 2, 128, 128))
    assert dets[0]["masks"].shape[-2:] == (28, 28) and dets[0]["boxes"].shape[1] == 4


def test_training_crops_keep_their_pixel_scale() -> None:
    """A 128^2 training crop for a 256^2-window model is not upsampled (torchvision's transform
    would double it, and its boxes), in training and in eval mode alike."""
    net = build_maskrcnn(1, window=256)
    target = {"boxes": torch.tensor([[10.0, 12.0, 20.0, 30.0]]), "labels": torch.tensor([1]),
              "masks": torch.zeros(1, 128, 128, dtype=torch.uint8)}
    for mode in (net.train, net.eval):
        mode()
        images, targets = net.transform([torch.randn(1, 128, 128)], [target])
        assert images.image_sizes == [(128, 128)] and tuple(images.tensors.shape[-2:]) == (128, 128)
        torch.testing.assert_close(targets[0]["boxes"], target["boxes"])


def test_model_computes_its_own_losses() -> None:
    net = build_maskrcnn(1, window=64).train()
    mask = np.zeros((64, 64), np.uint8)
    mask[10:20, 30:42] = 1
    target = {"boxes": torch.tensor([[30.0, 10.0, 42.0, 20.0]]), "labels": torch.tensor([1]),
              "masks": torch.from_numpy(mask[None])}
    losses = net([torch.randn(1, 64, 64)], [target])
    assert {"loss_classifier", "loss_box_reg", "loss_mask", "loss_objectness", "loss_rpn_box_reg"} <= set(losses)
    assert all(torch.isfinite(v) for v in losses.values())


@pytest.mark.parametrize("size", [100, 256, 500, 1000])
def test_window_shares_partition_the_axis(size: int) -> None:
    starts = window_starts(size, 256, 64)
    bounds = share_bounds(starts, 256, size)
    assert starts[0] == 0 and (size <= 256 or starts[-1] + 256 == size)
    assert bounds[0][0] == 0 and bounds[-1][1] == size
    for (lo, hi), (lo2, _), s in zip(bounds, bounds[1:], starts):
        assert hi == lo2 and s <= lo and hi <= s + 256  # contiguous, each inside its window
    for (lo, hi), s in zip(bounds, starts):
        # Every object of radius <= overlap/2 centred in a share lies inside the window.
        assert lo - 32 >= s or s == 0
        assert hi + 32 <= s + 256 or s + 256 >= size


def _disk_detector(net, batch, *_):
    """A stand-in network: each connected bright region of a window is one detection."""
    out = []
    for img in batch.numpy():
        lab, n = ndimage.label(img[0] > 0.5)
        boxes, masks = [], []
        for k, sl in enumerate(ndimage.find_objects(lab)):
            boxes.append([sl[1].start, sl[0].start, sl[1].stop, sl[0].stop])
            crop = (lab[sl] == k + 1).astype(np.float32)
            zoom = ndimage.zoom(crop, (28 / crop.shape[0], 28 / crop.shape[1]), order=0)
            masks.append(zoom[:28, :28])
        out.append({"boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
                    "scores": torch.full((n,), 0.9), "masks": torch.tensor(np.array(masks)).reshape(-1, 1, 28, 28)})
    return out


def test_objects_across_window_and_tile_borders_get_one_id(tmp_path: Path, monkeypatch) -> None:
    from astrostatlearn.field import Field
    from astrostatlearn.segment import segment_field

    ny = nx = 600
    yy, xx = np.mgrid[:ny, :nx]
    img = np.zeros((ny, nx), np.float32)
    centres = [(y, x) for y in range(20, ny - 20, 47) for x in range(25, nx - 20, 53)]  # many straddle borders
    for y, x in centres:
        img[(yy - y) ** 2 + (xx - x) ** 2 <= 36] = 10.0
    d = tmp_path / "field"
    d.mkdir()
    fits.writeto(d / "img.fits", img)
    fits.writeto(d / "rms.fits", np.ones_like(img))
    monkeypatch.setattr(mr, "detect", _disk_detector)
    seg = MaskRCNNSegmenter(variant="raw", window=128, overlap=32)
    seg.net_ = build_maskrcnn(1, window=128).eval()
    with Field.open(d) as f:
        res = segment_field(f, seg, tmp_path / "out", variant="raw", tile=200, halo=64, scheduler="threads", workers=2)
    labels = fits.getdata(tmp_path / "out" / "segmentation.fits")
    truth, n_true = ndimage.label(img > 0.5)
    assert res.n_objects == n_true == len(centres)
    # Each object exactly once: every disk is one whole ID, and no ID spans two disks.
    for k in range(1, n_true + 1):
        ids = np.unique(labels[truth == k])
        assert ids.size == 1 and ids[0] > 0
    assert len(np.unique(labels[labels > 0])) == n_true
    from astropy.table import Table

    cat = Table.read(tmp_path / "out" / "catalog.ecsv")
    np.testing.assert_allclose(cat["score"], 0.9, atol=1e-6)
    assert {"box_y0", "box_x1"} <= set(cat.colnames)


def test_detections_below_the_snr_cut_go_with_their_records(monkeypatch) -> None:
    """The significance cut that the U-Net applies (``min_snr``, default 5) drops a detector's
    faint detections, their instance records and their score-map pixels."""
    from astrostatlearn.field.windows import Window
    from astrostatlearn.methods.base import Tile

    image = np.random.default_rng(0).standard_normal((1, 128, 128)).astype(np.float32)
    squares = [(10, 10, 3.0), (60, 80, 0.2), (90, 20, 3.0)]  # (y0, x0, amplitude): S/N 30, 2, 30 over 10 x 10 px
    for y, x, a in squares:
        image[0, y:y + 10, x:x + 10] += a

    def fixed_detector(net, batch, *_):
        boxes = torch.tensor([[x, y, x + 10, y + 10] for y, x, _ in squares], dtype=torch.float32)
        return [{"boxes": boxes, "scores": torch.tensor([0.9, 0.8, 0.7]), "masks": torch.ones(3, 1, 28, 28)}]

    monkeypatch.setattr(mr, "detect", fixed_detector)
    tile = Tile(image, np.zeros((128, 128), np.float32), np.ones((128, 128), np.float32), np.ones((128, 128), bool),
                Window(0, 128, 0, 128))
    seg = MaskRCNNSegmenter(variant="raw", window=128, overlap=32)
    seg.net_ = build_maskrcnn(1, window=128).eval()
    kept = seg.predict(tile)
    assert set(np.unique(kept.labels)) == {0, 1, 3} and list(kept.instances.ids) == [1, 3]
    np.testing.assert_allclose(kept.instances.scores, [0.9, 0.7])
    assert (kept.score[60:70, 80:90] == 0).all() and (kept.score[10:20, 10:20] > 0).all()
    every = seg.set_options({"min_snr": "none", "isophote": "none"}).predict(tile)
    assert set(np.unique(every.labels)) == {0, 1, 2, 3} and len(every.instances) == 3
    # The isophote trim alone removes no object, not even the 0.2-sigma square, all of whose pixels are below it.
    trimmed = seg.set_options({"min_snr": "none", "isophote": "0.5"}).predict(tile)
    assert set(np.unique(trimmed.labels)) == {0, 1, 2, 3} and len(trimmed.instances) == 3
    assert (trimmed.labels[10:20, 10:20] == 1).all() and (trimmed.labels[60:70, 80:90] == 2).all()
    with pytest.raises(InputError, match="min_snr"):
        seg.set_options({"min_snr": "-1"})


def test_save_load_round_trip_and_channel_check(tmp_path: Path) -> None:
    seg = MaskRCNNSegmenter(variant="soft+rms", window=64)
    seg.net_ = build_maskrcnn(2, window=64).eval()
    seg.save(tmp_path / "m.pt")
    back = load_segmenter(tmp_path / "m.pt")
    assert isinstance(back, MaskRCNNSegmenter) and back.trained_variant == "soft+rms" and back.window == 64
    a = seg.net_.state_dict()
    for k, v in back.net_.state_dict().items():
        torch.testing.assert_close(v, a[k].to(v.dtype), atol=1e-2, rtol=1e-2)  # stored as float16
    with pytest.raises(InputError, match="takes 2 channels"):
        back.detect_windows(np.zeros((1, 64, 64), np.float32))


@pytest.mark.parametrize("shape", [(100, 300), (256, 256), (300, 520)])
def test_window_maps_stitch_into_the_whole_image(shape, monkeypatch) -> None:
    """Each window's foreground fills exactly its own share: the stitched map of a stand-in
    network whose foreground is its input is the input, with no seam or gap."""
    image = np.random.default_rng(1).random((1, *shape)).astype(np.float32)

    def echo(net, batch, *_):
        return [{"boxes": torch.zeros(0, 4), "scores": torch.zeros(0), "masks": torch.zeros(0, 1, 28, 28),
                 "foreground": b[0] + 0.0} for b in batch]

    monkeypatch.setattr(mr, "detect", echo)
    seg = MaskRCNNSegmenter(variant="raw", window=128, overlap=32)
    seg.net_ = build_maskrcnn(1, window=128).eval()
    d = seg.detect_windows(image)
    assert d.boxes.shape == (0, 4) and d.foreground.shape == shape
    np.testing.assert_array_equal(d.foreground, image[0])


def test_unet_backbone_gives_a_full_resolution_foreground() -> None:
    with torch.inference_mode():
        unet = detect(build_maskrcnn(1, window=64, backbone="unet").eval(), torch.randn(2, 1, 64, 64))
        galaxy = detect(build_maskrcnn(1, window=64).eval(), torch.randn(2, 1, 64, 64))
    fg = unet[0]["foreground"]
    assert fg.shape == (64, 64) and float(fg.min()) >= 0 and float(fg.max()) <= 1
    assert "foreground" not in galaxy[0]


def test_foreground_weight_outside_0_1_is_refused() -> None:
    with pytest.raises(InputError, match="foreground_weight"):
        MaskRCNNSegmenter().set_options({"foreground_weight": "1.5"})


def test_local_background_flattens_what_the_network_reads(monkeypatch) -> None:
    from astrostatlearn.field.windows import Window
    from astrostatlearn.methods.base import Tile

    seen = []

    def record(net, batch, *_):
        seen.append(batch.numpy().copy())
        return [{"boxes": torch.zeros(0, 4), "scores": torch.zeros(0), "masks": torch.zeros(0, 1, 28, 28)}
                for _ in batch]

    monkeypatch.setattr(mr, "detect", record)
    image = np.random.default_rng(2).standard_normal((1, 128, 128)).astype(np.float32)
    bkg = np.linspace(0, 5, 128, dtype=np.float32)[None, :].repeat(128, 0)
    tile = Tile(image + bkg[None], bkg, np.ones_like(bkg), np.ones((128, 128), bool), Window(0, 128, 0, 128))
    seg = MaskRCNNSegmenter(variant="raw", window=128, overlap=32)
    seg.net_ = build_maskrcnn(1, window=128).eval()
    seg.predict(tile)
    np.testing.assert_allclose(seen[-1][0], image + bkg[None], atol=1e-5)
    seg.set_options({"local_background": "true"}).predict(tile)
    np.testing.assert_allclose(seen[-1][0], image, atol=1e-5)


def test_unet_proposals_are_the_unet_objects_boxes() -> None:
    """Two touching disks with a centre-ness core each become two boxes (the U-Net's own
    decoding), and a blank map none."""
    yy, xx = np.mgrid[:64, :64]
    fg, centre = np.zeros((64, 64), np.float32), np.zeros((64, 64), np.float32)
    for y, x in ((30, 20), (30, 31)):
        r = np.hypot(yy - y, xx - x)
        fg[r <= 6] = 1.0
        centre = np.maximum(centre, np.clip(1 - r / 6, 0, 1))
    maps = torch.from_numpy(np.stack([np.stack([fg, centre]), np.zeros((2, 64, 64), np.float32)]))
    boxes = unet_proposals(maps)
    assert boxes[1].shape == (0, 4)
    b = boxes[0][boxes[0][:, 0].argsort()].numpy()
    assert b.shape == (2, 4)
    assert b[0, 0] == 14 and b[1, 2] == 38 and (b[:, 1] == 24).all() and (b[:, 3] == 37).all()


@pytest.mark.parametrize("propose", [True, False])
def test_the_box_head_sees_the_unet_objects_only_when_asked(propose: bool, monkeypatch) -> None:
    net = build_maskrcnn(1, window=64, backbone="unet").eval()
    marker = torch.tensor([[3.0, 5.0, 17.0, 29.0]])
    monkeypatch.setattr(mr, "unet_proposals", lambda maps: [marker] * maps.shape[0])
    seen = []
    heads = net.roi_heads.forward

    def spy(features, proposals, sizes, targets=None):
        seen.append(proposals)
        return heads(features, proposals, sizes, targets)

    monkeypatch.setattr(net.roi_heads, "forward", spy)
    with torch.inference_mode():
        detect(net, torch.randn(2, 1, 64, 64), propose_unet_objects=propose)
    assert len(seen[0]) == 2
    assert all(bool((p == marker).all(1).any()) == propose for p in seen[0])
    galaxy = build_maskrcnn(1, window=64).eval()  # a galaxy backbone has no U-Net objects to propose
    with torch.inference_mode():
        assert detect(galaxy, torch.randn(1, 1, 64, 64), propose_unet_objects=True)[0]["boxes"].shape[1] == 4


def test_post_processing_options_are_checked() -> None:
    for name in ("foreground_scoring", "max_occluded"):
        with pytest.raises(InputError, match=name):
            MaskRCNNSegmenter().set_options({name: "1.5"})
    with pytest.raises(InputError, match="overlap_rule must be one of score, mask"):
        MaskRCNNSegmenter().set_options({"overlap_rule": "area"})
    assert MaskRCNNSegmenter().set_options({"overlap_rule": "score"}).paste_rule().overlap_rule == "score"


def test_the_shipped_model_segments_an_unseen_field(sim_field: Path) -> None:
    """The packaged model (fine-tuned heads, tuned post-processing) on a field whose seed no training used."""
    from astrostatlearn.field import Field
    from astrostatlearn.methods import default_segmenter
    from astrostatlearn.metrics import evaluate
    from astrostatlearn.preprocess import fit_variant
    from astrostatlearn.segment import BackgroundMesh, make_tile

    seg = default_segmenter("maskrcnn")
    assert seg.trained_variant == "snr" and seg.unet_proposals and seg.min_snr == 5.0
    with Field.open(sim_field) as f:
        pre = fit_variant(f, seg.trained_variant)
        tile = make_tile(f, pre, BackgroundMesh.from_field(f, pre), f.full)
    pred = seg.predict(tile)
    ev = evaluate(fits.getdata(sim_field / "true.fits"), pred.labels, coco=False)
    assert ev.pixel["iou"] > 0.8 and ev.panoptic["galaxy"]["pq"] > 0.6, (ev.pixel, ev.panoptic)  # 0.876, 0.709
    assert len(pred.instances) == len(np.unique(pred.labels[pred.labels > 0]))  # one record per object
    assert np.all((pred.instances.scores > 0) & (pred.instances.scores <= 1))


def test_the_score_floor_skips_only_detections_that_cannot_be_kept(sim_field: Path) -> None:
    """The shipped model detects from its rule's class score floor, and pastes exactly the objects
    it pastes from every detection the network reports."""
    from astrostatlearn.field import Field
    from astrostatlearn.methods import default_segmenter
    from astrostatlearn.preprocess import fit_variant
    from astrostatlearn.segment import BackgroundMesh, make_tile

    seg = default_segmenter("maskrcnn")
    with Field.open(sim_field) as f:
        pre = fit_variant(f, seg.trained_variant)
        tile = make_tile(f, pre, BackgroundMesh.from_field(f, pre), f.full)
    image = tile.network_input(seg.local_background)
    floored, every = seg.detect_windows(image), seg.detect_windows(image, every=True)
    assert floored.scores.min() >= seg.paste_rule().class_score_floor() and every.scores.min() < 0.1
    assert len(floored.scores) < len(every.scores)  # the mask head ran on fewer boxes
    a, b = (paste_instances(d, tile.valid.shape, seg.paste_rule()) for d in (floored, every))
    assert a.kept.size > 20
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_allclose(a.scores, b.scores)
