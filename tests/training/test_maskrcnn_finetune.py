"""Fine-tuning Mask R-CNN (``train_maskrcnn(init=...)``): it starts from the model's weights, or refuses."""

from pathlib import Path

import pytest
import torch

from astrostatlearn.errors import InputError
from astrostatlearn.methods.maskrcnn import MaskRCNNSegmenter, build_maskrcnn
from astrostatlearn.training.maskrcnn import start_from_model

TINY = {"widths": (8, 8, 16, 16), "fpn_channels": 16, "backbone": "galaxy"}


def saved_model(path: Path, variant: str = "snr") -> dict[str, torch.Tensor]:
    torch.manual_seed(1)
    net = build_maskrcnn(1, window=64, **TINY).eval()
    MaskRCNNSegmenter.from_network(net, variant=variant, score_threshold=0.15, max_occluded=0.4).save(path)
    return net.state_dict()


def test_fine_tuning_starts_from_the_models_weights(tmp_path: Path) -> None:
    start = saved_model(tmp_path / "m.pt")
    torch.manual_seed(2)
    net = build_maskrcnn(1, window=64, **TINY)
    key = "roi_heads.box_predictor.cls_score.weight"
    assert not torch.allclose(net.state_dict()[key], start[key], atol=1e-2)
    params = start_from_model(net, tmp_path / "m.pt", "snr")
    assert params["score_threshold"] == 0.15 and params["max_occluded"] == 0.4  # the fine-tuned model keeps them
    for k, v in net.state_dict().items():
        assert v.dtype == start[k].dtype  # float16 on disk, float32 to train
        torch.testing.assert_close(v, start[k], atol=1e-2, rtol=1e-2)
    # The fine-tuned model is saved as training saves it, with those settings.
    MaskRCNNSegmenter.from_network(net, "snr", **params).save(tmp_path / "tuned.pt")
    assert MaskRCNNSegmenter.load_file(tmp_path / "tuned.pt").max_occluded == 0.4


def test_fine_tuning_refuses_another_network_or_variant(tmp_path: Path) -> None:
    saved_model(tmp_path / "m.pt")
    wider = build_maskrcnn(1, window=64, **dict(TINY, fpn_channels=32))
    with pytest.raises(InputError, match="cannot fine-tune"):
        start_from_model(wider, tmp_path / "m.pt", "snr")
    with pytest.raises(InputError, match="cannot fine-tune"):
        start_from_model(build_maskrcnn(1, window=64, **TINY), tmp_path / "m.pt", "raw")
