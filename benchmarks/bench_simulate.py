"""Time and peak memory of `simulate` (euclid-vis preset) at 4096^2 and 8192^2 on all cores.

Usage: python benchmarks/bench_simulate.py [--sizes 4096 8192] [--workers 0] [--out DIR]
Add 25000 to --sizes for the full reference-field size (about 10 minutes on 2 cores, 7.5 GB disk).
"""

from __future__ import annotations

import argparse
import os
import shutil

from _measure import measure, scratch_dir


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sizes", type=int, nargs="+", default=[4096, 8192])
    ap.add_argument("--workers", type=int, default=0, help="0 = all cores")
    ap.add_argument("--out", default=None, help="scratch folder (default: a temporary one)")
    args = ap.parse_args()
    workers = args.workers or os.cpu_count()
    root = args.out or scratch_dir("bench-sim-")
    print(f"simulate, preset euclid-vis, {workers} workers, tile 1024, scratch {root}")
    print(f"{'size':>7} {'Mpix':>7} {'objects':>8} {'fg %':>6} {'wall s':>8} {'Mpix/s':>7} {'main MB':>8} {'worker MB':>9} {'bound MB':>9}")
    for n in args.sizes:
        out = os.path.join(root, f"sim{n}")
        r = measure(f"""
            from astrostatlearn.simulate import simulate_field
            s = simulate_field({out!r}, {n}, seed=0, workers={workers}, overwrite=True, progress=False)
            extra = {{"objects": s.n_objects, "fg": s.foreground_fraction}}
        """)
        mpix = n * n / 1e6
        bound = r["main_mb"] + workers * r["worker_mb"]
        print(f"{n:>7} {mpix:>7.1f} {r['extra']['objects']:>8} {100 * r['extra']['fg']:>6.2f} {r['wall_s']:>8.1f} "
              f"{mpix / r['wall_s']:>7.2f} {r['main_mb']:>8.0f} {r['worker_mb']:>9.0f} {bound:>9.0f}", flush=True)
        shutil.rmtree(out, ignore_errors=True)
    if args.out is None:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
