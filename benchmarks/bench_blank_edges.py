"""False objects along a zero-filled edge: zeros read as no data, against zeros read as sky.

Usage: python benchmarks/bench_blank_edges.py [--size 1024] [--edge 128] [--sky 0] [--methods sep,unet]

Coadds without NaN (SWarp, drizzled HST, many survey tiles) fill their edges and holes with
exactly 0. This cuts ``--size``² out of the shared KiDS r frame (``../shared/data/real``; a
simulated ground field when it is absent), blanks a ``--edge``-px strip on its left and a disc
in its middle (after adding a sky level of ``--sky`` times the image's noise, as an image whose
background was not subtracted has), and segments three copies of it:

- the blanks as NaN (the reference: no method can see data there);
- the blanks as 0, read as no data (the default, :attr:`~astrostatlearn.field.Field.zero_blank`);
- the blanks as 0, read as sky (the rule off), and SExtractor at the seed's settings on the
  zero-filled file with a constant rms map, as a user without a weight map runs it.

It prints, per row, the objects found and those that touch the 8 px beside the blanks: every
object there beyond the NaN reference's is false.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from astropy.io import fits
from scipy import ndimage

from _measure import scratch_dir

KIDS_R = Path(__file__).resolve().parents[2] / "shared" / "data" / "real" / "kids-r" / "r.fits"


def cut_out(size: int, root: Path) -> tuple[np.ndarray, str]:
    """A ``size``² float32 image: the KiDS r frame's centre, or a simulated ground field."""
    if KIDS_R.exists():
        with fits.open(KIDS_R) as h:
            data = next(x.data for x in h if x.data is not None and x.data.ndim == 2)
            y0, x0 = (data.shape[0] - size) // 2, (data.shape[1] - size) // 2
            return np.asarray(data[y0:y0 + size, x0:x0 + size], np.float32), "KiDS r"
    from astrostatlearn.simulate import simulate_field

    simulate_field(root / "sim", size, seed=11, preset="ground", progress=False)
    return fits.getdata(root / "sim" / "img.fits").astype(np.float32), "simulated ground field (no shared data)"


def blanks(shape: tuple[int, int], edge: int) -> np.ndarray:
    """The no-data pixels: a strip of ``edge`` columns on the left and a disc of radius shape/10."""
    y, x = np.mgrid[:shape[0], :shape[1]]
    cy, cx, r = shape[0] // 2, shape[1] * 2 // 3, shape[0] // 10
    return (x < edge) | ((y - cy) ** 2 + (x - cx) ** 2 < r * r)


def count(labels: np.ndarray, rim: np.ndarray) -> tuple[int, int]:
    """(objects, objects touching ``rim``)."""
    ids = np.unique(labels[labels > 0])
    return int(ids.size), int(np.unique(labels[rim & (labels > 0)]).size)


def segment_file(path: Path, method: str, out: Path, zeros_as_sky: bool = False) -> np.ndarray:
    """The segmentation of the image file ``path`` by ``method`` (its shipped model and variant)."""
    from astrostatlearn.field import Field
    from astrostatlearn.methods import default_segmenter, resolve_variant
    from astrostatlearn.segment.run import prepare_and_segment

    seg = default_segmenter(method)
    with Field.open(img=path) as f:
        if zeros_as_sky:
            f.zero_blank = False  # the rule off: the zeros are read as sky
        prepare_and_segment(f, seg, out, variant=resolve_variant(seg, None), scheduler="threads", score=False)
    return fits.getdata(out / "segmentation.fits")


def sextractor_labels(zero: np.ndarray, root: Path) -> np.ndarray | None:
    """SExtractor (seed settings) on the zero-filled image with a constant rms map, or None when absent."""
    from astropy.stats import sigma_clipped_stats

    from astrostatlearn.benchmark.peers import ensure_installed, run_sextractor

    if not ensure_installed()["sextractor"]:
        return None
    d = root / "sex-field"
    d.mkdir()
    fits.PrimaryHDU(zero).writeto(d / "img.fits")
    sigma = sigma_clipped_stats(zero[zero != 0])[2]
    fits.PrimaryHDU(np.full(zero.shape, sigma, np.float32)).writeto(d / "rms.fits")
    return fits.getdata(run_sextractor(d, root / "sex", thresh=1.5)).astype(np.int32)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--edge", type=int, default=128)
    ap.add_argument("--sky", type=float, default=0.0, help="sky level added, in units of the image's noise")
    ap.add_argument("--methods", default="sep,unet")
    args = ap.parse_args()
    root = scratch_dir("blank-edges")
    img, source = cut_out(args.size, root)
    if args.sky:
        from astropy.stats import sigma_clipped_stats

        img = img + np.float32(args.sky * sigma_clipped_stats(img)[2])
    blank = blanks(img.shape, args.edge)
    rim = ndimage.binary_dilation(blank, iterations=8) & ~blank
    zero, nan = np.where(blank, 0, img).astype(np.float32), np.where(blank, np.nan, img).astype(np.float32)
    fits.PrimaryHDU(zero).writeto(root / "zero.fits")
    fits.PrimaryHDU(nan).writeto(root / "nan.fits")
    print(f"{source}, sky + {args.sky:g} sigma: {args.size}² with {blank.mean():.1%} blank ({args.edge}-px edge and a disc); "
          "objects found / touching the 8 px beside the blanks")
    print(f"{'method':<12} {'blanks NaN (reference)':>24} {'zeros as no data (default)':>28} {'zeros as sky':>16}")
    for method in args.methods.split(","):
        ref = count(segment_file(root / "nan.fits", method, root / f"nan-{method}"), rim)
        on = count(segment_file(root / "zero.fits", method, root / f"zero-{method}"), rim)
        off = count(segment_file(root / "zero.fits", method, root / f"sky-{method}", zeros_as_sky=True), rim)
        print(f"{method:<12} {'%d / %d' % ref:>24} {'%d / %d' % on:>28} {'%d / %d' % off:>16}", flush=True)
    sex = sextractor_labels(zero, root)
    if sex is None:
        print("SExtractor: not installed (source-extractor)", file=sys.stderr)
    else:
        print(f"{'SExtractor':<12} {'':>24} {'':>28} {'%d / %d' % count(sex, rim):>16}  (seed settings, no weight map)")


if __name__ == "__main__":
    main()
