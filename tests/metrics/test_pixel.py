import numpy as np
import pytest

from astrostatlearn.metrics import Confusion, patch_mean, pixel_metrics_from_counts


def test_precision_and_recall_are_not_swapped() -> None:
    # 10 true pixels; the prediction covers 4 of them plus 1 false pixel.
    t = np.zeros((10, 10), bool)
    t[0, :] = True
    p = np.zeros((10, 10), bool)
    p[0, :4] = True
    p[5, 5] = True
    m = Confusion.from_masks(t, p).metrics()
    assert m["precision"] == pytest.approx(4 / 5)
    assert m["recall"] == pytest.approx(4 / 10)
    assert m["iou"] == pytest.approx(4 / 11)
    assert m["dice"] == pytest.approx(8 / 15) == pytest.approx(m["f1"])
    assert m["accuracy"] == pytest.approx(93 / 100)


def test_undefined_metrics_are_nan_and_skipped_in_patch_means() -> None:
    per_patch = pixel_metrics_from_counts(np.array([0, 5]), np.array([0, 0]), np.array([0, 5]), np.array([100, 90]))
    assert np.isnan(per_patch["iou"][0]) and per_patch["iou"][1] == pytest.approx(0.5)
    pm = patch_mean(per_patch)
    assert pm["iou"] == pytest.approx(0.5) and pm["n_patches_iou"] == 1
    assert pm["accuracy"] == pytest.approx((1.0 + 0.95) / 2) and pm["n_patches_accuracy"] == 2
