"""Reproduce the U-Nets that ship with the package.

The default (``astrostatlearn/data/unet-default.pt``) takes two runs, 99 minutes on 2 CPU cores:

    python -m astrostatlearn.training.shipped --surveys correlated --out src/astrostatlearn/data/unet-correlated.pt
    python -m astrostatlearn.training.shipped --surveys real --init src/astrostatlearn/data/unet-correlated.pt \
        --lr 5e-4 --epochs 30 --patience 30 --out src/astrostatlearn/data/unet-default.pt

(4083 s from scratch on twelve surveys, then 1875 s of fine-tuning on seventeen, the last five with what real images
have). ``--surveys shipped`` alone gives the earlier default, white noise only.

Simulates fields that span the data users will meet, builds ``snr`` patch datasets from them,
and trains a small U-Net (width 16, depth 4, 1.9 M parameters, stored as float16) with
the shared loop for up to 120 epochs (early stopping after 40 epochs without a better validation
IoU, counted from epoch 60); ``--snapshot-every 5`` also keeps the model every 5 epochs. The
saved model carries the post-processing chosen on a validation field (``SHIPPED_POSTPROCESS``).
The ``snr`` input, background-subtracted and divided by the rms, makes the model indifferent to
flux units and sky level; the fields vary noise level, sky background (with and
without), PSF width, pixel scale, flux zero point and object density, all with white noise
(``--surveys correlated`` adds four with correlated noise; ``--surveys real`` adds five more with
bright saturated stars, clusters with intracluster light, defects and a Kolmogorov PSF image). Seeds 1000+ are used here;
evaluation fields use other seeds.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from astrostatlearn.datasets import SPLITS, build_dataset, export_instances, export_panoptic
from astrostatlearn.field import Field
from astrostatlearn.simulate import get_preset, simulate_field
from astrostatlearn.methods.unet import UNetSegmenter
from astrostatlearn.training.loop import TrainConfig
from astrostatlearn.training.unet import train_unet

# Chosen by benchmarks/tune_unet_postprocess.py (validation fields, seeds 3000 and 3001): best of its grid
# (threshold 0.6 -> 0.8 once the input was read against the sky rms: mean PQ 0.622 -> 0.634).
# local_background: the input flattened by the field's 64-px mesh, as SExtractor does: PQ 0.06 -> 0.49 on a field
# with a 20-sigma gradient and 0.26 -> 0.56 on one with clusters (validation seeds 3004, 3005), at -0.016 PQ on
# the white-noise test field.
SHIPPED_POSTPROCESS = {"threshold": 0.8, "core_level": 0.7, "min_dynamic": 0.2, "local_background": True}

# (preset, overrides): a spread of depths, PSFs, samplings, sky levels, flux units and densities.
TRAINING_SURVEYS = [
    ("euclid-vis", {}),
    ("euclid-vis", {"sky_sigma": 0.3, "density": 150.0}),
    ("euclid-vis", {"sky_sigma": 1.2}),
    ("euclid-vis", {"psf_fwhm": 0.25, "sky_level": 20.0}),
    ("euclid-vis", {"pixel_scale": 0.05, "psf_fwhm": 0.12, "density": 60.0}),
    ("euclid-vis", {"zeropoint": 25.0, "sky_sigma": 0.0055, "density": 120.0}),
    ("ground", {}),
    ("ground", {"sky_sigma": 3.0, "zeropoint": 27.0, "sky_level": 100.0}),
]

# The eight surveys plus four with correlated noise, as in resampled or coadded images (KiDS, VIKING,
# HST drizzles): ``--surveys correlated --out src/astrostatlearn/data/unet-correlated.pt`` made the
# correlated-noise U-Net shipped beside the default (not the default yet).
CORRELATED_SURVEYS = TRAINING_SURVEYS + [
    ("euclid-vis", {"noise_correlation": 0.6}),
    ("euclid-vis", {"sky_sigma": 1.2, "noise_correlation": 1.0}),
    ("ground", {"noise_correlation": 0.5}),
    ("ground", {"psf_fwhm": 0.9, "sky_sigma": 3.0, "noise_correlation": 0.8}),
]
# Those plus what real images have (``simulate --bright-stars --saturation --clusters``, gradients,
# stripes, bad columns, holes, and a non-Moffat PSF image: Kolmogorov seeing through an obscured
# aperture, written by :func:`kolmogorov_psf`): ``--surveys real``.
KOLMOGOROV_PSF = "kolmogorov-psf.fits"
REAL_IMAGE_SURVEYS = CORRELATED_SURVEYS + [
    ("ground", {"bright_stars": 0.3, "saturation": 4000.0, "clusters": 0.05, "noise_correlation": 0.5,
                "stripe_sigma": 0.2}),
    ("euclid-vis", {"bright_stars": 0.2, "bright_star_mag": 14.0, "saturation": 20000.0, "clusters": 0.05,
                    "background_gradient": 5.0}),
    ("ground", {"psf_fwhm": 0.9, "sky_sigma": 3.0, "bright_stars": 0.2, "saturation": 3000.0, "bad_column_rate": 0.005,
                "hole_fraction": 0.02, "noise_correlation": 0.7}),
    ("ground", {"sky_sigma": 3.0, "noise_correlation": 0.8, "clusters": 0.1, "stripe_sigma": 0.3,
                "hole_fraction": 0.02}),
    ("ground", {"psf_file": KOLMOGOROV_PSF, "noise_correlation": 0.6, "background_gradient": 3.0}),
]
SURVEY_SETS = {"shipped": TRAINING_SURVEYS, "correlated": CORRELATED_SURVEYS, "real": REAL_IMAGE_SURVEYS}


def kolmogorov_psf(path: Path, pixel_scale: float = 0.2, fwhm: float = 0.8) -> Path:
    """A PSF image (unit sum, pixel response included) of Kolmogorov seeing of ``fwhm`` arcsec
    through an aperture with a 30% central obstruction, at ``pixel_scale`` arcsec / pixel."""
    import galsim
    from astropy.io import fits

    prof = galsim.Convolve(galsim.Kolmogorov(fwhm=fwhm), galsim.Airy(lam_over_diam=0.1, obscuration=0.3))
    img = prof.drawImage(nx=41, ny=41, scale=pixel_scale).array
    path.parent.mkdir(parents=True, exist_ok=True)
    fits.PrimaryHDU(img / img.sum()).writeto(path, overwrite=True)
    return path


def simulate_training_sets(work: Path, surveys: list[tuple[str, dict]], size: int, coco: bool = False) -> list[Path]:
    """Simulate one ``size``^2 field per survey (seeds 1000+k) under ``work/fieldK`` and build its
    ``snr`` patch dataset under ``work/dsK`` (with its COCO instances and panoptic exports when
    ``coco``); a dataset already there is reused. Returns the dataset folders."""
    t0 = time.perf_counter()
    dirs = []
    for k, (name, over) in enumerate(surveys):
        field_dir, ds_dir = work / f"field{k}", work / f"ds{k}"
        done = ds_dir / ("coco/panoptic_val.json" if coco else "manifest.json")
        if not done.exists():
            if over.get("psf_file") == KOLMOGOROV_PSF:
                over = dict(over, psf_file=str(kolmogorov_psf(work / KOLMOGOROV_PSF).resolve()))
            preset = get_preset(name).with_overrides(**over)
            simulate_field(field_dir, size, seed=1000 + k, preset=preset, overwrite=True, progress=False)
            with Field.open(field_dir) as f:
                build_dataset(f, "snr", ds_dir, patch=256, overwrite=True)
            for split in SPLITS if coco else ():
                export_instances(ds_dir, split, ds_dir / "coco" / f"instances_{split}.json", overwrite=True)
                export_panoptic(ds_dir, split, ds_dir / "coco", overwrite=True)
        dirs.append(ds_dir)
        print(f"dataset {k}: {name} {over} ({time.perf_counter() - t0:.0f} s)", flush=True)
    return dirs


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("src/astrostatlearn/data/unet-default.pt"))
    ap.add_argument("--work", type=Path, default=Path("build/shipped-unet"))
    ap.add_argument("--size", type=int, default=2048, help="size of each simulated training field")
    ap.add_argument("--epochs", type=int, default=120)
    ap.add_argument("--steps", type=int, default=40, help="batches per epoch")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--patience", type=int, default=40, help="early stopping, counted from half the schedule")
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--device", default=None)
    ap.add_argument("--surveys", choices=sorted(SURVEY_SETS), default="shipped",
                    help="training surveys: the shipped model's, those plus correlated noise, or those plus real-image features")
    ap.add_argument("--lr", type=float, default=2e-3, help="peak learning rate (one cycle)")
    ap.add_argument("--init", type=Path, default=None, help="fine-tune from this U-Net model file instead of from scratch")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--snapshot-every", type=int, default=0, help="also keep the model every N epochs, beside --out (0 = never)")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    dirs = simulate_training_sets(args.work, SURVEY_SETS[args.surveys], args.size)
    cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch, steps_per_epoch=args.steps, lr=args.lr,
                      patience=args.patience, seed=0, device=args.device)
    train_unet(dirs, args.out, cfg, width=args.width, crop=128, resume=args.resume, snapshot_every=args.snapshot_every,
               init=args.init)
    seg = UNetSegmenter.load_file(args.out)
    for name, value in SHIPPED_POSTPROCESS.items():
        setattr(seg, name, value)
    seg.save(args.out)
    print(f"saved {args.out} ({args.out.stat().st_size / 1e6:.1f} MB) in {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
