import numpy as np
import pytest

from astrostatlearn.metrics import evaluate
from astrostatlearn.metrics import LabelPairs, pq_loss_breakdown


def _maps() -> tuple[np.ndarray, np.ndarray]:
    true = np.zeros((40, 80), np.int32)
    pred = np.zeros_like(true)
    true[2:12, 2:12] = 1       # A, 100 px, touching
    true[2:12, 12:15] = 2      # B, 30 px
    pred[2:12, 2:15] = 10      # one segment for the blend A+B: matches A (IoU 100/130), B merged
    true[20:30, 2:12] = 3      # C, split 70/30
    pred[20:30, 2:9] = 11
    pred[20:30, 9:12] = 12     # the fragment
    true[20:30, 30:40] = 4     # D, missed
    true[2:12, 30:40] = 5      # E, found shifted: covered 60%, IoU 60/170
    pred[2:12, 34:47] = 13
    true[30:34, 20:24] = 6     # F, 16 px, touched by a 2-pixel sliver of a prediction: still missed
    pred[30:34, 24:26] = 15
    pred[30, 23] = 15
    pred[30:34, 60:64] = 14    # a false detection on background
    return true, pred


def test_every_error_is_sorted_by_its_kind() -> None:
    b = pq_loss_breakdown(LabelPairs.from_maps(*_maps()))
    assert (b["tp"], b["fp"], b["fn"]) == (2, 4, 4)
    assert (b["fn_missed"], b["fn_merged"], b["fn_poor_mask"]) == (2, 1, 1)
    assert (b["fp_background"], b["fp_fragment"], b["fp_on_unmatched"]) == (1, 1, 2)
    denom = 2 + 2 + 2
    assert b["pq"] == pytest.approx((100 / 130 + 0.7) / denom)
    assert b["sq"] == pytest.approx((100 / 130 + 0.7) / 2)
    assert b["loss_fp"] == pytest.approx(2 / denom) and b["loss_fn"] == pytest.approx(2 / denom)


def test_loss_terms_add_up_to_one_minus_pq() -> None:
    true, pred = _maps()
    b = pq_loss_breakdown(LabelPairs.from_maps(true, pred))
    assert b["pq"] + b["loss_sq"] + b["loss_fp"] + b["loss_fn"] == pytest.approx(1.0)
    ev = evaluate(true, pred, coco=False)
    assert b["pq"] == pytest.approx(ev.panoptic["galaxy"]["pq"])
    assert ev.errors == b  # evaluate() reports the same breakdown
    assert "not detected 2, merged 1, poor mask 1" in ev.table()


def test_perfect_and_empty_predictions() -> None:
    true, _ = _maps()
    b = pq_loss_breakdown(LabelPairs.from_maps(true, true))
    assert b["pq"] == 1.0 and b["loss_sq"] == b["loss_fp"] == b["loss_fn"] == 0.0
    e = pq_loss_breakdown(LabelPairs.from_maps(true, np.zeros_like(true)))
    assert e["pq"] == 0.0 and e["fn_missed"] == 6 and e["fp"] == 0
