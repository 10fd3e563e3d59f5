from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from astrostatlearn.errors import InputError
from astrostatlearn.field import Field, Window
from astrostatlearn.methods import load_segmenter
from astrostatlearn.methods.unet import UNet, UNetSegmenter, blend_window, instance_targets


def test_centre_targets_split_touching_objects() -> None:
    inst = np.zeros((20, 30), np.int32)
    inst[5:15, 2:14] = 1
    inst[5:15, 14:28] = 2  # touches object 1
    fg, cen = instance_targets(inst)
    assert fg.sum() == (inst > 0).sum()
    for i in (1, 2):
        assert cen[inst == i].max() == pytest.approx(1.0)
    assert cen[10, 13] < 0.3 and cen[10, 14] < 0.3  # low at the shared border
    assert cen[inst == 0].max() == 0


def test_unet_shapes_and_batchnorm() -> None:
    net = UNet(in_channels=2, width=4, depth=3).eval()
    out = net(torch.zeros(2, 2, 64, 48))
    assert out.shape == (2, 2, 64, 48)
    assert any(isinstance(m, nn.BatchNorm2d) for m in net.modules())
    assert any(isinstance(m, nn.Dropout2d) for m in net.modules())


class Pointwise(nn.Module):
    """A per-pixel 'network': any seam or gap in the tiling would show in its output."""

    multiple = 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x[:, :1] * 0.5, -x[:, :1]], dim=1)


def test_blended_tiled_inference_has_no_seams() -> None:
    img = np.random.default_rng(0).normal(size=(1, 150, 210)).astype(np.float32)
    seg = UNetSegmenter(window=64, overlap=24, batch_size=3)
    seg.net_ = Pointwise()
    prob, centre = seg.predict_maps(img)
    np.testing.assert_allclose(prob, 1 / (1 + np.exp(-0.5 * img[0])), atol=1e-5)
    np.testing.assert_allclose(centre, 1 / (1 + np.exp(img[0])), atol=1e-5)
    w = blend_window(64, 24)
    assert w.max() == 1.0 and w.min() > 0 and np.all(np.diff(w[32, :32]) >= 0)


class ShiftRight(nn.Module):
    """Not rotation-equivariant: each output pixel is its left neighbour's input (wrapping)."""

    multiple = 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = torch.roll(x[:, :1], 1, dims=3)
        return torch.cat([s, -s], dim=1)


def test_tta_maps_every_transform_back() -> None:
    img = np.random.default_rng(1).normal(size=(1, 64, 64)).astype(np.float32)
    seg = UNetSegmenter(window=64, overlap=0)
    seg.net_ = Pointwise()
    p1, _ = seg.predict_maps(img)
    seg.tta = 8
    p8, _ = seg.predict_maps(img)
    np.testing.assert_allclose(p8, p1, atol=1e-6)  # an equivariant net is unchanged by TTA
    seg.net_ = ShiftRight()
    p8, _ = seg.predict_maps(img)
    sig = lambda a: 1 / (1 + np.exp(-a))  # noqa: E731
    # the eight transforms, mapped back, shift by one pixel in each of the four directions twice
    expect = np.mean([sig(np.roll(img[0], d, axis=a)) for a in (0, 1) for d in (1, -1)], axis=0)
    np.testing.assert_allclose(p8, expect, atol=1e-5)
    seg.tta = 3
    with pytest.raises(InputError, match="1, 2, 4 or 8"):
        seg.predict_maps(img)


def test_save_load_roundtrip_in_float16(tmp_path: Path) -> None:
    net = UNet(in_channels=1, width=4, depth=2).eval()
    seg = UNetSegmenter.from_network(net, variant="snr", threshold=0.4)
    path = seg.save(tmp_path / "m.pt")
    back = load_segmenter(path)
    assert isinstance(back, UNetSegmenter) and back.variant == "snr" and back.threshold == 0.4
    x = torch.randn(1, 1, 32, 32)
    torch.testing.assert_close(back.net_(x), net(x), atol=2e-2, rtol=2e-2)
    with pytest.raises(InputError, match="not fitted"):
        UNetSegmenter().predict_maps(np.zeros((1, 8, 8), np.float32))


def test_shipped_model_segments_an_unseen_field(sim_field: Path) -> None:
    """The packaged model on a field whose seed was not used in training."""
    from astropy.io import fits

    from astrostatlearn.metrics import evaluate
    from astrostatlearn.preprocess import fit_variant
    from astrostatlearn.segment import BackgroundMesh, make_tile

    seg = UNetSegmenter.shipped()
    assert seg.variant == "snr"
    with Field.open(sim_field) as f:
        pre = fit_variant(f, seg.variant)
        tile = make_tile(f, pre, BackgroundMesh.from_field(f, pre), Window(0, 512, 0, 512))
    pred = seg.predict(tile)
    ev = evaluate(fits.getdata(sim_field / "true.fits"), pred.labels, coco=False)
    assert ev.pixel["iou"] > 0.7 and ev.detection["f1"] > 0.6, (ev.pixel, ev.detection)


def test_core_seeding_keeps_large_objects_whole_and_splits_touching_ones() -> None:
    from astrostatlearn.methods.instances import core_seeded_instances

    y, x = np.mgrid[:80, :120]
    big = np.hypot(y - 40, x - 30) < 25
    centre = np.clip(1 - np.hypot(y - 40, x - 30) / 25, 0, 1)
    centre += 0.05 * np.sin(x / 2.0) * big  # a bumpy plateau with many local maxima
    pair = (np.hypot(y - 40, x - 80) < 10) | (np.hypot(y - 40, x - 98) < 10)
    centre = np.where(pair, np.maximum(1 - np.hypot(y - 40, x - 80) / 10, 1 - np.hypot(y - 40, x - 98) / 10), centre)
    lab = core_seeded_instances(big | pair, np.clip(centre, 0, 1), core_level=0.5)
    assert len(np.unique(lab[big])) == 1  # the large object is one instance
    assert len(np.unique(lab[pair])) == 2  # the touching pair is split


def test_dynamic_seeding_splits_a_neighbour_whose_centre_merges_above_the_core_level() -> None:
    from astrostatlearn.methods.instances import core_seeded_instances

    y, x = np.mgrid[:80, :120]
    big = np.hypot(y - 40, x - 40) < 30
    small = np.hypot(y - 40, x - 76) < 8
    # Blurry prediction: the big object's centre-ness stays at 0.6 up to the small one, whose
    # own peak reaches 1.0, so their cores touch above core_level=0.5.
    centre = np.where(big, np.clip(1 - np.hypot(y - 40, x - 40) / 75, 0, 1), 0.0)
    centre += 0.03 * np.sin(x / 2.0) * big  # bumps (dynamic ~0.06) on the plateau
    centre = np.maximum(centre, np.where(small, 1 - 0.4 * np.hypot(y - 40, x - 76) / 8, 0.0))
    fg = big | small
    merged = core_seeded_instances(fg, centre, core_level=0.5)
    assert len(np.unique(merged[fg])) == 1
    lab = core_seeded_instances(fg, centre, core_level=0.5, min_dynamic=0.3)
    assert len(np.unique(lab[fg])) == 2
    assert np.mean(lab[small] == lab[40, 76]) > 0.8 and lab[40, 40] != lab[40, 76]
    # and a lone bumpy object is not shattered
    alone = core_seeded_instances(big, np.where(big, centre, 0), core_level=0.5, min_dynamic=0.3)
    assert len(np.unique(alone[big])) == 1


def test_shipped_model_carries_the_tuned_postprocessing() -> None:
    from astrostatlearn.training.shipped import SHIPPED_POSTPROCESS

    params = UNetSegmenter.shipped().get_params()
    assert {k: params[k] for k in SHIPPED_POSTPROCESS} == SHIPPED_POSTPROCESS


def test_local_background_flattens_channel_0_before_the_network() -> None:
    from astrostatlearn.methods.base import Tile

    image = np.random.default_rng(0).standard_normal((1, 64, 64)).astype(np.float32)
    bkg = np.linspace(0, 5, 64, dtype=np.float32)[None, :].repeat(64, 0)  # a gradient of 5 sigma
    valid = np.ones((64, 64), bool)
    valid[0, :3] = False
    tile = Tile(image + bkg[None], bkg, np.ones_like(bkg), valid, Window(0, 64, 0, 64))
    flat = UNetSegmenter(local_background=True).network_input(tile)
    np.testing.assert_allclose(flat[0][valid], image[0][valid], atol=1e-5)
    assert (flat[0][~valid] == 0).all()
    np.testing.assert_allclose(UNetSegmenter(local_background=False).network_input(tile)[0][valid], (image[0] + bkg)[valid])
