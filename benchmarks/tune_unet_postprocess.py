"""Choose the U-Net post-processing thresholds on the validation fields (seeds 3000, euclid-vis, and
3001, ground: neither a training seed, 1000-1016, nor a test seed, 7 and 8). The network reads
each field as the segmenter does (``local_background``) and runs once; the grid of foreground
threshold, core level and minimum core dynamic (``-``: connected cores, no dynamic test) is then
scored after the significance cut and the isophote trim at the model's own levels, as
``predict`` makes its masks. Prints pixel IoU, F1 and PQ per field and the best mean PQ.

Usage: python benchmarks/tune_unet_postprocess.py [--model PATH] [--size 2048] [--thresholds 0.5,0.6,...]
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
    ap.add_argument("--thresholds", type=lambda s: [float(v) for v in s.split(",")],
                    default=[0.5, 0.6, 0.7, 0.8, 0.85, 0.9], help="foreground thresholds to try, comma-separated")
    args = ap.parse_args()
    from astrostatlearn.field import Field
    from astrostatlearn.methods import load_segmenter
    from astrostatlearn.methods.unet import UNetSegmenter
    from astrostatlearn.metrics import evaluate
    from astrostatlearn.preprocess import fit_variant
    from astrostatlearn.segment import BackgroundMesh, make_tile
    from astrostatlearn.simulate import simulate_field

    from astrostatlearn.methods.isophote import cut_then_trim

    seg = load_segmenter(args.model) if args.model else UNetSegmenter.shipped()
    root = scratch_dir("tune-unet-")
    fields = []
    for seed, preset in ((3000, "euclid-vis"), (3001, "ground")):
        d = root / f"field-{seed}"
        simulate_field(d, args.size, seed=seed, preset=preset, progress=False)
        with Field.open(d) as f:
            pre = fit_variant(f, seg.variant)
            tile = make_tile(f, pre, BackgroundMesh.from_field(f, pre), f.full)
            truth = f.read_true()
        fields.append((tile, truth, *seg.predict_maps(seg.network_input(tile))))
    print(f"{'threshold':>9} {'core':>5} {'dynamic':>7}   {'euclid-vis IoU/F1/PQ':>22} {'ground IoU/F1/PQ':>22} {'mean PQ':>7}")
    best = None
    for thr, core, dyn in itertools.product(args.thresholds, (0.5, 0.7), (None, 0.2, 0.3)):
        seg.threshold, seg.core_level, seg.min_dynamic = thr, core, dyn
        cells, pqs = [], []
        for tile, truth, prob, centre in fields:
            labels = cut_then_trim(seg.postprocess(prob, centre, tile.valid), tile, seg.min_snr, seg.isophote)
            ev = evaluate(truth, labels, coco=False)
            pqs.append(ev.panoptic["galaxy"]["pq"])
            cells.append(f"{ev.pixel['iou']:.3f}/{ev.detection['f1']:.3f}/{pqs[-1]:.3f}")
        mean = sum(pqs) / len(pqs)
        print(f"{thr:>9} {core:>5} {dyn if dyn is not None else '-':>7}   {cells[0]:>22} {cells[1]:>22} {mean:>7.3f}",
              flush=True)
        if best is None or mean > best[0]:
            best = (mean, thr, core, dyn)
    print(f"best mean PQ {best[0]:.3f}: threshold {best[1]}, core_level {best[2]}, min_dynamic {best[3]}")


if __name__ == "__main__":
    main()
