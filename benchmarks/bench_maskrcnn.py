"""The shipped Mask R-CNN on a fresh simulated field (a seed never used in training or tuning),
beside the shipped U-Net, sep and SExtractor, every row scored on the same held-out test band.

Prints per row: pixel IoU, Dice, instance F1, PQ, mask AP, AP50, AP75 and AR; PQ with a 95%
paired block-bootstrap interval and its ratio to SExtractor at the seed's settings (1.5 sigma,
5 px, rms map; the tuned 1.0-sigma run is printed beside it); the targets, with the recall that
bounds every row's AP50; completeness by S/N; the PQ loss breakdown; Mask R-CNN's SQ by object
size (the 28^2 mask head's limit on large galaxies); the densest 256^2 window of the field
(against ``box_detections_per_img``); CPU (and GPU) inference Mpix/s; and the shipped model's
training log.

Usage: python benchmarks/bench_maskrcnn.py [--size 4096] [--seed 7] [--scratch DIR] [--throughput]
"""

from __future__ import annotations

import argparse
import csv
import time
from importlib import resources
from pathlib import Path

import numpy as np

from _measure import scratch_dir

SIZE_BINS = (0, 50, 200, 800, 10**9)  # true object area, pixels


def print_throughput() -> None:
    """The shipped U-Net's and Mask R-CNN's inference Mpix/s, CPU (and GPU where there is one)."""
    import torch

    for m in ("unet", "maskrcnn"):
        print(f"{m} inference (1024^2 in one piece, windows 256, overlap 64): CPU {throughput(m, 'cpu'):.2f} Mpix/s "
              f"({torch.get_num_threads()} threads)" + (f", GPU {throughput(m, 'cuda'):.2f} Mpix/s" if torch.cuda.is_available() else ""))
    print(f"  maskrcnn through PyTorch alone (-p engine=torch, the reference path): CPU "
          f"{throughput('maskrcnn', 'cpu', engine='torch'):.2f} Mpix/s")


def throughput(method: str, device: str, size: int = 1024, **params) -> float:
    """Mpix/s of a method's shipped model (with ``params``) on a noise image, in one piece (no tiling)."""
    from astrostatlearn.field import Window
    from astrostatlearn.methods import Tile, default_segmenter

    seg = default_segmenter(method).set_params(**params)
    seg.device = device
    img = np.random.default_rng(0).normal(size=(1, size, size)).astype(np.float32)
    zeros = np.zeros((size, size), np.float32)
    tile = Tile(img, zeros, zeros + 1, np.ones((size, size), bool), Window(0, size, 0, size))
    seg.predict(Tile(img[:, :256, :256], zeros[:256, :256], zeros[:256, :256] + 1, tile.valid[:256, :256],
                     Window(0, 256, 0, 256)))  # warm-up
    t0 = time.perf_counter()
    seg.predict(tile)
    return size * size / 1e6 / (time.perf_counter() - t0)


def sq_by_size(true: np.ndarray, pred: np.ndarray) -> list[tuple[str, int, float, float]]:
    """(size bin, n true, completeness, mean matched IoU) by true object area."""
    from astrostatlearn.metrics import LabelPairs, match_instances

    m = match_instances(LabelPairs.from_maps(true, pred))
    out = []
    for lo, hi in zip(SIZE_BINS[:-1], SIZE_BINS[1:]):
        sel = (m.true_area >= lo) & (m.true_area < hi)
        ids = m.true_ids[sel]
        hit = np.isin(m.matched_true, ids)
        label = f"[{lo},{hi})" if hi < 10**9 else f">={lo}"
        out.append((label, int(sel.sum()), float(hit.sum() / max(sel.sum(), 1)),
                    float(m.matched_iou[hit].mean()) if hit.any() else float("nan")))
    return out


def recall_bound(rows) -> float:
    """The fraction of true objects found (IoU > 0.5) when each bin of true S/N takes the best
    completeness of any row: a bound on every row's recall, so on its AP50, which COCO's
    precision (0 beyond the largest recall) cannot lift above it."""
    snr = rows[0].evaluation.binned["snr"]
    n = np.asarray(snr["n_true"], float)
    comp = np.array([r.evaluation.binned["snr"]["completeness"] for r in rows], float)
    return float((np.nan_to_num(comp, nan=0.0).max(axis=0) * n).sum() / n.sum())  # empty bins: NaN -> 0


def densest_window(true_path: Path, window: int = 256) -> int:
    """Objects in the most crowded ``window``^2 window of the truth map (what a detector's
    per-window cap, such as Mask R-CNN's ``box_detections_per_img``, must exceed)."""
    from astrostatlearn.field import open_image, tile_grid

    f = open_image(true_path, role="truth")
    try:
        return max(int(np.count_nonzero(np.bincount(f.read(w).ravel())[1:])) for w in tile_grid(f.shape, window))
    finally:
        f.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--seed", type=int, default=7, help="training used seeds 1000-1016")
    ap.add_argument("--scratch", type=Path, default=None)
    ap.add_argument("--throughput", action="store_true", help="print only the inference Mpix/s, on a quiet machine")
    args = ap.parse_args()
    if args.throughput:
        print_throughput()
        return
    scratch = args.scratch or scratch_dir("bench-maskrcnn-")
    from astrostatlearn.benchmark import run_benchmark
    from astrostatlearn.metrics import block_pq_terms, bootstrap_pq

    sys_path = Path(__file__).resolve().parent
    import sys

    sys.path.insert(0, str(sys_path))
    from bench_unet import print_breakdown, print_snr_tables, read_region

    field = scratch / f"field{args.size}-seed{args.seed}"
    if not (field / "true.fits").exists():
        from astrostatlearn.simulate import simulate_field

        simulate_field(field, args.size, seed=args.seed, overwrite=True, progress=False)
    res = run_benchmark(field, scratch / "bench", ["sep", "unet", "maskrcnn"], ["raw", "snr"], overwrite=True,
                        log=lambda m: None)
    rows = [r for r in res["rows"] if r.evaluation is not None]
    region = res["meta"]["test_region"]
    print(f"fresh field {field} ({args.size}^2, seed {args.seed}); test band {region}")
    print(f"{'method':<14} {'variant':<7} {'IoU':>6} {'Dice':>6} {'F1':>6} {'PQ':>6} {'SQ':>6} {'RQ':>6} "
          f"{'AP':>6} {'AP50':>6} {'AP75':>6} {'AR':>6}")
    for r in rows:
        e = r.evaluation
        g, c = e.panoptic["galaxy"], e.coco["segm"]
        print(f"{r.method:<14} {r.variant:<7} {e.pixel['iou']:>6.3f} {e.pixel['dice']:>6.3f} {e.detection['f1']:>6.3f} "
              f"{g['pq']:>6.3f} {g['sq']:>6.3f} {g['rq']:>6.3f} {c['AP']:>6.3f} {c['AP50']:>6.3f} {c['AP75']:>6.3f} "
              f"{c['AR_max']:>6.3f}")
    by = {r.method: r for r in rows}
    true = read_region(field / "true.fits", region)
    preds = {f"{r.method} {r.variant}": read_region(r.seg_path, region) for r in rows}
    if "SExtractor" in by:
        terms = {name: block_pq_terms(true, pred) for name, pred in preds.items()}
        ci = bootstrap_pq(terms, reference="SExtractor raw")
        print("\nPQ with 95% intervals (paired bootstrap over 256^2 blocks); ratio to SExtractor at the seed's settings:")
        for name, c in ci.items():
            print(f"  {name:<20} PQ {c['pq']:.3f} [{c['lo']:.3f}, {c['hi']:.3f}]   "
                  f"/ SExtractor {c['ratio']:.2f} [{c['ratio_lo']:.2f}, {c['ratio_hi']:.2f}]")
    mr, un, sx = by.get("maskrcnn"), by.get("unet"), by.get("SExtractor")
    if mr is not None:
        c = mr.evaluation.coco["segm"]
        pq = mr.evaluation.panoptic["galaxy"]["pq"]
        print("\ntargets (maskrcnn):")
        print(f"  mask AP50 >= 0.85: {c['AP50']:.3f} -> {'met' if c['AP50'] >= 0.85 else 'NOT met'}")
        if rows[0].evaluation.binned:
            print(f"    (the best completeness of any row in each bin of true S/N finds {recall_bound(rows):.3f} of the "
                  "objects: no row's recall, so no row's AP50, can exceed it)")
        print(f"  mask AP[.5:.95] >= 0.45: {c['AP']:.3f} -> {'met' if c['AP'] >= 0.45 else 'NOT met'}")
        if sx is not None:
            ratio = pq / sx.evaluation.panoptic["galaxy"]["pq"]
            print(f"  PQ >= 1.3 x SExtractor (seed settings): {ratio:.2f} x -> {'met' if ratio >= 1.3 else 'NOT met'}")
            if "SExtractor-sky" in by:
                print(f"    beside SExtractor with the sky rms map: {pq / by['SExtractor-sky'].evaluation.panoptic['galaxy']['pq']:.2f} x")
        if un is not None:
            upq = un.evaluation.panoptic["galaxy"]["pq"]
            print(f"  PQ >= U-Net PQ - 0.03 ({upq - 0.03:.3f}): {pq:.3f} -> {'met' if pq >= upq - 0.03 else 'NOT met'}")
    print_snr_tables(rows)
    print_breakdown(rows)
    print("\ncompleteness and mean matched mask IoU by true object area (px): the 28^2 mask head vs the U-Net")
    for name in [n for n in preds if n.split()[0] in ("maskrcnn", "unet")]:
        print(f"  {name:<14} " + "  ".join(f"{lab} n={n} comp {comp:.2f} IoU {iou:.3f}"
                                             for lab, n, comp, iou in sq_by_size(true, preds[name])))
    print(f"\ndensest 256^2 window of the field: {densest_window(field / 'true.fits')} objects "
          f"(the model keeps up to 400 detections per window)")
    print_throughput()
    for r in rows:
        if r.method in ("unet", "maskrcnn", "sep"):
            print(f"  whole-band segment run {r.method} {r.variant}: {r.mpix_per_s:.2f} Mpix/s, peak {r.peak_mb:.0f} MB")
    for what, name in (("from scratch, eight surveys", "maskrcnn-start.csv"),
                       ("fine-tuned, seventeen surveys (shipped)", "maskrcnn-default.csv")):
        log = resources.files("astrostatlearn.data") / name
        if log.is_file():
            hist = list(csv.DictReader(log.open()))
            best = max(hist, key=lambda h: float(h["val_metric"]))
            t_best = sum(float(h["seconds"]) for h in hist[: int(best["epoch"]) + 1])
            print(f"maskrcnn training, {what}: {len(hist)} epochs, {sum(float(h['seconds']) for h in hist):.0f} s; "
                  f"best val PQ {float(best['val_metric']):.3f} at epoch {int(best['epoch']) + 1} after {t_best:.0f} s")
            print("  learning curve (val PQ): " + " ".join(f"{float(h['val_metric']):.2f}" for h in hist))


if __name__ == "__main__":
    main()
