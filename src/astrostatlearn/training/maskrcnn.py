"""Train Mask R-CNN from the COCO instances export of a patch dataset, with the shared loop.

The images are the dataset's patches (the variant's channels); the targets are read from
``coco/instances_<split>.json`` (RLE masks, written by ``astrostatlearn dataset``), so the
export is exercised by a real consumer. Augmentation is the patch dataset's (dihedral
transforms, extra noise, flux scaling), applied to the image and the masks together. The model
computes its own losses (torchvision: ``model(images, targets) -> {name: loss}``); the best
model is chosen by PQ on the validation split, computed with :mod:`astrostatlearn.metrics`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Sequence

import numpy as np
import torch
from torch import nn

from astrostatlearn.datasets.build import load_manifest
from astrostatlearn.errors import InputError
from astrostatlearn.methods.maskrcnn import (FOREGROUND_SCORING, FOREGROUND_WEIGHT, MAX_OCCLUDED, MaskRCNNSegmenter,
                                             build_maskrcnn, detect)
from astrostatlearn.methods.maskrcnn_paste import Detections, PasteRule, paste_instances
from astrostatlearn.metrics import LabelPairs, match_instances, pq_terms
from astrostatlearn.training.loop import EpochStats, TrainConfig, fit_and_save, start_from_file
from astrostatlearn.training.patches import AnnotatedPatches, ConcatPatches, channel_stats, densest_patch, one_variant

if TYPE_CHECKING:
    from astrostatlearn.methods.base import TrainRequest


def coco_instance_maps(coco_json: Path, shape: tuple[int, int]) -> list[np.ndarray]:
    """One int32 instance map per COCO image (IDs 1..n in annotation order), from its RLE masks."""
    from faster_coco_eval.core import mask as mask_utils

    data = json.loads(Path(coco_json).read_text())
    by_image: dict[int, list[dict]] = {im["id"]: [] for im in data["images"]}
    for a in data["annotations"]:
        by_image[a["image_id"]].append(a)
    maps = []
    for im in data["images"]:
        lab = np.zeros(shape, np.int32)
        for k, a in enumerate(by_image[im["id"]]):
            rle = dict(a["segmentation"])
            rle["counts"] = rle["counts"].encode() if isinstance(rle["counts"], str) else rle["counts"]
            lab[mask_utils.decode(rle).astype(bool)] = k + 1
        maps.append(lab)
    return maps


def detection_targets(inst: np.ndarray) -> dict[str, torch.Tensor]:
    """torchvision targets (boxes x0, y0, x1, y1; labels; masks) of an instance map."""
    from scipy import ndimage

    ids = np.unique(inst[inst > 0])
    slices = ndimage.find_objects(inst)
    boxes = [[slices[i - 1][1].start, slices[i - 1][0].start, slices[i - 1][1].stop, slices[i - 1][0].stop] for i in ids]
    masks = (inst[None] == ids[:, None, None]).astype(np.uint8)
    return {"boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
            "labels": torch.ones(ids.size, dtype=torch.int64), "masks": torch.from_numpy(masks),
            "instances": torch.from_numpy(inst.astype(np.int64))}


def coco_patches(root: Path, split: str, augment: bool, crop: int | None = None, seed: int = 0) -> AnnotatedPatches:
    """A split of a patch dataset as (image, torchvision targets), the targets from its COCO instances export."""
    coco = Path(root) / "coco" / f"instances_{split}.json"
    if not coco.exists():
        raise InputError(f"no COCO export for split {split!r} (run `astrostatlearn dataset` with --coco)", root)
    patch = load_manifest(root)["patch"]
    return AnnotatedPatches(root, split, coco_instance_maps(coco, (patch, patch)), detection_targets, augment,
                            crop=crop, seed=seed, source=coco)


class DetectionTask:
    """Shared-loop task for a torchvision detector: lists of images and target dicts, the model's
    own losses, and PQ on the validation patches as the selection metric."""

    metric = "pq"

    def __init__(self, score_threshold: float = 0.5, mask_threshold: float = 0.5, min_area: int = 5,
                 foreground_weight: float = FOREGROUND_WEIGHT, foreground_scoring: float = FOREGROUND_SCORING,
                 max_occluded: float = MAX_OCCLUDED, unet_proposals: bool = True, overlap_rule: str = "mask") -> None:
        self.score_threshold, self.mask_threshold, self.min_area = score_threshold, mask_threshold, min_area
        self.rule = PasteRule(score_threshold, mask_threshold, min_area, foreground_weight, foreground_scoring,
                              max_occluded, overlap_rule)
        self.unet_proposals = unet_proposals

    @staticmethod
    def collate(items: list[tuple[torch.Tensor, dict]]) -> tuple[list[torch.Tensor], list[dict]]:
        return [i for i, _ in items], [t for _, t in items]

    def to_device(self, batch: Any, device: torch.device) -> Any:
        images, targets = batch
        return [i.to(device) for i in images], [{k: v.to(device) for k, v in t.items()} for t in targets]

    def batch_size(self, batch: Any) -> int:
        return len(batch[0])

    def losses(self, model: nn.Module, batch: Any) -> dict[str, torch.Tensor]:
        images, targets = batch
        return model(images, [{k: t[k] for k in ("boxes", "labels", "masks")} for t in targets])

    def predict_labels(self, model: nn.Module, images: list[torch.Tensor]) -> list[np.ndarray]:
        out = []
        for img, d in zip(images, detect(model, torch.stack(images), self.unet_proposals,
                                             score_floor=self.rule.class_score_floor())):
            fg = d["foreground"].float().cpu().numpy() if "foreground" in d else None
            dets = Detections(d["boxes"].float().cpu().numpy(), d["scores"].float().cpu().numpy(),
                              d["masks"][:, 0].float().cpu().numpy(), fg)
            out.append(paste_instances(dets, tuple(img.shape[-2:]), self.rule).labels)
        return out

    def validate(self, model: nn.Module, batches: Iterable[Any], device: torch.device) -> tuple[float, float]:
        """(NaN, galaxy PQ over all validation patches); torchvision detectors give no loss in eval mode."""
        parts, offset = [], 0
        for batch in batches:
            images, targets = self.to_device(batch, device)
            for lab, t in zip(self.predict_labels(model, images), targets):
                true = t["instances"].cpu().numpy()
                # Unique IDs across patches, so one pair table scores the whole split.
                shift = offset
                offset += int(max(true.max(), lab.max())) + 1
                pairs = LabelPairs.from_maps(np.where(true > 0, true + shift, 0), np.where(lab > 0, lab + shift, 0))
                parts.append((pairs.true_id << 32 | pairs.pred_id, pairs.count))
        m = match_instances(LabelPairs.merge(parts))
        return float("nan"), pq_terms(float(m.matched_iou.sum()), m.tp, m.fp, m.fn)["pq"]


def train_maskrcnn(dataset_dirs: Sequence[str | Path], out: str | Path, cfg: TrainConfig | None = None,
                   widths: tuple[int, ...] = (16, 32, 48, 64), fpn: int = 64, detections: int = 400,
                   crop: int | None = None, resume: bool = False, progress: bool = True,
                   snapshot_every: int = 0, backbone: str = "galaxy", init: str | Path | None = None) -> list[EpochStats]:
    """Train a Mask R-CNN on ``dataset_dirs`` and save the best model (by validation PQ) to ``out``.

    ``backbone``: ``"galaxy"`` (from scratch) or ``"unet"`` (started from the shipped U-Net with
    the U-Net frozen, see :func:`start_unet_backbone`). ``init``: a Mask R-CNN model file whose
    weights (input statistics and backbone included) start the training instead (fine-tuning);
    its network and variant must match.

    Beside ``out`` go ``out.ckpt`` (for ``resume``), ``out.csv`` (one row per epoch) and
    ``out.json`` (configuration, densest window, history).
    """
    cfg = cfg or TrainConfig()
    dirs = [Path(d) for d in dataset_dirs]
    variant = one_variant(dirs)
    patch = load_manifest(dirs[0])["patch"]
    train = ConcatPatches([coco_patches(d, "train", True, crop=crop, seed=cfg.seed) for d in dirs])
    val = ConcatPatches([coco_patches(d, "val", False, seed=cfg.seed) for d in dirs])
    channels = train.datasets[0].base.channels
    densest = densest_patch(dirs)
    if densest * 2 > detections:
        raise InputError(f"the densest patch holds {densest} objects: raise detections above {2 * densest}")
    torch.manual_seed(cfg.seed)
    net = build_maskrcnn(len(channels), patch, tuple(widths), fpn, detections, backbone)
    params: dict[str, Any] = {}
    if init is not None:
        params = start_from_model(net, init, variant)
    else:
        net.backbone.body.set_input_stats(*channel_stats(train))
        if backbone == "unet":
            start_unet_backbone(net.backbone.body, variant, len(channels))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)

    history = fit_and_save(net, DetectionTask(), train, val, cfg, out,
                           lambda model, path: MaskRCNNSegmenter.from_network(model, variant, **params).save(path),
                           resume=resume, progress=progress, snapshot_every=snapshot_every)
    meta = {"variant": variant, "channels": channels, "datasets": [str(d) for d in dirs], "config": net.config,
            "init": str(init) if init else None,
            "densest_window_objects": densest, "crop": crop, "train_config": cfg.__dict__,
            "history": [h.__dict__ for h in history]}
    out.with_suffix(".json").write_text(json.dumps(meta, indent=2))
    return history


def start_from_model(net: nn.Module, init: str | Path, variant: str) -> dict[str, Any]:
    """Load the weights of the Mask R-CNN model file ``init`` into ``net`` and return its
    post-processing settings, which the fine-tuned model keeps; refused (InputError) when its
    network configuration or variant differs."""
    start = start_from_file(MaskRCNNSegmenter, init, net, variant)
    network = {"variant", *MaskRCNNSegmenter.config_params}  # the network's own (window), not settings
    return {k: v for k, v in start.get_params().items() if k not in network}


def start_unet_backbone(body: nn.Module, variant: str, n_channels: int) -> bool:
    """Start a U-Net body from the shipped U-Net when that model reads the same variant and channel
    count; otherwise the whole U-Net trains from scratch with the detector (with a warning).
    Returns whether the shipped weights were taken."""
    import warnings

    from astrostatlearn.methods.unet import UNetSegmenter

    unet = UNetSegmenter.shipped()
    if unet.variant != variant or unet.net_.config["in_channels"] != n_channels:
        body.freeze(False)
        warnings.warn(f"the shipped U-Net reads {unet.variant!r}, not {variant!r}: the U-Net backbone is trained "
                      "from scratch", stacklevel=2)
        return False
    body.load_unet(unet.net_.state_dict())
    return True


def train_maskrcnn_request(request: "TrainRequest") -> str:
    """``astrostatlearn train maskrcnn``: patch datasets with COCO exports beside ``request.out``
    (``OUT.datasets/dsK``), then :func:`train_maskrcnn`; returns a one-line summary."""
    from astrostatlearn.training.requests import check_loop_request, datasets_removed_if_refused, prepare_datasets

    check_loop_request(request, MaskRCNNSegmenter)
    opts: dict[str, Any] = {"widths": (16, 32, 48, 64), "fpn": 64, "detections": 400, "backbone": "unet"}
    for k, v in request.params.items():
        if k == "backbone":
            if v not in ("galaxy", "unet"):
                raise InputError(f"option backbone={v!r}: expected galaxy or unet")
            opts[k] = v
            continue
        try:
            opts[k] = tuple(int(w) for w in str(v).split("/")) if k == "widths" else int(v)
        except ValueError:
            raise InputError(f"option {k}={v!r}: expected integers") from None
    if len(opts["widths"]) != 4:
        raise InputError("widths must give 4 stages, e.g. 16/32/48/64")
    with datasets_removed_if_refused(request):
        dirs = prepare_datasets(request, request.variant or MaskRCNNSegmenter.default_variant, coco=True)
        cfg = TrainConfig(epochs=request.epochs, batch_size=request.batch, lr=request.lr or 1e-3, seed=request.seed,
                          steps_per_epoch=request.steps, device=request.device, clip_grad=10.0)
        hist = train_maskrcnn(dirs, request.out, cfg, opts["widths"], opts["fpn"], opts["detections"],
                              resume=request.resume, progress=True, snapshot_every=request.snapshot_every,
                              backbone=opts["backbone"])
    best = max(hist, key=lambda h: h.val_metric)
    return (f"wrote {request.out}: best validation PQ {best.val_metric:.3f} at epoch {best.epoch + 1}; "
            f"log {request.out.with_suffix('.csv')}")
