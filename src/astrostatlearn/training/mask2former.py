"""Train Mask2Former from the COCO panoptic export of a patch dataset, with the shared loop
(:mod:`astrostatlearn.training.query_panoptic`, shared with DETR).

The model computes its own loss (transformers: Hungarian matching on class and point-sampled mask
costs, then class cross-entropy, mask binary cross-entropy and dice on ``points`` sampled points
per mask, and the same after every decoder layer), already weighted (class 2, mask 5, dice 5, as
the paper); the terms are logged per epoch as ``ce``, ``mask``, ``dice`` and ``aux``, and the best
model is chosen by validation PQ.

    astrostatlearn train mask2former --field F [--field F2 ...] --out m2f.pt [-p queries=N ...]
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from astrostatlearn.methods.mask2former import DEFAULT_CONFIG, Mask2FormerSegmenter, build_mask2former
from astrostatlearn.training.loop import EpochStats, TrainConfig
from astrostatlearn.training.query_panoptic import QueryModelSpec, QueryTask, train_query_model, train_query_request

if TYPE_CHECKING:
    from astrostatlearn.methods.base import TrainRequest


class Mask2FormerTask(QueryTask):
    """Mask2Former's terms (weighted by the model itself): ``ce``, ``mask``, ``dice``, and ``aux``
    for the intermediate decoder layers; they sum to the model's loss."""

    weights = {"loss_cross_entropy": ("ce", 1.0), "loss_mask": ("mask", 1.0), "loss_dice": ("dice", 1.0)}
    target_keys = ("class_labels", "masks")


SPEC = QueryModelSpec(Mask2FormerSegmenter, DEFAULT_CONFIG, build_mask2former, Mask2FormerTask)


def train_mask2former(dataset_dirs: Sequence[str | Path], out: str | Path, cfg: TrainConfig | None = None,
                      config: dict[str, Any] | None = None, resume: bool = False, progress: bool = True,
                      snapshot_every: int = 0) -> list[EpochStats]:
    """Train Mask2Former on ``dataset_dirs`` and save the best model (by validation PQ) to ``out``;
    see :func:`~astrostatlearn.training.query_panoptic.train_query_model`."""
    return train_query_model(SPEC, dataset_dirs, out, cfg, config, resume, progress, snapshot_every)


def train_request(request: "TrainRequest") -> str:
    """``astrostatlearn train mask2former`` (:func:`~astrostatlearn.training.query_panoptic.train_query_request`)."""
    return train_query_request(SPEC, request)
