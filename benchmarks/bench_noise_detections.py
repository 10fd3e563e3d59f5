"""False detections in pure noise: white, and correlated as in resampled or coadded images.

Usage: python benchmarks/bench_noise_detections.py [--size 1024] [--sigma 0.6] [--model unet=PATH ...]

Each method segments 1 Mpix of unit white noise and of noise smoothed by a Gaussian of
``--sigma`` pixels and renormalised (the per-pixel rms is 1 in both, and the rms map says so).
Every object found is false. Rows: sep (the classical peer, 1 sigma), the shipped U-Net, and any
``--model`` given (e.g. the correlated-noise candidate ``src/astrostatlearn/data/unet-correlated.pt``).
"""

from __future__ import annotations

import argparse

import numpy as np
from scipy import ndimage

import astrostatlearn


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--sigma", type=float, default=0.6)
    ap.add_argument("--model", action="append", default=[], help="NAME=PATH: another model to test")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    white = rng.normal(0, 1, (args.size, args.size)).astype(np.float32)
    smooth = ndimage.gaussian_filter(rng.normal(0, 1, (args.size, args.size)), args.sigma)
    smooth = (smooth / smooth.std()).astype(np.float32)
    rms = np.ones_like(white)
    mpix = args.size**2 / 1e6
    rows = [("sep (peer)", {"method": "sep"}), ("unet (shipped)", {"method": "unet"})]
    rows += [(m.split("=", 1)[0], {"model": m.split("=", 1)[1]}) for m in args.model]
    print(f"false detections per Mpix in {args.size}² of noise (per-pixel rms 1)")
    print(f"{'method':<22} {'white':>8} {f'correlated {args.sigma:g} px':>18}")
    for name, kw in rows:
        a = astrostatlearn.segment(white, rms, **kw).n_objects / mpix
        b = astrostatlearn.segment(smooth, rms, **kw).n_objects / mpix
        print(f"{name:<22} {a:>8.1f} {b:>18.1f}", flush=True)


if __name__ == "__main__":
    main()
