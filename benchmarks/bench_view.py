"""Time, peak memory and disk of `astrostatlearn view` (image + truth overlay), beside libvips.

Usage: python benchmarks/bench_view.py [--sizes 8192 25000] [--field DIR ...] [--workers 0] [--out DIR]
(README: `--sizes 8192 --field F25K`, F25K from `astrostatlearn simulate F25K --size 25000`)

For each field (simulated at each --size, seed 0, unless --field gives existing ones) it builds
the site with the image pyramid and the truth map as an overlay (pyramid, ID tiles and
catalogue chunks, as for any segmentation), from process start to the committed site. The
peer is libvips' `vips dzsave` (the usual Deep Zoom builder; Debian's libvips-tools), run on
the same image scaled to 8 bits by `vips scale`: it makes the image pyramid only, with a linear
stretch, so it is a floor for the image part. Target: the 25000² field in <= 10 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import time
from pathlib import Path

from _measure import measure, scratch_dir


def disk(path: Path) -> tuple[float, int]:
    """(MB on disk, files) of a folder."""
    files = [p for p in path.rglob("*") if p.is_file()]
    return sum(p.stat().st_blocks * 512 for p in files) / 1e6, len(files)


def vips_peer(img: Path, scratch: Path) -> tuple[float, float] | None:
    """(wall s, MB) of vips scale + dzsave, or None without vips."""
    if shutil.which("vips") is None:
        return None
    t0 = time.perf_counter()
    subprocess.run(["vips", "scale", str(img), str(scratch / "u8.v")], check=True)
    subprocess.run(["vips", "dzsave", str(scratch / "u8.v"), str(scratch / "vips"), "--tile-size", "256",
                    "--overlap", "0", "--suffix", ".png"], check=True)
    wall = time.perf_counter() - t0
    mb = disk(scratch / "vips_files")[0]
    shutil.rmtree(scratch / "vips_files")
    (scratch / "u8.v").unlink()
    return wall, mb


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sizes", type=int, nargs="*", default=None, help="simulate fields of these sizes (default: 8192 "
                    "without --field)")
    ap.add_argument("--field", nargs="+", default=[], help="existing field folders (e.g. a 25000² simulate output)")
    ap.add_argument("--workers", type=int, default=0, help="0 = all cores")
    ap.add_argument("--out", default=None, help="scratch folder (default: a temporary one)")
    args = ap.parse_args()
    workers = args.workers or os.cpu_count()
    root = Path(args.out or scratch_dir("bench-view-"))
    root.mkdir(parents=True, exist_ok=True)
    fields = []
    for n in args.sizes if args.sizes is not None else ([] if args.field else [8192]):
        fields.append(root / f"sim{n}")
        measure(f"""
            from astrostatlearn.simulate import simulate_field
            simulate_field({str(fields[-1])!r}, {n}, seed=0, workers={workers}, overwrite=True, progress=False)
        """)
    fields += [Path(f) for f in args.field]
    print(f"view (image + truth overlay), {workers} workers; peer: vips scale + dzsave (image pyramid only); "
          "memory: peak RSS of all processes together, and of the largest one")
    print(f"{'field':>12} {'Mpix':>6} {'wall s':>7} {'total MB':>8} {'process MB':>10} {'site MB':>8} {'files':>7} "
          f"{'vips s':>7} {'vips MB':>8} {'target s':>8}")
    for field in fields:
        site = root / f"site-{field.name}"
        r = measure(f"""
            from astrostatlearn.benchmark.memory import PeakMemory
            from astrostatlearn.view import build_site
            with PeakMemory() as mem:
                res = build_site({str(field)!r}, {str(site)!r}, truth=True, workers={workers}, overwrite=True)
            from astrostatlearn.field import Field
            with Field.open({str(field)!r}) as f:
                extra = {{"shape": f.shape, "total_mb": mem.peak_mb, "process_mb": mem.peak_process_mb}}
        """)
        ny, nx = r["extra"]["shape"]
        mb, files = disk(site)
        peer = vips_peer(field / "img.fits", root)
        target = "600" if max(ny, nx) >= 25000 else "-"
        vs, vmb = (f"{peer[0]:.1f}", f"{peer[1]:.0f}") if peer else ("n/a", "n/a")
        print(f"{f'{ny}x{nx}':>12} {ny * nx / 1e6:>6.0f} {r['wall_s']:>7.1f} {r['extra']['total_mb']:>8.0f} {r['extra']['process_mb']:>10.0f} "
              f"{mb:>8.0f} {files:>7} {vs:>7} {vmb:>8} {target:>8}", flush=True)
        shutil.rmtree(site, ignore_errors=True)
    if args.out is None:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
