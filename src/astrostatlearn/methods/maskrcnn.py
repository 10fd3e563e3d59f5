"""``maskrcnn``: torchvision's Mask R-CNN, composed for galaxies, with windowed inference.

The network is torchvision's :class:`~torchvision.models.detection.MaskRCNN` built from parts
(``weights=None`` everywhere, nothing is downloaded):

* a backbone for any number of input channels under torchvision's FPN (plus a max-pooled
  coarsest level), see :mod:`astrostatlearn.methods.detector_backbones`: the shipped U-Net,
  frozen, with trainable copies of its three coarsest decoder stages and its own output maps
  joined to the finest levels (``backbone="unet"``, the shipped model's; FPN at strides 2-32,
  anchors 4-96 px), or a small residual CNN (``backbone="galaxy"``; strides 4-32, anchors
  4-48 px); two anchor sizes per level, aspect ratios 0.5, 1, 2, for galaxies of 3-50 px;
* light box and mask heads (64 channels); the mask head predicts 28^2 masks per box;
* ``min_size = max_size =`` the window, so torchvision never rescales the input;
* ``box_detections_per_img`` 400 and 1500 RPN proposals kept at inference, for crowded windows
  (training samples 500 proposals and 128 RoIs per image, enough for the tens of objects
  of a training crop).

Inputs are read as the U-Net reads them (``asinh(x / 3)``), or, for the galaxy backbone,
normalised from the training data's own statistics, per channel (``asinh((x - median) /
(3 sigma))``, robust median and sigma stored in the model); never ImageNet means.

Inference runs over ``window``-sized windows that overlap by ``overlap`` px; a window keeps the
detections whose box centre lies in its own share of the tile (the usual Voronoi split of
overlapping windows), so an object smaller than the overlap is decided by exactly one window.
**Masks at full resolution:** with the U-Net backbone, an instance's probability at a pixel of
its box blends its 28^2 mask with the backbone U-Net's own foreground probability at that pixel
(``foreground_weight``; the foreground is stitched from each window's share of the tile): the
box and mask say which object a pixel may belong to, the U-Net's full-resolution map where the
object's edge lies (as PointRend refines a coarse mask with fine features).
**Overlap rule:** kept instances are painted in descending score order and a pixel belongs to
the highest-scoring instance whose probability (> ``mask_threshold``) covers it; an
instance left with fewer than ``min_area`` pixels is dropped. Each object's score is its
detection score (the class probability), in [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from astrostatlearn.methods.detector_backbones import FPNBackbone, build_body
from astrostatlearn.methods.base import Instances, Prediction, Tile, TrainRequest, register
from astrostatlearn.methods.significance import MIN_SNR, OPTION_HELP as SNR_HELP
from astrostatlearn.methods.torch_model import WINDOW_OPTIONS
from astrostatlearn.methods.windowed import WindowedDetector, paste_share, share_bounds, window_starts  # noqa: F401

SHIPPED_MODEL = "maskrcnn-default.pt"
FORMAT = "astrostatlearn-maskrcnn-1"
# Weight of the U-Net backbone's foreground in each mask (paste_instances), chosen on the validation
# fields by benchmarks/tune_maskrcnn_postprocess.py.
FOREGROUND_WEIGHT = 0.85


@dataclass
class Detections:
    """Detections over an image: ``boxes`` [N, 4] (x0, y0, x1, y1, image pixels), ``scores`` [N],
    ``masks`` [N, 28, 28] (probabilities over each box) and the U-Net backbone's ``foreground``
    probability over the image (None for a galaxy backbone)."""

    boxes: np.ndarray
    scores: np.ndarray
    masks: np.ndarray
    foreground: np.ndarray | None


def build_maskrcnn(in_channels: int, window: int = 256, widths: tuple[int, ...] = (16, 32, 48, 64),
                   fpn_channels: int = 64, detections: int = 400, backbone: str = "galaxy",
                   unet_config: dict[str, Any] | None = None) -> nn.Module:
    """A Mask R-CNN for ``in_channels``-channel inputs of ``window`` x ``window`` pixels.

    ``backbone``: ``"galaxy"`` (a residual CNN of ``widths``) or ``"unet"`` (a frozen U-Net of
    ``unet_config`` with trainable decoder copies down to stride 2; see :mod:`astrostatlearn.methods.detector_backbones`)."""
    from torchvision.models.detection import MaskRCNN
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
    from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
    from torchvision.ops import MultiScaleRoIAlign
    from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

    body = build_body(in_channels, backbone, tuple(widths), unet_config)
    fpn = FPNBackbone(body, fpn_channels, LastLevelMaxPool)
    names = [str(i) for i in range(len(body.pyramid))]
    sizes = body.anchor_sizes
    anchors = AnchorGenerator(sizes=sizes, aspect_ratios=((0.5, 1.0, 2.0),) * len(sizes))
    box_pool = MultiScaleRoIAlign(featmap_names=names, output_size=7, sampling_ratio=2)
    mask_pool = MultiScaleRoIAlign(featmap_names=names, output_size=14, sampling_ratio=2)
    model = MaskRCNN(
        fpn, num_classes=None, min_size=window, max_size=window,
        image_mean=[0.0] * in_channels, image_std=[1.0] * in_channels,
        rpn_anchor_generator=anchors, rpn_pre_nms_top_n_train=1000, rpn_post_nms_top_n_train=500,
        rpn_pre_nms_top_n_test=3000, rpn_post_nms_top_n_test=1500, rpn_batch_size_per_image=256,
        box_roi_pool=box_pool, box_head=TwoMLPHead(fpn_channels * 49, 256), box_predictor=FastRCNNPredictor(256, 2),
        box_detections_per_img=detections, box_score_thresh=0.05, box_nms_thresh=0.5,
        box_batch_size_per_image=128, mask_roi_pool=mask_pool,
        mask_head=MaskRCNNHeads(fpn_channels, [fpn_channels] * 4, 1),
        mask_predictor=MaskRCNNPredictor(fpn_channels, fpn_channels, 2),
    )
    model.config = {"in_channels": in_channels, "window": window, "widths": list(widths), "fpn_channels": fpn_channels,
                    "detections": detections, "backbone": backbone}
    if backbone == "unet":
        model.config["unet"] = {k: v for k, v in body.unet_config.items() if k != "in_channels"}
    return model


def detect(model: nn.Module, batch: torch.Tensor) -> list[dict[str, torch.Tensor]]:
    """Eval-mode detections for ``batch`` [N, C, H, W]: boxes (x0, y0, x1, y1), scores and 28^2 mask
    probabilities per box, *not* pasted into the image (torchvision would paste each mask into a
    full-size image, which is slow and memory-hungry for hundreds of objects); with a U-Net
    backbone, also the backbone's full-resolution ``foreground`` probability [H, W] per image."""
    images, _ = model.transform(list(batch))
    if tuple(images.tensors.shape[-2:]) != tuple(batch.shape[-2:]):
        raise RuntimeError("Mask R-CNN rescaled its input; min_size/max_size must equal the window")
    features, foreground = model.backbone.features(images.tensors)
    proposals, _ = model.rpn(images, features)
    detections, _ = model.roi_heads(features, proposals, images.image_sizes)
    if foreground is not None:
        for d, fg in zip(detections, foreground):
            d["foreground"] = fg
    return detections


def paste_instances(boxes: np.ndarray, scores: np.ndarray, masks: np.ndarray, shape: tuple[int, int],
                    mask_threshold: float = 0.5, min_area: int = 5, foreground: np.ndarray | None = None,
                    foreground_weight: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Resolve overlapping instances into one int32 map: (labels, kept indices, score map).

    ``boxes`` [N, 4] (x0, y0, x1, y1), ``masks`` [N, h, w] probabilities over each box. With
    ``foreground`` (a probability map of ``shape``: the U-Net backbone's), an instance's
    probability at a pixel of its box is ``(1 - w) * mask + w * foreground``, w =
    ``foreground_weight``: the box and mask say which object a pixel may belong to, the
    full-resolution foreground where its edge lies. In descending score order, an instance takes
    the pixels of its box whose probability is > ``mask_threshold`` and that no higher-scoring
    instance holds; instances left with fewer than ``min_area`` pixels are dropped (label IDs are
    1..n in the returned ``kept`` order). The score map is the highest such probability at each pixel.
    """
    from scipy import ndimage

    labels = np.zeros(shape, np.int32)
    score_map = np.zeros(shape, np.float32)
    kept: list[int] = []
    ny, nx = shape
    w = float(foreground_weight) if foreground is not None else 0.0
    for i in np.argsort(-scores, kind="stable"):
        x0, y0, x1, y1 = boxes[i]
        ix0, iy0 = max(int(np.floor(x0)), 0), max(int(np.floor(y0)), 0)
        ix1, iy1 = min(int(np.ceil(x1)), nx), min(int(np.ceil(y1)), ny)
        if ix1 <= ix0 or iy1 <= iy0:
            continue
        m = masks[i]
        # Sample the box's mask at the pixel centres (bilinear, as torchvision pastes masks).
        yy = ((np.arange(iy0, iy1) + 0.5 - y0) / max(y1 - y0, 1e-6)) * m.shape[0] - 0.5
        xx = ((np.arange(ix0, ix1) + 0.5 - x0) / max(x1 - x0, 1e-6)) * m.shape[1] - 0.5
        prob = ndimage.map_coordinates(m, np.meshgrid(yy, xx, indexing="ij"), order=1, mode="nearest")
        sl = (slice(iy0, iy1), slice(ix0, ix1))
        if w > 0:
            prob = (1.0 - w) * prob + w * foreground[sl]
        np.maximum(score_map[sl], prob.astype(np.float32), out=score_map[sl])
        take = (prob > mask_threshold) & (labels[sl] == 0)
        if take.sum() < min_area:
            continue
        kept.append(int(i))
        labels[sl][take] = len(kept)
    return labels, np.asarray(kept, np.int64), score_map


@register
class MaskRCNNSegmenter(WindowedDetector):
    """Segmenter around a trained Mask R-CNN (see the module notes)."""

    name = "maskrcnn"
    file_format = FORMAT
    shipped_model = SHIPPED_MODEL
    options = {
        "score_threshold": "lowest detection score kept (0-1)",
        "mask_threshold": "mask probability that makes a pixel part of an object (0-1)",
        "foreground_weight": "weight of the U-Net backbone's full-resolution foreground in each mask (0-1; "
                             "0: the mask head's 28x28 masks alone; a galaxy-backbone model has none)",
        "min_snr": SNR_HELP,
        "local_background": "subtract the field's 64-px background mesh from channel 0 first, as the shipped U-Net "
                            "does (gradients, scattered and intracluster light)",
        **WINDOW_OPTIONS,
    }
    train_options = {"backbone": "unet (the shipped U-Net, frozen, default) or galaxy (from scratch)",
                     "widths": "galaxy backbone widths per stage, e.g. 16/32/48/64", "fpn": "FPN channels (default 64)",
                     "detections": "most detections per window (default 400)"}

    def __init__(self, variant: str = "snr", window: int = 256, overlap: int = 64, batch_size: int = 4,
                 score_threshold: float = 0.5, mask_threshold: float = 0.5, min_area: int = 5,
                 min_snr: float | None = MIN_SNR, device: str | None = None, halo: int = 64,
                 foreground_weight: float = FOREGROUND_WEIGHT, local_background: bool = False) -> None:
        self.variant, self.window, self.overlap, self.batch_size = variant, window, overlap, batch_size
        self.score_threshold, self.mask_threshold, self.min_area = score_threshold, mask_threshold, min_area
        self.foreground_weight, self.local_background = foreground_weight, local_background
        self.min_snr, self.device, self.halo = min_snr, device, halo
        self.net_: nn.Module | None = None

    # -- model handling ---------------------------------------------------------------------
    @classmethod
    def build_network(cls, config: dict[str, Any]) -> nn.Module:
        return build_maskrcnn(config["in_channels"], config["window"], tuple(config["widths"]),
                              config["fpn_channels"], config["detections"], config.get("backbone", "galaxy"),
                              config.get("unet"))

    @classmethod
    def train(cls, request: TrainRequest) -> str:
        from astrostatlearn.training.maskrcnn import train_maskrcnn_request

        return train_maskrcnn_request(request)

    # -- inference ---------------------------------------------------------------------------
    def detect_windows(self, image: np.ndarray) -> Detections:
        """Detections over ``image`` [C, y, x] by overlapping windows, each kept by the window that
        owns its box centre, with the U-Net backbone's foreground stitched from each window's own
        share of the image (None for a galaxy backbone)."""
        ny, nx = image.shape[1:]
        boxes, scores, masks = [], [], []
        foreground: np.ndarray | None = None  # over the image padded to one window, as the windows see it
        with torch.inference_mode():
            for chunk, batch in self.window_batches(image):
                dev = batch.device
                with torch.autocast(dev.type, enabled=dev.type == "cuda"):
                    dets = detect(self.net_, batch)
                for (y0, x0, ysh, xsh), d in zip(chunk, dets):
                    b = d["boxes"].float().cpu().numpy() + np.array([x0, y0, x0, y0], np.float32)
                    s = d["scores"].float().cpu().numpy()
                    cy, cx = (b[:, 1] + b[:, 3]) / 2, (b[:, 0] + b[:, 2]) / 2
                    own = ((cy >= ysh[0]) & (cy < ysh[1]) & (cx >= xsh[0]) & (cx < xsh[1])
                           & (s >= self.score_threshold) & (cy < ny) & (cx < nx))
                    boxes.append(b[own])
                    scores.append(s[own])
                    masks.append(d["masks"][:, 0].float().cpu().numpy()[own])
                    if "foreground" in d:
                        if foreground is None:
                            foreground = np.zeros((max(ny, self.window), max(nx, self.window)), np.float32)
                        paste_share(foreground, d["foreground"].float().cpu().numpy(), y0, x0, ysh, xsh)
        fg = None if foreground is None else foreground[:ny, :nx]
        if not boxes:
            return Detections(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros((0, 28, 28), np.float32),
                              fg)
        return Detections(np.concatenate(boxes), np.concatenate(scores), np.concatenate(masks), fg)

    def predict(self, tile: Tile) -> Prediction:
        d = self.detect_windows(tile.network_input(self.local_background))
        labels, kept, score_map = paste_instances(d.boxes, d.scores, d.masks, tile.valid.shape, self.mask_threshold,
                                                  self.min_area, d.foreground, self.foreground_weight)
        labels = np.where(tile.valid, labels, 0).astype(np.int32)
        b = d.boxes[kept]
        inst = Instances(np.arange(1, kept.size + 1), d.scores[kept],
                         boxes=np.c_[b[:, 1], b[:, 0], b[:, 3], b[:, 2]].astype(np.float32),
                         classes=np.ones(kept.size, np.int64))
        return self.keep_significant(Prediction(labels, np.where(tile.valid, score_map, 0.0).astype(np.float32), inst),
                                     tile)
