"""PQ cross-checked against torchmetrics' PanopticQuality (things: galaxy, stuff: void)."""

import numpy as np
import pytest
from scipy import ndimage

from astrostatlearn.metrics import evaluate

torch = pytest.importorskip("torch")
tm = pytest.importorskip("torchmetrics.detection")


def _panoptic_tensor(labels: np.ndarray) -> "torch.Tensor":
    cat = (labels > 0).astype(np.int64)  # 1 = galaxy (thing), 0 = void (stuff)
    inst = labels.astype(np.int64)
    return torch.from_numpy(np.stack([cat, inst], axis=-1))[None]


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_pq_agrees_with_torchmetrics(seed: int) -> None:
    rng = np.random.default_rng(seed)
    t, _ = ndimage.label(ndimage.gaussian_filter(rng.normal(size=(96, 96)), 2) * 6 > 1.0)
    p = np.where(rng.random(t.shape) < 0.15, 0, t)  # drop pixels
    p, _ = ndimage.label(ndimage.binary_opening(p > 0))  # relabel, some objects split or lost
    extra, _ = ndimage.label(ndimage.gaussian_filter(rng.normal(size=(96, 96)), 2) * 6 > 2.0)
    p = np.where((p == 0) & (extra > 0), extra + 1000, p)
    metric = tm.PanopticQuality(things={1}, stuffs={0}, return_per_class=True, return_sq_and_rq=True)
    per_class = metric(_panoptic_tensor(p), _panoptic_tensor(t))  # shape (n_classes, 3): pq, sq, rq
    ev = evaluate(t, p, coco=False)
    # torchmetrics lists things before stuff: row 0 = galaxy (thing), row 1 = void (stuff).
    gal_pq, void_pq = per_class[0, 0].item(), per_class[1, 0].item()
    assert ev.panoptic["galaxy"]["pq"] == pytest.approx(gal_pq, abs=1e-5)
    assert ev.panoptic["void"]["pq"] == pytest.approx(void_pq, abs=1e-5)
    assert ev.panoptic["galaxy"]["sq"] == pytest.approx(per_class[0, 1].item(), abs=1e-5)
    assert ev.panoptic["galaxy"]["rq"] == pytest.approx(per_class[0, 2].item(), abs=1e-5)
    assert ev.panoptic["void"]["sq"] == pytest.approx(per_class[1, 1].item(), abs=1e-5)
    assert ev.panoptic["void"]["rq"] == pytest.approx(per_class[1, 2].item(), abs=1e-5)
    overall = tm.PanopticQuality(things={1}, stuffs={0}, return_sq_and_rq=True)(_panoptic_tensor(p), _panoptic_tensor(t))
    for i, k in enumerate(("pq", "sq", "rq")):  # "all" is the mean over the two classes, as torchmetrics' total
        assert ev.panoptic["all"][k] == pytest.approx(overall[i].item(), abs=1e-5)
