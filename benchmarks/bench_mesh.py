"""The whole-field background mesh, measured by threads (the baseline) and by the local worker
processes, alternately, on the same field: wall time per round, and whether the meshes agree.

``segment`` measures the mesh in the run's own worker processes (a field on disk with the
processes scheduler), which then run the tiles: the clipping's bookkeeping holds the GIL, so two
threads reach about 1.7x on two cores on large fields. The process rows here include starting and
stopping a pool, which ``segment`` pays once for the mesh and the tiles together (the forkserver is
started, and its imports done, before the first round, as ``segment`` starts it first thing).

Usage: python benchmarks/bench_mesh.py --field DIR [--rounds 2] [--workers 2]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--field", type=Path, required=True)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()

    from astrostatlearn.allocator import keep_freed_memory
    from astrostatlearn.field import Field
    from astrostatlearn.methods import default_segmenter
    from astrostatlearn.preprocess import fit_variant
    from astrostatlearn.schedulers import local_process_pool, warm_up
    from astrostatlearn.segment.background import BackgroundMesh
    from astrostatlearn.segment.run import worker_modules

    keep_freed_memory()
    modules = worker_modules(default_segmenter("sep"))
    warm_up("processes", modules)
    with Field.open(args.field) as field:
        pre = fit_variant(field, "raw")
        BackgroundMesh.from_field(field, pre, check=True, workers=args.workers)  # the field into the page cache
        ny, nx = field.shape
        print(f"field {args.field} ({ny}x{nx}), background mesh with the scan's checks, {args.workers} workers")
        print(f"{'round':>5} {'threads s':>10} {'processes s':>12}  same mesh")
        for r in range(args.rounds):
            t0 = time.perf_counter()
            threads = BackgroundMesh.from_field(field, pre, check=True, workers=args.workers)
            t1 = time.perf_counter()
            with local_process_pool("processes", args.workers, modules) as pool:
                procs = BackgroundMesh.from_field(field, pre, check=True, workers=args.workers, pool=pool)
            t2 = time.perf_counter()
            same = np.array_equal(threads.bkg, procs.bkg) and np.array_equal(threads.rms, procs.rms)
            print(f"{r + 1:>5} {t1 - t0:>10.2f} {t2 - t1:>12.2f}  {same}", flush=True)


if __name__ == "__main__":
    main()
