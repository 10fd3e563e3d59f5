"""Training time to reach the U-Net targets: score every training snapshot on a fresh field.

``python -m astrostatlearn.training.shipped --out build/unet-default.pt --snapshot-every 5`` keeps
the model every 5 epochs as ``<stem>.epochNNN.pt`` beside it. This script scores each snapshot on the held-out test
band of a fresh simulated field (same field and band as ``bench_unet.py``; each snapshot with the
post-processing parameters it was saved with),
beside SExtractor's PQ there, and prints the cumulative training time (from the CSV log) at which
pixel IoU >= 0.80 and PQ >= 1.5 x SExtractor were first reached.

Usage: python benchmarks/bench_unet_training.py --model PATH/unet-default.pt [--size 4096] [--seed 7]
       [--scratch DIR]
"""

from __future__ import annotations

import argparse
import csv
import re
from pathlib import Path

from _measure import scratch_dir


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, required=True, help="the trained model; snapshots and CSV log lie beside it")
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--scratch", type=Path, default=None)
    args = ap.parse_args()
    from astropy.io import fits

    from astrostatlearn.benchmark import peers
    from astrostatlearn.datasets import leak_free_splits
    from astrostatlearn.field import Field
    from astrostatlearn.methods import load_segmenter
    from astrostatlearn.metrics import evaluate
    from astrostatlearn.preprocess import fit_variant
    from astrostatlearn.segment import BackgroundMesh, make_tile
    from astrostatlearn.simulate import simulate_field

    snaps = sorted(args.model.parent.glob(f"{args.model.stem}.epoch*.pt"))
    if not snaps:
        raise SystemExit(f"no snapshots {args.model.stem}.epochNNN.pt beside {args.model}")
    with open(args.model.with_suffix(".csv")) as fh:
        seconds = {int(r["epoch"]) + 1: float(r["seconds"]) for r in csv.DictReader(fh)}
    scratch = args.scratch or scratch_dir("bench-unet-training-")
    field = scratch / f"field{args.size}-seed{args.seed}"
    if not (field / "true.fits").exists():
        simulate_field(field, args.size, seed=args.seed, overwrite=True, progress=False)
    with Field.open(field) as f:
        test = leak_free_splits(f, (0.7, 0.15, 0.15)).regions["test"]
        truth = f.read_true(test)
        first = load_segmenter(snaps[0])
        pre = fit_variant(f, first.variant)
        tile = make_tile(f, pre, BackgroundMesh.from_field(f, pre), test)
    sex_pq = None
    if peers.ensure_installed()["sextractor"]:
        sex = fits.getdata(peers.run_sextractor(field, scratch / "sextractor"))[test.y0:test.y1, test.x0:test.x1]
        sex_pq = evaluate(truth, sex.astype("int32"), coco=False).panoptic["galaxy"]["pq"]
        print(f"SExtractor PQ on the test band {test}: {sex_pq:.3f} (PQ target {1.5 * sex_pq:.3f})")
    print(f"{'epoch':>5} {'train s':>8} {'pixel IoU':>9} {'F1':>6} {'PQ':>6}")
    reached: dict[str, tuple[int, float]] = {}
    for path in snaps:
        epoch = int(re.search(r"epoch(\d+)", path.name).group(1))
        t = sum(s for e, s in seconds.items() if e <= epoch)
        seg = load_segmenter(path)
        ev = evaluate(truth, seg.predict(tile).labels, coco=False)
        iou, pq = ev.pixel["iou"], ev.panoptic["galaxy"]["pq"]
        print(f"{epoch:>5} {t:>8.0f} {iou:>9.3f} {ev.detection['f1']:>6.3f} {pq:>6.3f}", flush=True)
        if iou >= 0.80:
            reached.setdefault("pixel IoU >= 0.80", (epoch, t))
        if sex_pq is not None and pq >= 1.5 * sex_pq:
            reached.setdefault("PQ >= 1.5 x SExtractor", (epoch, t))
    import statistics

    median = statistics.median(seconds.values())
    for target in ("pixel IoU >= 0.80", "PQ >= 1.5 x SExtractor"):
        if target in reached:
            e, t = reached[target]
            print(f"{target}: first reached at epoch {e}, after {t:.0f} s of training as logged "
                  f"({e} x the median epoch, {median:.1f} s = {e * median:.0f} s)")
        else:
            print(f"{target}: not reached by any snapshot")


if __name__ == "__main__":
    main()
