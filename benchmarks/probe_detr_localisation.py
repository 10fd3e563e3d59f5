"""Does DETR's detector learn to place boxes at all, from scratch? A probe on the easiest data there is.

Trains the DETR detector alone (DETR's first stage: :class:`astrostatlearn.training.detr.DetrDetectorTask`,
no mask head) on synthetic 64^2 windows of white noise (sigma 1) holding 1-4 bright round Gaussian
blobs (peak 20 sigma, width 1.5-4 px; truth: the pixels within 2 widths), drawn afresh every
step, so there is no overfitting and no faint object. Every ``--every`` steps it prints the loss
terms and, over 40 fresh windows, the median of each object's best box IoU over all queries
(1 would be perfect localisation), first for the untrained network.
If the detector cannot place boxes here, it cannot on galaxies either.

With ``--model PATH`` (a saved DETR: a first-stage ``*.detector.pt`` or a whole model) it trains
nothing and reads that model on the validation crops of the training sets (``--datasets``, the
shipped recipe's): per galaxy the best box IoU of any query, that query's galaxy probability and
whether "no object" is its most probable class; and per crop how far apart the masks of its two
most confident galaxy queries are (the largest difference of their mask probabilities: 0 when the
mask head gives every query the same mask).

Usage: python benchmarks/probe_detr_localisation.py [--steps 3000] [--lr 3e-4] [--batch 8]
       [-p token_stride=8 -p d_model=128 -p ffn=512 ...]  (any ``train detr`` model option)
       python benchmarks/probe_detr_localisation.py --model build/detr/detr-default.pt [--last]
       [--datasets build/shipped-maskrcnn]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

SIZE = 64


def blob_window(rng: np.random.Generator) -> tuple[torch.Tensor, np.ndarray]:
    """One [1, 64, 64] window of unit white noise with 1-4 blobs, and its int32 truth map."""
    yy, xx = np.mgrid[:SIZE, :SIZE]
    img = rng.normal(0, 1, (SIZE, SIZE)).astype(np.float32)
    inst = np.zeros((SIZE, SIZE), np.int32)
    for k in range(int(rng.integers(1, 5))):
        cy, cx = rng.uniform(4, SIZE - 4, 2)
        r2 = ((yy - cy) ** 2 + (xx - cx) ** 2) / rng.uniform(1.5, 4) ** 2
        img += 20 * np.exp(-r2 / 2)
        inst[(r2 < 4) & (inst == 0)] = k + 1
    return torch.from_numpy(img)[None], inst


def best_boxes(targets: dict[str, torch.Tensor], pred_boxes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per true galaxy of ``targets`` (DETR's), the best box IoU of any query of ``pred_boxes``
    [Q, 4] (both normalised (cx, cy, w, h)) and that query's index."""
    from torchvision.ops import box_convert, box_iou

    from astrostatlearn.methods.detr import GALAXY

    true = box_convert(targets["boxes"][targets["class_labels"] == GALAXY], "cxcywh", "xyxy")
    best = box_iou(true, box_convert(pred_boxes, "cxcywh", "xyxy")).max(1)
    return best.values, best.indices


def median_best_iou(net: torch.nn.Module, rng: np.random.Generator, n: int = 40) -> float:
    """Median over the objects of ``n`` fresh windows of the best box IoU any query gives."""
    from astrostatlearn.training.detr import detr_targets

    best = []
    with torch.inference_mode():
        for _ in range(n):
            img, inst = blob_window(rng)
            best += best_boxes(detr_targets(inst), net.detect(img[None]).pred_boxes[0])[0].tolist()
    return float(np.median(best))


def read_model(path: Path, datasets: Path, last: bool = False) -> None:
    """Print what a saved DETR does on the validation crops of ``datasets`` (see the module notes);
    ``last``: the last epoch's weights, from the training checkpoint beside it (``PATH.ckpt``)."""
    from astrostatlearn.methods.detr import GALAXY, DetrSegmenter
    from astrostatlearn.training.patches import ConcatPatches
    from astrostatlearn.training.query_panoptic import panoptic_patches

    net = DetrSegmenter.load_file(path).net_.eval()
    if last:
        ck = torch.load(path.with_suffix(path.suffix + ".ckpt"), map_location="cpu", weights_only=False)
        net.load_state_dict(ck["model"])
        path = Path(f"{path} (epoch {ck['epoch'] + 1}, from its checkpoint)")
    window = net.config["window"]
    val = ConcatPatches([panoptic_patches(d, "val", False, crop=window) for d in sorted(datasets.glob("ds*"))])
    best, prob, empty, apart = [], [], [], []
    with torch.inference_mode():
        for i in range(len(val)):
            img, t = val[i]
            out = net(img[None])
            p = out.logits[0].softmax(-1)
            top = p[:, GALAXY].argsort(descending=True)[:2]
            masks = out.pred_masks[0, top].sigmoid()
            apart.append(float((masks[0] - masks[1]).abs().max()))
            if not bool((t["class_labels"] == GALAXY).any()):
                continue
            iou, query = best_boxes(t, out.pred_boxes[0])
            best += iou.tolist()
            prob += p[query, GALAXY].tolist()
            empty += (p[query].argmax(-1) == 2).tolist()
    print(f"{path} on {len(val)} validation crops of {window}^2 ({len(best)} galaxies):")
    print(f"  best box IoU of any query: median {np.median(best):.3f}, >= 0.5 for {np.mean(np.array(best) >= 0.5):.1%}")
    print(f"  that query's galaxy probability: median {np.median(prob):.2f}; 'no object' most probable for "
          f"{int(np.sum(empty))} of {len(empty)}")
    print(f"  largest mask-probability difference of the two most confident queries: median {np.median(apart):.3f}")


def main() -> None:
    from astrostatlearn.methods.detr import build_detr
    from astrostatlearn.training.detr import DetrDetectorTask, detr_targets
    from astrostatlearn.training.query_panoptic import parse_query_options

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--every", type=int, default=500)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--queries", type=int, default=16)
    ap.add_argument("-p", dest="params", action="append", default=[], help="model option NAME=VALUE")
    ap.add_argument("--model", type=Path, help="read this saved DETR on the validation crops instead of training")
    ap.add_argument("--last", action="store_true", help="with --model: the last epoch, from MODEL.ckpt")
    ap.add_argument("--datasets", type=Path, default=Path("build/shipped-maskrcnn"),
                    help="folder of the recipe's patch datasets (ds0, ds1, ...)")
    args = ap.parse_args()
    if args.model is not None:
        read_model(args.model, args.datasets, args.last)
        return
    options = parse_query_options(dict(p.split("=", 1) for p in args.params))
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    net = build_detr(1, window=SIZE, queries=args.queries, **options).train()
    opt = torch.optim.AdamW(net.parameters(), args.lr, weight_decay=1e-4)
    task = DetrDetectorTask()
    t0 = time.perf_counter()
    print(f"DETR detector {options or 'default'}, lr {args.lr}, batch {args.batch}; "
          f"untrained: median best box IoU {median_best_iou(net.eval(), rng):.3f}")
    net.train()
    for step in range(1, args.steps + 1):
        batch = [blob_window(rng) for _ in range(args.batch)]
        terms = task.losses(net, ([img for img, _ in batch], [detr_targets(inst) for _, inst in batch]))
        opt.zero_grad()
        sum(terms.values()).backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 0.1)
        opt.step()
        if step % args.every == 0:
            net.eval()
            iou = median_best_iou(net, rng)
            net.train()
            shown = ", ".join(f"{k} {float(v.detach()):.2f}" for k, v in terms.items())
            print(f"step {step}: {shown}; median best box IoU {iou:.3f} ({time.perf_counter() - t0:.0f} s)",
                  flush=True)


if __name__ == "__main__":
    main()
