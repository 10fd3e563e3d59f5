"""Train a query-based panoptic model (``detr``, ``mask2former``) from the COCO panoptic export of a
patch dataset, with the shared loop.

The images are the dataset's patches (the variant's channels), cropped at random to the model's
window; the targets are read from ``coco/panoptic_<split>.json`` and its PNGs (written by
``astrostatlearn dataset``, the seed's format), so the export is exercised by a real consumer:
one ``galaxy`` segment per object and one ``void`` segment for the background. The model computes
its own Hungarian-matching loss; the loss terms are logged per epoch, and the best model is chosen
by PQ on the validation patches (:mod:`astrostatlearn.metrics`). A model is described by a
:class:`QueryModelSpec`.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

from astrostatlearn.datasets.build import load_manifest
from astrostatlearn.errors import InputError
from astrostatlearn.methods.query_panoptic import GALAXY, VOID, window_segments
from astrostatlearn.training.loop import EpochStats, TrainConfig, fit_and_save
from astrostatlearn.training.maskrcnn import DetectionTask
from astrostatlearn.training.patches import AnnotatedPatches, ConcatPatches, channel_stats, densest_patch, one_variant

if TYPE_CHECKING:
    from astrostatlearn.methods.base import TrainRequest
    from astrostatlearn.methods.query_panoptic import QueryPanopticDetector


def panoptic_instance_maps(coco: Path, split: str) -> list[np.ndarray]:
    """One int32 instance map per image of ``coco/panoptic_<split>.json`` and its PNGs (truth IDs,
    0 = void)."""
    from PIL import Image

    from astrostatlearn.datasets.coco_export import decode_panoptic

    coco = Path(coco)
    js = coco / f"panoptic_{split}.json"
    if not js.exists():
        raise InputError(f"no COCO panoptic export for split {split!r} (run `astrostatlearn dataset` with --coco)", coco)
    data = json.loads(js.read_text())
    by_image = {a["image_id"]: a for a in data["annotations"]}
    maps = []
    for im in data["images"]:
        ann = by_image[im["id"]]
        rgb = np.asarray(Image.open(coco / f"panoptic_{split}" / ann["file_name"]).convert("RGB"))
        maps.append(decode_panoptic(rgb, ann["segments_info"]).astype(np.int32))
    return maps


def panoptic_targets(inst: np.ndarray) -> dict[str, torch.Tensor]:
    """The targets of an instance map: one ``galaxy`` segment per object and one ``void`` segment
    (the background, when there is any), with boxes as normalised (cx, cy, w, h) (DETR's; a
    mask-only model ignores them)."""
    from scipy import ndimage

    h, w = inst.shape
    ids = np.unique(inst[inst > 0])
    masks = [inst == i for i in ids]
    classes = [GALAXY] * ids.size
    if (inst == 0).any():
        masks.append(inst == 0)
        classes.append(VOID)
    boxes = []
    for m in masks:
        sl = ndimage.find_objects(m.astype(np.int32))[0]
        y0, y1, x0, x1 = sl[0].start, sl[0].stop, sl[1].start, sl[1].stop
        boxes.append([(x0 + x1) / 2 / w, (y0 + y1) / 2 / h, (x1 - x0) / w, (y1 - y0) / h])
    return {"class_labels": torch.tensor(classes, dtype=torch.int64),
            "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
            "masks": torch.from_numpy(np.stack(masks).astype(np.float32) if masks else np.zeros((0, h, w), np.float32)),
            "instances": torch.from_numpy(inst.astype(np.int64))}


def panoptic_patches(root: Path, split: str, augment: bool, crop: int | None = None, seed: int = 0) -> AnnotatedPatches:
    """A split of a patch dataset as (image, targets), the targets from its COCO panoptic export."""
    return AnnotatedPatches(root, split, panoptic_instance_maps(Path(root) / "coco", split), panoptic_targets, augment,
                            crop=crop, seed=seed, source=Path(root) / "coco" / f"panoptic_{split}.json")


class QueryTask(DetectionTask):
    """Shared-loop task for a query model: its own loss, reported per term (``weights``: the
    model's loss-term name -> (logged name, weight applied here; 1 where the model weights its
    own); every auxiliary layer's terms sum into ``aux``), and PQ on the validation patches."""

    weights: dict[str, tuple[str, float]] = {}
    target_keys: tuple[str, ...] = ("class_labels", "boxes", "masks")

    def losses(self, model: nn.Module, batch: Any) -> dict[str, torch.Tensor]:
        images, targets = batch
        out = model(torch.stack(images), labels=[{k: t[k] for k in self.target_keys} for t in targets])
        return self.weighted_terms(out.loss_dict)

    def weighted_terms(self, loss_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The model's loss terms by logged name, weighted (see the class notes)."""
        terms: dict[str, torch.Tensor] = {}
        for k, v in loss_dict.items():
            base, _, layer = k.rpartition("_") if k[-1].isdigit() else (k, "", "")
            if base not in self.weights:
                continue
            name, weight = self.weights[base]
            name = "aux" if layer else name
            terms[name] = terms.get(name, 0.0) + weight * v
        return terms

    def predict_labels(self, model: nn.Module, images: list[torch.Tensor]) -> list[np.ndarray]:
        out = model(torch.stack(images))
        boxes = getattr(out, "pred_boxes", None)
        return [window_segments(out.logits[j].cpu(), None if boxes is None else boxes[j].cpu(), out.pred_masks[j].cpu(),
                                tuple(img.shape[-2:]), self.score_threshold, self.mask_threshold).labels
                for j, img in enumerate(images)]


@dataclass(frozen=True)
class QueryModelSpec:
    """What :func:`train_query_model` needs of one model: its segmenter class, default config,
    network builder (``build(in_channels, **config)``) and task."""

    segmenter: "type[QueryPanopticDetector]"
    default_config: dict[str, Any]
    build: Callable[..., nn.Module]
    task: Callable[[], QueryTask]


def train_query_model(spec: QueryModelSpec, dataset_dirs: Sequence[str | Path], out: str | Path,
                      cfg: TrainConfig | None = None, config: dict[str, Any] | None = None, resume: bool = False,
                      progress: bool = True, snapshot_every: int = 0,
                      start: nn.Module | None = None) -> list[EpochStats]:
    """Train the model of ``spec`` on ``dataset_dirs`` (random crops of its window) and save the
    best (by the task's validation metric: PQ) to ``out``; ``config`` overrides ``spec.default_config``.

    ``queries`` defaults to max(32, twice the densest crop of the datasets); a smaller value is
    refused. ``start``: a network to continue from (its config and input normalisation are kept;
    ``config`` is ignored), e.g. DETR's frozen detector. Beside ``out`` go ``out.ckpt`` (for
    ``resume``), ``out.csv`` (one row per epoch, with the loss terms) and ``out.json``
    (configuration, densest crop, history).
    """
    cfg = cfg or TrainConfig()
    dirs = [Path(d) for d in dataset_dirs]
    variant = one_variant(dirs)
    asked = dict(config or {}) if start is None else dict(start.config)
    config = {**spec.default_config, **asked}
    window = int(config["window"])
    patch = load_manifest(dirs[0])["patch"]
    name = spec.segmenter.name
    if window > patch:
        raise InputError(f"the {name} window ({window} px) is larger than the dataset patches ({patch} px): "
                         f"use -p window={patch} or a larger --patch")
    densest = densest_patch(dirs, window)
    if asked.get("queries") is None:
        config["queries"] = max(32, 2 * densest)
    if config["queries"] < 2 * densest:
        raise InputError(f"the densest {window}^2 crop holds {densest} objects: use at least {2 * densest} queries")
    train = ConcatPatches([panoptic_patches(d, "train", True, crop=window, seed=cfg.seed) for d in dirs])
    val = ConcatPatches([panoptic_patches(d, "val", False, crop=window, seed=cfg.seed) for d in dirs])
    torch.manual_seed(cfg.seed)
    channels = len(train.datasets[0].base.channels)
    if start is None:
        net = spec.build(channels, **{k: v for k, v in config.items() if k != "in_channels"})
        shift, scale = channel_stats(train)
        net.shift.copy_(shift)
        net.scale.copy_(scale)
    elif start.config["in_channels"] != channels:
        raise InputError(f"the starting {name} model takes {start.config['in_channels']} channels, "
                         f"the datasets {channels}")
    else:
        net = start
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    history = fit_and_save(net, spec.task(), train, val, cfg, out,
                           lambda model, path: spec.segmenter.from_network(model, variant=variant).save(path),
                           resume=resume, progress=progress, snapshot_every=snapshot_every)
    meta = {"variant": variant, "datasets": [str(d) for d in dirs], "config": net.config,
            "densest_crop_objects": densest, "train_config": cfg.__dict__, "history": [h.__dict__ for h in history]}
    out.with_suffix(".json").write_text(json.dumps(meta, indent=2))
    return history


def parse_query_options(params: dict[str, Any]) -> dict[str, Any]:
    """The trainer options of ``train METHOD -p NAME=VALUE`` as a config override (integers;
    ``widths`` as 4 stages separated by '/')."""
    opts: dict[str, Any] = {}
    for k, v in params.items():
        try:
            opts[k] = [int(w) for w in str(v).split("/")] if k == "widths" else int(v)
        except ValueError:
            raise InputError(f"option {k}={v!r}: expected integers") from None
    if "widths" in opts and len(opts["widths"]) != 4:
        raise InputError("widths must give 4 stages, e.g. 16/32/64/128")
    return opts


def train_query_request(spec: QueryModelSpec, request: "TrainRequest",
                        train: Callable[..., list[EpochStats]] | None = None,
                        stage_options: tuple[str, ...] = ()) -> str:
    """``astrostatlearn train METHOD``: patch datasets with COCO exports beside ``request.out``
    (``OUT.datasets/dsK``), then ``train`` (default :func:`train_query_model` of ``spec``; the
    options named in ``stage_options`` go to it as keywords, the others into the model's config);
    returns a one-line summary."""
    from astrostatlearn.training.requests import check_loop_request, datasets_removed_if_refused, prepare_datasets

    cls = spec.segmenter
    check_loop_request(request, cls)
    opts = parse_query_options(request.params)
    stages = {k: opts.pop(k) for k in stage_options if k in opts}
    train = train or functools.partial(train_query_model, spec)
    with datasets_removed_if_refused(request):
        dirs = prepare_datasets(request, request.variant or cls.default_variant, coco=True)
        cfg = TrainConfig(epochs=request.epochs, batch_size=request.batch, lr=request.lr or 5e-4, seed=request.seed,
                          steps_per_epoch=request.steps, device=request.device, clip_grad=0.1)
        hist = train(dirs, request.out, cfg, opts, resume=request.resume, progress=True,
                     snapshot_every=request.snapshot_every, **stages)
    best = max(hist, key=lambda h: h.val_metric)
    return (f"wrote {request.out}: best validation PQ {best.val_metric:.3f} at epoch {best.epoch + 1}; "
            f"log {request.out.with_suffix('.csv')}")
