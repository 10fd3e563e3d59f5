"""Annotated patches for the detectors' trainers: a patch dataset whose instance maps come from an
export (COCO instances or COCO panoptic), turned into a model's targets after augmentation."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch.utils.data import ConcatDataset, Dataset

from astrostatlearn.datasets.build import load_manifest
from astrostatlearn.datasets.torch_dataset import PatchDataset
from astrostatlearn.errors import InputError


class AnnotatedPatches(Dataset):
    """A split of a patch dataset as (image [C, P, P], targets), with ``maps`` (one int32 instance
    map per patch, read from an export) in place of the stored truth.

    Augmentation is the patch dataset's (dihedral transforms, extra noise ``noise`` x rms, flux
    scaling in ``flux``), applied to the image and the map together; ``crop`` takes a random
    ``crop`` x ``crop`` window per item and epoch (the same window every epoch without ``augment``,
so the validation set stays fixed). ``targets`` turns the (cropped) map into the
    model's targets. ``source`` names the export in errors.
    """

    def __init__(self, root: Path, split: str, maps: list[np.ndarray], targets: Callable[[np.ndarray], Any],
                 augment: bool, noise: float = 0.3, flux: tuple[float, float] = (0.5, 2.0), crop: int | None = None,
                 seed: int = 0, source: Path | None = None) -> None:
        self.base = PatchDataset(root, split, augment=augment, noise=noise, flux_scale=flux, seed=seed)
        if len(maps) != len(self.base):
            raise InputError(f"the export has {len(maps)} images but the {split} split {len(self.base)} patches",
                             source or root)
        self.maps, self.targets = maps, targets
        self.crop, self.seed, self.epoch = crop, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.base.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, idx: int) -> tuple[torch.Tensor, Any]:
        item = self.base.sample(idx, self.maps[idx])
        image, inst = item["image"], item["instances"].numpy()
        if self.crop and self.crop < inst.shape[0]:
            rng = np.random.default_rng([self.seed, self.epoch if self.base.augment else 0, idx, 11])
            y, x = (int(v) for v in rng.integers(0, inst.shape[0] - self.crop + 1, 2))
            inst = inst[y:y + self.crop, x:x + self.crop]
            image = image[:, y:y + self.crop, x:x + self.crop]
        return image.contiguous(), self.targets(inst)


class ConcatPatches(Dataset):
    """ConcatDataset of :class:`AnnotatedPatches` that forwards ``set_epoch`` to its parts."""

    def __init__(self, parts: list[AnnotatedPatches]) -> None:
        self.ds = ConcatDataset(parts)
        self.datasets = parts

    def set_epoch(self, epoch: int) -> None:
        for d in self.datasets:
            d.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int) -> Any:
        return self.ds[i]


def one_variant(dirs: Sequence[Path]) -> str:
    """The input variant shared by the patch datasets ``dirs`` (datasets that mix variants are refused)."""
    variants = {load_manifest(d)["variant"] for d in dirs}
    if len(variants) != 1:
        raise InputError(f"datasets mix variants {sorted(variants)}; train on one variant")
    return variants.pop()


def channel_stats(dataset: ConcatPatches, n: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel (median, 3 x robust sigma) of the inputs of up to ``n`` training patches."""
    vals = []
    for parts in dataset.datasets:
        base = parts.base
        for i in np.linspace(0, len(base) - 1, min(n, len(base))).round().astype(int):
            inputs = base.raw(int(i))["inputs"]
            vals.append(inputs.reshape(inputs.shape[0], -1))
    x = np.concatenate(vals, axis=1)
    med = np.median(x, axis=1)
    sigma = 1.4826 * np.median(np.abs(x - med[:, None]), axis=1)
    return torch.tensor(med, dtype=torch.float32), torch.tensor(3.0 * np.maximum(sigma, 1e-12), dtype=torch.float32)


def densest_patch(dirs: Sequence[Path], window: int | None = None) -> int:
    """The largest number of truth objects (whole or cut) in one patch of any split of the
    datasets or, with ``window``, in any ``window`` x ``window`` crop of a patch (crops every
    ``window // 4`` px)."""
    from astrostatlearn.datasets.build import iter_shards

    most = 0
    for d in dirs:
        for split in load_manifest(d)["shards"]:
            for shard in iter_shards(d, split):
                for lab in shard["instances"]:
                    p = lab.shape[0]
                    w = min(window or p, p)
                    starts = sorted(set(list(range(0, p - w + 1, max(1, w // 4))) + [p - w]))
                    for y in starts:
                        for x in starts:
                            crop = lab[y:y + w, x:x + w]
                            most = max(most, int(np.unique(crop[crop > 0]).size))
    return most
