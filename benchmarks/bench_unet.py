"""The shipped U-Net on a fresh simulated field (a seed never used in training), beside SExtractor
and sep on the same held-out test band, plus inference throughput and training time.

Prints pixel IoU, Dice, instance F1 and PQ per row, the targets (pixel IoU >= 0.80 and
PQ >= 1.5 x SExtractor's at the seed's settings, 1.5 sigma, 5 px, rms map; the tuned 1.0-sigma
run, and the seed's settings with the rms map's sky part, which SExtractor's MAP_RMS expects, are
printed beside it) and whether they are met; completeness and mask IoU by S/N for each row; PQ and
PQ / SExtractor's with 95% block-bootstrap intervals; where PQ is lost (masks, false, missed
objects, and each error's kind); the U-Net's PQ with perfect splitting of its foreground; the PQ
ceiling of an oracle that segments perfectly exactly the objects above an S/N cut (what the PQ
target asks for, in detection terms); U-Net inference Mpix/s on CPU (and GPU when present); and
the training time from the shipped model's log.

Usage: python benchmarks/bench_unet.py [--size 4096] [--seed 7] [--scratch DIR]
"""

from __future__ import annotations

import argparse
import csv
import time
from importlib import resources
from pathlib import Path

import numpy as np

from _measure import scratch_dir


def throughput(device: str, size: int = 1024, repeats: int = 2, engine: str = "auto") -> float:
    """Mpix/s of the shipped U-Net's maps on a noise image in one piece (its windows, batched)."""
    from astrostatlearn.methods.unet import UNetSegmenter

    seg = UNetSegmenter.shipped().set_params(engine=engine)
    seg.device = device
    img = np.random.default_rng(0).normal(size=(1, size, size)).astype(np.float32)
    seg.predict_maps(img[:, :256, :256])  # warm-up
    t0 = time.perf_counter()
    for _ in range(repeats):
        seg.predict_maps(img)
    return repeats * size * size / 1e6 / (time.perf_counter() - t0)


def read_region(path: str | Path, region: list[int]) -> np.ndarray:
    """The instance map at ``path`` inside ``region`` = [y0, y1, x0, x1], as int32."""
    from astrostatlearn.field import Window, open_image

    f = open_image(path, role="truth")
    try:
        return f.read(Window(*region)).astype(np.int32)
    finally:
        f.close()


def oracle_pq(true: np.ndarray, catalog_path: Path, cuts: tuple[float, ...]) -> dict[float, float]:
    """PQ of a perfect segmenter that finds exactly the true objects with catalogue S/N >= cut
    (their true masks, nothing else)."""
    from astropy.table import Table

    from astrostatlearn.metrics import evaluate

    cat = Table.read(catalog_path)
    snr = np.zeros(int(cat["id"].max()) + 1)
    snr[np.asarray(cat["id"])] = np.asarray(cat["snr"], float)
    return {k: evaluate(true, np.where(snr[true] >= k, true, 0), coco=False).panoptic["galaxy"]["pq"] for k in cuts}


def oracle_split(true: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """``pred``'s foreground with perfect instance assignment: each foreground pixel takes the ID of
    the nearest true object. Its PQ shows how much is lost to splitting blends, not to the masks."""
    from scipy import ndimage

    _, (iy, ix) = ndimage.distance_transform_edt(true == 0, return_indices=True)
    return np.where(pred > 0, true[iy, ix], 0).astype(np.int32)


def print_snr_tables(rows) -> None:
    """Completeness and mean matched mask IoU by true S/N, one line per row."""
    edges = rows[0].evaluation.binned["snr"]["edges"] if rows and rows[0].evaluation.binned else []
    if not edges:
        return
    bins = [f"[{lo:g},{hi:g})" for lo, hi in zip(edges[:-1], edges[1:])]
    n_true = rows[0].evaluation.binned["snr"]["n_true"]
    keep = [i for i, n in enumerate(n_true) if n > 0]
    for key, title in (("completeness", "\ncompleteness by true S/N (n true: " + ", ".join(f"{bins[i]} {n_true[i]}" for i in keep) + ")"),
                       ("mask_iou", "mean IoU of matched masks by true S/N (SQ per bin)")):
        print(title)
        for r in rows:
            v = r.evaluation.binned["snr"][key]
            print(f"{r.method:<14} {r.variant:<8} " + " ".join(f"{v[i]:>6.2f}" for i in keep))


def print_breakdown(rows) -> None:
    """The PQ loss breakdown of each row and the kinds of error."""
    print("\nwhere PQ is lost (1 - PQ = loss from masks + false + missed objects) and the kinds of error;"
          "\nSQ (mean IoU of matched masks) is the PQ this method would have with perfect detection:")
    print(f"{'method':<21} {'PQ':>6} {'SQ':>6} {'masks':>6} {'false':>6} {'missed':>6}   FN: missed/merged/poor mask"
          "   FP: background/fragment/on unmatched")
    for r in rows:
        b = r.evaluation.errors
        print(f"{r.method + ' ' + r.variant:<21} {b['pq']:>6.3f} {b['sq']:>6.3f} {b['loss_sq']:>6.3f} {b['loss_fp']:>6.3f} "
              f"{b['loss_fn']:>6.3f}   {b['fn_missed']:>4} / {b['fn_merged']:>4} / {b['fn_poor_mask']:>4}"
              f"             {b['fp_background']:>4} / {b['fp_fragment']:>4} / {b['fp_on_unmatched']:>4}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--seed", type=int, default=7, help="training used seeds 1000-1016")
    ap.add_argument("--scratch", type=Path, default=None)
    args = ap.parse_args()
    scratch = args.scratch or scratch_dir("bench-unet-")
    from astrostatlearn.benchmark import run_benchmark
    from astrostatlearn.metrics import block_pq_terms, bootstrap_pq, evaluate
    from astrostatlearn.simulate import simulate_field

    field = scratch / f"field{args.size}-seed{args.seed}"
    if not (field / "true.fits").exists():
        simulate_field(field, args.size, seed=args.seed, overwrite=True, progress=False)
    res = run_benchmark(field, scratch / "bench", ["sep", "unet"], ["raw", "snr"], overwrite=True, log=lambda m: None)
    rows = [r for r in res["rows"] if r.evaluation is not None]
    print(f"fresh field {field} ({args.size}^2, seed {args.seed}); test band {res['meta']['test_region']}")
    print(f"{'method':<16} {'variant':<8} {'pixel IoU':>9} {'Dice':>6} {'inst F1':>8} {'PQ':>6} {'AP50':>6}")
    for r in rows:
        e = r.evaluation
        print(f"{r.method:<16} {r.variant:<8} {e.pixel['iou']:>9.3f} {e.pixel['dice']:>6.3f} {e.detection['f1']:>8.3f} "
              f"{e.panoptic['galaxy']['pq']:>6.3f} {e.coco['segm']['AP50']:>6.3f}")
    unet = next((r for r in rows if r.method == "unet"), None)
    sex = next((r for r in rows if r.method == "SExtractor"), None)
    if unet is not None:
        iou = unet.evaluation.pixel["iou"]
        print(f"target pixel IoU >= 0.80: {iou:.3f} -> {'met' if iou >= 0.80 else 'NOT met'}")
        if sex is not None:
            ratio = unet.evaluation.panoptic["galaxy"]["pq"] / sex.evaluation.panoptic["galaxy"]["pq"]
            print(f"target PQ >= 1.5 x SExtractor (seed settings): {ratio:.2f} x -> {'met' if ratio >= 1.5 else 'NOT met'}")
        for name, label in (("SExtractor-tuned", "tuned (1.0 sigma)"), ("SExtractor-sky", "with the sky rms map")):
            peer = next((r for r in rows if r.method == name), None)
            if peer is not None:
                print(f"  beside SExtractor {label}: "
                      f"{unet.evaluation.panoptic['galaxy']['pq'] / peer.evaluation.panoptic['galaxy']['pq']:.2f} x")
    print_snr_tables(rows)
    region = res["meta"]["test_region"]
    true = read_region(field / "true.fits", region)
    preds = {f"{r.method} {r.variant}": read_region(r.seg_path, region) for r in rows}
    if sex is not None:
        terms = {name: block_pq_terms(true, pred) for name, pred in preds.items()}
        ci = bootstrap_pq(terms, reference=f"{sex.method} {sex.variant}")
        print("\nPQ with 95% intervals from a paired bootstrap over 256^2 blocks of the test band;"
              " ratio to SExtractor at the seed's settings:")
        for name, c in ci.items():
            print(f"  {name:<20} PQ {c['pq']:.3f} [{c['lo']:.3f}, {c['hi']:.3f}]   "
                  f"/ SExtractor {c['ratio']:.2f} [{c['ratio_lo']:.2f}, {c['ratio_hi']:.2f}]")
    print_breakdown(rows)
    if unet is not None:
        name = f"{unet.method} {unet.variant}"
        split = evaluate(true, oracle_split(true, preds[name]), coco=False).panoptic["galaxy"]
        print(f"{name}: the same foreground with perfect instance assignment (each pixel to the nearest true object)"
              f" scores PQ {split['pq']:.3f}, SQ {split['sq']:.3f}")
    cuts = (5.0, 8.0, 10.0, 15.0)
    ceiling = oracle_pq(true, field / "truth.ecsv", cuts)
    print("\nPQ of an oracle that segments perfectly exactly the objects with S/N >= cut, and nothing else:")
    print("  " + ", ".join(f"S/N >= {k:g}: {v:.3f}" for k, v in ceiling.items()))
    if sex is not None:
        need = 1.5 * sex.evaluation.panoptic["galaxy"]["pq"]
        reach = [k for k, v in ceiling.items() if v >= need]
        print(f"  the PQ target ({need:.3f}) needs perfect masks on every object down to S/N "
              + (f"{max(reach):g} at least" if reach else f"below {min(cuts):g}"))
        if unet is not None:
            print(f"  and, since PQ <= SQ, matched masks with mean IoU >= {need:.3f} even with perfect detection "
                  f"(U-Net SQ {unet.evaluation.panoptic['galaxy']['sq']:.3f}, "
                  f"SExtractor {sex.evaluation.panoptic['galaxy']['sq']:.3f})")
    import torch

    from astrostatlearn.methods.unet import UNetSegmenter

    shipped = UNetSegmenter.shipped()
    print(f"\nU-Net maps throughput (1024^2, window {shipped.window}, overlap {shipped.overlap}, "
          f"{torch.get_num_threads()} threads): CPU {throughput('cpu'):.2f} Mpix/s (default engine), "
          f"{throughput('cpu', engine='torch'):.2f} Mpix/s (PyTorch reference); end to end: bench_segment.py")
    if torch.cuda.is_available():
        print(f"U-Net inference throughput: GPU {throughput('cuda'):.2f} Mpix/s ({torch.cuda.get_device_name()})")
    log = resources.files("astrostatlearn.data") / "unet-default.csv"
    if log.is_file():
        with log.open() as fh:
            hist = list(csv.DictReader(fh))
        metric = "val_metric" if "val_metric" in hist[0] else "val_iou"  # the shipped log predates the rename
        best = max(hist, key=lambda h: float(h[metric]))
        t_best = sum(float(h["seconds"]) for h in hist if int(h["epoch"]) <= int(best["epoch"]))
        print(f"shipped model, last training run (CPU, 2 cores; the default is fine-tuned from unet-correlated.pt, see training.shipped): {len(hist)} epochs, {sum(float(h['seconds']) for h in hist):.0f} s; "
              f"best val IoU {float(best[metric]):.3f} at epoch {int(best['epoch']) + 1} after {t_best:.0f} s")


if __name__ == "__main__":
    main()
