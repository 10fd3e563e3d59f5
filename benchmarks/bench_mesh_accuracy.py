"""How close the background mesh comes to a known sky, beside sep's (SExtractor's) background map.

The sky is a plane rising ``--slope`` sigma per pixel along x (and half that along y) under unit
white noise, with no sources; both estimators use 64-px cells and a 3x3 median filter. Printed:
the error (estimate - true sky, in sigma) at the image's first and last columns and rows (the
half cells beyond the outermost cell centres, where ours is constant and sep's spline goes on
linearly), and the rms error over the interior.

Usage: python benchmarks/bench_mesh_accuracy.py [--size 1024] [--slope 0.05]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--slope", type=float, default=0.05)
    args = ap.parse_args()
    import sep
    from astropy.io import fits

    from astrostatlearn.field import Field, Window
    from astrostatlearn.segment.background import BackgroundMesh

    n = args.size
    yy, xx = np.mgrid[:n, :n].astype(np.float64)
    sky = args.slope * (xx + 0.5 * yy)
    img = (sky + np.random.default_rng(0).normal(0.0, 1.0, (n, n))).astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        fits.writeto(Path(tmp) / "img.fits", img)
        with Field.open(img=Path(tmp) / "img.fits") as f:
            ours = BackgroundMesh.from_field(f, None, workers=1).background_at(Window(0, n, 0, n))
    theirs = sep.Background(img, bw=64, bh=64, fw=3, fh=3).back()
    inner = (slice(64, n - 64), slice(64, n - 64))
    print(f"sky rising {args.slope} sigma/px in x, {args.slope / 2} in y, {n}² pixels; error in sigma")
    print(f"{'estimator':<28}{'first col':>10}{'last col':>10}{'first row':>10}{'last row':>10}{'interior rms':>14}")
    for name, est in (("astrostatlearn mesh", ours), ("sep.Background (peer)", theirs)):
        err = est - sky
        edges = [np.median(err[:, 0]), np.median(err[:, -1]), np.median(err[0]), np.median(err[-1])]
        print(f"{name:<28}" + "".join(f"{e:>+10.3f}" for e in edges) + f"{np.sqrt(np.mean(err[inner] ** 2)):>14.3f}")


if __name__ == "__main__":
    main()
