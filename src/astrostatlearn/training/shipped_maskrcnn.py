"""Reproduce the Mask R-CNN that ships with the package (``astrostatlearn/data/maskrcnn-default.pt``).

Two runs, 44 minutes on 2 CPU cores once the simulated fields are on disk, as the shipped U-Net
(from scratch on white noise, then fine-tuned across what real images have):

    python -m astrostatlearn.training.shipped_maskrcnn --out build/maskrcnn-start.pt
    python -m astrostatlearn.training.shipped_maskrcnn --surveys real --init build/maskrcnn-start.pt \
        --lr 3e-4 --epochs 12 --out src/astrostatlearn/data/maskrcnn-default.pt
    python benchmarks/tune_maskrcnn_postprocess.py --model src/astrostatlearn/data/maskrcnn-default.pt \
        --grid small --write

Uses the shipped U-Net's simulated surveys (:data:`astrostatlearn.training.shipped.SURVEY_SETS`:
depths, PSFs, samplings, sky levels, flux units and densities; ``--surveys real`` adds correlated
noise, saturated stars, clusters, defects and a Kolmogorov PSF; seeds 1000+), builds ``snr`` patch
datasets with their COCO instances exports, and trains with the shared loop on random 128^2
crops (inference runs on 256^2 windows). Seeds 1000+ are used here; evaluation fields use others.
A fine-tuned model keeps its starting model's post-processing until the tuner rewrites it.

Training is deterministic (seed 0), and keeps every crop at its own pixel scale
(:func:`astrostatlearn.methods.maskrcnn.keep_scale`), as inference sees it; these commands give the
shipped model (see ``docs/guide/training.md``).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from astrostatlearn.training.loop import TrainConfig
from astrostatlearn.training.maskrcnn import train_maskrcnn
from astrostatlearn.training.shipped import SURVEY_SETS, simulate_training_sets


def build_training_sets(work: Path, size: int, surveys: str = "shipped") -> list[Path]:
    """Simulate the training surveys (:data:`astrostatlearn.training.shipped.SURVEY_SETS`) and write
    their snr datasets with COCO instances and panoptic exports (reused when present)."""
    return simulate_training_sets(work, SURVEY_SETS[surveys], size, coco=True)


def recipe_arguments(ap: argparse.ArgumentParser, epochs: int, steps: int, lr: float) -> None:
    """The options every detector recipe takes: field size, loop settings, device and ``--resume``."""
    ap.add_argument("--size", type=int, default=2048, help="size of each simulated training field")
    ap.add_argument("--epochs", type=int, default=epochs)
    ap.add_argument("--steps", type=int, default=steps, help="batches per epoch")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=lr)
    ap.add_argument("--device", default=None)
    ap.add_argument("--resume", action="store_true")


def recipe_config(args: argparse.Namespace, clip_grad: float) -> TrainConfig:
    """The shared loop's settings of a recipe: no early stop, seed 0, gradients clipped at ``clip_grad``."""
    return TrainConfig(epochs=args.epochs, batch_size=args.batch, steps_per_epoch=args.steps, lr=args.lr,
                       patience=args.epochs, seed=0, device=args.device, clip_grad=clip_grad)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("src/astrostatlearn/data/maskrcnn-default.pt"))
    ap.add_argument("--work", type=Path, default=Path("build/shipped-maskrcnn"))
    recipe_arguments(ap, epochs=25, steps=60, lr=1e-3)
    ap.add_argument("--crop", type=int, default=128)
    ap.add_argument("--backbone", choices=("unet", "galaxy"), default="unet")
    ap.add_argument("--surveys", choices=sorted(SURVEY_SETS), default="shipped",
                    help="training surveys, as for the U-Net: white noise, plus correlated noise, plus real-image features")
    ap.add_argument("--init", type=Path, default=None, help="fine-tune from this Mask R-CNN model file")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    # The survey sets extend one another and field k always has seed 1000 + k, so they share --work.
    dirs = build_training_sets(args.work, args.size, args.surveys)
    train_maskrcnn(dirs, args.out, recipe_config(args, clip_grad=10.0), crop=args.crop, resume=args.resume,
                   backbone=args.backbone, init=args.init)
    print(f"saved {args.out} ({args.out.stat().st_size / 1e6:.1f} MB) in {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
