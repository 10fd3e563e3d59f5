"""Train DETR panoptic from the COCO panoptic export of a patch dataset, with the shared loop
(:mod:`astrostatlearn.training.query_panoptic`, shared with Mask2Former).

The model computes its own Hungarian-matching loss (transformers: class, L1 box, GIoU, mask focal
and dice terms, plus auxiliary class and box terms for every decoder layer); the terms are logged
per epoch, weighted as the model weights them, and the best model is chosen by validation PQ.

DETR's two stages (Carion et al. 2020, section 4.4: the panoptic mask head trains on a detector
that has converged, with the detector frozen), when ``detector_epochs`` > 0:

1. **the detector alone**: backbone, transformer, class and box heads with the class, box and
   GIoU losses and no mask head (a step is 16x cheaper on 2 cores, so the long schedule DETR
   needs fits), saved to ``<out stem>.detector.pt`` and chosen by the PQ of its boxes: each kept
   galaxy query's box, filled, is its segment (:class:`DetrDetectorTask`);
2. **the mask head** and its attention map on that frozen detector (its BatchNorm statistics
   kept), with the full loss, chosen by validation PQ.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import torch
from torch import nn

from astrostatlearn.errors import InputError
from astrostatlearn.methods.detr import DEFAULT_CONFIG, VOID, DetrSegmenter, build_detr, window_segments
from astrostatlearn.methods.query_panoptic import box_masks
from astrostatlearn.training.loop import EpochStats, TrainConfig
from astrostatlearn.training.patches import one_variant
from astrostatlearn.training.query_panoptic import (QueryModelSpec, QueryTask, panoptic_instance_maps,
                                                    panoptic_targets, train_query_model, train_query_request)

if TYPE_CHECKING:
    from astrostatlearn.methods.base import TrainRequest

__all__ = ["DetrDetectorTask", "DetrTask", "LOSS_WEIGHTS", "box_mask_logits", "detector_path", "detr_targets",
           "panoptic_instance_maps", "train_detr", "train_request"]

# transformers' weights of DETR's loss terms (DetrConfig defaults), for the per-term log.
LOSS_WEIGHTS = {"loss_ce": 1.0, "loss_bbox": 5.0, "loss_giou": 2.0, "loss_mask": 1.0, "loss_dice": 1.0}

detr_targets = panoptic_targets  # DETR's targets: galaxy segments, one void segment, (cx, cy, w, h) boxes


class DetrTask(QueryTask):
    """DETR's terms: ``ce``, ``bbox``, ``giou``, ``mask``, ``dice`` and ``aux`` for the intermediate
    decoder layers, weighted as the model weights them, so they sum to its loss."""

    weights = {k: (k.removeprefix("loss_"), w) for k, w in LOSS_WEIGHTS.items()}


def box_mask_logits(boxes: torch.Tensor, size: tuple[int, int], is_void: torch.Tensor) -> torch.Tensor:
    """[Q, H, W] mask logits of filled boxes: +10 on the pixels whose centres lie in a query's
    box (normalised (cx, cy, w, h)), -10 elsewhere and everywhere for void queries."""
    inside = box_masks(boxes, size) & ~is_void[:, None, None]
    return torch.where(inside, 10.0, -10.0)


class DetrDetectorTask(QueryTask):
    """DETR's first stage: the detector alone (:meth:`~astrostatlearn.methods.detr.GalaxyDetr.detect`),
    with the class, box and GIoU terms (``aux``: those of the intermediate decoder layers), chosen
    by the PQ of its filled boxes on the validation patches (the panoptic rule of
    :func:`~astrostatlearn.methods.query_panoptic.window_segments` with box masks)."""

    metric = "box_pq"
    weights = {k: v for k, v in DetrTask.weights.items() if k in ("loss_ce", "loss_bbox", "loss_giou")}
    target_keys = ("class_labels", "boxes")

    def losses(self, model: nn.Module, batch: Any) -> dict[str, torch.Tensor]:
        images, targets = batch
        out = model.detect(torch.stack(images), labels=[{k: t[k] for k in self.target_keys} for t in targets])
        return self.weighted_terms(out.loss_dict)

    def predict_labels(self, model: nn.Module, images: list[torch.Tensor]) -> list[np.ndarray]:
        out = model.detect(torch.stack(images))
        labels = []
        for j, img in enumerate(images):
            logits, boxes = out.logits[j].float().cpu(), out.pred_boxes[j].float().cpu()
            size = tuple(img.shape[-2:])
            masks = box_mask_logits(boxes, size, logits.argmax(-1) == VOID)
            labels.append(window_segments(logits, boxes, masks, size, self.score_threshold, 0.5).labels)
        return labels


SPEC = QueryModelSpec(DetrSegmenter, DEFAULT_CONFIG, build_detr, DetrTask)
DETECTOR_SPEC = dataclasses.replace(SPEC, task=DetrDetectorTask)


def detector_path(out: str | Path) -> Path:
    """Where the first stage's detector goes: ``<out stem>.detector.pt`` beside ``out``."""
    out = Path(out)
    return out.with_name(f"{out.stem}.detector{out.suffix}")


def train_detr(dataset_dirs: Sequence[str | Path], out: str | Path, cfg: TrainConfig | None = None,
               config: dict[str, Any] | None = None, resume: bool = False, progress: bool = True,
               snapshot_every: int = 0, detector_epochs: int = 0,
               detector_cfg: TrainConfig | None = None) -> list[EpochStats]:
    """Train DETR on ``dataset_dirs`` and save the best model (by validation PQ) to ``out``; see
    :func:`~astrostatlearn.training.query_panoptic.train_query_model`.

    ``detector_epochs`` > 0: DETR's two stages (see the module notes): that many epochs of the
    detector alone (``detector_cfg``, default ``cfg`` with those epochs), saved to
    :func:`detector_path`, then ``cfg.epochs`` of the mask head on the frozen detector. With
    ``resume`` a finished first stage is not repeated. Returns the last stage's history.
    """
    if detector_epochs < 0:
        raise InputError(f"detector_epochs must be >= 0 (0: one joint stage), not {detector_epochs}")
    if (config or {}).get("seeds"):
        check_seed_variant(one_variant([Path(d) for d in dataset_dirs]))
    if detector_epochs == 0:
        return train_query_model(SPEC, dataset_dirs, out, cfg, config, resume, progress, snapshot_every)
    cfg = cfg or TrainConfig()
    first = detector_cfg or dataclasses.replace(cfg, epochs=detector_epochs, patience=detector_epochs)
    det = detector_path(out)
    train_query_model(DETECTOR_SPEC, dataset_dirs, det, first, config, resume, progress)
    net = DetrSegmenter.load_file(det).net_
    net.freeze_detector()
    return train_query_model(SPEC, dataset_dirs, out, cfg, None, resume, progress, snapshot_every, start=net)


def check_seed_variant(variant: str) -> None:
    """Seeded queries read the shipped U-Net's maps: the datasets must be of its variant."""
    from astrostatlearn.methods.unet import UNetSegmenter

    wanted = UNetSegmenter.shipped().variant
    if variant != wanted:
        raise InputError(f"seeds read the shipped U-Net, which takes the {wanted!r} variant, not {variant!r}: "
                         f"train on --variant {wanted} or with -p seeds=0")


def train_request(request: "TrainRequest") -> str:
    """``astrostatlearn train detr`` (:func:`~astrostatlearn.training.query_panoptic.train_query_request`)."""
    return train_query_request(SPEC, request, train_detr, stage_options=("detector_epochs",))
