"""The query-based panoptic models (DETR, Mask2Former) on a fresh simulated field, beside the shipped
U-Net, sep and SExtractor, every row scored on the same held-out test band.

Prints the seed's table (PQ, SQ and RQ for ``all``, ``void`` and ``galaxy``: one row per class, one
column group per method), pixel IoU, instance F1 and mask AP50 per row; galaxy PQ with a 95%
paired block-bootstrap interval and its ratio to SExtractor at the seed's settings (1.5 sigma,
5 px, rms map); the targets (galaxy PQ >= SExtractor's); completeness by S/N; the PQ loss
breakdown; each model's inference Mpix/s in the run and its training time from its CSV log.

Usage: python benchmarks/bench_query_models.py --model mask2former=M2F.pt [--model detr=DETR.pt]
       [--size 4096] [--seed 7] [--scratch DIR]
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

from _measure import scratch_dir


def training_summary(model: Path) -> str:
    """Epochs, seconds and the best validation metric from the model's CSV log (beside it), after
    those of a first stage (DETR's detector alone, ``<stem>.detector.csv``) where there is one."""
    model = Path(model)
    logs = [model.with_name(f"{model.stem}.detector.csv"), model.with_suffix(".csv")]
    parts, before = [], 0.0
    for log in (p for p in logs if p.exists()):
        hist = list(csv.DictReader(log.open()))
        best = max(hist, key=lambda h: float(h["val_metric"]))
        t_best = before + sum(float(h["seconds"]) for h in hist[: int(best["epoch"]) + 1])
        before += sum(float(h["seconds"]) for h in hist)
        parts.append(f"{len(hist)} epochs, {before:.0f} s in all; best val {best['metric']} "
                     f"{float(best['val_metric']):.3f} at epoch {int(best['epoch']) + 1} after {t_best:.0f} s")
    return "; then ".join(parts) or "no training log"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", action="append", required=True, help="METHOD=PATH (detr, mask2former)")
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--seed", type=int, default=7, help="training used seeds 1000+")
    ap.add_argument("--scratch", type=Path, default=None)
    args = ap.parse_args()
    models = dict(m.split("=", 1) for m in args.model)
    scratch = args.scratch or scratch_dir("bench-query-")
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_unet import print_breakdown, print_snr_tables, read_region

    from astrostatlearn.benchmark import run_benchmark
    from astrostatlearn.metrics import block_pq_terms, bootstrap_pq

    field = scratch / f"field{args.size}-seed{args.seed}"
    if not (field / "true.fits").exists():
        from astrostatlearn.simulate import simulate_field

        simulate_field(field, args.size, seed=args.seed, overwrite=True, progress=False)
    res = run_benchmark(field, scratch / "bench", ["sep", "unet", *models], ["raw", "snr"], models=models,
                        overwrite=True, view=False, log=lambda m: None)
    rows = [r for r in res["rows"] if r.evaluation is not None]
    region = res["meta"]["test_region"]
    print(f"fresh field {field} ({args.size}^2, seed {args.seed}); test band {region}")
    names = [f"{r.method} {r.variant}" for r in rows]
    print("\nthe seed's table (PQ / SQ / RQ):")
    print(f"{'class':<8}" + "".join(f" {n:>22}" for n in names))
    for cls in ("all", "void", "galaxy"):
        cells = [r.evaluation.panoptic[cls] for r in rows]
        print(f"{cls:<8}" + "".join(f" {c['pq']:>6.3f} {c['sq']:>6.3f} {c['rq']:>6.3f}  " for c in cells))
    print(f"\n{'method':<22} {'IoU':>6} {'F1':>6} {'AP50':>6} {'Mpix/s':>7}")
    for n, r in zip(names, rows):
        e = r.evaluation
        print(f"{n:<22} {e.pixel['iou']:>6.3f} {e.detection['f1']:>6.3f} {e.coco['segm']['AP50']:>6.3f} "
              f"{r.mpix_per_s:>7.2f}")
    true = read_region(field / "true.fits", region)
    terms = {n: block_pq_terms(true, read_region(r.seg_path, region)) for n, r in zip(names, rows)}
    by = {r.method: r for r in rows}
    if "SExtractor" in by:
        ci = bootstrap_pq(terms, reference="SExtractor raw")
        print("\ngalaxy PQ with 95% intervals (paired bootstrap over 256^2 blocks); ratio to SExtractor (seed settings):")
        for n, c in ci.items():
            print(f"  {n:<22} PQ {c['pq']:.3f} [{c['lo']:.3f}, {c['hi']:.3f}]   "
                  f"/ SExtractor {c['ratio']:.2f} [{c['ratio_lo']:.2f}, {c['ratio_hi']:.2f}]")
        sx = by["SExtractor"].evaluation.panoptic["galaxy"]["pq"]
        print("\ntargets (galaxy PQ >= SExtractor's at the seed's settings):")
        for m in models:
            if m in by:
                pq = by[m].evaluation.panoptic["galaxy"]["pq"]
                print(f"  {m}: {pq:.3f} against {sx:.3f} -> {'met' if pq >= sx else 'NOT met'}")
    print_snr_tables(rows)
    print_breakdown(rows)
    for m, path in models.items():
        print(f"{m} training: {training_summary(Path(path))}")


if __name__ == "__main__":
    main()
