"""Whole-field segmentation side by side with the peers, on one simulated field.

Methods: ``astrostatlearn segment --method M`` for each of ``--methods`` (all cores, through
Dask; ``unet[engine=torch]`` passes ``-p engine=torch``: the PyTorch reference path beside the
default OpenVINO one), SExtractor 2.25 at the seed study's settings (1.5 sigma, 5 px, gauss 2.0 5x5,
rms map; Debian ``source-extractor``, installed by this script when missing) and NoiseChisel +
Segment (Debian ``gnuastro``). Each runs as its own process on the same field, timed from process
start to all outputs written (``--no-score``: no score map, as SExtractor writes none); the script
prints wall time, the busy CPU seconds of the whole machine meanwhile (on 2 cores a run that keeps
both busy uses twice its wall time; a single-threaded one, its wall time), peak RSS, pixel IoU,
instance F1 and PQ for each, scored against the exact truth with ``astrostatlearn.metrics``.

With ``sep`` among the methods, two last rows give the floor of our ``sep`` path: sep's own
extraction alone (``SepSegmenter.detect``, the separable filter and ``sep.extract`` as a tile
runs them, on the same tile windows, 2048-px cores plus 128-px halos, with the rms map), with no start-up, reading, background, ownership, catalogue or writing. First
summed over the windows in one process and divided by the 2 cores; then as two workers meet it,
two processes at once on alternate windows (the slower one's sum): the two extractions share the
caches and memory bandwidth, so each runs slower than alone. What no tiling of sep can beat.

With ``--repeat N`` every tool runs N times, in alternating rounds, and the wall column is the
median (``bench_segment.json`` keeps every run's): this machine's speed drifts by tens of percent
within minutes, so one run of each can put two tools' ratio anywhere from 0.8x to 1.3x.

Usage: python benchmarks/bench_segment.py [--size 8192] [--field DIR] [--scratch DIR]
       [--methods sep,photutils,kmeans,unet,unet[engine=torch]] [--no-noisechisel] [--repeat N]
       [--model forest=MODEL]   (forest needs a model: astrostatlearn train forest --field F4096 --out MODEL)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np


sys.path.insert(0, str(Path(__file__).resolve().parent))
from _measure import machine_cpu_s, measure, scratch_dir, timed_commands  # noqa: E402

from astrostatlearn.benchmark import peers  # noqa: E402


def score(true_path: Path, pred_path: Path) -> dict:
    from astrostatlearn.field import open_image
    from astrostatlearn.metrics import evaluate

    ev = evaluate(open_image(true_path), open_image(pred_path), coco=False)
    return {"iou": ev.pixel["iou"], "f1": ev.detection["f1"], "pq": ev.panoptic["galaxy"]["pq"],
            "completeness": ev.detection["completeness"], "purity": ev.detection["purity"], "n": ev.detection["n_pred"]}


SEP_FLOOR = """
from astrostatlearn.field import Field
from astrostatlearn.field.windows import Window
from astrostatlearn.methods import default_segmenter
from astrostatlearn.preprocess.variants import fit_variant
from astrostatlearn.segment.background import BackgroundMesh
from astrostatlearn.segment.tiles import make_tile
f = Field.open({field!r})
seg, (ny, nx), spent = default_segmenter("sep"), f.shape, 0.0
pre = fit_variant(f, "raw")
mesh = BackgroundMesh.from_field(f, pre, workers=1)
windows = [Window(max(y - 128, 0), min(y + 2176, ny), max(x - 128, 0), min(x + 2176, nx))
           for y in range(0, ny, 2048) for x in range(0, nx, 2048)]
for w in windows[{part}::{nparts}]:
    tile = make_tile(f, pre, mesh, w)
    t = time.perf_counter()
    seg.detect(tile)
    spent += time.perf_counter() - t
extra = {{"spent_s": spent}}
"""


def sep_floors(field: Path) -> tuple[float, float]:
    """sep's own extraction on the tile windows: (all of them in one process, divided by 2 cores;
    the slower of two processes running at once on alternate windows, as two workers do)."""
    from concurrent.futures import ThreadPoolExecutor

    alone = measure(SEP_FLOOR.format(field=str(field), part=0, nparts=1))["extra"]["spent_s"] / 2
    with ThreadPoolExecutor(2) as pool:  # two measuring processes at once
        both = list(pool.map(lambda k: measure(SEP_FLOOR.format(field=str(field), part=k, nparts=2)), (0, 1)))
    return alone, max(r["extra"]["spent_s"] for r in both)


def timed_rounds(runs: list[tuple[str, list[list[str]], Path]], repeat: int) -> dict[str, list[tuple[float, float, float]]]:
    """Each tool's (wall s, peak MB, busy CPU s of the whole machine) per round: ``repeat`` rounds
    of every tool in turn, so a machine that speeds up or slows down meanwhile weighs on all of
    them alike (the busy CPU includes what else the machine does, and NaN off Linux)."""
    walls: dict[str, list[tuple[float, float, float]]] = {}
    failed: set[str] = set()
    for _ in range(repeat):
        for name, cmds, _seg in runs:
            if name in failed:
                continue
            try:  # each tool from a fresh measuring process, so peak RSS is its own
                before = machine_cpu_s()
                wall, mem = timed_commands(cmds)
                after = machine_cpu_s()
                busy = after[0] - before[0] if before and after else float("nan")
                walls.setdefault(name, []).append((wall, mem, busy))
            except RuntimeError as exc:
                print(f"{name:<34} failed: {str(exc).splitlines()[-1] if str(exc).strip() else '?'}")
                failed.add(name)
                walls.pop(name, None)
    return walls


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--size", type=int, default=8192)
    ap.add_argument("--field", type=Path, default=None)
    ap.add_argument("--scratch", type=Path, default=None)
    ap.add_argument("--methods", default="sep,photutils,kmeans,unet,unet[engine=torch]")
    ap.add_argument("--no-noisechisel", action="store_true")
    ap.add_argument("--repeat", type=int, default=1, help="rounds of every tool in turn; the median wall is printed")
    ap.add_argument("--model", action="append", default=[], metavar="METHOD=PATH",
                    help="a model file for a method that needs one (forest: `astrostatlearn train forest`)")
    args = ap.parse_args()
    scratch = args.scratch or scratch_dir("bench-segment-")
    field = args.field or scratch / f"field{args.size}"
    if not (field / "true.fits").exists():
        from astrostatlearn.simulate import simulate_field

        print(f"simulating a {args.size}^2 field ...", flush=True)
        simulate_field(field, args.size, seed=1, overwrite=True, progress=False)
    have = peers.ensure_installed()
    exe = [sys.executable, "-m", "astrostatlearn.cli"]
    runs: list[tuple[str, list[list[str]], Path]] = []
    models = dict(item.split("=", 1) for item in args.model)
    for entry in args.methods.split(","):
        m, _, opts = entry.partition("[")
        params = [a for kv in opts.rstrip("]").split(";") if kv for a in ("-p", kv)]
        params += ["--model", models[m]] if m in models else []
        out = scratch / f"out_{m}_{len(runs)}"
        runs.append((f"astrostatlearn {entry}", [exe + ["segment", str(field), "--method", m, "--out", str(out),
                                                        "--overwrite", "--no-score", *params]], out / "segmentation.fits"))
    if have["sextractor"]:
        runs.append(("SExtractor 2.25 (seed)", [peers.sextractor_command(field, scratch / "sex", thresh=1.5)],
                     scratch / "sex" / "sex_seg.fits"))
    if have["noisechisel"] and not args.no_noisechisel:
        runs.append(("NoiseChisel+Segment", peers.noisechisel_commands(field, scratch / "nc"), scratch / "nc" / "nc_objects.fits"))
    from astrostatlearn.field import open_image

    ny, nx = open_image(field / "img.fits").shape  # the field's own size (also with --field)
    print(f"field {field} ({ny}x{nx}, {ny * nx / 1e6:.0f} Mpix), 2 cores")
    print(f"{'method':<34} {'wall s':>7} {'Mpix/s':>7} {'CPU s':>6} {'peak MB':>8} {'objects':>8} {'pixel IoU':>9} "
          f"{'inst F1':>8} {'PQ':>6}")
    results = {}
    walls = timed_rounds(runs, args.repeat)
    for name, cmds, seg in runs:
        if name not in walls:
            continue
        wall, mem = float(np.median([w for w, _, _ in walls[name]])), max(m for _, m, _ in walls[name])
        busy = float(np.median([c for _, _, c in walls[name]]))
        if name.startswith("NoiseChisel"):
            seg = peers.noisechisel_objects(scratch / "nc")
        s = score(field / "true.fits", seg)
        results[name] = dict(s, wall_s=wall, peak_mb=mem, busy_cpu_s=busy, walls_s=[w for w, _, _ in walls[name]])
        print(f"{name:<34} {wall:>7.1f} {ny * nx / 1e6 / wall:>7.2f} {busy:>6.1f} {mem:>8.0f} {s['n']:>8} {s['iou']:>9.3f} "
              f"{s['f1']:>8.3f} {s['pq']:>6.3f}", flush=True)
    if any(e.partition("[")[0] == "sep" for e in args.methods.split(",")):
        alone, together = sep_floors(field)
        results["sep extraction alone"] = {"wall_s": alone}
        results["sep extraction, two at once"] = {"wall_s": together}
        print(f"{'floor: sep.extract alone, / 2 cores':<34} {alone:>7.1f} {ny * nx / 1e6 / alone:>7.2f}", flush=True)
        print(f"{'floor: 2 sep.extract at once':<34} {together:>7.1f} {ny * nx / 1e6 / together:>7.2f}", flush=True)
    (scratch / "bench_segment.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
