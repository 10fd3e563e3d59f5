"""Segmenting a compressed image: whole-file gzip and tile compression, against decompressing by hand.

Usage: python benchmarks/bench_compressed_input.py [--size 4096] [--method sep]

Archives serve images as ``.fits.gz`` (whole-file gzip) or ``.fits.fz`` (tile-compressed). This
simulates a ``--size``² ground field and segments its image as it is, gzipped, and
tile-compressed (lossless GZIP_2), each from a fresh process, with the same rms map. The peer is
what a user does without the tool's support: ``gzip -dc`` to a plain file, then segment that.
It prints wall time and peak RSS (main process or largest worker) per row, the objects found,
and whether the segmentation equals the plain file's.

A second table times what a run reads from a tile-compressed image, in a fresh process each:
opening it with the field's statistics (a sample of full-width rows) and reading every window
of 1024² tiles with a 128-px halo, in fpack's row tiles and in 256² tiles, read in place (the
copy threshold raised out of reach) against through the plain copy.

A whole-file gzip stream cannot be read by window, so ``open_image`` decompresses it once into
``$TMPDIR/astrostatlearn-<uid>`` in 1 MiB blocks (field/decompress.py), and a tile-compressed image above
4 Mpix once too, 4 Mpix of rows at a time: their peak RSS
should stay near the plain run's, whatever the image size, and their time exceed the plain run's
by about the decompression (the peer's first step).
"""

from __future__ import annotations

import argparse
import gzip
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
from astropy.io import fits

from _measure import measure, scratch_dir, timed_commands

READS = """
import astrostatlearn.field.fitsio as fitsio
from astrostatlearn.field import Field, robust_stats, tile_grid
if {in_place}:
    fitsio.COMPRESSED_COPIED_ABOVE = 10**18
with Field.open(img={path!r}) as f:
    robust_stats(f)
    for w in tile_grid(f.shape, 1024):
        f.read_img(w.grow(128, f.shape))
"""


def prepare(root: Path, size: int) -> dict[str, Path]:
    """The simulated field's image as plain, gzipped and tile-compressed FITS, and its rms map."""
    from astrostatlearn.simulate import simulate_field

    simulate_field(root / "sim", size, seed=21, preset="ground", progress=False)
    plain = root / "sim" / "img.fits"
    packed = root / "img.fits.gz"
    with open(plain, "rb") as src, gzip.open(packed, "wb", compresslevel=6) as out:
        shutil.copyfileobj(src, out, 1 << 20)
    tiled = root / "img.fits.fz"
    data, header = fits.getdata(plain, header=True)
    fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(data, header=header, compression_type="GZIP_2",
                                                       quantize_level=0.0)]).writeto(tiled)
    return {"plain": plain, "gzip": packed, "tile-compressed": tiled, "rms": root / "sim" / "rms.fits"}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--method", default="sep")
    args = ap.parse_args()
    root = scratch_dir("bench-compressed-")
    files = prepare(root, args.size)
    cli = [sys.executable, "-m", "astrostatlearn", "segment"]
    rows = [(name, [cli + [str(files[name]), "--rms", str(files["rms"]), "-m", args.method, "-o", str(root / name)]])
            for name in ("plain", "gzip", "tile-compressed")]
    by_hand = root / "by-hand.fits"
    rows.append(("peer: gzip -dc, then plain", [
        ["sh", "-c", f"gzip -dc '{files['gzip']}' > '{by_hand}'"],
        cli + [str(by_hand), "--rms", str(files["rms"]), "-m", args.method, "-o", str(root / "peer")]]))
    sizes = {name: files[name].stat().st_size / 2**20 for name in ("plain", "gzip", "tile-compressed")}
    print(f"{args.size}² ground field, {args.method}; file sizes: "
          + ", ".join(f"{k} {v:.0f} MB" for k, v in sizes.items()), flush=True)
    print(f"{'input':<28} {'wall s':>7} {'peak MB':>8} {'objects':>8} {'= plain':>8}")
    reference = None
    for (name, cmds), out in zip(rows, ("plain", "gzip", "tile-compressed", "peer")):
        wall, peak = timed_commands(cmds)
        seg = fits.getdata(root / out / "segmentation.fits")
        reference = seg if reference is None else reference
        same = "yes" if np.array_equal(seg, reference) else "no"
        print(f"{name:<28} {wall:>7.1f} {peak:>8.0f} {int(seg.max()):>8} {same:>8}", flush=True)
    square = root / "square.fits.fz"
    data = fits.getdata(files["plain"])
    fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(data, compression_type="GZIP_2", quantize_level=0.0,
                                                       tile_shape=(256, 256))]).writeto(square)
    print(f"\n{'statistics + tile windows':<28} {'in place s':>10} {'copy s':>7}")
    for name, path in (("rows (fpack's default)", files["tile-compressed"]), ("256² tiles", square)):
        walls = [measure(READS.format(in_place=flag, path=str(path)))["wall_s"] for flag in (True, False)]
        print(f"{name:<28} {walls[0]:>10.1f} {walls[1]:>7.1f}", flush=True)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except subprocess.CalledProcessError as exc:
        sys.exit(f"failed: {exc}")
