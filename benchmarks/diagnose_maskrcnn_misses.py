"""Where Mask R-CNN's misses come from, by true S/N, beside the shipped U-Net, on the validation field
(seed 3000: neither a training seed, 1000-1016, nor a test seed, 7 and 8).

The network runs once over the field with no score cut. Per S/N bin it prints: the fraction of
true objects matched (mask IoU > 0.5) by Mask R-CNN at its thresholds and by the U-Net; the
fraction with *any* detection box at box IoU >= 0.5 (localisation: a box 1 px off a 5 px object
already fails), and of those, the fraction whose best such box has a class score >= 0.5, 0.3 and 0.1
(confidence); and the median best box IoU. Then, of the objects the U-Net finds and Mask R-CNN
misses, how many had a well-placed box at all.

Usage: python benchmarks/diagnose_maskrcnn_misses.py [--model PATH] [--size 2048]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from _measure import scratch_dir

SNR_BINS = (0, 5, 10, 20, 50, np.inf)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of boxes ``a`` [N, 4] against ``b`` [M, 4], both (x0, y0, x1, y1)."""
    x0, y0 = np.maximum(a[:, None, 0], b[None, :, 0]), np.maximum(a[:, None, 1], b[None, :, 1])
    x1, y1 = np.minimum(a[:, None, 2], b[None, :, 2]), np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = lambda c: (c[:, 2] - c[:, 0]) * (c[:, 3] - c[:, 1])  # noqa: E731
    return inter / (area(a)[:, None] + area(b)[None] - inter)


def matched(truth: np.ndarray, pred: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Whether each true ID in ``ids`` is matched (IoU > 0.5) by ``pred``."""
    from astrostatlearn.metrics import LabelPairs, match_instances

    return np.isin(ids, match_instances(LabelPairs.from_maps(truth, pred)).matched_true)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="default: the shipped model")
    ap.add_argument("--size", type=int, default=2048)
    args = ap.parse_args()
    from scipy import ndimage

    from astrostatlearn.field import Field
    from astrostatlearn.methods import default_segmenter, load_segmenter
    from astrostatlearn.methods.maskrcnn_paste import paste_instances
    from astrostatlearn.preprocess import fit_variant
    from astrostatlearn.segment import BackgroundMesh, make_tile
    from astrostatlearn.simulate import simulate_field

    d = scratch_dir("diagnose-maskrcnn-") / "field"
    simulate_field(d, args.size, seed=3000, progress=False)
    seg = load_segmenter(args.model) if args.model else default_segmenter("maskrcnn")
    unet = default_segmenter("unet")
    with Field.open(d) as f:
        pre = fit_variant(f, seg.trained_variant)
        tile = make_tile(f, pre, BackgroundMesh.from_field(f, pre), f.full)
        truth = f.read_true()
    dets = seg.detect_windows(tile.network_input(seg.local_background), every=True)
    boxes, scores, threshold = dets.boxes, dets.scores, seg.score_threshold
    pasted = paste_instances(dets, truth.shape, seg.paste_rule())
    labels = pasted.labels

    ids = np.unique(truth[truth > 0])
    sl = ndimage.find_objects(truth)
    true_boxes = np.array([[sl[i - 1][1].start, sl[i - 1][0].start, sl[i - 1][1].stop, sl[i - 1][0].stop]
                           for i in ids], float)
    snr = ndimage.sum(tile.signal, truth, ids) / np.sqrt(ndimage.sum(tile.err ** 2, truth, ids))
    iou = box_iou(true_boxes, boxes)
    best_iou = iou.max(1) if boxes.size else np.zeros(ids.size)
    best_score = np.where(iou >= 0.5, scores[None], 0).max(1) if boxes.size else np.zeros(ids.size)
    hit_m, hit_u = matched(truth, labels, ids), matched(truth, unet.predict(tile).labels, ids)

    print(f"{boxes.shape[0]} detections (no score cut); thresholds score {threshold}, mask {seg.mask_threshold}")
    print(f"{'S/N':<10} {'n':>5} {'maskrcnn':>8} {'unet':>6} {'box>=.5':>8} {'s>=.5':>6} {'s>=.3':>6} {'s>=.1':>6} "
          f"{'med box IoU':>11}")
    for lo, hi in zip(SNR_BINS[:-1], SNR_BINS[1:]):
        s = (snr >= lo) & (snr < hi)
        if s.any():
            print(f"[{lo:g},{hi:g}){'':<{9 - len(f'[{lo:g},{hi:g})')}} {s.sum():>5} {hit_m[s].mean():>8.2f} "
                  f"{hit_u[s].mean():>6.2f} {(best_iou[s] >= 0.5).mean():>8.2f} {(best_score[s] >= 0.5).mean():>6.2f} "
                  f"{(best_score[s] >= 0.3).mean():>6.2f} {(best_score[s] >= 0.1).mean():>6.2f} "
                  f"{np.median(best_iou[s]):>11.2f}")
    miss = hit_u & ~hit_m
    print(f"found by the U-Net, missed by Mask R-CNN: {miss.sum()}; with a box at IoU >= 0.5 at any score "
          f"{(best_iou[miss] >= 0.5).sum()}, scoring >= 0.5 {(best_score[miss] >= 0.5).sum()}")
    print_fates(fates(truth, ids[miss], iou[miss], scores, pasted, seg.paste_rule()))


def fates(truth: np.ndarray, ids: np.ndarray, iou: np.ndarray, scores: np.ndarray, pasted, rule) -> list[str]:
    """Why each true object in ``ids`` (box IoUs ``iou`` [n, detections]) is not matched: its
    best-scoring well-placed box (box IoU >= 0.5) was below the score threshold, kept with a poor
    mask (mask IoU <= 0.5 after the overlap rule), or dropped by the overlap rule (too few free
    pixels: occluded by a higher-scoring instance, which then holds most of the object, or below
    the minimum area)."""
    out = []
    kept = {int(k): n + 1 for n, k in enumerate(pasted.kept)}
    for tid, row in zip(ids, iou):
        good = np.flatnonzero(row >= 0.5)
        if good.size == 0:
            out.append("no well-placed box")
            continue
        i = int(good[np.argmax(scores[good])])
        obj = truth == tid
        if scores[i] < rule.score_threshold:
            out.append("box scored below the threshold")
        elif i in kept:
            lab = pasted.labels == kept[i]
            out.append(f"kept, poor mask (IoU {np.sum(obj & lab) / np.sum(obj | lab):.2f})")
        else:
            held = pasted.labels[obj]
            holder = np.bincount(held[held > 0]).argmax() if (held > 0).any() else 0
            out.append("dropped, its pixels held by a higher-scoring instance" if holder
                       and np.mean(held == holder) > 0.5 else "dropped, too few free pixels")
    return out


def print_fates(reasons: list[str]) -> None:
    import collections

    for reason, n in collections.Counter(r.split(" (")[0] for r in reasons).most_common():
        print(f"  {n:>4}  {reason}")


if __name__ == "__main__":
    main()
