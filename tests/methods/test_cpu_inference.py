"""The CPU fast path (OpenVINO) agrees with the PyTorch reference, and its options are checked."""

import pickle

import numpy as np
import pytest

from astrostatlearn.errors import InputError
from astrostatlearn.methods.unet import UNetSegmenter

pytest.importorskip("openvino")


@pytest.fixture(scope="module")
def snr_tile(tiles_by_variant):
    _, test = tiles_by_variant["snr"]
    return test


def _maps(tile, **params):
    seg = UNetSegmenter.shipped().set_params(**params)
    img = np.where(tile.valid[None], tile.image, 0.0).astype(np.float32)
    prob, centre = seg.predict_maps(img)
    return seg, prob, centre, seg.predict(tile).labels


def _fg_iou(a, b):
    return (a & b).sum() / max((a | b).sum(), 1)


def test_openvino_float32_equals_torch(snr_tile) -> None:
    _, p_ref, c_ref, lab_ref = _maps(snr_tile, engine="torch")
    _, p, c, lab = _maps(snr_tile, engine="openvino", precision="f32")
    assert np.abs(p - p_ref).max() < 1e-4 and np.abs(c - c_ref).max() < 1e-4
    np.testing.assert_array_equal(lab > 0, lab_ref > 0)
    assert lab.max() == lab_ref.max() > 5


def test_openvino_default_precision_agrees_with_torch(snr_tile) -> None:
    """bf16 where the CPU has it: maps within a few percent, the same foreground and objects."""
    _, p_ref, _, lab_ref = _maps(snr_tile, engine="torch")
    seg, p, _, lab = _maps(snr_tile, engine="auto")
    assert seg._compiled._nets  # auto chose OpenVINO on the CPU
    assert np.abs(p - p_ref).mean() < 0.005 and np.abs(p - p_ref).max() < 0.15
    assert _fg_iou(lab > 0, lab_ref > 0) > 0.99
    assert abs(int(lab.max()) - int(lab_ref.max())) <= max(1, lab_ref.max() // 50)


def test_compiled_networks_are_not_pickled_and_rebuilt_after(snr_tile) -> None:
    seg, p, _, _ = _maps(snr_tile, engine="openvino", precision="f32")
    clone = pickle.loads(pickle.dumps(seg))
    assert not clone._compiled._nets
    img = np.where(snr_tile.valid[None], snr_tile.image, 0.0).astype(np.float32)
    np.testing.assert_allclose(clone.predict_maps(img)[0], p, atol=1e-6)


@pytest.mark.parametrize("params,match", [({"engine": "tensorrt"}, "engine must be one of"),
                                          ({"precision": "int4"}, "precision must be one of"),
                                          ({"engine": "openvino", "device": "cuda"}, "runs on the CPU")])
def test_bad_engine_options_are_one_clear_error(snr_tile, params, match) -> None:
    seg = UNetSegmenter.shipped().set_params(**params)
    with pytest.raises(InputError, match=match):
        seg.predict(snr_tile)


# -- Mask R-CNN: its backbone compiled, the RPN and RoI heads in PyTorch ----------------------

def _maskrcnn(tile, **params):
    from astrostatlearn.methods import default_segmenter

    seg = default_segmenter("maskrcnn").set_params(**params)
    return seg, seg.predict(tile)


def test_maskrcnn_backbone_compiled_in_float32_gives_torchs_objects(snr_tile) -> None:
    _, ref = _maskrcnn(snr_tile, engine="torch")
    seg, out = _maskrcnn(snr_tile, engine="openvino", precision="f32")
    assert seg._compiled._nets  # the backbone was compiled, for a short batch (3 windows of 4) too
    assert ref.labels.max() > 5
    np.testing.assert_array_equal(out.labels, ref.labels)
    np.testing.assert_allclose(out.instances.scores, ref.instances.scores, atol=1e-3)


def test_maskrcnn_default_engine_agrees_with_torch(snr_tile) -> None:
    """bf16 where the CPU has it: the same foreground and objects, within a pixel's worth of edges."""
    _, ref = _maskrcnn(snr_tile, engine="torch")
    seg, out = _maskrcnn(snr_tile)
    assert seg._compiled._nets  # auto chose OpenVINO on the CPU
    assert _fg_iou(out.labels > 0, ref.labels > 0) > 0.98
    assert abs(int(out.labels.max()) - int(ref.labels.max())) <= max(1, ref.labels.max() // 20)


def test_maskrcnn_compiled_backbone_is_not_pickled_and_level_names_match(snr_tile) -> None:
    import torch

    seg, out = _maskrcnn(snr_tile, engine="openvino", precision="f32")
    clone = pickle.loads(pickle.dumps(seg))
    assert not clone._compiled._nets
    np.testing.assert_array_equal(clone.predict(snr_tile).labels, out.labels)
    with torch.no_grad():
        feats, _ = seg.net_.backbone.features(torch.zeros(1, 1, 64, 64))
    assert list(feats) == seg.net_.backbone.level_names()


@pytest.mark.parametrize("params,match", [({"engine": "tensorrt"}, "engine must be one of"),
                                          ({"precision": "int4"}, "precision must be one of")])
def test_maskrcnn_bad_engine_options_are_one_clear_error(snr_tile, params, match) -> None:
    from astrostatlearn.methods import default_segmenter

    with pytest.raises(InputError, match=match):
        default_segmenter("maskrcnn").set_params(**params).predict(snr_tile)


def test_maskrcnn_galaxy_backbone_compiles_too() -> None:
    """A backbone without the U-Net's maps (``backbone='galaxy'``): the compiled float32 path gives
    PyTorch's detections, and no foreground."""
    import torch

    from astrostatlearn.methods.maskrcnn import MaskRCNNSegmenter, build_maskrcnn

    torch.manual_seed(0)
    net = build_maskrcnn(2, window=64, widths=(8, 8, 16, 16), fpn_channels=16).eval()
    image = np.random.default_rng(2).normal(size=(2, 100, 150)).astype(np.float32)
    dets = {}
    for engine in ("torch", "openvino"):
        seg = MaskRCNNSegmenter(variant="soft+rms", window=64, overlap=16, engine=engine, precision="f32")
        seg.net_ = net
        dets[engine] = seg.detect_windows(image)
    ref, out = dets["torch"], dets["openvino"]
    assert ref.boxes.shape[0] > 0 and out.foreground is None
    np.testing.assert_allclose(out.boxes, ref.boxes, atol=1e-2)
    np.testing.assert_allclose(out.scores, ref.scores, atol=1e-4)
