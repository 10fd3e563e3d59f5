"""``make demo``: simulate a field, describe it, and run the main job on it.

Usage: ``python -m astrostatlearn.demo [--out demo-output] [--size 2048]``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from astrostatlearn.field import Field, robust_stats, scan_field
from astrostatlearn.simulate import simulate_field


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default="demo-output", help="output folder (replaced if it exists)")
    ap.add_argument("--size", type=int, default=2048, help="simulated field size N (N x N pixels)")
    ap.add_argument("--seed", type=int, default=2026)
    args = ap.parse_args(argv)
    out = Path(args.out)
    field_dir = out / "field"
    t0 = time.perf_counter()
    print(f"[1] simulating a {args.size}x{args.size} euclid-vis field into {field_dir}")
    s = simulate_field(field_dir, args.size, seed=args.seed, overwrite=True)
    print(f"    {s.n_objects} objects ({s.n_stars} stars), {s.n_in_truth} in the truth map, "
          f"foreground {100 * s.foreground_fraction:.2f}% ({time.perf_counter() - t0:.1f} s)")
    with Field.open(field_dir) as f:
        rep = scan_field(f)
        _, median, std = robust_stats(f)
        print(f"[2] field: {f.shape[0]}x{f.shape[1]}, WCS {'yes' if f.wcs else 'no'}, "
              f"sigma-clipped median {median:.3g} std {std:.3g}, {rep.n_objects} objects in truth")
    print(f"done in {time.perf_counter() - t0:.1f} s; outputs in {out.resolve()}")


if __name__ == "__main__":
    main()
