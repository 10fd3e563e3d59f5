"""Choose Mask R-CNN's post-processing on two validation fields (seeds 3000, euclid-vis, and 3001,
ground: neither a training seed, 1000-1016, nor a test seed, 7 and 8). The network runs once
over each field (with the U-Net's objects proposed, as the segmenter's ``unet_proposals``); the
grid then re-resolves its detections with each (score threshold, mask threshold, significance
cut ``min_snr``, weight of the U-Net backbone's foreground in the masks, weight of the mask's
quality in the scores, largest occluded fraction, overlap rule) and prints PQ, pixel IoU and F1 per field.
The best setting is the one with the highest mean PQ over the two; settings within
``TIE`` (0.001) of it are ranked by their mean mask AP[.5:.95] (COCO, each object ranked by its
score), since the score's weights change the ranking far more than the PQ. Of the settings within ``AP_TIE``
(0.001) of the best AP, the one with the highest score threshold wins: AP rewards keeping low-scored
detections by a hair, and a stricter threshold keeps fewer false ones on images unlike the validation
fields. With ``--write`` the
best is stored in the model file. ``--grid small`` holds the mask threshold, weight and ``min_snr`` at the
model's own values; ``--grid masks`` varies only the mask threshold, the foreground weight and the overlap rule.

Usage: python benchmarks/tune_maskrcnn_postprocess.py [--model PATH] [--size 2048] [--grid full|small|masks] [--write]
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import numpy as np

from _measure import scratch_dir

from astrostatlearn.methods.maskrcnn_paste import OVERLAP_RULES

VALIDATION = ((3000, "euclid-vis"), (3001, "ground"))
NAMES = ("score_threshold", "mask_threshold", "min_snr", "foreground_weight", "foreground_scoring", "max_occluded",
         "overlap_rule")
GRID = ((0.1, 0.2, 0.3, 0.4), (0.55, 0.6, 0.65, 0.7), (None, 5.0), (0.0, 0.75, 0.85, 0.95), (0.0, 0.5, 0.75),
        (1.0, 0.5, 0.3), ("score", "mask"))
TIE = 0.001  # mean PQ; settings this close to the best are ranked by mask AP
AP_TIE = 0.001  # mean mask AP; of settings this close to the best, the highest score threshold wins


def small_grid(seg) -> tuple:
    """The grid with the mask threshold, the foreground weight and the significance cut held at ``seg``'s."""
    return (GRID[0], (seg.mask_threshold,), (seg.min_snr,), (seg.foreground_weight,)) + GRID[4:]


def masks_grid(seg) -> tuple:
    """The mask threshold, the foreground weight, around ``seg``'s, and the overlap rule; the rest held at
    ``seg``'s."""
    return ((seg.score_threshold,), tuple(sorted({seg.mask_threshold, 0.5, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85})),
            (seg.min_snr,), tuple(sorted({seg.foreground_weight, 0.45, 0.55, 0.65, 0.75, 0.85})),
            (seg.foreground_scoring,), (seg.max_occluded,), OVERLAP_RULES)


GRIDS = {"full": lambda seg: GRID, "small": small_grid, "masks": masks_grid}


def choose(ranked: list[tuple[float, float, dict]]) -> tuple[float, float, dict]:
    """The best of (mean AP, mean PQ, setting) rows: of those within ``AP_TIE`` of the best AP, the one with the
    highest score threshold, then the highest PQ."""
    top = max(ap for ap, _, _ in ranked)
    near = [r for r in ranked if r[0] >= top - AP_TIE]
    return max(near, key=lambda r: (r[2]["score_threshold"], r[1]))


def field_detections(seg, seed: int, preset: str, size: int, root: Path):
    """(tile, truth, :class:`~astrostatlearn.methods.maskrcnn_paste.Detections`) of every detection on a
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
    return tile, truth, seg.detect_windows(tile.network_input(seg.local_background), every=True)


def resolve(seg, tile, d, shape: tuple[int, int], p: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(labels, their IDs, their scores) of detections ``d`` under the settings ``p``, after the
    significance cut and the isophote trim at the model's level, as the segmenter makes them."""
    from astrostatlearn.methods.isophote import cut_then_trim
    from astrostatlearn.methods.maskrcnn_paste import PasteRule, paste_instances

    rule = PasteRule(p["score_threshold"], p["mask_threshold"], seg.min_area, p["foreground_weight"],
                     p["foreground_scoring"], p["max_occluded"], p["overlap_rule"])
    pasted = paste_instances(d, shape, rule)
    labels = cut_then_trim(pasted.labels, tile, p["min_snr"], seg.isophote)  # as the segmenter's apply_cuts
    ids = np.arange(1, pasted.kept.size + 1)
    left = np.isin(ids, np.unique(labels[labels > 0]))
    return labels, ids[left], pasted.scores[left]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default=None, help="default: the shipped model")
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--grid", choices=tuple(GRIDS), default="full")
    ap.add_argument("--write", action="store_true", help="store the best thresholds in --model")
    args = ap.parse_args()
    from astrostatlearn.methods import default_segmenter, load_segmenter
    from astrostatlearn.metrics import evaluate

    root = scratch_dir("tune-maskrcnn-")
    seg = load_segmenter(args.model) if args.model else default_segmenter("maskrcnn")
    fields = [field_detections(seg, seed, preset, args.size, root) for seed, preset in VALIDATION]
    names = [f"{preset} {seed}" for seed, preset in VALIDATION]
    print(" ".join(f"{n[:9]:>9}" for n in NAMES) + " " + " ".join(f"{n + ' IoU/F1/PQ':>26}" for n in names)
          + f" {'mean PQ':>7}")
    results = []
    for setting in itertools.product(*GRIDS[args.grid](seg)):
        p = dict(zip(NAMES, setting))
        cells, pqs = [], []
        for tile, truth, d in fields:
            ev = evaluate(truth, resolve(seg, tile, d, truth.shape, p)[0], coco=False)
            pqs.append(ev.panoptic["galaxy"]["pq"])
            cells.append(f"{ev.pixel['iou']:.3f}/{ev.detection['f1']:.3f}/{pqs[-1]:.3f}")
        results.append((float(np.mean(pqs)), p))
        print(" ".join(f"{str(v):>9}" for v in setting) + " " + " ".join(f"{c:>26}" for c in cells)
              + f" {results[-1][0]:>7.3f}", flush=True)
    top = max(pq for pq, _ in results)
    print(f"\nsettings within {TIE} of the best mean PQ ({top:.3f}), by mean mask AP:")
    ranked = []
    for pq, p in (r for r in results if r[0] >= top - TIE):
        aps = []
        for tile, truth, d in fields:
            labels, ids, scores = resolve(seg, tile, d, truth.shape, p)
            aps.append(evaluate(truth, labels, object_scores=(ids, scores)).coco["segm"])
        ranked.append((float(np.mean([a["AP"] for a in aps])), pq, p))
        print(f"  {p}: PQ {pq:.4f}, AP {ranked[-1][0]:.4f}, AP50 {np.mean([a['AP50'] for a in aps]):.3f}", flush=True)
    ap, pq, best = choose(ranked)
    print(f"best: mean PQ {pq:.3f}, mean AP {ap:.3f}: " + ", ".join(f"{k} {v}" for k, v in best.items()))
    if args.write and args.model:
        seg = load_segmenter(args.model)
        seg.set_params(**best).save(args.model)
        print(f"stored in {args.model}")


if __name__ == "__main__":
    main()
