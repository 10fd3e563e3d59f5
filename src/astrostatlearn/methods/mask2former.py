"""``mask2former``: transformers' Mask2Former (``Mask2FormerForUniversalSegmentation``), from scratch,
with windowed inference: the second transformer beside DETR.

The network is built from a config alone (nothing is downloaded: ``use_pretrained_backbone=False``
and a small :class:`~transformers.ResNetConfig` backbone), then adapted for faint galaxies of 3-50 px:

* the ResNet stem has no max-pool, so the four stages give features at strides 2, 4, 8 and 16; the
  pixel decoder's deformable-attention encoder reads strides 4-16 and its FPN gives mask features
  at stride 2 (``common_stride = 2``): masks at half resolution (64^2 for a 128^2 window),
  resampled bilinearly to the window;
* masked attention in every decoder layer (Mask2Former's own), auxiliary losses after each layer,
  and the mask loss on ``points`` sampled points per mask (importance sampling, as the paper);
* ``num_channels`` follows the variant, and the input is normalised per channel from the training
  data's own statistics (``asinh((x - median) / (3 sigma))``), never ImageNet means;
* two classes, as the seed's panoptic export: ``galaxy`` (thing, class 0) and ``void`` (stuff,
  class 1), plus "no object".

``num_queries`` caps the objects one window can hold (the trainer refuses fewer than twice the
densest training crop; windows at the cap are counted in ``run.json`` and warned about).
**Overlap rule**: the panoptic post-processing within a window, ownership by mask centre across
windows and painting in descending score are DETR's (:mod:`astrostatlearn.methods.query_panoptic`);
boxes are the masks' own. Each object's score is its ``galaxy`` class probability, in [0, 1].
"""

from __future__ import annotations

import contextlib
from types import SimpleNamespace
from typing import Any, Iterator

import numpy as np
import torch
from torch import nn

from astrostatlearn.errors import InputError
from astrostatlearn.methods.base import register
from astrostatlearn.methods.query_panoptic import (QueryNetwork, QueryPanopticDetector, WindowOutputs,
                                                   small_resnet_config)

# Trained from scratch on 2 CPU cores by ``python -m astrostatlearn.training.shipped_mask2former``
# (150 epochs, 45 minutes; its log is mask2former-default.csv).
SHIPPED_MODEL: str | None = "mask2former-default.pt"
FORMAT = "astrostatlearn-mask2former-1"

DEFAULT_CONFIG: dict[str, Any] = {"window": 128, "widths": [16, 32, 64, 128], "hidden": 64, "encoder_layers": 2,
                                  "decoder_layers": 4, "heads": 4, "ffn": 256, "queries": 32, "points": 2048}


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """transformers warns that a ResNet backbone is not one Mask2Former was published with."""
    from transformers.utils import logging

    level = logging.get_verbosity()
    logging.set_verbosity_error()
    try:
        yield
    finally:
        logging.set_verbosity(level)


class GalaxyMask2Former(QueryNetwork):
    """Mask2Former for ``in_channels``-channel windows; ``forward(images, labels=None)``.

    ``images`` [N, C, H, W] in the variant's units (normalised inside); ``labels``: one dict per
    image with ``class_labels`` [n] and ``masks`` [n, H, W] (float 0/1). Returns
    ``logits`` [N, Q, 3] (galaxy, void, no object) and ``pred_masks`` [N, Q, H/2, W/2] logits, plus
    ``loss_dict`` (weighted terms: ``loss_cross_entropy``, ``loss_mask``, ``loss_dice``, and the
    same with ``_k`` for the auxiliary layers) and ``loss`` (their sum) when ``labels`` are given.
    """

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)
        from transformers import Mask2FormerConfig, Mask2FormerForUniversalSegmentation

        c = self.config
        with _quiet_transformers():
            m2f_config = Mask2FormerConfig(
                backbone_config=small_resnet_config(c["in_channels"], c["widths"]), use_pretrained_backbone=False,
                num_labels=2, num_queries=c["queries"], feature_size=c["hidden"], mask_feature_size=c["hidden"],
                hidden_dim=c["hidden"],
                encoder_feedforward_dim=c["ffn"], dim_feedforward=c["ffn"], encoder_layers=c["encoder_layers"],
                decoder_layers=c["decoder_layers"], num_attention_heads=c["heads"], common_stride=2,
                feature_strides=[2, 4, 8, 16], train_num_points=c["points"], use_auxiliary_loss=True)
            self.m2f = Mask2FormerForUniversalSegmentation(m2f_config)
        self.m2f.model.pixel_level_module.encoder.embedder.pooler = nn.Identity()  # strides 2-16

    def forward(self, images: torch.Tensor, labels: list[dict[str, torch.Tensor]] | None = None) -> SimpleNamespace:
        out = self.m2f(pixel_values=self.normalise(images), output_auxiliary_logits=labels is not None)
        res = SimpleNamespace(logits=out.class_queries_logits, pred_masks=out.masks_queries_logits)
        if labels is not None:
            res.loss_dict = self.m2f.get_loss_dict(out.masks_queries_logits, out.class_queries_logits,
                                                   [t["masks"] for t in labels], [t["class_labels"] for t in labels],
                                                   out.auxiliary_logits)
            res.loss = sum(res.loss_dict.values())
        return res

    def backbone(self) -> nn.Module:
        return self.m2f.model.pixel_level_module.encoder


def build_mask2former(in_channels: int, **config: Any) -> GalaxyMask2Former:
    """A :class:`GalaxyMask2Former` for ``in_channels`` channels; ``config`` overrides :data:`DEFAULT_CONFIG`."""
    unknown = set(config) - set(DEFAULT_CONFIG)
    if unknown:
        raise InputError(f"unknown Mask2Former setting {sorted(unknown)[0]!r}")
    c = {**DEFAULT_CONFIG, **config, "in_channels": int(in_channels)}
    if c["hidden"] % c["heads"]:
        raise InputError(f"hidden {c['hidden']} must be a multiple of heads {c['heads']}")
    if len(c["widths"]) != 4:
        raise InputError("widths must give 4 stages, e.g. 16/32/64/128")
    return GalaxyMask2Former(c)


@register
class Mask2FormerSegmenter(QueryPanopticDetector):
    """Segmenter around a trained Mask2Former (see the module notes)."""

    name = "mask2former"
    file_format = FORMAT
    shipped_model = SHIPPED_MODEL
    train_options = {"window": "window (training crop and inference) size in px (default 128)",
                     "widths": "ResNet widths per stage, e.g. 16/32/64/128", "hidden": "transformer width (default 64)",
                     "encoder_layers": "pixel-decoder encoder layers (default 2)",
                     "decoder_layers": "masked-attention decoder layers (default 4)",
                     "heads": "attention heads (default 4)", "ffn": "feed-forward width (default 256)",
                     "queries": "object queries per window (default: max(32, 2 x the densest crop))",
                     "points": "points sampled per mask for the mask loss (default 2048)"}

    build_model = staticmethod(build_mask2former)
    trainer = "astrostatlearn.training.mask2former"

    def window_outputs(self, batch: torch.Tensor) -> WindowOutputs:
        out = self.net_(batch)
        return WindowOutputs(out.logits, None, out.pred_masks)
