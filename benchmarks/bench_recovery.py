"""Injection-recovery on every real image in ../shared/data/real: each method beside SExtractor.

Usage: python benchmarks/bench_recovery.py [--methods sep,unet] [--n 150] [--realisations 3] [--out DIR]
       [--model unet=PATH] [--images 'KiDS r,VIKING Ks']

A method may carry options, as `recovery --methods` takes them: `--methods unet,unet:min_snr=7`
compares the U-Net's significance cuts in one run (the target is checked for every U-Net row).

For each image (KiDS r, g, i, VIKING Ks, EMMI) it runs `inject` (PSF estimated from the image's
stars; EMMI, with too few isolated stars, gets a Moffat of the FWHM of its SExtractor stars) and
`recovery`, and prints completeness at IoU > 0.5, m50, m90, mask IoU and spurious detections per
Mpix for each method and for SExtractor at the seed's settings (1.5 sigma, 5 px); on the four
bands of the KiDS/VIKING frame (one pixel grid) also the spurious detections that the other three
bands do not confirm (``inject --confirm-with``). The targets:
the U-Net's completeness >= SExtractor's + 0.10, with no more spurious detections per Mpix.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from astrostatlearn.inject import InjectRequest, inject_image
from astrostatlearn.inject.recovery import run_recovery, table_text

from _measure import scratch_dir

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"
IMAGES = {"KiDS r": ("kids-r/r.fits", {}), "KiDS g": ("kids-viking/g.fits", {}), "KiDS i": ("kids-viking/i.fits", {}),
          "VIKING Ks": ("kids-viking/Ks.fits", {}), "EMMI R": ("sep-emmi/image.fits", {"psf_fwhm": 3.0})}
# The WAVES frame's four bands share one pixel grid: each is confirmed by the other three.
SAME_GRID = ["kids-r/r.fits", "kids-viking/g.fits", "kids-viking/i.fits", "kids-viking/Ks.fits"]


def other_bands(rel: str) -> tuple[str, ...]:
    return tuple(str(REAL / r) for r in SAME_GRID if r != rel) if rel in SAME_GRID else ()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--methods", default="sep,unet")
    ap.add_argument("--n", type=int, default=150, help="galaxies per realisation (EMMI, 256², gets 12)")
    ap.add_argument("--realisations", type=int, default=3)
    ap.add_argument("--images", default=",".join(IMAGES))
    ap.add_argument("--out", default=None)
    ap.add_argument("--model", action="append", default=[], help="METHOD=PATH: a model instead of the method's default")
    args = ap.parse_args()
    root = Path(args.out or scratch_dir("bench-recovery-"))
    methods = [m for m in args.methods.split(",") if m]
    if not REAL.exists():
        print(f"real data not found at {REAL}; nothing to do")
        return
    for name in [n.strip() for n in args.images.split(",")]:
        rel, extra = IMAGES[name]
        n = 12 if "emmi" in rel else args.n
        t0 = time.perf_counter()
        slug = name.replace(" ", "-")
        request = InjectRequest(n=n, realisations=args.realisations, seed=1, confirm_with=other_bands(rel), **extra)
        inj = inject_image(REAL / rel, root / f"inj-{slug}", request, overwrite=True)
        models = dict(m.split("=", 1) for m in args.model)
        rec = run_recovery(root / f"inj-{slug}", root / f"rec-{slug}", methods, models=models, overwrite=True)
        d = inj.description
        print(f"\n## {name} ({rel}): {args.realisations} x {n} galaxies, mag {d['mag_range'][0]:.2f}-{d['mag_range'][1]:.2f}, "
              f"PSF {d['psf']['source']} (FWHM {d['psf']['fwhm_px']:.2f} px), {time.perf_counter() - t0:.0f} s")
        print(table_text(rec.rows), flush=True)
        ref = next((r for r in rec.rows if r["method"] == "SExtractor"), None)
        for unet in [r for r in rec.rows if r["method"].split(":")[0] == "unet"] if ref else []:
            gap = unet["completeness"] - ref["completeness"]
            print(f"{unet['method']} - SExtractor completeness: {gap:+.3f} (target >= +0.10: "
                  f"{'met' if gap >= 0.10 else 'NOT met'}); spurious/Mpix {unet['spurious_per_mpix']:.1f} vs "
                  f"{ref['spurious_per_mpix']:.1f} ({'met' if unet['spurious_per_mpix'] <= ref['spurious_per_mpix'] else 'NOT met'})",
                  flush=True)
            if unet["unconfirmed_per_mpix"] is not None:
                print(f"  unconfirmed by the other bands, per Mpix: {unet['unconfirmed_per_mpix']:.1f} vs SExtractor "
                      f"{ref['unconfirmed_per_mpix']:.1f}; a random pixel is confirmed with chance "
                      f"{d['confirm_chance']:.3f}", flush=True)


if __name__ == "__main__":
    main()
