"""Choose the U-Net post-processing thresholds on a validation field (seed 3000: neither a training
seed, 1000-1016, nor the test seed, 7). Prints PQ and pixel IoU for a small grid of foreground
threshold, core level and minimum core dynamic (``-``: connected cores, no dynamic test).

Usage: python benchmarks/tune_unet_postprocess.py [--model PATH] [--size 2048]
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

from _measure import scratch_dir



def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default=None)
    ap.add_argument("--size", type=int, default=2048)
    args = ap.parse_args()
    from astrostatlearn.field import Field
    from astrostatlearn.methods import load_segmenter
    from astrostatlearn.methods.unet import UNetSegmenter
    from astrostatlearn.metrics import evaluate
    from astrostatlearn.preprocess import fit_variant
    from astrostatlearn.segment import BackgroundMesh, make_tile
    from astrostatlearn.simulate import simulate_field

    d = scratch_dir("tune-unet-") / "field"
    simulate_field(d, args.size, seed=3000, progress=False)
    seg = load_segmenter(args.model) if args.model else UNetSegmenter.shipped()
    with Field.open(d) as f:
        pre = fit_variant(f, seg.variant)
        tile = make_tile(f, pre, BackgroundMesh.from_field(f, pre), f.full)
        truth = f.read_true()
    prob, centre = seg.predict_maps(tile.image)
    print(f"{'threshold':>9} {'core':>5} {'dynamic':>7} {'pixel IoU':>9} {'F1':>6} {'PQ':>6}")
    best = None
    for thr, core, dyn in itertools.product((0.4, 0.5, 0.6), (0.3, 0.5, 0.7), (None, 0.2, 0.3, 0.4)):
        seg.threshold, seg.core_level, seg.min_dynamic = thr, core, dyn
        ev = evaluate(truth, seg.postprocess(prob, centre, tile.valid), coco=False)
        pq = ev.panoptic["galaxy"]["pq"]
        print(f"{thr:>9} {core:>5} {dyn if dyn is not None else '-':>7} {ev.pixel['iou']:>9.3f} "
              f"{ev.detection['f1']:>6.3f} {pq:>6.3f}", flush=True)
        if best is None or pq > best[0]:
            best = (pq, thr, core, dyn)
    print(f"best PQ {best[0]:.3f}: threshold {best[1]}, core_level {best[2]}, min_dynamic {best[3]}")


if __name__ == "__main__":
    main()
