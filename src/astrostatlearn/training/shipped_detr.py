"""Reproduce the DETR panoptic model that ships with the package (``astrostatlearn/data/detr-default.pt``).

    python -m astrostatlearn.training.shipped_detr --out src/astrostatlearn/data/detr-default.pt

Uses the same simulated surveys as the shipped U-Net and Mask R-CNN
(:data:`astrostatlearn.training.shipped.TRAINING_SURVEYS`, seeds 1000+; evaluation fields use
others), builds ``snr`` patch datasets with their COCO panoptic exports, and trains from scratch
with the shared loop on random 128^2 crops (the inference window): 20 epochs of the 312 training
patches (39 batches of 8) at a peak learning rate of 2e-4, with 32 of the 36 queries seeded by the
shipped U-Net's instances (``--seeds 32``; 0: DETR's learned queries alone, which did not learn
on 2 CPU cores). ``--detector-epochs N`` first trains the detector alone for N epochs (DETR's two
stages, :func:`astrostatlearn.training.detr.train_detr`), then the epochs train the mask head on
it, frozen. ``--device cuda`` runs the same recipe on a GPU.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from astrostatlearn.training.detr import train_detr
from astrostatlearn.training.shipped_maskrcnn import build_training_sets, recipe_arguments, recipe_config


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("src/astrostatlearn/data/detr-default.pt"))
    ap.add_argument("--work", type=Path, default=Path("build/shipped-maskrcnn"),
                    help="where the training sets go (shared with the Mask R-CNN recipe)")
    recipe_arguments(ap, epochs=20, steps=39, lr=2e-4)
    ap.add_argument("--detector-epochs", type=int, default=0, help="epochs of the detector alone first (0: one stage)")
    ap.add_argument("--window", type=int, default=128, help="training crop and inference window, px")
    ap.add_argument("--token-stride", type=int, default=16, help="pixels per transformer token (4, 8 or 16)")
    ap.add_argument("--d-model", type=int, default=64, help="transformer width")
    ap.add_argument("--ffn", type=int, default=256, help="feed-forward width")
    ap.add_argument("--seeds", type=int, default=32, help="queries seeded by the shipped U-Net's instances (0: none)")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    dirs = build_training_sets(args.work, args.size)
    config = {"window": args.window, "token_stride": args.token_stride, "d_model": args.d_model, "ffn": args.ffn,
              "seeds": args.seeds}
    train_detr(dirs, args.out, recipe_config(args, clip_grad=0.1), config, resume=args.resume,
               detector_epochs=args.detector_epochs)
    print(f"saved {args.out} ({args.out.stat().st_size / 1e6:.1f} MB) in {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
