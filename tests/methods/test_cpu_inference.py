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
