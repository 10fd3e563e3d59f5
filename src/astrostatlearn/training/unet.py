"""Train the U-Net on patch datasets with the shared loop.

Loss: BCE + soft Dice on the foreground (robust to the 3-6% foreground fraction) plus BCE on
the centre-ness inside true objects. Training crops are random ``crop`` x ``crop`` windows of the
augmented 256^2 patches (dihedral transforms, extra noise, flux scaling).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import ConcatDataset, Dataset

from astrostatlearn.datasets.build import load_manifest
from astrostatlearn.datasets.torch_dataset import PatchDataset
from astrostatlearn.errors import InputError
from astrostatlearn.methods.unet import UNet, UNetSegmenter, instance_targets
from astrostatlearn.training.loop import EpochStats, TrainConfig, fit, start_from_file

if TYPE_CHECKING:
    from astrostatlearn.methods.base import TrainRequest


class UNetPatches(Dataset):
    """A :class:`PatchDataset` plus U-Net targets (``mask``, ``centre``), randomly cropped."""

    def __init__(self, base: PatchDataset, crop: int | None = None, seed: int = 0) -> None:
        self.base, self.crop, self.seed, self.epoch = base, crop, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.base.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, idx: int) -> dict[str, torch.Tensor]:
        item = self.base[idx]
        inst = item["instances"].numpy()
        image = item["image"]
        if self.crop and self.crop < inst.shape[0]:
            rng = np.random.default_rng([self.seed, self.epoch, idx, 7])
            y, x = (int(v) for v in rng.integers(0, inst.shape[0] - self.crop + 1, 2))
            inst = inst[y:y + self.crop, x:x + self.crop]
            image = image[:, y:y + self.crop, x:x + self.crop]
        fg, centre = instance_targets(inst)
        return {"image": image.contiguous(), "mask": torch.from_numpy(fg), "centre": torch.from_numpy(centre)}


def unet_loss(logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    fg_logit, c_logit = logits[:, 0].float(), logits[:, 1].float()
    mask, centre = batch["mask"], batch["centre"]
    bce = F.binary_cross_entropy_with_logits(fg_logit, mask)
    p = torch.sigmoid(fg_logit)
    dice = 1.0 - (2.0 * (p * mask).sum() + 1.0) / (p.sum() + mask.sum() + 1.0)
    w = mask.sum().clamp(min=1.0)
    c = (F.binary_cross_entropy_with_logits(c_logit, centre, reduction="none") * mask).sum() / w
    return bce + dice + c


def load_splits(dataset_dirs: Sequence[Path], augment: bool, noise: float, flux: tuple[float, float], seed: int,
                crop: int | None) -> tuple[Dataset, Dataset, str, list[str]]:
    """Concatenated train and val splits of several datasets (all the same variant)."""
    variants = {load_manifest(d)["variant"] for d in dataset_dirs}
    if len(variants) != 1:
        raise InputError(f"datasets mix variants {sorted(variants)}; train on one variant")
    variant = variants.pop()
    train = ConcatDataset([UNetPatches(PatchDataset(d, "train", augment=augment, noise=noise, flux_scale=flux, seed=seed),
                                       crop, seed) for d in dataset_dirs])
    val = ConcatDataset([UNetPatches(PatchDataset(d, "val"), None, seed) for d in dataset_dirs])
    channels = PatchDataset(dataset_dirs[0], "val").channels
    return train, val, variant, channels


class _EpochAware(Dataset):
    """ConcatDataset that forwards set_epoch to its parts."""

    def __init__(self, ds: ConcatDataset) -> None:
        self.ds = ds

    def set_epoch(self, epoch: int) -> None:
        for d in self.ds.datasets:
            d.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int):
        return self.ds[i]


def train_unet(dataset_dirs: Sequence[str | Path], out: str | Path, cfg: TrainConfig | None = None, width: int = 16,
               depth: int = 4, dropout: float = 0.1, crop: int | None = 128, noise: float = 0.3,
               flux: tuple[float, float] = (0.5, 2.0), resume: bool = False, progress: bool = True,
               snapshot_every: int = 0, init: str | Path | None = None) -> list[EpochStats]:
    """Train a U-Net on ``dataset_dirs`` and save the best model (by validation IoU) to ``out``.

    Beside ``out`` go ``out.ckpt`` (last epoch, for ``resume``), ``out.csv`` (one row per epoch)
    and ``out.json`` (configuration and history); with ``snapshot_every=N``, also the model after
    every N-th epoch as ``<stem>.epochNNN.pt`` (to measure the training time to a target).
    ``init``: a U-Net model file whose weights start the training (fine-tuning); its width,
    depth and input channels must match.
    """
    cfg = cfg or TrainConfig()
    dirs = [Path(d) for d in dataset_dirs]
    train, val, variant, channels = load_splits(dirs, True, noise, flux, cfg.seed, crop)
    torch.manual_seed(cfg.seed)
    net = UNet(in_channels=len(channels), width=width, depth=depth, dropout=dropout)
    if init is not None:
        start_from_file(UNetSegmenter, init, net, variant)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)

    def on_best(model: torch.nn.Module, stats: EpochStats) -> None:
        UNetSegmenter.from_network(model, variant=variant).save(out)
        model.train()

    def on_epoch(model: torch.nn.Module, stats: EpochStats) -> None:
        if snapshot_every > 0 and (stats.epoch + 1) % snapshot_every == 0:
            UNetSegmenter.from_network(model, variant=variant).save(out.with_name(f"{out.stem}.epoch{stats.epoch + 1:03d}.pt"))

    history = fit(net, unet_loss, _EpochAware(train), val, cfg, out.with_suffix(out.suffix + ".ckpt"),
                  out.with_suffix(".csv"), on_best, resume=resume, progress=progress, on_epoch=on_epoch)
    meta = {"variant": variant, "channels": channels, "datasets": [str(d) for d in dirs], "init": str(init) if init else None,
            "width": width, "depth": depth,
            "dropout": dropout, "crop": crop, "noise": noise, "flux": list(flux), "config": cfg.__dict__,
            "history": [h.__dict__ for h in history]}
    (out.with_suffix(".json")).write_text(json.dumps(meta, indent=2))
    return history


def train_unet_request(request: "TrainRequest") -> str:
    """``astrostatlearn train unet``: build patch datasets beside ``request.out``
    (``OUT.datasets/dsK``), train, and return a one-line summary."""
    from astrostatlearn.methods.base import convert_option
    from astrostatlearn.training.requests import check_loop_request, datasets_removed_if_refused, prepare_datasets

    check_loop_request(request, UNetSegmenter)
    opts = {"width": 16, "depth": 4, "crop": 128}
    for k, v in request.params.items():
        opts[k] = convert_option(str(v), opts[k], k)
    with datasets_removed_if_refused(request):
        dirs = prepare_datasets(request, request.variant or UNetSegmenter.default_variant)
        cfg = TrainConfig(epochs=request.epochs, batch_size=request.batch, lr=request.lr or 3e-3, seed=request.seed,
                          steps_per_epoch=request.steps, device=request.device)
        hist = train_unet(dirs, request.out, cfg, width=opts["width"], depth=opts["depth"], crop=opts["crop"] or None,
                          resume=request.resume, progress=True, snapshot_every=request.snapshot_every)
    best = max(hist, key=lambda h: h.val_metric)
    return (f"wrote {request.out}: best validation IoU {best.val_metric:.3f} at epoch {best.epoch + 1}; "
            f"log {request.out.with_suffix('.csv')}")
