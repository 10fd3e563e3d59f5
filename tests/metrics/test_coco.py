import numpy as np
import pytest
from scipy import ndimage

from astrostatlearn.field import Window
from astrostatlearn.metrics import coco_evaluate, coco_metrics, evaluate
from astrostatlearn.metrics.coco import STAT_NAMES, score_from_map, tile_annotations


def _blobs(seed: int, shape=(128, 128), thresh=1.2, sigma=2.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    lab, _ = ndimage.label(ndimage.gaussian_filter(rng.normal(size=shape), sigma) * 6 > thresh)
    return lab.astype(np.int32)


def test_faster_coco_eval_agrees_with_pycocotools() -> None:
    t = _blobs(1)
    p = np.where(ndimage.binary_dilation(t > 0), ndimage.grey_dilation(t, size=3), 0).astype(np.int32)
    p[_blobs(2) > 0] = 0  # erase some predicted pixels: imperfect matches
    score = np.random.default_rng(3).random(t.shape)
    n = len(np.unique(t)) - 1
    assert 5 < n < 100
    g, d = tile_annotations(t, p, 1, score_from_map(score), 1)
    images = [{"id": 1, "height": 128, "width": 128}]
    fast = coco_evaluate(g, d, images, max(len(g), len(d)), backend="faster")
    ref = coco_evaluate(g, d, images, max(len(g), len(d)), backend="pycocotools")
    for iou_type in ("segm", "bbox"):
        for k in STAT_NAMES:
            assert fast[iou_type][k] == pytest.approx(ref[iou_type][k], abs=1e-6, nan_ok=True), (iou_type, k)
    assert 0 < fast["segm"]["AP"] < 1


def test_crowded_tiles_are_not_capped_at_100_detections() -> None:
    t = np.zeros((100, 100), np.int32)
    ids = 0
    for y in range(0, 100, 5):
        for x in range(0, 100, 5):
            ids += 1
            t[y:y + 3, x:x + 3] = ids
    assert ids == 400
    ev = evaluate(t, t, coco=True, coco_tile=100)
    assert ev.coco["max_dets"]["value"] >= 400
    assert ev.coco["segm"]["AP"] == pytest.approx(1.0) and ev.coco["segm"]["AR_max"] == pytest.approx(1.0)


def test_scores_rank_detections() -> None:
    t = _blobs(5)
    p = t.copy()
    fake = _blobs(6)
    p[(fake > 0) & (t == 0)] = fake[(fake > 0) & (t == 0)] + 10_000
    good = np.where(t > 0, 0.9, 0.1)  # true objects score high: perfect ranking
    bad = 1.0 - good
    tiles = [Window(0, 128, 0, 128)]
    hi = coco_metrics(lambda w: t, lambda w: p, tiles, lambda w: good)["segm"]["AP"]
    lo = coco_metrics(lambda w: t, lambda w: p, tiles, lambda w: bad)["segm"]["AP"]
    assert hi == pytest.approx(1.0) and lo < hi


def test_coco_ranks_by_the_methods_own_object_scores() -> None:
    from astrostatlearn.metrics import evaluate

    true = np.zeros((64, 64), np.int32)
    pred = np.zeros((64, 64), np.int32)
    for k, (y, x) in enumerate([(5, 5), (5, 40), (40, 5)]):
        true[y:y + 8, x:x + 8] = k + 1
        pred[y:y + 8, x:x + 8] = k + 1
    pred[40:48, 40:48] = 9  # a false detection
    ids = np.array([1, 2, 3, 9])
    good = evaluate(true, pred, object_scores=(ids, np.array([0.9, 0.8, 0.7, 0.1])), coco_tile=64).coco["segm"]["AP"]
    bad = evaluate(true, pred, object_scores=(ids, np.array([0.2, 0.3, 0.4, 0.95])), coco_tile=64).coco["segm"]["AP"]
    assert good == pytest.approx(1.0) and bad < 0.9  # the false detection ranked first costs precision
    # IDs without an own score fall back to the map mean (1.0 without a map): ranked like "bad".
    partial = evaluate(true, pred, object_scores=(np.array([1]), np.array([0.5])), coco_tile=64).coco["segm"]["AP"]
    assert partial < good


@pytest.mark.parametrize("seed", range(4))
def test_run_length_encoding_equals_pycocotools_per_object_masks(seed: int) -> None:
    """instances_to_rle builds COCO RLEs from the map's runs: identical to encoding one binary mask
    per object, including objects on the first and last pixels and in the last column."""
    from faster_coco_eval.core import mask as mask_utils
    from scipy import ndimage

    from astrostatlearn.metrics.coco import instances_to_rle

    rng = np.random.default_rng(seed)
    lab, _ = ndimage.label(ndimage.gaussian_filter(rng.normal(size=(97, 130)), 2) > 0.3)
    lab[0, :5], lab[-1, -3:], lab[10:20, -1] = 999, 1000, 1001
    ids, rles = instances_to_rle(lab)
    ref_ids = np.unique(lab[lab > 0])
    ref = mask_utils.encode(np.asfortranarray(lab[:, :, None] == ref_ids[None, None, :]).astype(np.uint8))
    np.testing.assert_array_equal(ids, ref_ids)
    assert len(ids) > 10
    assert [r["counts"] for r in rles] == [q["counts"].decode("ascii") for q in ref]
    assert instances_to_rle(np.zeros((8, 8), np.int32))[1] == []


@pytest.mark.parametrize("workers", [1, 2])
def test_strip_reading_gives_the_per_tile_result(workers: int) -> None:
    """Tiles are read a strip at a time and built by threads; the annotations, their IDs and the
    figures are those of reading every (uneven) tile on its own, in order."""
    from astrostatlearn.field.windows import tile_grid

    t = _blobs(7, shape=(300, 260))
    p = np.where(np.random.default_rng(10).random(t.shape) < 0.15, 0, t).astype(np.int32)
    fake = _blobs(8, shape=(300, 260))
    p[(fake > 0) & (t == 0)] = fake[(fake > 0) & (t == 0)] + 5000
    score = np.random.default_rng(9).random(t.shape)
    tiles = tile_grid(t.shape, 128)
    assert len({(w.y0, w.y1) for w in tiles}) == 3 and len(tiles) == 9
    gts, dts, images = [], [], []
    for i, w in enumerate(tiles):
        g, d = tile_annotations(t[w.slices], p[w.slices], i + 1, score_from_map(score[w.slices]), len(gts) + 1)
        gts, dts = gts + g, dts + d
        images.append({"id": i + 1, "height": w.shape[0], "width": w.shape[1]})
    ref = coco_evaluate(gts, dts, images, max(len(gts), len(dts)))
    got = coco_metrics(lambda w: t[w.slices], lambda w: p[w.slices], tiles, lambda w: score[w.slices],
                       workers=workers)
    for iou_type in ("segm", "bbox"):
        assert got[iou_type] == pytest.approx(ref[iou_type], abs=0, nan_ok=True)
    assert 0.2 < got["segm"]["AP"] < 1
