"""PyTorch Dataset over a patch dataset, with augmentations that respect the sky.

* the 8 dihedral transforms (rotations by 90 degrees and flips: the sky has no preferred axis);
* optional extra noise: ``img + noise * rms * N(0, 1)``, with the rms channel scaled to match;
* optional flux scaling about the sky level: ``img -> bkg + s (img - bkg)``, ``rms -> s rms``,
  with ``s`` log-uniform in ``flux_scale`` and ``bkg`` the field's global background (scaling the
  sky itself would put an offset into background-subtracted variants that real data never has).

With noise or flux augmentation the variant is recomputed from the stored raw ``img``/``rms`` using
the dataset's *global* variant parameters, so intensities stay consistent with the whole field.
Randomness is a function of (seed, epoch, index): reproducible with any number of workers.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from astrostatlearn.datasets.build import load_manifest
from astrostatlearn.errors import InputError
from astrostatlearn.preprocess import GlobalStats, Preprocessor


def preprocessor_from_params(params: dict[str, Any]) -> Preprocessor:
    """Rebuild the fitted variant recorded in a manifest."""
    return Preprocessor(params["variant"], GlobalStats(**params["stats"]), stretch=params["stretch"],
                        stretch_a=params["stretch_a"], white_sigma=params.get("white_sigma", 100.0),
                        log_a=params.get("log_a", 1000.0))


def dihedral(a: np.ndarray, k: int) -> np.ndarray:
    """Transform ``k`` in 0..7 of the last two axes: rotate by 90*(k % 4) degrees, then flip x if k >= 4."""
    out = np.rot90(a, k % 4, axes=(-2, -1))
    if k >= 4:
        out = np.flip(out, axis=-1)
    return np.ascontiguousarray(out)


class PatchDataset(Dataset):
    """Patches of one split. Items are dicts of tensors:

    ``image`` [C, P, P] float32 (the variant), ``mask`` [P, P] float32 (truth > 0),
    ``instances`` [P, P] int64 (truth IDs), ``rms`` [P, P] float32, ``origin`` [2] (y0, x0).
    """

    def __init__(self, root: str | Path, split: str, augment: bool = False, noise: float = 0.0,
                 flux_scale: tuple[float, float] = (1.0, 1.0), seed: int = 0, cache_shards: int = 2) -> None:
        self.root = Path(root)
        self.manifest = load_manifest(self.root)
        if split not in self.manifest["shards"]:
            raise InputError(f"unknown split {split!r}; the dataset has {', '.join(self.manifest['shards'])}", root)
        self.split, self.augment, self.noise, self.flux_scale, self.seed = split, augment, noise, flux_scale, seed
        self.epoch = 0
        self._index = [(i, k) for i, s in enumerate(self.manifest["shards"][split]) for k in range(s["n"])]
        self._cache: OrderedDict[int, dict[str, np.ndarray]] = OrderedDict()
        self._cache_size = cache_shards
        self._pre = preprocessor_from_params(self.manifest["variant_params"])

    @property
    def channels(self) -> list[str]:
        return list(self.manifest["channels"])

    def set_epoch(self, epoch: int) -> None:
        """Change the augmentation draw (call once per epoch)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self._index)

    def _shard(self, i: int) -> dict[str, np.ndarray]:
        if i in self._cache:
            self._cache.move_to_end(i)
            return self._cache[i]
        with np.load(self.root / self.manifest["shards"][self.split][i]["file"]) as z:
            data = {k: z[k] for k in z.files}
        self._cache[i] = data
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return data

    def raw(self, idx: int) -> dict[str, np.ndarray]:
        """The stored arrays of patch ``idx``, without augmentation."""
        i, k = self._index[idx]
        s = self._shard(i)
        return {name: s[name][k] for name in ("inputs", "img", "rms", "mask", "instances", "origin")}

    def __getitem__(self, idx: int) -> dict[str, torch.Tensor]:
        return self.sample(idx)

    def sample(self, idx: int, instances: np.ndarray | None = None) -> dict[str, torch.Tensor]:
        """Item ``idx``, augmented; ``instances`` (an instance map of the patch, e.g. rasterised from
        the COCO export) replaces the stored truth and gets the same transform."""
        r = self.raw(idx)
        image, img, rms = r["inputs"], r["img"], r["rms"]
        inst = r["instances"] if instances is None else instances
        if self.augment:
            rng = np.random.default_rng([self.seed, self.epoch, idx])
            lo, hi = self.flux_scale
            scale = float(np.exp(rng.uniform(np.log(lo), np.log(hi)))) if hi > lo else lo
            if self.noise > 0 or scale != 1.0:
                bkg = np.float32(self._pre.stats.img_median)
                img = bkg + scale * (img - bkg) + self.noise * scale * rms * rng.standard_normal(img.shape).astype(np.float32)
                rms = scale * rms * np.float32(np.sqrt(1.0 + self.noise**2))
                if self.noise > 0 or not self._pre.flux_scale_invariant:  # else the stored inputs, read with their context
                    image = self._pre.apply(img.astype(np.float32), rms.astype(np.float32),
                                            origin=(int(r["origin"][0]), int(r["origin"][1])))
            k = int(rng.integers(8))
            image, img, rms, inst = (dihedral(a, k) for a in (image, img, rms, inst))
        return {
            "image": torch.from_numpy(np.ascontiguousarray(image, np.float32)),
            "mask": torch.from_numpy((inst > 0).astype(np.float32)),
            "instances": torch.from_numpy(inst.astype(np.int64)),
            "rms": torch.from_numpy(np.ascontiguousarray(rms, np.float32)),
            "origin": torch.from_numpy(r["origin"].astype(np.int64)),
        }
