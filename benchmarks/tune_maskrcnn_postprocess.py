"""Choose Mask R-CNN's post-processing on two validation fields (seeds 3000, euclid-vis, and 3001,
ground: neither a training seed, 1000-1007, nor a test seed, 7 and 8). The network runs once
over each field; the grid then re-resolves its detections with each (score threshold, mask
threshold, significance cut ``min_snr``, weight of the U-Net backbone's foreground in the masks)
and prints PQ, pixel IoU and F1 per field. The best
setting is the one with the highest mean PQ over the two; with ``--write`` it is stored in the
model file.

Usage: python benchmarks/tune_maskrcnn_postprocess.py [--model PATH] [--size 2048] [--write]
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
from pathlib import Path

import numpy as np

VALIDATION = ((3000, "euclid-vis"), (3001, "ground"))
GRID = ((0.2, 0.3, 0.4, 0.5, 0.6), (0.5, 0.55, 0.6, 0.65, 0.7, 0.75), (None, 4.0, 5.0, 6.0),
        (0.0, 0.65, 0.75, 0.85, 0.95))


def field_detections(seg, seed: int, preset: str, size: int, root: Path):
    """(tile, truth, :class:`~astrostatlearn.methods.maskrcnn.Detections`) of every detection on a
    fresh validation field."""
    from astrostatlearn.field import Field
    from astrostatlearn.preprocess import fit_variant
    from astrostatlearn.segment import BackgroundMesh, make_tile
    from astrostatlearn.simulate import simulate_field

    d = root / f"field-{seed}"
    simulate_field(d, size, seed=seed, preset=preset, progress=False)
    with Field.open(d) as f:
        pre = fit_variant(f, seg.trained_variant)
        tile = make_tile(f, pre, BackgroundMesh.from_field(f, pre), f.full)
        truth = f.read_true()
    return tile, truth, seg.detect_windows(tile.network_input(seg.local_background))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default=None, help="default: the shipped model")
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--write", action="store_true", help="store the best thresholds in --model")
    args = ap.parse_args()
    from astrostatlearn.methods import default_segmenter, load_segmenter
    from astrostatlearn.methods.maskrcnn import paste_instances
    from astrostatlearn.methods.significance import drop_insignificant
    from astrostatlearn.metrics import evaluate

    root = Path(tempfile.mkdtemp(prefix="tune-maskrcnn-"))
    seg = load_segmenter(args.model) if args.model else default_segmenter("maskrcnn")
    seg.score_threshold = 0.0
    fields = [field_detections(seg, seed, preset, args.size, root) for seed, preset in VALIDATION]
    names = [f"{preset} {seed}" for seed, preset in VALIDATION]
    print(f"{'score thr':>9} {'mask thr':>8} {'min S/N':>7} {'fg wt':>5} " + " ".join(f"{n + ' IoU/F1/PQ':>26}" for n in names)
          + f" {'mean PQ':>7}")
    best = None
    for s_thr, m_thr, cut, weight in itertools.product(*GRID):
        cells, pqs = [], []
        for tile, truth, d in fields:
            keep = d.scores >= s_thr
            labels, _, _ = paste_instances(d.boxes[keep], d.scores[keep], d.masks[keep], truth.shape, m_thr,
                                           seg.min_area, d.foreground, weight)
            labels = drop_insignificant(labels, tile.signal, tile.err, tile.valid, cut)
            ev = evaluate(truth, labels, coco=False)
            pqs.append(ev.panoptic["galaxy"]["pq"])
            cells.append(f"{ev.pixel['iou']:.3f}/{ev.detection['f1']:.3f}/{pqs[-1]:.3f}")
        mean = float(np.mean(pqs))
        print(f"{s_thr:>9} {m_thr:>8} {str(cut):>7} {weight:>5} " + " ".join(f"{c:>26}" for c in cells) + f" {mean:>7.3f}",
              flush=True)
        if best is None or mean > best[0]:
            best = (mean, s_thr, m_thr, cut, weight)
    print(f"best mean PQ {best[0]:.3f}: score_threshold {best[1]}, mask_threshold {best[2]}, min_snr {best[3]}, "
          f"foreground_weight {best[4]}")
    if args.write and args.model:
        seg = load_segmenter(args.model)
        seg.set_params(score_threshold=best[1], mask_threshold=best[2], min_snr=best[3],
                       foreground_weight=best[4]).save(args.model)
        print(f"stored in {args.model}")


if __name__ == "__main__":
    main()
