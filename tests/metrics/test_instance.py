import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra.numpy import arrays

from astrostatlearn.metrics import LabelPairs, evaluate, match_instances

from . import reference


def label_maps(max_side: int = 14, max_label: int = 6):
    """Random label maps with non-contiguous, large IDs."""
    side = st.integers(2, max_side)
    return st.tuples(side, side, st.integers(0, 2**20)).flatmap(
        lambda s: arrays(np.int32, (s[0], s[1]), elements=st.integers(0, max_label)).map(
            lambda a: np.where(a > 0, a * 1009 + s[2], 0).astype(np.int32)))


@st.composite
def pair_of_maps(draw):
    t = draw(label_maps())
    p = draw(arrays(np.int32, t.shape, elements=st.integers(0, 6)))
    # Often make the prediction a perturbed copy of the truth, so that matches happen.
    if draw(st.booleans()):
        flip = draw(arrays(np.bool_, t.shape, elements=st.booleans()))
        noise = draw(arrays(np.bool_, t.shape, elements=st.booleans()))
        p = np.where(flip & noise, p, t * 3 + 1 * (t > 0)).astype(np.int32)
    return t, p


@settings(max_examples=150, deadline=None)
@given(pair_of_maps())
def test_streamed_metrics_equal_brute_force(maps) -> None:
    t, p = maps
    ev = evaluate(t, p, coco=False, patch=4, block_pixels=16)  # tiny blocks: many partial tables merged
    tp, fp, fn, tn = reference.confusion(t, p)
    assert (ev.confusion.tp, ev.confusion.fp, ev.confusion.fn, ev.confusion.tn) == (tp, fp, fn, tn)
    ious = reference.ious(t, p)
    matched = {k: v for k, v in ious.items() if v > 0.5}
    assert ev.detection["tp"] == len(matched)
    assert ev.detection["n_true"] == len(np.unique(t[t > 0]))
    assert ev.detection["n_pred"] == len(np.unique(p[p > 0]))
    ref = reference.panoptic(t, p)
    for cls in ("galaxy", "void"):
        for k in ("pq", "sq", "rq", "tp", "fp", "fn"):
            assert ev.panoptic[cls][k] == pytest.approx(ref[cls][k], nan_ok=True), (cls, k)
    if tp + fp + fn:
        assert ev.pixel["iou"] == pytest.approx(tp / (tp + fp + fn))


@settings(max_examples=60, deadline=None)
@given(pair_of_maps())
def test_matching_is_unique_and_ious_exact(maps) -> None:
    t, p = maps
    m = match_instances(LabelPairs.from_maps(t, p))
    assert len(set(m.matched_true)) == m.tp and len(set(m.matched_pred)) == m.tp
    ref = reference.ious(t, p)
    for a, b, iou in zip(m.matched_true, m.matched_pred, m.matched_iou):
        assert iou == pytest.approx(ref[(int(a), int(b))])


def test_tables_from_tiles_add_up_to_the_whole() -> None:
    rng = np.random.default_rng(3)
    t = rng.integers(0, 30, (64, 64)).astype(np.int32)
    p = rng.integers(0, 30, (64, 64)).astype(np.int32)
    whole = LabelPairs.from_maps(t, p)
    from astrostatlearn.metrics import count_pairs

    parts = LabelPairs.merge([count_pairs(t[:20], p[:20]), count_pairs(t[20:], p[20:])])
    for a, b in ((whole.true_id, parts.true_id), (whole.pred_id, parts.pred_id), (whole.count, parts.count)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("case", ["empty_truth", "empty_pred", "both_empty", "all_foreground", "single_pixels", "noncontiguous"])
def test_edge_cases(case: str) -> None:
    t = np.zeros((8, 8), np.int32)
    p = np.zeros((8, 8), np.int32)
    if case == "empty_truth":
        p[2:4, 2:4] = 5
    elif case == "empty_pred":
        t[2:4, 2:4] = 5
    elif case == "all_foreground":
        t[:] = 1
        p[:] = 2
    elif case == "single_pixels":
        t[1, 1], t[5, 5], t[7, 0] = 1, 2, 3
        p[1, 1], p[5, 5], p[6, 6] = 9, 8, 7
    elif case == "noncontiguous":
        t[:4, :4], t[4:, 4:] = 2_000_000_000, 17
        p[:4, :4], p[4:, 4:] = 123456789, 1
    ev = evaluate(t, p, patch=4)
    d, pq = ev.detection, ev.panoptic
    if case == "empty_truth":
        assert d["n_true"] == 0 and d["fp"] == 1 and np.isnan(d["completeness"]) and d["purity"] == 0
        assert pq["galaxy"]["pq"] == 0 and np.isnan(ev.pixel["recall"]) and ev.pixel["precision"] == 0
    elif case == "empty_pred":
        assert d["completeness"] == 0 and np.isnan(d["purity"]) and pq["galaxy"]["fn"] == 1
        assert ev.pixel["recall"] == 0 and np.isnan(ev.pixel["precision"])
    elif case == "both_empty":
        assert np.isnan(pq["galaxy"]["pq"]) and pq["void"]["pq"] == 1 and ev.pixel["accuracy"] == 1
    elif case == "all_foreground":
        assert pq["galaxy"]["pq"] == 1 and np.isnan(pq["void"]["pq"]) and ev.pixel["iou"] == 1
        assert ev.coco["segm"]["AP"] == pytest.approx(1.0)
    elif case == "single_pixels":
        assert d["tp"] == 2 and d["fp"] == 1 and d["fn"] == 1
        assert pq["galaxy"]["pq"] == pytest.approx(2 / 3) and pq["galaxy"]["sq"] == 1
    elif case == "noncontiguous":
        assert d["tp"] == 2 and pq["galaxy"]["pq"] == 1 and ev.coco["segm"]["AP50"] == pytest.approx(1.0)


def test_streaming_and_region_agree_with_in_memory() -> None:
    rng = np.random.default_rng(0)
    from scipy import ndimage

    t, _ = ndimage.label(ndimage.gaussian_filter(rng.normal(size=(300, 280)), 3) > 0.1)
    p, _ = ndimage.label(ndimage.gaussian_filter(rng.normal(size=(300, 280)), 3) > 0.1)
    a = evaluate(t, p, coco=False, patch=64)
    b = evaluate(t, p, coco=False, patch=64, block_pixels=64 * 280, workers=2)
    assert a.as_dict()["panoptic"] == b.as_dict()["panoptic"] and a.confusion == b.confusion
    assert a.pixel_patch_mean == b.pixel_patch_mean
    from astrostatlearn.field import Window

    r = evaluate(t, p, coco=False, region=Window(100, 200, 50, 250))
    c = evaluate(t[100:200, 50:250], p[100:200, 50:250], coco=False)
    assert r.confusion == c.confusion and r.detection == c.detection


def test_binned_completeness_and_purity() -> None:
    t = np.zeros((20, 20), np.int32)
    t[0:4, 0:4], t[10:14, 10:14], t[0:4, 10:14] = 1, 2, 3
    p = np.zeros_like(t)
    p[0:4, 0:4] = 7           # matches 1
    p[10:12, 10:11] = 8       # overlaps 2, IoU 2/16: not a match
    p[16:18, 16:18] = 9       # overlaps nothing
    cat = {"id": np.array([1, 2, 3]), "mag": np.array([20.5, 24.5, 24.2]), "snr": np.array([50.0, 4.0, 6.0])}
    ev = evaluate(t, p, catalog=cat, coco=False)
    mag = ev.binned["mag"]
    i20, i24 = mag["edges"].index(20.0), mag["edges"].index(24.0)
    assert mag["completeness"][i20] == 1.0 and mag["completeness"][i24] == 0.0 and mag["n_true"][i24] == 2
    assert mag["purity"][i20] == 1.0 and mag["purity"][i24] == 0.0 and mag["n_pred_unassociated"] == 1
    assert mag["mask_iou"][i20] == 1.0 and np.isnan(mag["mask_iou"][i24])  # no match in the 24-25 bin
    p[0, 0] = 0  # one pixel lost: IoU 15/16 for object 1
    snr = evaluate(t, p, catalog=cat, coco=False).binned["snr"]
    assert snr["mask_iou"][snr["edges"].index(50.0)] == 15 / 16
