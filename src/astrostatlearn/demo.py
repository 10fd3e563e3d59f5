"""``make demo``: the main job end to end on a built-in simulated field, in a few minutes on 2 cores.

1. simulate a 2048^2 euclid-vis field with exact truth;
2. benchmark the classical methods and the shipped U-Net on its held-out test band, with
   SExtractor and NoiseChisel beside them when installed;
3. write the report and the viewer site (the field, the truth and every run as layers), and
   print where they are and the command that serves the viewer;
4. if the shared real data are present, segment the real KiDS frame and compare with SExtractor,
   then inject 80 fake galaxies into it and report how many each method and SExtractor recover.

Usage: ``python -m astrostatlearn.demo [--out demo-output] [--size 2048]``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from astrostatlearn.field import Field, robust_stats, scan_field
from astrostatlearn.simulate import simulate_field

from astrostatlearn.methods import BUILTIN_METHODS, method_class
from astrostatlearn.methods.registry import default_benchmark_methods

DEMO_METHODS = default_benchmark_methods()  # every built-in method that runs without a model file


def real_methods() -> list[str]:
    """Methods that run on a real frame as they come: no fitting, or a shipped model."""
    return [m for m in BUILTIN_METHODS if not method_class(m).needs_fit or method_class(m).shipped_model]
DEMO_VARIANTS = ("raw", "soft", "soft+rms", "snr")
REAL_KIDS = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "real" / "kids-r"


def inject_demo(image: Path, out: Path) -> None:
    """A small injection-recovery test on a real image: one realisation of 80 galaxies."""
    from astrostatlearn.inject import InjectRequest, inject_image
    from astrostatlearn.inject.recovery import run_recovery

    print(f"      injection-recovery: 80 fake galaxies into {image.name} (PSF from its stars)", flush=True)
    inj = inject_image(image, out / "kids-inject", InjectRequest(n=80, realisations=1, seed=1), overwrite=True)
    rec = run_recovery(out / "kids-inject", out / "kids-recovery", overwrite=True)
    d = inj.description
    print(f"      mag {d['mag_range'][0]:.1f}-{d['mag_range'][1]:.1f}, PSF FWHM {d['psf']['fwhm_px']:.2f} px; "
          f"completeness at IoU > 0.5:", flush=True)
    for line in rec.table().splitlines():
        print("      " + line, flush=True)
    print(f"      figures: {(out / 'kids-recovery' / 'recovery.html').resolve()}", flush=True)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="demo-output", help="output folder (contents replaced)")
    ap.add_argument("--size", type=int, default=2048, help="simulated field size N (N x N pixels)")
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--kids", type=Path, default=REAL_KIDS, help="folder of the real KiDS frame (skipped if absent)")
    args = ap.parse_args(argv)
    out = Path(args.out)
    field_dir = out / "field"
    t0 = time.perf_counter()
    print(f"[1/4] simulating a {args.size}x{args.size} euclid-vis field into {field_dir}", flush=True)
    s = simulate_field(field_dir, args.size, seed=args.seed, overwrite=True)
    print(f"      {s.n_objects} objects ({s.n_stars} stars), {s.n_in_truth} in the truth map, "
          f"foreground {100 * s.foreground_fraction:.2f}% ({time.perf_counter() - t0:.0f} s)", flush=True)
    with Field.open(field_dir) as f:
        rep = scan_field(f)
        _, median, std = robust_stats(f)
        print(f"      {f.shape[0]}x{f.shape[1]}, WCS {'yes' if f.wcs else 'no'}, sigma-clipped median {median:.3g}, "
              f"std {std:.3g}, {rep.n_objects} objects in truth", flush=True)
    print(f"[2/4] benchmark: {', '.join(DEMO_METHODS)} x {', '.join(DEMO_VARIANTS)} on the test band", flush=True)
    from astrostatlearn.benchmark import run_benchmark

    res = run_benchmark(field_dir, out / "benchmark", DEMO_METHODS, DEMO_VARIANTS, overwrite=True,
                        log=lambda m: print("      " + m, flush=True))
    print(f"[3/4] report: {res['report_html'].resolve()}", flush=True)
    print(f"      summary: {res['report_md'].resolve()}", flush=True)
    site = out / "benchmark" / "view"
    print(f"      viewer: {site.resolve()}; serve it with: .venv/bin/astrostatlearn view {site} --serve "
          "(then open http://127.0.0.1:8000/)", flush=True)
    if args.kids.exists():
        from astrostatlearn.benchmark.real import compare_with_sextractor

        print(f"[4/4] real data: KiDS r-band frame {args.kids} vs its SExtractor catalogue", flush=True)
        for method in real_methods():
            r = compare_with_sextractor(args.kids, out / f"kids-{method}", method=method)
            print(f"      {method}: {r['n_ours']} objects vs {r['n_reference']} in SExtractor's catalogue; "
                  f"{100 * r['match_fraction']:.1f}% of theirs matched within {r['radius_px']} px; "
                  f"median flux ratio to FLUX_AUTO {r['flux_ratio_median']:.3f} isophotal, "
                  f"{r['flux_auto_ratio_median']:.3f} Kron (flux_auto); overlay {r['overlay']}", flush=True)
        inject_demo(args.kids / "r.fits", out)
    else:
        print(f"[4/4] real data not found at {args.kids}; skipped", flush=True)
    print(f"done in {time.perf_counter() - t0:.0f} s; outputs in {out.resolve()}", flush=True)


if __name__ == "__main__":
    main()
