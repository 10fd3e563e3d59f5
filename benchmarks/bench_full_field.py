"""The whole 25000^2 field end to end: simulate, segment, evaluate, report, with SExtractor beside it.

Each step runs as its own process (the command a user types), timed from process start to its
outputs written, with the peak RSS of its largest process (workers included):

1. ``astrostatlearn simulate F --size 25000`` (skipped with ``--field`` or when F exists);
2. ``astrostatlearn segment F -m METHOD`` for each of ``--methods`` (default ``sep,unet``; Mask
   R-CNN runs at about 0.1 Mpix/s on 2 cores, 100 minutes for this field: add it with
   ``--methods sep,unet,maskrcnn``), and SExtractor 2.25 at the seed's settings (1.5 sigma, 5 px,
   gauss 2.0 5x5, rms map) on the same field;
3. ``astrostatlearn evaluate`` of each segmentation against the truth, COCO included;
4. the report: the table printed here and written to ``OUT/full_field.md`` and ``.json``, with the
   densest 256^2 window of the truth (against a detector's per-window cap).

Before the first timed step the field's files are read once, so every step finds them in the page
cache: none pays the disk read the first one would (5 GB at 25000^2).

Memory bounds checked: <= 2 GB per process for sep, <= 3 GB for the U-Net; evaluation <= 60 s.

With ``--no-score`` every method also runs with ``segment --no-score``: the same outputs as
SExtractor's (a segmentation and a catalogue, no score map).

Usage: python benchmarks/bench_full_field.py --out DIR [--field F25K] [--size 25000] [--methods sep,unet] [--no-score]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _measure import timed_commands  # noqa: E402
from bench_maskrcnn import densest_window  # noqa: E402

from astrostatlearn.benchmark import peers  # noqa: E402

MEMORY_BOUND_MB = {"sep": 2048, "unet": 3072}
EVALUATE_BOUND_S = 60.0


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "astrostatlearn.cli", *args]


def plan_steps(field: Path, out: Path, size: int, methods: list[str], simulate: bool,
               no_score: bool = False) -> list[tuple[str, list[list[str]], Path | None]]:
    """(name, commands, segmentation it writes) for every step, in order; with ``no_score``, each
    segment step also runs again with ``--no-score`` (the outputs SExtractor writes: a
    segmentation and a catalogue)."""
    steps: list[tuple[str, list[list[str]], Path | None]] = []
    if simulate:
        steps.append(("simulate", [cli("simulate", str(field), "--size", str(size))], None))
    for m in methods:
        for flags in [[]] + ([["--no-score"]] if no_score else []):
            run = out / f"seg-{m}{'-no-score' if flags else ''}"
            steps.append((f"segment {m}{' --no-score' if flags else ''}",
                          [cli("segment", str(field), "-m", m, "-o", str(run), "--overwrite", *flags)],
                          run / "segmentation.fits"))
    if peers.ensure_installed()["sextractor"]:
        steps.append(("SExtractor (seed settings)", [peers.sextractor_command(field, out / "sextractor", thresh=1.5)],
                      out / "sextractor" / "sex_seg.fits"))
    return steps


def evaluate_step(field: Path, seg: Path, out: Path) -> tuple[float, float, dict]:
    js = out / f"eval-{seg.parent.name}.json"
    cmd = cli("evaluate", "--true", str(field / "true.fits"), "--pred", str(seg), "--catalog", str(field / "truth.ecsv"),
              "--json", str(js), "--overwrite")
    wall, peak = timed_commands([cmd])
    return wall, peak, json.loads(js.read_text())


def warm_page_cache(field: Path) -> None:
    """Read the field's FITS files once (8 MB at a time), so no timed step pays the first disk read."""
    for path in sorted(field.glob("*.fits")):
        with open(path, "rb") as fh:
            while fh.read(1 << 23):
                pass


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--field", type=Path, default=None)
    ap.add_argument("--size", type=int, default=25000)
    ap.add_argument("--methods", default="sep,unet")
    ap.add_argument("--no-score", action="store_true", help="also run each method with --no-score")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    field = args.field or args.out / f"field{args.size}"
    steps = plan_steps(field, args.out, args.size, args.methods.split(","), not (field / "img.fits").exists(),
                       args.no_score)
    rows = []
    warm_page_cache(field)
    print(f"{'step':<28} {'wall s':>8} {'peak MB':>8}   {'evaluate s':>10} {'eval MB':>8} {'pixel IoU':>9} "
          f"{'F1':>6} {'PQ':>6} {'AP50':>6}", flush=True)
    for name, cmds, seg in steps:
        wall, peak = timed_commands(cmds)
        row = {"step": name, "wall_s": wall, "peak_mb": peak, "key": seg.parent.name if seg else name}
        line = f"{name:<28} {wall:>8.1f} {peak:>8.0f}"
        if seg is not None:
            ev_s, ev_mb, ev = evaluate_step(field, seg, args.out)
            row.update(evaluate_s=ev_s, evaluate_mb=ev_mb, pixel_iou=ev["pixel_global"]["iou"],
                       f1=ev["instance"]["f1"], pq=ev["panoptic"]["galaxy"]["pq"], ap50=ev["coco"]["segm"]["AP50"])
            line += (f"   {ev_s:>10.1f} {ev_mb:>8.0f} {row['pixel_iou']:>9.3f} {row['f1']:>6.3f} {row['pq']:>6.3f} "
                     f"{row['ap50']:>6.3f}")
        rows.append(row)
        print(line, flush=True)
    checks = []
    for r in rows:
        run = r["key"].removeprefix("seg-")
        method = run.removesuffix("-no-score")
        if r["step"].startswith("segment") and method in MEMORY_BOUND_MB:
            bound = MEMORY_BOUND_MB[method]
            checks.append(f"{r['step']}: peak {r['peak_mb']:.0f} MB <= {bound} MB: {'met' if r['peak_mb'] <= bound else 'NOT met'}")
        if "evaluate_s" in r:
            checks.append(f"evaluate {run}: {r['evaluate_s']:.1f} s <= {EVALUATE_BOUND_S:.0f} s (COCO included): "
                          f"{'met' if r['evaluate_s'] <= EVALUATE_BOUND_S else 'NOT met'}")
    sex = next((r for r in rows if r["step"].startswith("SExtractor")), None)
    for r in rows:
        if sex and r["step"].startswith("segment"):
            checks.append(f"{r['step']}: {r['wall_s'] / sex['wall_s']:.2f} x SExtractor's wall time")
    checks.append(f"densest 256^2 window: {densest_window(field / 'true.fits')} objects "
                  "(Mask R-CNN keeps up to 400 detections per window)")
    print("\n".join(checks))
    (args.out / "full_field.json").write_text(json.dumps({"field": str(field), "rows": rows, "checks": checks}, indent=2))
    md = ["| step | wall s | peak MB | evaluate s | pixel IoU | F1 | PQ | AP50 |", "|---|---|---|---|---|---|---|---|"]
    md += [f"| {r['step']} | {r['wall_s']:.1f} | {r['peak_mb']:.0f} | " + (
        f"{r['evaluate_s']:.1f} | {r['pixel_iou']:.3f} | {r['f1']:.3f} | {r['pq']:.3f} | {r['ap50']:.3f} |"
        if "evaluate_s" in r else "– | – | – | – | – |") for r in rows]
    (args.out / "full_field.md").write_text("\n".join(md + [""] + [f"- {c}" for c in checks]) + "\n")


if __name__ == "__main__":
    main()
