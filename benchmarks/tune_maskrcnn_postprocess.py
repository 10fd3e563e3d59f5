"""Choose Mask R-CNN's post-processing on a validation field (seed 3000: neither a training seed,
1000-1007, nor a test seed, 7 and 8). The network runs once over the field; the grid then
re-resolves its detections with each (score threshold, mask threshold) and prints PQ, pixel IoU
and F1. With ``--write``, the best pair is stored in the model file.

Usage: python benchmarks/tune_maskrcnn_postprocess.py [--model PATH] [--size 2048] [--write]
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default=None, help="default: the shipped model")
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--write", action="store_true", help="store the best thresholds in --model")
    args = ap.parse_args()
    from astrostatlearn.field import Field
    from astrostatlearn.methods import default_segmenter, load_segmenter
    from astrostatlearn.methods.maskrcnn import paste_instances
    from astrostatlearn.metrics import evaluate
    from astrostatlearn.preprocess import fit_variant
    from astrostatlearn.segment import BackgroundMesh, make_tile
    from astrostatlearn.simulate import simulate_field

    d = Path(tempfile.mkdtemp(prefix="tune-maskrcnn-")) / "field"
    simulate_field(d, args.size, seed=3000, progress=False)
    seg = load_segmenter(args.model) if args.model else default_segmenter("maskrcnn")
    with Field.open(d) as f:
        pre = fit_variant(f, seg.trained_variant)
        tile = make_tile(f, pre, BackgroundMesh.from_field(f, pre), f.full)
        truth = f.read_true()
    seg.score_threshold = 0.0
    boxes, scores, masks = seg.detect_windows(np.where(tile.valid[None], tile.image, 0.0).astype(np.float32))
    print(f"{boxes.shape[0]} detections; {'score thr':>9} {'mask thr':>8} {'pixel IoU':>9} {'F1':>6} {'PQ':>6}")
    best = None
    for s_thr, m_thr in itertools.product((0.3, 0.4, 0.5, 0.6, 0.7, 0.8), (0.4, 0.5, 0.6, 0.7, 0.8)):
        keep = scores >= s_thr
        labels, _, _ = paste_instances(boxes[keep], scores[keep], masks[keep], truth.shape, m_thr, seg.min_area)
        ev = evaluate(truth, labels, coco=False)
        pq = ev.panoptic["galaxy"]["pq"]
        print(f"{s_thr:>9} {m_thr:>8} {ev.pixel['iou']:>9.3f} {ev.detection['f1']:>6.3f} {pq:>6.3f}", flush=True)
        if best is None or pq > best[0]:
            best = (pq, s_thr, m_thr)
    print(f"best PQ {best[0]:.3f}: score_threshold {best[1]}, mask_threshold {best[2]}")
    if args.write and args.model:
        seg = load_segmenter(args.model)
        seg.set_params(score_threshold=best[1], mask_threshold=best[2]).save(args.model)
        print(f"stored in {args.model}")


if __name__ == "__main__":
    main()
