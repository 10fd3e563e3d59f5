"""``detr``: transformers' DETR panoptic model (``DetrForSegmentation``), from scratch, with windowed inference.

The network is :class:`transformers.DetrForSegmentation` built from a config alone (nothing is
downloaded: ``use_pretrained_backbone=False`` and a small :class:`~transformers.ResNetConfig`
backbone instead of timm weights), then adapted for faint galaxies of 3-50 px:

* the ResNet stem has no max-pool, so the four stages give features at strides 2, 4, 8 and 16
  (not 4-32): the transformer sees 8 x 8 tokens of a 128^2 window (``token_stride`` 8 or 4: the
  last one or two stages do not downsample, for 16 x 16 or 32 x 32 tokens against galaxies of
  3-50 px) and the mask head predicts masks at half resolution (64^2), resampled bilinearly to
  the window. (Full resolution made a training step 12x slower on 2 cores, since the mask head
  runs once per query.);
* every layer trains (transformers freezes the stem and first stage and uses frozen BatchNorm,
  which suits pretrained weights only): the frozen norms become ordinary BatchNorm;
* ``num_channels`` follows the variant, and the input is normalised per channel from the
  training data's own statistics (``asinh((x - median) / (3 sigma))``), never ImageNet means;
* two classes, as the seed's panoptic export: ``galaxy`` (thing, class 0) and ``void`` (stuff,
  class 1), plus DETR's "no object";
* **seeded queries** (``seeds`` = K > 0, the shipped model's 32): the frozen shipped U-Net runs on
  each window; its foreground and centre-ness maps join the input channels, and its instances
  (its own post-processing) seed the first K queries, strongest first: each query's content is a
  learned projection of the sine embeddings of its instance's box centre and size, and its box is
  predicted relative to that box (:class:`ReferencedBoxes`, as two-stage and anchor DETRs seed
  their queries with a first stage's proposals). The mask head's attention map is drawn to each
  query's predicted box (:class:`BoxedAttention`), and its masks start as the ellipse inscribed in
  that box (:class:`BoxPriorMasks`). The last ``queries - K`` queries are DETR's own (the void, and
  what the U-Net misses). From scratch, DETR's learned queries alone did not place boxes or masks
  on 2 CPU cores (see the training guide);
* auxiliary decoding losses (one per decoder layer) and a lower backbone learning rate, as
  DETR trains; and DETR's two stages: the detector alone first (:meth:`GalaxyDetr.detect`, no
  mask head: 16x cheaper a step on 2 cores), then the mask head and its attention on the frozen
  detector (:meth:`GalaxyDetr.freeze_detector`).

``num_queries`` caps the objects one window can hold; the trainer refuses a value below twice
the densest training crop. At inference a window whose kept detections reach the cap (all
queries but the void's) may have lost objects: such windows are counted per tile (a window in
two tiles' halos counts twice) into ``run.json`` (``method_counters``), and the run warns.

**Overlap rule**: DETR's panoptic post-processing within a window, ownership by mask centre across
windows, painting in descending score (:mod:`astrostatlearn.methods.query_panoptic`, shared with
``mask2former``). Each object's score is its ``galaxy`` class probability, in [0, 1].
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from astrostatlearn.errors import InputError
from astrostatlearn.methods.base import register
from astrostatlearn.methods.detr_seeds import (BoxedAttention, BoxPriorMasks, ReferencedBoxes, seed_boxes,
                                               shipped_seeder, sine_embedding)
from astrostatlearn.methods.query_panoptic import (GALAXY, SATURATED, VOID, QueryNetwork, QueryPanopticDetector,
                                                   WindowOutputs, WindowSegments, paint_by_score, small_resnet_config,
                                                   window_segments)

# The shipped model: 32 of its 36 queries seeded by the shipped U-Net's instances, trained by
# ``python -m astrostatlearn.training.shipped_detr`` (20 epochs, 13 min on 2 CPU cores; the best
# by validation PQ, epoch 4). DETR's learned queries alone did not learn on 2 CPU cores.
SHIPPED_MODEL: str | None = "detr-default.pt"
FORMAT = "astrostatlearn-detr-1"
__all__ = ["DEFAULT_CONFIG", "GALAXY", "SATURATED", "VOID", "DetrSegmenter", "GalaxyDetr", "WindowSegments",
           "build_detr", "paint_by_score", "window_segments"]

DEFAULT_CONFIG: dict[str, Any] = {"window": 128, "widths": [16, 32, 64, 128], "d_model": 64, "layers": 2,
                                  "heads": 8, "ffn": 256, "queries": 32, "token_stride": 16, "seeds": 0, "unet": None,
                                  "seed_rule": None}
TOKEN_STRIDES = (4, 8, 16)


class GalaxyDetr(QueryNetwork):
    """DETR panoptic for ``in_channels``-channel windows; ``forward(images, labels=None)``.

    ``images`` [N, C, H, W] in the variant's units (normalised inside); ``labels``: DETR's
    training targets (one dict per image: ``class_labels``, ``boxes`` as normalised
    (cx, cy, w, h), ``masks``). Returns transformers' ``DetrSegmentationOutput`` (with ``loss``
    and ``loss_dict`` when ``labels`` are given).
    """

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)
        from transformers import DetrConfig, DetrForSegmentation

        self.detector_frozen = False
        c = self.config
        pixels = c["in_channels"] + (2 if c["seeds"] else 0)  # with seeds, the U-Net's two maps join the input
        detr_config = DetrConfig(
            backbone_config=small_resnet_config(pixels, c["widths"]), use_pretrained_backbone=False, num_channels=pixels,
            num_queries=c["queries"], d_model=c["d_model"], encoder_layers=c["layers"], decoder_layers=c["layers"],
            encoder_attention_heads=c["heads"], decoder_attention_heads=c["heads"], encoder_ffn_dim=c["ffn"],
            decoder_ffn_dim=c["ffn"], num_labels=2, auxiliary_loss=True, dropout=0.0)
        self.detr = DetrForSegmentation(detr_config)
        _full_resolution_trainable_backbone(self.detr.detr.model.backbone.model, c["token_stride"])
        if c["seeds"]:
            self.seeder = shipped_seeder(c)
            self.seed_embedding = nn.Linear(2 * c["d_model"], c["d_model"])
            self.detr.detr.bbox_predictor = ReferencedBoxes(self.detr.detr.bbox_predictor,
                                                            self.detr.detr.class_labels_classifier)
            self.detr.bbox_attention = BoxedAttention(self.detr.bbox_attention, self.detr.detr.bbox_predictor)
            self.detr.mask_head = BoxPriorMasks(self.detr.mask_head, self.detr.detr.bbox_predictor)

    def forward(self, images: torch.Tensor, labels: list[dict[str, torch.Tensor]] | None = None) -> Any:
        """transformers' output; with seeds, also ``seed_overflow`` [N] bool: the windows where the
        U-Net found more instances than ``seeds`` (the weakest were left to DETR's own queries), and
        ``foreground`` [N, H, W], the U-Net's foreground probability."""
        pixels, queries, overflow = self.inputs(images)
        out = self.detr(pixel_values=pixels, decoder_inputs_embeds=queries, labels=labels)
        if overflow is not None:
            out.seed_overflow = overflow
            out.foreground = pixels[:, -2]  # the U-Net's maps are the last two channels: foreground, centre-ness
        return out

    def detect(self, images: torch.Tensor, labels: list[dict[str, torch.Tensor]] | None = None) -> Any:
        """The detector alone (no mask head): transformers' ``DetrObjectDetectionOutput``, with
        its class, box and GIoU losses when ``labels`` (``class_labels``, ``boxes``) are given."""
        pixels, queries, _ = self.inputs(images)
        return self.detr.detr(pixel_values=pixels, decoder_inputs_embeds=queries, labels=labels)

    def inputs(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None, np.ndarray | None]:
        """DETR's pixel values, decoder query contents and seed overflow. Without seeds: the
        normalised images, None (DETR's zero queries) and None. With ``seeds`` = K: the frozen
        U-Net's foreground and centre-ness maps join the channels, the first K queries start at
        the U-Net's strongest instances (:meth:`seed_queries`), the rest at zero, as DETR's, and
        the windows where it found more than K are flagged."""
        pixels = self.normalise(images)
        if not self.config["seeds"]:
            return pixels, None, None
        with torch.no_grad():
            maps = torch.sigmoid(self.seeder(images.float())).to(pixels.dtype)
        queries, refs, overflow = self.seed_queries(maps)
        self.detr.detr.bbox_predictor.reference = refs
        return torch.cat([pixels, maps], dim=1), queries, overflow

    def seed_queries(self, maps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
        """Query contents [N, queries, d_model], reference boxes [N, queries, 4] (logits of
        normalised (cx, cy, w, h)) and overflow [N] (more instances than seeds, :func:`seed_boxes`)
        from the U-Net's maps [N, 2, H, W] (foreground, centre-ness):
        the first K queries start at the U-Net's K strongest instances (:func:`seed_boxes`), their
        content a learned projection of the sine embeddings of the instance box's centre (y, x)
        and size (h, w), as DETR embeds positions, and their reference that box; the others start
        at zero with reference 0 (DETR's own start)."""
        boxes, seeded, overflow = seed_boxes(maps, self.config["seeds"], self.config["queries"], self.config["seed_rule"])
        d = self.config["d_model"]
        embedded = torch.cat([sine_embedding(boxes[..., 1], boxes[..., 0], d),
                              sine_embedding(boxes[..., 3], boxes[..., 2], d)], -1)
        content = self.seed_embedding(embedded) * seeded[..., None]
        refs = torch.logit(boxes.clamp(1e-3, 1 - 1e-3)) * seeded[..., None]
        return content.to(maps.dtype), refs.to(maps.dtype), overflow

    def freeze_detector(self) -> None:
        """DETR's second stage: only the mask head and its attention map train. The detector's
        weights take no gradient and its BatchNorm keeps its statistics (eval mode even when
        the model is put in training mode)."""
        self.detector_frozen = True
        for p in self.parameters():
            p.requires_grad_(False)
        for part in (self.detr.mask_head, self.detr.bbox_attention):
            for p in part.parameters():
                p.requires_grad_(True)
        self.train(self.training)

    def train(self, mode: bool = True) -> "GalaxyDetr":
        super().train(mode)
        if self.detector_frozen:
            self.detr.detr.eval()
        if self.config["seeds"]:
            self.seeder.eval()  # frozen: BatchNorm statistics and no dropout
        return self

    def backbone(self) -> nn.Module:
        return self.detr.detr.model.backbone


def _full_resolution_trainable_backbone(resnet: nn.Module, token_stride: int) -> None:
    """Stem without max-pool (stride 2); the last stage at stride 1 for ``token_stride`` 8 (the
    last two for 4); ordinary (trainable) BatchNorm; every parameter trains."""
    resnet.embedder.pooler = nn.Identity()
    flat = {16: 0, 8: 1, 4: 2}[token_stride]
    for stage in list(resnet.encoder.stages)[len(resnet.encoder.stages) - flat:]:
        for conv in stage.modules():
            if isinstance(conv, nn.Conv2d) and conv.stride == (2, 2):
                conv.stride = (1, 1)
    for module in list(resnet.modules()):
        for name, child in list(module.named_children()):
            if type(child).__name__ == "DetrFrozenBatchNorm2d":
                setattr(module, name, nn.BatchNorm2d(child.weight.shape[0]))
    for p in resnet.parameters():
        p.requires_grad_(True)


def build_detr(in_channels: int, **config: Any) -> GalaxyDetr:
    """A :class:`GalaxyDetr` for ``in_channels`` channels; ``config`` overrides :data:`DEFAULT_CONFIG`."""
    unknown = set(config) - set(DEFAULT_CONFIG)
    if unknown:
        raise InputError(f"unknown DETR setting {sorted(unknown)[0]!r}")
    c = {**DEFAULT_CONFIG, **config, "in_channels": int(in_channels)}
    if c["token_stride"] not in TOKEN_STRIDES:
        raise InputError(f"token_stride must be one of {TOKEN_STRIDES}, not {c['token_stride']}")
    if not 0 <= c["seeds"] < c["queries"]:
        raise InputError(f"seeds must lie in [0, queries) (some queries stay free for the void), got {c['seeds']}")
    if (c["d_model"] + c["heads"]) % 8 or c["d_model"] % c["heads"]:
        raise InputError(f"d_model {c['d_model']} must be a multiple of heads {c['heads']}, and d_model + heads of 8")
    return GalaxyDetr(c)


@register
class DetrSegmenter(QueryPanopticDetector):
    """Segmenter around a trained DETR panoptic model (see the module notes)."""

    name = "detr"
    file_format = FORMAT
    shipped_model = SHIPPED_MODEL
    train_options = {"window": "window (training crop and inference) size in px (default 128)",
                     "widths": "ResNet widths per stage, e.g. 16/32/64/128", "d_model": "transformer width (default 64)",
                     "layers": "encoder and decoder layers (default 2)", "heads": "attention heads (default 8)",
                     "queries": "object queries per window (default: max(32, 2 x the densest crop))",
                     "ffn": "feed-forward width (default 256)",
                     "token_stride": "pixels per transformer token: 4, 8 or 16 (default 16)",
                     "seeds": "queries started at the shipped U-Net's object centres, whose maps also join the "
                              "input (default 0: DETR's learned queries alone)",
                     "detector_epochs": "epochs of DETR's first stage, the detector alone, before --epochs "
                                        "of the mask head on the frozen detector (default 0: one joint stage)"}

    build_model = staticmethod(build_detr)
    trainer = "astrostatlearn.training.detr"

    def window_outputs(self, batch: torch.Tensor) -> WindowOutputs:
        if self.net_.config["seeds"]:  # masks only for the queries the panoptic rule can keep
            self.net_.detr.mask_head.floor = self.score_threshold
        out = self.net_(batch)
        # With seeded queries: the windows where the U-Net found more instances than there are seeds,
        # and the U-Net's foreground.
        return WindowOutputs(out.logits, out.pred_boxes, out.pred_masks, getattr(out, "seed_overflow", None),
                             getattr(out, "foreground", None))
