"""The learned methods' ``snr`` input read against the sky rms, against the total rms it was before.

The simulator's ``rms.fits`` (like HST's and JWST's ``ERR``) carries each source's own Poisson noise.
Until 2026-12-07 the ``snr`` input divided by it, so a faint galaxy was dimmed by its own photon
noise; it now divides by the sky part (:mod:`astrostatlearn.preprocess.sky_noise`). This runs each
shipped model, unchanged, both ways on fresh simulated fields (seeds 9301+, never used for training,
tuning or the choice of the method), the whole field scored, with SExtractor at the seed study's
settings (1.5 sigma, 5 px, gauss 2.0 5x5) as the peer, given the rms map and given its sky part
(which its MAP_RMS expects: :func:`~astrostatlearn.benchmark.peers.sky_rms_map`): pixel IoU, completeness and purity
at IoU > 0.5, PQ, and the segment run's wall time (the sky rms's cost: a grey opening per tile).
The last field has no source noise in its rms map (gain infinite): there
nothing may change.

Usage: python benchmarks/bench_sky_noise.py [--size 2048] [--methods unet,maskrcnn] [--only NAME,NAME]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _measure import scratch_dir  # noqa: E402

from astrostatlearn.benchmark import peers  # noqa: E402

# name: (preset, overrides, seed)
SURVEYS = {
    "space (euclid-vis)": ("euclid-vis", {}, 9301),
    "space, sky sigma 0.3": ("euclid-vis", {"sky_sigma": 0.3}, 9302),
    "space, 250 / arcmin²": ("euclid-vis", {"density": 250.0}, 9303),
    "ground": ("ground", {}, 9304),
    "ground, 1.2\" seeing": ("ground", {"psf_fwhm": 1.2}, 9305),
    "space, sky-only rms (gain inf)": ("euclid-vis", {"gain": math.inf}, 9306),
}


def scores(field: Path, pred: Path) -> dict[str, float]:
    from astrostatlearn.field import open_image
    from astrostatlearn.metrics import evaluate

    ev = evaluate(open_image(field / "true.fits"), open_image(pred), coco=False)
    return {"iou": ev.pixel["iou"], "compl": ev.detection["completeness"], "purity": ev.detection["purity"],
            "pq": ev.panoptic["galaxy"]["pq"]}


def run_both(field: Path, method: str, work: Path) -> tuple[float, dict[str, dict[str, float]]]:
    """The method's scores with the sky rms (now) and the total rms (before): (slope, {label: scores})."""
    from astrostatlearn.field import Field, Window
    from astrostatlearn.methods import default_segmenter
    from astrostatlearn.preprocess import fit_variant
    from astrostatlearn.segment import segment_field

    seg = default_segmenter(method)
    variant = seg.trained_variant or seg.default_variant
    out: dict[str, dict[str, float]] = {}
    with Field.open(field) as f:
        pre = fit_variant(f, variant)
        before = replace(pre, stats=replace(pre.stats, rms_source_slope=0.0))
        segment_field(f, seg, work / f"{method}-warm-{field.name}", variant=variant, pre=pre, score=False,
                      region=Window(0, 256, 0, 256))  # the model's first run (loading, compiling) untimed
        for label, p in (("sky", pre), ("total", before)):
            run = work / f"{method}-{label}-{field.name}"
            t0 = time.perf_counter()
            segment_field(f, seg, run, variant=variant, pre=p, score=False)
            out[label] = scores(field, run / "segmentation.fits") | {"s": time.perf_counter() - t0}
    return pre.stats.rms_source_slope, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--methods", default="unet,maskrcnn")
    ap.add_argument("--only", default="", help="comma-separated survey names (default: all)")
    args = ap.parse_args()
    from astrostatlearn.simulate import get_preset, simulate_field

    have_sex = peers.ensure_installed()["sextractor"]
    work = scratch_dir("bench-sky-noise-")
    names = [n.strip() for n in args.only.split(",") if n.strip()] or list(SURVEYS)
    print(f"{'survey':<32}{'slope':>7}  {'method':<9}{'IoU total -> sky':>18}{'completeness':>16}{'purity':>16}"
          f"{'PQ total -> sky':>18}{'seconds':>16}{'SExtractor PQ: rms map, sky rms map':>38}")
    for name in names:
        preset, over, seed = SURVEYS[name]
        field = work / f"field{seed}"
        simulate_field(field, args.size, seed=seed, preset=get_preset(preset).with_overrides(**over), progress=False)
        sex = sex_sky = float("nan")
        if have_sex:
            sex = scores(field, peers.run_sextractor(field, work / f"sex{seed}", 1.5))["pq"]
            sky = peers.sky_rms_map(field, work / f"sky-rms{seed}.fits")
            sex_sky = sex if sky is None else scores(field, peers.run_sextractor(field, work / f"sexsky{seed}", 1.5, sky))["pq"]
        for method in [m for m in args.methods.split(",") if m]:
            slope, s = run_both(field, method, work)
            t, k = s["total"], s["sky"]
            print(f"{name:<32}{slope:>7.3f}  {method:<9}" + "".join(
                f"{t[m]:>10.3f} -> {k[m]:.3f}" for m in ("iou", "compl", "purity", "pq")) + f"{t['s']:>9.1f} -> {k['s']:.1f}"
                  + f"{sex:>26.3f}, {sex_sky:.3f}", flush=True)


if __name__ == "__main__":
    main()
