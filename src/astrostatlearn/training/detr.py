"""Train DETR panoptic from the COCO panoptic export of a patch dataset, with the shared loop
(:mod:`astrostatlearn.training.query_panoptic`, shared with Mask2Former).

The model computes its own Hungarian-matching loss (transformers: class, L1 box, GIoU, mask focal
and dice terms, plus auxiliary class and box terms for every decoder layer); the terms are logged
per epoch, weighted as the model weights them, and the best model is chosen by validation PQ.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from astrostatlearn.methods.detr import DEFAULT_CONFIG, DetrSegmenter, build_detr
from astrostatlearn.training.loop import EpochStats, TrainConfig
from astrostatlearn.training.query_panoptic import (QueryModelSpec, QueryTask, panoptic_instance_maps,
                                                    panoptic_targets, train_query_model, train_query_request)

if TYPE_CHECKING:
    from astrostatlearn.methods.base import TrainRequest

__all__ = ["DetrTask", "LOSS_WEIGHTS", "detr_targets", "panoptic_instance_maps", "train_detr", "train_request"]

# transformers' weights of DETR's loss terms (DetrConfig defaults), for the per-term log.
LOSS_WEIGHTS = {"loss_ce": 1.0, "loss_bbox": 5.0, "loss_giou": 2.0, "loss_mask": 1.0, "loss_dice": 1.0}

detr_targets = panoptic_targets  # DETR's targets: galaxy segments, one void segment, (cx, cy, w, h) boxes


class DetrTask(QueryTask):
    """DETR's terms: ``ce``, ``bbox``, ``giou``, ``mask``, ``dice`` and ``aux`` for the intermediate
    decoder layers, weighted as the model weights them, so they sum to its loss."""

    weights = {k: (k.removeprefix("loss_"), w) for k, w in LOSS_WEIGHTS.items()}


SPEC = QueryModelSpec(DetrSegmenter, DEFAULT_CONFIG, build_detr, DetrTask)


def train_detr(dataset_dirs: Sequence[str | Path], out: str | Path, cfg: TrainConfig | None = None,
               config: dict[str, Any] | None = None, resume: bool = False, progress: bool = True,
               snapshot_every: int = 0) -> list[EpochStats]:
    """Train DETR on ``dataset_dirs`` and save the best model (by validation PQ) to ``out``; see
    :func:`~astrostatlearn.training.query_panoptic.train_query_model`."""
    return train_query_model(SPEC, dataset_dirs, out, cfg, config, resume, progress, snapshot_every)


def train_request(request: "TrainRequest") -> str:
    """``astrostatlearn train detr`` (:func:`~astrostatlearn.training.query_panoptic.train_query_request`)."""
    return train_query_request(SPEC, request)
