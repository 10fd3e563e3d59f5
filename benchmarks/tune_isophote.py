"""The isophote trim's level (``-p isophote``) of the learned methods, on fields that were never the test fields.

The trim (``astrostatlearn.methods.isophote``) drops mask pixels where the image smoothed by a 2-px
Gaussian is below ``level`` x the pixel's noise. This script scores each level on two kinds of
field, every one a seed used nowhere else:
- the two plain validation surveys (euclid-vis seed 3000, ground seed 3001, as the other tuning
  scripts use);
- the six surveys outside the training range of ``bench_generalisation.py`` (finer and coarser
  pixels, worse seeing, a denser sky, stronger noise correlation, steeper PSF wings), each at its
  seed there + 1000, so the fields ``bench_generalisation.py`` reports stay unseen.

Prints pixel IoU and galaxy PQ (whole field) per field and level, then the mean over the fields.

Usage: python benchmarks/tune_isophote.py [--size 2048] [--methods unet] [--levels none,0.25,0.5,1]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _measure import scratch_dir  # noqa: E402
from bench_generalisation import SURVEYS, score  # noqa: E402

VALIDATION = {"validation: euclid-vis": ("euclid-vis", {}, 3000), "validation: ground": ("ground", {}, 3001)}


def fields() -> dict[str, tuple[str, dict, int]]:
    """Name: (preset, overrides, seed) of every field scored."""
    fresh = {name: (preset, over, seed + 1000) for name, (preset, over, seed) in SURVEYS.items()}
    return {**VALIDATION, **fresh}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--methods", default="unet", help="comma-separated learned methods")
    ap.add_argument("--levels", default="none,0.25,0.5,1", help="comma-separated isophote levels (none: no trim)")
    args = ap.parse_args()
    from astrostatlearn.simulate import get_preset, simulate_field

    work = scratch_dir("tune-isophote-")
    levels = [v.strip() for v in args.levels.split(",") if v.strip()]
    methods = [m for m in args.methods.split(",") if m]
    header = f"{'field':<34}{'method':<10}" + "".join(f"{'iso ' + v + ' IoU / PQ':>22}" for v in levels)
    print(header, flush=True)
    results = {(m, v): [] for m in methods for v in levels}
    for name, (preset, over, seed) in fields().items():
        field = work / f"field{seed}"
        simulate_field(field, args.size, seed=seed, preset=get_preset(preset).with_overrides(**over), progress=False)
        for method in methods:
            cells = []
            for level in levels:
                out = work / f"{method}{seed}-{level}"
                subprocess.run([sys.executable, "-m", "astrostatlearn", "segment", str(field), "-m", method,
                                "-o", str(out), "--no-score", "-p", f"isophote={level}"], check=True, capture_output=True)
                cells.append(score(field, out / "segmentation.fits"))
                results[(method, level)].append(cells[-1])
            print(f"{name:<34}{method:<10}" + "".join(f"{iou:>14.3f} / {pq:.3f}" for iou, pq in cells), flush=True)
    for method in methods:
        means = [np.mean(results[(method, v)], axis=0) for v in levels]
        print(f"{'mean over the fields':<34}{method:<10}" + "".join(f"{iou:>14.3f} / {pq:.3f}" for iou, pq in means))


if __name__ == "__main__":
    main()
