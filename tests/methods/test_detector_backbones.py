"""Detector backbones: the U-Net body reproduces the U-Net's features, stays frozen, and round-trips."""

from pathlib import Path

import pytest
import torch

from astrostatlearn.methods.detector_backbones import GalaxyBackbone, UNetFeatures, build_body
from astrostatlearn.methods.maskrcnn import MaskRCNNSegmenter, build_maskrcnn
from astrostatlearn.methods.unet import UNet, UNetSegmenter
from astrostatlearn.training.maskrcnn import start_unet_backbone


def test_unet_body_gives_the_unets_own_features_and_output_maps() -> None:
    torch.manual_seed(0)
    unet = UNet(1, width=8).eval()
    body = UNetFeatures(unet.config)
    body.load_unet(unet.state_dict())
    body.eval()
    x = torch.randn(2, 1, 64, 64) * 5
    captured = {}
    unet.dec[2].register_forward_hook(lambda m, i, o: captured.setdefault("s2", o))
    unet.dec[1].register_forward_hook(lambda m, i, o: captured.setdefault("s4", o))
    unet.dec[0].register_forward_hook(lambda m, i, o: captured.setdefault("s8", o))
    unet.down[4].register_forward_hook(lambda m, i, o: captured.setdefault("s16", o))
    with torch.no_grad():
        maps = torch.sigmoid(unet(x))
        out = body(x)
    assert [tuple(out[k].shape) for k in body.pyramid] == [(2, 18, 32, 32), (2, 34, 16, 16), (2, 64, 8, 8),
                                                           (2, 128, 4, 4)]
    assert body.channels == [18, 34, 64, 128] and len(body.anchor_sizes) == len(body.pyramid) + 1
    for name, stride, w in (("s2", 2, 16), ("s4", 4, 32)):
        assert torch.allclose(out[name][:, :w], captured[name], atol=1e-5)
        # the U-Net's foreground and centre-ness, max-pooled to the level's stride
        assert torch.allclose(out[name][:, w:], torch.nn.functional.max_pool2d(maps, stride), atol=1e-5)
    for k in ("s8", "s16"):
        assert torch.allclose(out[k], captured[k], atol=1e-5)


def test_frozen_unet_takes_no_gradient_and_keeps_its_batchnorm_statistics() -> None:
    body = UNetFeatures(UNet(1, width=8).config).train()
    assert not body.unet.training and body.dec.training
    before = body.unet.down[0][1].running_mean.clone()
    out = body(torch.randn(2, 1, 32, 32) * 10)
    sum(v.sum() for v in out.values()).backward()
    assert all(p.grad is None for p in body.unet.parameters())
    assert all(p.grad is not None for p in body.dec.parameters())
    assert torch.equal(body.unet.down[0][1].running_mean, before)
    body.freeze(False)
    assert body.unet.training and all(p.requires_grad for p in body.unet.parameters())
    out = body(torch.randn(2, 1, 32, 32))
    sum(v.sum() for v in out.values()).backward()
    assert body.unet.down[0][0].weight.grad is not None


def test_unet_backbone_starts_from_the_shipped_unet_and_round_trips(tmp_path: Path) -> None:
    net = build_maskrcnn(1, window=64, backbone="unet")
    assert start_unet_backbone(net.backbone.body, "snr", 1)
    shipped = UNetSegmenter.shipped().net_.state_dict()
    assert torch.equal(net.backbone.body.unet.down[2][0].weight, shipped["down.2.0.weight"])
    assert torch.equal(net.backbone.body.dec[1][0].weight, shipped["dec.1.0.weight"])
    assert not any(p.requires_grad for p in net.backbone.body.unet.parameters())
    path = MaskRCNNSegmenter.from_network(net.eval(), "snr").save(tmp_path / "m.pt")
    back = MaskRCNNSegmenter.load_file(path)
    assert isinstance(back.net_.backbone.body, UNetFeatures) and back.net_.config["backbone"] == "unet"
    x = torch.randn(1, 1, 64, 64)
    with torch.no_grad():  # the file stores float16 weights
        a, b = net.backbone(x)["0"], back.net_.eval().backbone(x)["0"]
    assert torch.allclose(a, b, atol=0.05 * float(a.abs().max()))


def test_unet_backbone_for_another_variant_trains_from_scratch() -> None:
    net = build_maskrcnn(2, window=64, backbone="unet")
    with pytest.warns(UserWarning, match="from scratch"):
        assert not start_unet_backbone(net.backbone.body, "soft+rms", 2)
    assert all(p.requires_grad for p in net.backbone.body.parameters())


def test_unknown_backbone_is_refused() -> None:
    assert isinstance(build_body(3, "galaxy", (8, 16, 24, 32), None), GalaxyBackbone)
    with pytest.raises(ValueError, match="unknown backbone"):
        build_body(1, "resnet", (8, 16, 24, 32), None)
