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
