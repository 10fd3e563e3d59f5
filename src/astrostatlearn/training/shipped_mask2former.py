"""Reproduce the Mask2Former that ships with the package (``astrostatlearn/data/mask2former-default.pt``).

    python -m astrostatlearn.training.shipped_mask2former --out src/astrostatlearn/data/mask2former-default.pt

Uses the same simulated surveys as the shipped U-Net, Mask R-CNN and the DETR recipe
(:data:`astrostatlearn.training.shipped.TRAINING_SURVEYS`, seeds 1000+; evaluation fields use
others), their ``snr`` patch datasets with COCO panoptic exports, and trains from scratch with the
shared loop on random 128^2 crops (the inference window): 150 epochs of 39 batches of 8 (45 minutes
on 2 CPU cores; DETR's recipe otherwise). ``--device cuda`` runs the same recipe on a GPU.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from astrostatlearn.training.mask2former import train_mask2former
from astrostatlearn.training.shipped_maskrcnn import build_training_sets, recipe_arguments, recipe_config


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("src/astrostatlearn/data/mask2former-default.pt"))
    ap.add_argument("--work", type=Path, default=Path("build/shipped-maskrcnn"),
                    help="where the training sets go (shared with the Mask R-CNN and DETR recipes)")
    recipe_arguments(ap, epochs=150, steps=39, lr=5e-4)
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    dirs = build_training_sets(args.work, args.size)
    train_mask2former(dirs, args.out, recipe_config(args, clip_grad=0.1), resume=args.resume)
    print(f"saved {args.out} ({args.out.stat().st_size / 1e6:.1f} MB) in {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
