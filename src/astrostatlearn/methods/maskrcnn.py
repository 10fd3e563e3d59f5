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
* no rescaling, ever: ``min_size = max_size =`` the window, and a transform whose resize step is
  the identity (:func:`keep_scale`), so training crops smaller than the window (128^2
  crops for 256^2 windows) are seen at their own pixel scale, as at inference (torchvision would
  upsample them to ``min_size``);
* ``box_detections_per_img`` 400, for crowded windows (the densest 256^2 window of the 25000^2
  field holds 39 objects), and the RPN's 1000 best boxes per level before NMS and 500 after it,
  in training and at inference alike (more, 3000 and 1500, cost twice the inference time
  for no better PQ or AP on the validation fields); training samples 128 RoIs per image.

On a CPU the backbone (fully convolutional) runs through OpenVINO, bf16 where the CPU has it
(``engine``, ``precision``: :mod:`~astrostatlearn.methods.cpu_inference`, as for the U-Net); the RPN,
NMS, RoI pooling and heads run in PyTorch, the reference path (``engine='torch'``, and always on
a GPU).

Inputs are read as the U-Net reads them (``asinh(x / 3)``), or, for the galaxy backbone,
normalised from the training data's own statistics, per channel (``asinh((x - median) /
(3 sigma))``, robust median and sigma stored in the model); never ImageNet means.

Inference runs over ``window``-sized windows that overlap by ``overlap`` px; a window keeps the
detections whose box centre lies in its own share of the tile (the usual Voronoi split of
overlapping windows), so an object smaller than the overlap is decided by exactly one window.
**Proposals:** with the U-Net backbone, the box head scores and refines the boxes of the
U-Net's own objects beside the RPN's (``unet_proposals``), so an object the RPN ranks too low
still gets a box, and the box head decides whether it is a galaxy.
**Post-processing** (:mod:`~astrostatlearn.methods.maskrcnn_paste`): masks at full resolution
(each instance's 28^2 mask blended with the U-Net backbone's foreground inside its box,
``foreground_weight``; the foreground is stitched from each window's share of the tile); mask
scoring (``foreground_scoring``: each score weighs in the mean foreground over the object's
pixels); and the **overlap rule** (``overlap_rule``): a pixel that several instances' probabilities
(> ``mask_threshold``) cover belongs to the highest-scoring one (``score``), or to the one with
the highest score × its own mask head's probability there (``mask``, Mask2Former's rule); an
instance left with fewer than ``min_area`` pixels, or with more than ``max_occluded`` of its
pixels held by others, is dropped (see :mod:`~astrostatlearn.methods.maskrcnn_paste`). Each
object's score is in [0, 1].
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from astrostatlearn.errors import InputError
from astrostatlearn.methods.base import Instances, Prediction, Tile, TrainRequest, register
from astrostatlearn.methods.cpu_inference import (ENGINE_OPTIONS, CompiledCache, CompilesForCPU, check_engine_options,
                                                  resolve_engine)
from astrostatlearn.methods.detector_backbones import FPNBackbone, build_body
from astrostatlearn.methods.instances import core_seeded_instances
from astrostatlearn.methods.maskrcnn_paste import OVERLAP_RULES, Detections, PasteRule, paste_instances
from astrostatlearn.methods.isophote import ISOPHOTE, OPTION_HELP as ISOPHOTE_HELP
from astrostatlearn.methods.significance import MIN_SNR, OPTION_HELP as SNR_HELP
from astrostatlearn.methods.torch_model import WINDOW_OPTIONS
from astrostatlearn.methods.windowed import WindowedDetector, paste_share, share_bounds, window_starts  # noqa: F401

SHIPPED_MODEL = "maskrcnn-default.pt"
FORMAT = "astrostatlearn-maskrcnn-1"
# The lowest class score the box head reports (torchvision's box_score_thresh); the segmenter raises it
# at inference to the lowest score its post-processing can keep.
NETWORK_SCORE_FLOOR = 0.05
# The post-processing defaults (maskrcnn_paste), chosen on the validation fields by
# benchmarks/tune_maskrcnn_postprocess.py.
FOREGROUND_WEIGHT, FOREGROUND_SCORING, MAX_OCCLUDED = 0.85, 0.75, 0.3
# How the backbone U-Net's own objects are decoded into proposals: the shipped U-Net's decoding.
PROPOSAL_DECODING = {"threshold": 0.6, "core_level": 0.7, "min_dynamic": 0.2, "min_area": 5}


def keep_scale(image: torch.Tensor, target: dict[str, torch.Tensor] | None = None
               ) -> tuple[torch.Tensor, dict[str, torch.Tensor] | None]:
    """The resize step of the network's transform: none. Galaxies have one pixel scale; torchvision
    would upsample a training crop smaller than ``min_size`` (128^2 crops for 256^2 windows, by
    2x), and the network would learn objects at twice the size it meets at inference."""
    return image, target


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
        rpn_pre_nms_top_n_test=1000, rpn_post_nms_top_n_test=500, rpn_batch_size_per_image=256,
        box_roi_pool=box_pool, box_head=TwoMLPHead(fpn_channels * 49, 256), box_predictor=FastRCNNPredictor(256, 2),
        box_detections_per_img=detections, box_score_thresh=NETWORK_SCORE_FLOOR, box_nms_thresh=0.5,
        box_batch_size_per_image=128, mask_roi_pool=mask_pool,
        mask_head=MaskRCNNHeads(fpn_channels, [fpn_channels] * 4, 1),
        mask_predictor=MaskRCNNPredictor(fpn_channels, fpn_channels, 2),
    )
    model.transform.resize = keep_scale  # a module-level function: the network still pickles
    model.config = {"in_channels": in_channels, "window": window, "widths": list(widths), "fpn_channels": fpn_channels,
                    "detections": detections, "backbone": backbone}
    if backbone == "unet":
        model.config["unet"] = {k: v for k, v in body.unet_config.items() if k != "in_channels"}
    return model


def unet_proposals(maps: torch.Tensor) -> list[torch.Tensor]:
    """Boxes (x0, y0, x1, y1) of the backbone U-Net's own objects, per image of ``maps`` [N, 2, H,
    W] (foreground, centre-ness probabilities): the foreground split at its centre-ness cores,
    decoded as the shipped U-Net decodes them (:data:`PROPOSAL_DECODING`)."""
    from scipy import ndimage

    p = PROPOSAL_DECODING
    out = []
    for fg, centre in maps.float().cpu().numpy():
        lab = core_seeded_instances(fg > p["threshold"], centre * fg, p["core_level"], p["min_area"], p["min_dynamic"])
        boxes = [(s[1].start, s[0].start, s[1].stop, s[0].stop) for s in ndimage.find_objects(lab) if s is not None]
        out.append(torch.tensor(boxes, dtype=torch.float32, device=maps.device).reshape(-1, 4))
    return out


Features = Callable[[torch.Tensor], tuple[dict[str, torch.Tensor], torch.Tensor | None]]


class BackboneOutputs(nn.Module):
    """A Mask R-CNN's backbone as one module with a tuple out, to compile: its FPN maps, fine to
    coarse (``backbone.level_names()``), then the U-Net body's (foreground, centre-ness) maps
    where it has them."""

    def __init__(self, backbone: FPNBackbone) -> None:
        super().__init__()
        self.backbone = backbone

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        feats, maps = self.backbone.features(x)
        return tuple(feats.values()) + (() if maps is None else (maps,))


def detect(model: nn.Module, batch: torch.Tensor, propose_unet_objects: bool = False,
           features: Features | None = None, score_floor: float = 0.0) -> list[dict[str, torch.Tensor]]:
    """Eval-mode detections for ``batch`` [N, C, H, W]: boxes (x0, y0, x1, y1), scores and 28^2 mask
    probabilities per box, *not* pasted into the image (torchvision would paste each mask into a
    full-size image, which is slow and memory-hungry for hundreds of objects); with a U-Net
    backbone, also the backbone's full-resolution ``foreground`` probability [H, W] per image.

    ``propose_unet_objects``: with a U-Net backbone, the box head also scores and refines the
    boxes of the U-Net's own objects (:func:`unet_proposals`) beside the RPN's proposals, as Fast
    R-CNN scores external proposals: an object the RPN ranks too low to propose still gets a box.
    ``features``: the backbone's feature function (default ``model.backbone.features``, PyTorch's;
    :meth:`MaskRCNNSegmenter.backbone_features` for OpenVINO's).
    ``score_floor``: boxes whose class score is below it (or below :data:`NETWORK_SCORE_FLOOR`) are
    dropped before NMS and the mask head, which then runs only on detections that can be kept
    (:meth:`~astrostatlearn.methods.maskrcnn_paste.PasteRule.class_score_floor`)."""
    images, _ = model.transform(list(batch))
    if tuple(images.tensors.shape[-2:]) != tuple(batch.shape[-2:]):
        raise RuntimeError("Mask R-CNN rescaled its input; min_size/max_size must equal the window")
    feats, maps = (features or model.backbone.features)(images.tensors)
    proposals, _ = model.rpn(images, feats)
    if propose_unet_objects and maps is not None:
        proposals = [torch.cat([p, u.to(p.dtype)]) for p, u in zip(proposals, unet_proposals(maps))]
    # Set on every call (only detect runs the RoI heads in eval mode), never restored: threads that
    # share the network with one floor never see another's.
    model.roi_heads.score_thresh = max(NETWORK_SCORE_FLOOR, score_floor)
    detections, _ = model.roi_heads(feats, proposals, images.image_sizes)
    if maps is not None:
        for d, m in zip(detections, maps):
            d["foreground"] = m[0]
    return detections


@register
class MaskRCNNSegmenter(CompilesForCPU, WindowedDetector):
    """Segmenter around a trained Mask R-CNN (see the module notes)."""

    name = "maskrcnn"
    file_format = FORMAT
    shipped_model = SHIPPED_MODEL
    options = {
        "score_threshold": "lowest detection score kept (0-1)",
        "mask_threshold": "mask probability that makes a pixel part of an object (0-1)",
        "foreground_weight": "weight of the U-Net backbone's full-resolution foreground in each mask (0-1; "
                             "0: the mask head's 28x28 masks alone; a galaxy-backbone model has none)",
        "foreground_scoring": "weight of the mask's quality (its mean foreground probability) in each score (0-1; 0: "
                              "the class score alone)",
        "max_occluded": "largest fraction of an object's pixels that higher-scoring objects may hold before it is "
                        "dropped as a duplicate or fragment (0-1; 1: never)",
        "overlap_rule": "who owns a pixel that several objects claim: score (the highest-scoring object) or mask "
                        "(the highest score x the object's own mask-head probability there)",
        "unet_proposals": "also propose the backbone U-Net's own objects to the box head (true/false)",
        "min_snr": SNR_HELP,
        "isophote": ISOPHOTE_HELP,
        "local_background": "subtract the field's 64-px background mesh from channel 0 first, as the shipped U-Net "
                            "does (gradients, scattered and intracluster light)",
        **ENGINE_OPTIONS,
        **WINDOW_OPTIONS,
    }
    fraction_options = WindowedDetector.fraction_options + ("foreground_scoring", "max_occluded")
    train_options = {"backbone": "unet (the shipped U-Net, frozen, default) or galaxy (from scratch)",
                     "widths": "galaxy backbone widths per stage, e.g. 16/32/48/64", "fpn": "FPN channels (default 64)",
                     "detections": "most detections per window (default 400)"}

    def __init__(self, variant: str = "snr", window: int = 256, overlap: int = 64, batch_size: int = 4,
                 score_threshold: float = 0.5, mask_threshold: float = 0.5, min_area: int = 5,
                 min_snr: float | None = MIN_SNR, device: str | None = None, halo: int = 64,
                 foreground_weight: float = FOREGROUND_WEIGHT, local_background: bool = False,
                 foreground_scoring: float = FOREGROUND_SCORING, max_occluded: float = MAX_OCCLUDED,
                 unet_proposals: bool = True, overlap_rule: str = "mask", engine: str = "auto", precision: str = "auto",
                 isophote: float | None = ISOPHOTE) -> None:
        self.variant, self.window, self.overlap, self.batch_size = variant, window, overlap, batch_size
        self.score_threshold, self.mask_threshold, self.min_area = score_threshold, mask_threshold, min_area
        self.foreground_weight, self.local_background = foreground_weight, local_background
        self.foreground_scoring, self.max_occluded, self.unet_proposals = foreground_scoring, max_occluded, unet_proposals
        self.overlap_rule = overlap_rule
        self.min_snr, self.isophote, self.device, self.halo = min_snr, isophote, device, halo
        self.engine, self.precision = engine, precision
        self.net_: nn.Module | None = None
        self._compiled = CompiledCache()

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

    def check_options(self) -> None:
        super().check_options()
        if self.overlap_rule not in OVERLAP_RULES:
            raise InputError(f"overlap_rule must be one of {', '.join(OVERLAP_RULES)}, got {self.overlap_rule!r}")
        check_engine_options(self.engine, self.precision, self._device())

    # -- inference ---------------------------------------------------------------------------
    def backbone_features(self, batch: torch.Tensor) -> Features:
        """The backbone's feature function for batches shaped as ``batch`` (at most): by the resolved
        engine, OpenVINO's (compiled once per run; a CPU with bf16 runs it in bf16 unless
        ``precision='f32'``) or PyTorch's (the reference, and always on a GPU). The rest of the
        network (RPN, RoI heads) runs in PyTorch either way."""
        backbone = self.net_.backbone
        if resolve_engine(self.engine, batch.device) != "openvino":
            return backbone.features
        shape, names = (self.batch_size, *batch.shape[1:]), backbone.level_names()

        def features(x: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
            compiled = self._compiled.get(backbone, shape, self.precision, wrap=BackboneOutputs)  # once per run
            outs = [torch.from_numpy(o) for o in compiled.outputs(x.numpy())]
            return dict(zip(names, outs)), (outs[len(names)] if len(outs) > len(names) else None)

        return features

    def detect_windows(self, image: np.ndarray, every: bool = False) -> Detections:
        """The detections over ``image`` [C, y, x] that :meth:`paste_rule` can keep (with ``every``,
        all the network reports, from a class score of :data:`NETWORK_SCORE_FLOOR`: to re-resolve them
        under other rules) by overlapping windows, each kept by the window that owns its box centre,
        with the U-Net backbone's foreground stitched from each window's own share of the image (None
        for a galaxy backbone). The final scores are made when they are pasted."""
        floor = 0.0 if every else self.paste_rule().class_score_floor()
        ny, nx = image.shape[1:]
        boxes, scores, masks = [], [], []
        foreground: np.ndarray | None = None  # over the image padded to one window, as the windows see it
        features = None
        with torch.inference_mode():
            for chunk, batch in self.window_batches(image):
                dev = batch.device
                features = features or self.backbone_features(batch)
                with torch.autocast(dev.type, enabled=dev.type == "cuda"):
                    dets = detect(self.net_, batch, self.unet_proposals, features, floor)
                for (y0, x0, ysh, xsh), d in zip(chunk, dets):
                    b = d["boxes"].float().cpu().numpy() + np.array([x0, y0, x0, y0], np.float32)
                    s = d["scores"].float().cpu().numpy()
                    cy, cx = (b[:, 1] + b[:, 3]) / 2, (b[:, 0] + b[:, 2]) / 2
                    own = (cy >= ysh[0]) & (cy < ysh[1]) & (cx >= xsh[0]) & (cx < xsh[1]) & (cy < ny) & (cx < nx)
                    boxes.append(b[own])
                    scores.append(s[own])
                    masks.append(d["masks"][:, 0].float().cpu().numpy()[own])
                    if "foreground" in d:
                        if foreground is None:
                            foreground = np.zeros((max(ny, self.window), max(nx, self.window)), np.float32)
                        paste_share(foreground, d["foreground"].float().cpu().numpy(), y0, x0, ysh, xsh)
        fg = None if foreground is None else foreground[:ny, :nx]
        if not boxes:
            return Detections.empty(fg)
        return Detections(np.concatenate(boxes), np.concatenate(scores), np.concatenate(masks), fg)

    def paste_rule(self) -> PasteRule:
        """This segmenter's post-processing options (:mod:`~astrostatlearn.methods.maskrcnn_paste`)."""
        return PasteRule(self.score_threshold, self.mask_threshold, self.min_area, self.foreground_weight,
                         self.foreground_scoring, self.max_occluded, self.overlap_rule)

    def predict(self, tile: Tile) -> Prediction:
        d = self.detect_windows(tile.network_input(self.local_background))
        p = paste_instances(d, tile.valid.shape, self.paste_rule())
        labels = np.where(tile.valid, p.labels, 0).astype(np.int32)
        b = d.boxes[p.kept]
        inst = Instances(np.arange(1, p.kept.size + 1), p.scores,
                         boxes=np.c_[b[:, 1], b[:, 0], b[:, 3], b[:, 2]].astype(np.float32),
                         classes=np.ones(p.kept.size, np.int64))
        score_map = np.where(tile.valid, p.score_map, 0.0).astype(np.float32)
        return self.apply_cuts(Prediction(labels, score_map, inst), tile)
