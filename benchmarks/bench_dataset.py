"""Time and peak memory of building a patch dataset (with COCO export) from an 8192^2 field.

Usage: python benchmarks/bench_dataset.py [--field DIR] [--size 8192] [--variant soft+rms] [--scratch DIR]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from _measure import measure, scratch_dir


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--field", type=Path, default=None)
    ap.add_argument("--size", type=int, default=8192)
    ap.add_argument("--variant", default="soft+rms")
    ap.add_argument("--scratch", type=Path, default=None)
    args = ap.parse_args()
    scratch = args.scratch or scratch_dir("bench-dataset-")
    field = args.field or scratch / f"field{args.size}"
    if not (field / "true.fits").exists():
        from astrostatlearn.simulate import simulate_field

        simulate_field(field, args.size, seed=1, overwrite=True, progress=False)
    out = scratch / "dataset"
    print(f"dataset from {field}, variant {args.variant}, 256^2 patches, splits 70/15/15")
    print(f"{'step':<22} {'wall s':>7} {'peak MB':>8}  result")
    r = measure(f"""
        from astrostatlearn.field import Field
        from astrostatlearn.datasets import build_dataset
        with Field.open({str(field)!r}) as f:
            m = build_dataset(f, {args.variant!r}, {str(out)!r}, overwrite=True)
        extra = {{"n": m["n_patches"], "guard": m["splits"]["guard"]}}
    """)
    print(f"{'patches (npz shards)':<22} {r['wall_s']:>7.1f} {r['main_mb']:>8.0f}  {r['extra']['n']} guard {r['extra']['guard']} px")
    r = measure(f"""
        from astrostatlearn.datasets import export_instances, export_panoptic
        n = 0
        for s in ("train", "val", "test"):
            n += len(export_instances({str(out)!r}, s, {str(out / 'coco')!r} + f"/instances_{{s}}.json", overwrite=True)["annotations"])
            export_panoptic({str(out)!r}, s, {str(out / 'coco')!r}, overwrite=True)
        extra = {{"n": n}}
    """)
    print(f"{'COCO + panoptic export':<22} {r['wall_s']:>7.1f} {r['main_mb']:>8.0f}  {r['extra']['n']} annotations")


if __name__ == "__main__":
    main()
