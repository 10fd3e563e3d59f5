"""Catalogue photometry against the exact truth, beside SExtractor's, on one simulated field.

Each method runs `astrostatlearn segment --method M --kron` (and once without `--kron`, to time
what the Kron photometry costs); SExtractor 2.25 runs at the seed study's settings (1.5 sigma,
5 px, gauss 2.0 5x5, rms map; Debian `source-extractor`). Every catalogue is matched to the
simulator's truth by position (nearest true object within 1.5 px, one match each); for each
bin of true magnitude the script prints the median of `mag - true mag` (the bias: isophotal
magnitudes miss the wings, Kron ones about 5% of the light) and its scatter (1.4826 x the MAD),
for our isophotal `mag` and Kron `mag_auto`, and SExtractor's `MAG_ISO` and `MAG_AUTO`.

Usage: python benchmarks/bench_photometry.py [--size 4096] [--seed 21] [--preset ground] [--methods sep,unet]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _measure import scratch_dir, timed_commands  # noqa: E402

from astrostatlearn.benchmark import peers  # noqa: E402

BINS = [(16.0, 20.0), (20.0, 22.0), (22.0, 23.0), (23.0, 24.0), (24.0, 25.0)]
CLI = [sys.executable, "-m", "astrostatlearn"]


def matched(truth, x: np.ndarray, y: np.ndarray, radius: float = 1.5) -> tuple[np.ndarray, np.ndarray]:
    """(index into the catalogue, index into the truth) of one-to-one matches within ``radius`` px."""
    from scipy.spatial import cKDTree

    ok = np.flatnonzero(np.isfinite(x) & np.isfinite(y))
    dist, k = cKDTree(np.c_[truth["x"], truth["y"]]).query(np.c_[x[ok], y[ok]])
    near = dist < radius
    ok, k, dist = ok[near], k[near], dist[near]
    order = np.lexsort((dist, k))  # for each true object, the nearest catalogue object first
    first = np.r_[True, np.diff(k[order]) != 0]
    return ok[order][first], k[order][first]


def bias_rows(label: str, mags: dict[str, np.ndarray], true_mag: np.ndarray) -> list[str]:
    rows = []
    for name, mag in mags.items():
        cells = []
        for lo, hi in BINS:
            d = (mag - true_mag)[(true_mag >= lo) & (true_mag < hi) & np.isfinite(mag)]
            if d.size < 5:
                cells.append(f"{'–':>16}")
                continue
            med = np.median(d)
            cells.append(f"{med:+7.3f} ±{1.4826 * np.median(np.abs(d - med)):6.3f}")
        rows.append(f"{label + ' ' + name:<28}" + " ".join(cells))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--seed", type=int, default=21)
    ap.add_argument("--preset", default="ground")
    ap.add_argument("--methods", default="sep,unet")
    args = ap.parse_args()
    from astropy.io import fits
    from astropy.table import Table

    from astrostatlearn.benchmark.real import read_sextractor_catalog

    work = scratch_dir("bench-photometry-")
    field = work / "field"
    subprocess.run([*CLI, "simulate", str(field), "--size", str(args.size), "--seed", str(args.seed), "--preset",
                    args.preset], check=True, capture_output=True)
    truth = Table.read(field / "truth.ecsv")
    zp = float(fits.getheader(field / "img.fits")["MAGZP"])
    print(f"{args.preset} field {args.size}², seed {args.seed}: {len(truth)} true objects, zero-point {zp}")
    head = f"{'catalogue, magnitude':<28}" + " ".join(f"{f'{lo:g}-{hi:g}':>16}" for lo, hi in BINS)
    lines, times = [], []
    for m in [m for m in args.methods.split(",") if m]:
        wall = {}
        for kron in (False, True):
            out = work / f"{m}-{int(kron)}"
            wall[kron] = timed_commands([[*CLI, "segment", str(field), "-m", m, "-o", str(out), "--no-score"]
                                         + (["--kron"] if kron else [])])[0]
        times.append(f"{m}: {wall[False]:.1f} s, with --kron {wall[True]:.1f} s ({wall[True] / wall[False]:.2f}x)")
        cat = Table.read(work / f"{m}-1" / "catalog.ecsv")
        i, k = matched(truth, np.asarray(cat["x"], float), np.asarray(cat["y"], float))
        lines += bias_rows(m, {"mag (isophotal)": np.asarray(cat["mag"])[i],
                               "mag_auto (Kron)": np.asarray(cat["mag_auto"])[i]}, np.asarray(truth["mag"])[k])
    if peers.ensure_installed()["sextractor"]:
        sex_work = work / "sex"
        wall_sex = timed_commands([peers.sextractor_command(field, sex_work, 1.5)])[0]
        times.append(f"SExtractor: {wall_sex:.1f} s")
        ref = read_sextractor_catalog(sex_work / "sex.cat")
        i, k = matched(truth, np.asarray(ref["X_IMAGE"], float) - 1.0, np.asarray(ref["Y_IMAGE"], float) - 1.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            mags = {c: zp - 2.5 * np.log10(np.asarray(ref[f], float)[i])
                    for c, f in (("MAG_ISO", "FLUX_ISO"), ("MAG_AUTO", "FLUX_AUTO"))}
        lines += bias_rows("SExtractor", mags, np.asarray(truth["mag"])[k])
    else:
        print("SExtractor not installed (needs root for apt-get); its rows are left out")
    print("median (mag - true mag) ± scatter, by true magnitude:")
    print(head)
    print("\n".join(lines))
    print("wall time: " + "; ".join(times))


if __name__ == "__main__":
    main()
