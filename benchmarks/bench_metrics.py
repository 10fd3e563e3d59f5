"""Time and peak memory of scoring a whole field, and COCO speed: faster-coco-eval vs pycocotools.

1. Simulates an 8192^2 field (or uses --field); the prediction is its truth map shifted by one
   pixel with every 10th object removed, written to disk, so scoring reads FITS like a real run.
2. Scores it (pixel + instance + PQ + binned, no COCO) in a fresh process: wall time and peak RSS.
3. With --big, tiles that field 3x3 into a 24576^2 truth/prediction pair (~170k objects) and
   scores it too: the reference-field scale (target: <= 60 s on 2 cores).
4. Times COCO evaluation of one crowded 1024^2 tile with faster-coco-eval and with pycocotools.

Usage: python benchmarks/bench_metrics.py [--field DIR] [--big] [--scratch DIR]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

from _measure import measure, scratch_dir


def make_prediction(true_path: Path, out: Path, reps: int = 1) -> None:
    """Write truth and prediction maps tiled reps x reps (IDs offset per copy), streamed by rows."""
    from astropy.io import fits

    from astrostatlearn.field import FitsImageWriter, Window

    src = fits.open(true_path, memmap=True)[0].data
    n = src.shape[0]
    max_id = int(src.max()) + 1
    shape = (n * reps, n * reps)
    with FitsImageWriter(out / "true.fits", shape, np.int32, overwrite=True) as wt, \
            FitsImageWriter(out / "pred.fits", shape, np.int32, overwrite=True) as wp:
        step = 1024
        for ry in range(reps):
            for y0 in range(0, n, step):
                block = np.asarray(src[y0:y0 + step], dtype=np.int32)
                pred = np.roll(np.roll(block, 1, axis=0), 1, axis=1)
                pred[(pred % 10) == 0] = 0
                for rx in range(reps):
                    off = (ry * reps + rx) * max_id
                    w = Window(ry * n + y0, ry * n + y0 + block.shape[0], rx * n, rx * n + n)
                    wt.write(w, np.where(block > 0, block + off, 0))
                    wp.write(w, np.where(pred > 0, pred + off, 0))


def score(d: Path, label: str) -> None:
    r = measure(f"""
        from astrostatlearn.field import open_image
        from astrostatlearn.metrics import evaluate
        ev = evaluate(open_image({str(d / 'true.fits')!r}), open_image({str(d / 'pred.fits')!r}), coco=False, workers=2)
        extra = {{"n_true": ev.detection["n_true"], "pq": ev.panoptic["galaxy"]["pq"], "iou": ev.pixel["iou"],
                 "shape": list(ev.region.shape)}}
    """)
    e = r["extra"]
    print(f"{label:<10} {e['shape'][0]:>6}^2 {e['n_true']:>8} {r['wall_s']:>8.1f} {r['main_mb']:>8.0f}   "
          f"(pixel IoU {e['iou']:.3f}, PQ {e['pq']:.3f})", flush=True)


def coco_speed(d: Path) -> None:
    """faster-coco-eval vs pycocotools on the most crowded tile with < 255 objects (pycocotools'
    mask.area fails past 255 masks per call with numpy 2), then faster-coco-eval alone on the
    most crowded 1024^2 tile, with pycocotools' answer shown as it comes out."""
    for size in (512, 1024):
        _coco_tile(d, size)


def _coco_tile(d: Path, size: int) -> None:
    from astropy.io import fits

    from astrostatlearn.metrics.coco import coco_evaluate, score_from_map, tile_annotations

    t = fits.open(d / "true.fits", memmap=True)[0].data
    p = fits.open(d / "pred.fits", memmap=True)[0].data
    # The most crowded size^2 tile of the first 4096^2.
    best, win = -1, (0, 0)
    for y in range(0, 4096, size):
        for x in range(0, 4096, size):
            k = len(np.unique(t[y:y + size, x:x + size]))
            if k > best:
                best, win = k, (y, x)
    y, x = win
    tt, pp = np.asarray(t[y:y + size, x:x + size]), np.asarray(p[y:y + size, x:x + size])
    rng = np.random.default_rng(0)
    score = rng.random(tt.shape)
    g, dts = tile_annotations(tt, pp, 1, score_from_map(score), 1)
    images = [{"id": 1, "height": size, "width": size}]
    print(f"\nCOCO on the most crowded {size}^2 tile: {len(g)} true, {len(dts)} predicted objects (maxDets {max(len(g), len(dts))})")
    print(f"{'backend':<18} {'wall s':>7} {'segm AP':>8} {'bbox AP':>8}")
    for backend in ("faster", "pycocotools"):
        t0 = time.perf_counter()
        res = coco_evaluate(g, dts, images, max(len(g), len(dts)), backend=backend)
        dt = time.perf_counter() - t0
        name = "faster-coco-eval" if backend == "faster" else "pycocotools"
        print(f"{name:<18} {dt:>7.2f} {res['segm']['AP']:>8.4f} {res['bbox']['AP']:>8.4f}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--field", type=Path, default=None, help="existing field with true.fits (default: simulate 8192^2)")
    ap.add_argument("--big", action="store_true", help="also score a 24576^2 field tiled 3x3 from it")
    ap.add_argument("--scratch", type=Path, default=None)
    args = ap.parse_args()
    scratch = args.scratch or scratch_dir("bench-metrics-")
    field = args.field
    if field is None:
        field = scratch / "field8192"
        if not (field / "true.fits").exists():
            from astrostatlearn.simulate import simulate_field

            print("simulating an 8192^2 field ...", flush=True)
            simulate_field(field, 8192, seed=1, overwrite=True, progress=False)
    one = scratch / "pair1"
    one.mkdir(parents=True, exist_ok=True)
    make_prediction(field / "true.fits", one, reps=1)
    print(f"scoring with evaluate(coco=False), 2 threads, {os.cpu_count()} cores")
    print(f"{'field':<10} {'size':>8} {'objects':>8} {'wall s':>8} {'peak MB':>8}")
    score(one, "8192")
    if args.big:
        big = scratch / "pair3"
        big.mkdir(parents=True, exist_ok=True)
        make_prediction(field / "true.fits", big, reps=3)
        score(big, "3x3 tiled")
    coco_speed(one)


if __name__ == "__main__":
    main()
