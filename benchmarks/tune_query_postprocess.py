"""Choose a query model's (DETR, Mask2Former) post-processing on a validation field (seed 3000: neither
a training seed, 1000+, nor a test seed, 7 and 8): each (score threshold, mask threshold, window
overlap, a quarter of the model's window, and, for a seeded DETR, the weight of
its U-Net's foreground in the masks) of the grid segments the field and is scored (PQ, pixel IoU,
F1). With ``--write``, the best setting by PQ is stored in the model file.

Usage: python benchmarks/tune_query_postprocess.py --model PATH [--size 2048] [--write]
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

from _measure import scratch_dir

# The overlap was a quarter or three eighths of the window until 2026-12-06; a quarter won for both models.
GRID = {"score_threshold": (0.3, 0.5), "mask_threshold": (0.5, 0.65), "overlap": (1 / 4,),
        "foreground_weight": (0.0, 0.85)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", required=True)
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--write", action="store_true", help="store the best setting in --model")
    args = ap.parse_args()
    from astrostatlearn.field import Field, open_image
    from astrostatlearn.methods import load_segmenter
    from astrostatlearn.metrics import evaluate
    from astrostatlearn.segment.run import prepare_and_segment
    from astrostatlearn.simulate import simulate_field

    work = scratch_dir("tune-query-")
    field = work / "field"
    simulate_field(field, args.size, seed=3000, progress=False)
    seg = load_segmenter(args.model)
    print(f"{seg.name} on a {args.size}^2 validation field (seed 3000)")
    grid = dict(GRID)
    if not seg.net_.config.get("seeds"):  # no first stage, no foreground to weigh
        grid["foreground_weight"] = (0.0,)
    print(f"{'score':>6} {'mask':>5} {'overlap':>7} {'fg wt':>5} {'PQ':>6} {'IoU':>6} {'F1':>6}")
    best = None
    for values in itertools.product(*grid.values()):
        params = dict(zip(grid, values))
        params["overlap"] = int(round(params["overlap"] * seg.window))
        seg.set_params(**params)
        out = work / "run"
        with Field.open(field) as f:
            prepare_and_segment(f, seg, out, variant=seg.variant, overwrite=True, score=False)
        ev = evaluate(open_image(field / "true.fits"), open_image(out / "segmentation.fits"), coco=False)
        pq = ev.panoptic["galaxy"]["pq"]
        print(f"{values[0]:>6} {values[1]:>5} {params['overlap']:>7} {values[3]:>5} {pq:>6.3f} {ev.pixel['iou']:>6.3f} "
              f"{ev.detection['f1']:>6.3f}", flush=True)
        if best is None or pq > best[0]:
            best = (pq, params)
    print(f"best: {best[1]} (PQ {best[0]:.3f})")
    if args.write:
        seg.set_params(**best[1]).save(args.model)
        print(f"stored in {args.model}")


if __name__ == "__main__":
    main()
