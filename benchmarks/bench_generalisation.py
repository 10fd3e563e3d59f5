"""The shipped learned models on simulated surveys they were never trained on, beside SExtractor and sep.

The shipped model was trained on 17 simulated surveys (``astrostatlearn.training.shipped``:
pixel scales 0.05-0.2", PSF FWHM 0.12-0.9", noise correlation up to 0.8 px, densities 60-150
per arcmin²). Each field here lies outside that range on at least one axis: worse seeing, coarser
or finer sampling, a denser sky, stronger noise correlation, a steeper PSF wing. Each is a fresh
seed; the whole field is scored (nothing of it was used for training or tuning), with
SExtractor 2.25 at the seed study's settings (1.5 sigma, 5 px, gauss 2.0 5x5, rms map) and sep
at the same settings (our ``sep`` method's defaults). Prints pixel IoU and PQ per method and
each method's PQ over SExtractor's (the U-Net's headline target elsewhere is 1.5x; Mask R-CNN's 1.3x).
The shipped Mask R-CNN was trained on the first eight of the U-Net's surveys.

Usage: python benchmarks/bench_generalisation.py [--size 2048] [--only NAME,NAME] [--methods unet,maskrcnn,sep]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _measure import scratch_dir  # noqa: E402

from astrostatlearn.benchmark import peers  # noqa: E402

# name: (preset, overrides, seed)
SURVEYS = {
    "ground: 1.2\" seeing": ("ground", {"psf_fwhm": 1.2}, 5001),
    "ground: 0.3\" pixels": ("ground", {"pixel_scale": 0.3, "psf_fwhm": 1.0}, 5002),
    "space: 0.03\" pixels": ("euclid-vis", {"pixel_scale": 0.03, "psf_fwhm": 0.08, "density": 80.0}, 5003),
    "space: 250 / arcmin²": ("euclid-vis", {"density": 250.0}, 5004),
    "ground: noise correlated 1.3 px": ("ground", {"noise_correlation": 1.3}, 5005),
    "space: Moffat beta 1.8": ("euclid-vis", {"psf_beta": 1.8, "psf_fwhm": 0.25}, 5006),
}


def score(field: Path, pred: Path) -> tuple[float, float]:
    from astrostatlearn.field import open_image
    from astrostatlearn.metrics import evaluate

    ev = evaluate(open_image(field / "true.fits"), open_image(pred), coco=False)
    return ev.pixel["iou"], ev.panoptic["galaxy"]["pq"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--only", default="", help="comma-separated survey names (default: all)")
    ap.add_argument("--methods", default="unet,maskrcnn,sep", help="methods to run beside SExtractor")
    args = ap.parse_args()
    from astrostatlearn.simulate import get_preset, simulate_field

    have_sex = peers.ensure_installed()["sextractor"]
    work = scratch_dir("bench-generalisation-")
    names = [n.strip() for n in args.only.split(",") if n.strip()] or list(SURVEYS)
    methods = [m for m in args.methods.split(",") if m]
    print(f"{'survey':<34}" + "".join(f"{m + ' IoU / PQ':>20}" for m in methods) + f"{'SExtractor IoU / PQ':>22}"
          + "".join(f"{m + ' / SEx PQ':>18}" for m in methods if m != "sep"))
    for name in names:
        preset, over, seed = SURVEYS[name]
        field = work / f"field{seed}"
        simulate_field(field, args.size, seed=seed, preset=get_preset(preset).with_overrides(**over), progress=False)
        cells = {}
        for method in methods:
            out = work / f"{method}{seed}"
            subprocess.run([sys.executable, "-m", "astrostatlearn", "segment", str(field), "-m", method, "-o", str(out),
                            "--no-score"], check=True, capture_output=True)
            cells[method] = score(field, out / "segmentation.fits")
        sex = score(field, peers.run_sextractor(field, work / f"sex{seed}", 1.5)) if have_sex else (float("nan"),) * 2
        ratios = "".join(f"{cells[m][1] / sex[1] if sex[1] > 0 else float('nan'):>17.2f}x" for m in methods if m != "sep")
        print(f"{name:<34}" + "".join(f"{cells[m][0]:>12.3f} / {cells[m][1]:.3f}" for m in methods)
              + f"{sex[0]:>14.3f} / {sex[1]:.3f}{ratios}", flush=True)


if __name__ == "__main__":
    main()
