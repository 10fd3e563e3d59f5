"""Build a patch dataset from a field: npz shards per split plus a JSON manifest.

Each patch stores ``inputs`` (the variant's channels, [C, P, P] float32), ``img`` and ``rms``
(raw, for noise and flux augmentation), ``mask`` (uint8, truth > 0) and ``instances`` (int32
truth IDs), plus its origin (y0, x0) and the IDs of objects cut by its edge. Patches lie entirely
inside one split region; the field is read one strip of patches at a time, never whole.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from astrostatlearn.errors import InputError
from astrostatlearn.field import Field, Window, check_writable, scan_field
from astrostatlearn.field.outputs import OutputSet
from astrostatlearn.datasets.splits import SPLITS, SplitPlan, leak_free_splits
from astrostatlearn.preprocess import Preprocessor, fit_variant
from astrostatlearn.progress import progress_bar

MANIFEST = "manifest.json"
FORMAT_VERSION = 1


@dataclass
class Patch:
    split: str
    window: Window
    inputs: np.ndarray
    img: np.ndarray
    rms: np.ndarray
    instances: np.ndarray
    cut_ids: np.ndarray


def cut_objects(ring: np.ndarray) -> np.ndarray:
    """IDs of objects in a patch that continue beyond its edge.

    ``ring`` is the patch's labels with a 1-pixel rim all round (zeros beyond the field edge);
    an object is cut when it has pixels both inside the patch and in the rim.
    """
    core = ring[1:-1, 1:-1]
    edge = np.concatenate([ring[0], ring[-1], ring[:, 0], ring[:, -1]])
    return np.intersect1d(np.unique(core[core > 0]), np.unique(edge[edge > 0])).astype(np.int64)


def iter_patches(field: Field, pre: Preprocessor, plan: SplitPlan, patch: int = 256,
                 keep_empty: bool = False) -> Iterator[Patch]:
    """Yield every patch of every split, one strip of patches at a time."""
    ny, nx = field.shape
    for split in SPLITS:
        reg = plan.regions[split]
        for y0 in range(reg.y0, reg.y1 - patch + 1, patch):
            strip = Window(y0, y0 + patch, reg.x0, reg.x1)
            big = strip.grow(1, (ny, nx))
            img = field.read_img(strip)
            rms = field.read_rms(strip)
            inputs = pre.read(field, strip, (img, rms))  # with the variant's context, as segmentation tiles
            if rms is None:
                rms = np.full(img.shape, pre.stats.rms_median, np.float32)
            true_big = field.read_true(big)
            if true_big is not None:
                # Truth of the strip with a 1-pixel rim all round (zeros beyond the field edge).
                rim = np.pad(true_big, ((1 - (strip.y0 - big.y0), 1 - (big.y1 - strip.y1)),
                                        (1 - (strip.x0 - big.x0), 1 - (big.x1 - strip.x1))))
            for x0 in range(reg.x0, reg.x1 - patch + 1, patch):
                w = Window(y0, y0 + patch, x0, x0 + patch)
                cx = x0 - reg.x0
                sl = (slice(None), slice(cx, cx + patch))
                if true_big is not None:
                    ring = rim[:, cx:cx + patch + 2]
                    inst = ring[1:-1, 1:-1]
                    cut = cut_objects(ring)
                else:
                    inst = np.zeros((patch, patch), np.int32)
                    cut = np.zeros(0, np.int64)
                if not keep_empty and not (inst > 0).any():
                    continue
                yield Patch(split, w, inputs[(slice(None),) + sl], img[sl], rms[sl], inst.astype(np.int32), cut)


def _write_shard(path: Path, patches: list[Patch]) -> None:
    max_cut = max((p.cut_ids.size for p in patches), default=0)
    cut = np.zeros((len(patches), max(max_cut, 1)), np.int64)
    for i, p in enumerate(patches):
        cut[i, : p.cut_ids.size] = p.cut_ids
    tmp = path.with_suffix(".tmp.npz")
    np.savez_compressed(
        tmp,
        inputs=np.stack([p.inputs for p in patches]).astype(np.float32),
        img=np.stack([p.img for p in patches]).astype(np.float32),
        rms=np.stack([p.rms for p in patches]).astype(np.float32),
        mask=np.stack([p.instances > 0 for p in patches]).astype(np.uint8),
        instances=np.stack([p.instances for p in patches]).astype(np.int32),
        origin=np.array([[p.window.y0, p.window.x0] for p in patches], np.int64),
        cut_ids=cut,
    )
    os.replace(tmp, path)


def build_dataset(field: Field, variant: str, out: str | Path, patch: int = 256,
                  fractions: tuple[float, float, float] = (0.7, 0.15, 0.15), guard: int = 64,
                  keep_empty: bool = False, shard_size: int = 64, seed: int = 0, stretch: str = "asinh",
                  overwrite: bool = False, progress: bool = False, coco: bool = False) -> dict:
    """Turn ``field`` into a patch dataset in folder ``out``; returns the manifest.

    Staged beside ``out`` and committed whole (:class:`~astrostatlearn.field.outputs.OutputSet`),
    with the COCO instances and panoptic exports of every split when ``coco``.
    """
    if field.true is None:
        raise InputError("a dataset needs a truth map (true.fits)", field.img.path)
    if patch < 16:
        raise InputError(f"patch size must be at least 16, got {patch}")
    out = Path(out)
    if out.exists() and not overwrite:
        check_writable(out, overwrite)
    if guard < 0:
        raise InputError(f"--guard must be >= 0 rows, got {guard}")
    if shard_size < 1:
        raise InputError(f"shard size must be at least 1, got {shard_size}")
    scan_field(field)  # the rms and truth checks every command makes, before any work
    pre = fit_variant(field, variant, stretch=stretch)
    plan = leak_free_splits(field, fractions, guard)
    for split in SPLITS:
        if plan.regions[split].shape[0] < patch:
            raise InputError(f"the {split} region ({plan.regions[split].shape[0]} rows) is smaller than one "
                             f"{patch}-pixel patch; use a larger field or other --split fractions")
    with OutputSet(out, None, overwrite) as tx:
        manifest = _write_patches(field, pre, plan, tx.path(), variant, patch, keep_empty, shard_size, seed, progress)
        if coco:
            from astrostatlearn.datasets.coco_export import export_instances, export_panoptic

            for split in SPLITS:
                export_instances(tx.path(), split, tx.path(f"coco/instances_{split}.json"), overwrite=True)
                export_panoptic(tx.path(), split, tx.path("coco"), overwrite=True)
    return manifest


def _write_patches(field: Field, pre: Any, plan: Any, tmp: Path, variant: str, patch: int, keep_empty: bool,
                   shard_size: int, seed: int, progress: bool) -> dict:
    """Cut the patches into npz shards under ``tmp`` and write the manifest; returns it."""
    shards: dict[str, list[dict]] = {s: [] for s in SPLITS}
    buffers: dict[str, list[Patch]] = {s: [] for s in SPLITS}
    cats = field.truth_table()
    star_ids = [int(i) for i in cats["id"][cats["is_star"]]] if cats is not None and "is_star" in cats.colnames else []

    def flush(split: str) -> None:
        buf = buffers[split]
        if not buf:
            return
        name = f"{split}-{len(shards[split]):05d}.npz"
        _write_shard(tmp / name, buf)
        shards[split].append({"file": name, "n": len(buf)})
        buffers[split] = []

    it = iter_patches(field, pre, plan, patch, keep_empty)
    total = sum((plan.regions[s].shape[0] // patch) * (plan.regions[s].shape[1] // patch) for s in SPLITS)
    it = progress_bar(it, total=total, desc="patches", unit="patch", enabled=progress)
    for p in it:
        buffers[p.split].append(p)
        if len(buffers[p.split]) >= shard_size:
            flush(p.split)
    for s in SPLITS:
        flush(s)
    manifest = {
        "format_version": FORMAT_VERSION, "variant": variant, "channels": list(pre.channels),
        "variant_params": pre.params, "patch": patch, "seed": seed, "keep_empty": keep_empty,
        "field": {"img": str(field.img.path), "shape": list(field.shape)},
        "splits": plan.as_dict(), "shards": shards,
        "n_patches": {s: sum(x["n"] for x in shards[s]) for s in SPLITS},
        "star_ids": star_ids,
        "conventions": "arrays [N, C, y, x] / [N, y, x]; origin = (y0, x0) 0-based in the field; "
                       "instances int32 truth IDs, 0 = background",
    }
    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, default=float))
    return manifest


def load_manifest(root: str | Path) -> dict:
    """The manifest of a dataset folder; :class:`InputError` if it is not one."""
    p = Path(root) / MANIFEST
    if not p.exists():
        raise InputError("not a dataset folder (no manifest.json)", root)
    return json.loads(p.read_text())


def iter_shards(root: str | Path, split: str) -> Iterator[dict[str, np.ndarray]]:
    """Yield the arrays of each shard of ``split``."""
    man = load_manifest(root)
    for s in man["shards"][split]:
        with np.load(Path(root) / s["file"]) as z:
            yield {k: z[k] for k in z.files}
