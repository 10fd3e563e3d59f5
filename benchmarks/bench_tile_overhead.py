"""One method's per-tile cost in a whole-field run, with glibc's default allocator and with
:func:`astrostatlearn.allocator.keep_freed_memory`, beside the method's own extraction alone.

Each row is a fresh process that runs the driver's tile function (read, variant, method,
ownership, catalogue, score) on the same ``--tiles`` tiles of the field (2048-px cores with the
method's halo, as ``segment`` cuts them), after one warm-up tile, and prints the wall time, user and
system CPU time and minor page faults per tile. The last row times sep's own detection alone on the same
windows (``sep`` only: ``SepSegmenter.detect``, the filter and ``sep.extract``): the floor that no tile path around it can beat.

Usage: python benchmarks/bench_tile_overhead.py --field DIR [--method sep] [--tiles 8] [--no-score]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

TILES = r"""
import json, resource, sys, time
args = json.loads(sys.argv[1])
if args["keep"]:
    from astrostatlearn.allocator import keep_freed_memory
    assert keep_freed_memory()
from astrostatlearn.field import Field
from astrostatlearn.field import tile_grid
from astrostatlearn.methods import default_segmenter, resolve_variant
from astrostatlearn.preprocess.variants import fit_variant
from astrostatlearn.segment import run as R
from astrostatlearn.segment.background import BackgroundMesh
from astrostatlearn.segment.tiles import make_tile

f = Field.open(args["field"])
seg = default_segmenter(args["method"])
pre = fit_variant(f, resolve_variant(seg, None))
mesh = BackgroundMesh.from_field(f, pre)
halo = max(128, seg.halo)
cores = tile_grid(f.shape, 2048)[: args["tiles"] + 1]
R._RUN_STATE["bench"] = (f, seg)

def one(core):
    window = core.grow(halo, f.shape)
    if args["extract_only"]:
        seg.detect(make_tile(f, pre, mesh, window))
    else:
        R._segment_tile("bench", 0, None, None, pre, mesh, core, window, pre.stats.img_median, args["score"])

one(cores[0])  # warm-up: imports, first touch
usage = lambda: (time.perf_counter(), *(getattr(resource.getrusage(resource.RUSAGE_SELF), k)
                                         for k in ("ru_utime", "ru_stime", "ru_minflt")))
spent = [0.0, 0.0, 0.0, 0.0]  # wall, user, sys, minor faults
for core in cores[1:]:
    tile = make_tile(f, pre, mesh, core.grow(halo, f.shape)) if args["extract_only"] else None
    before = usage()
    seg.detect(tile) if tile is not None else one(core)  # sep alone, or the whole tile path
    spent = [s + b - a for s, a, b in zip(spent, before, usage())]
n = len(cores) - 1
print(json.dumps({"wall": spent[0] / n, "user": spent[1] / n, "sys": spent[2] / n, "minflt": spent[3] / n, "n": n}))
"""


def measure(field: str, method: str, tiles: int, score: bool, keep: bool, extract_only: bool = False) -> dict:
    args = {"field": field, "method": method, "tiles": tiles, "score": score, "keep": keep,
            "extract_only": extract_only}
    p = subprocess.run([sys.executable, "-c", TILES, json.dumps(args)], capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(p.stderr.strip()[-800:])
    return json.loads(p.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--field", required=True)
    ap.add_argument("--method", default="sep")
    ap.add_argument("--tiles", type=int, default=8)
    ap.add_argument("--no-score", action="store_true", help="as segment --no-score")
    a = ap.parse_args()
    rows = [("glibc default allocator", measure(a.field, a.method, a.tiles, not a.no_score, keep=False)),
            ("keep_freed_memory (ours)", measure(a.field, a.method, a.tiles, not a.no_score, keep=True))]
    if a.method == "sep":
        rows.append(("floor: sep.extract alone", measure(a.field, a.method, a.tiles, False, keep=True,
                                                         extract_only=True)))
    print(f"{a.method}, {rows[0][1]['n']} tiles of 2048^2 + halo, one process, score map: {not a.no_score}")
    print(f"{'per tile':28s} {'wall s':>8s} {'user s':>8s} {'sys s':>8s} {'minor faults':>13s}")
    for name, r in rows:
        print(f"{name:28s} {r['wall']:8.3f} {r['user']:8.3f} {r['sys']:8.3f} {r['minflt']:13.0f}")


if __name__ == "__main__":
    main()
