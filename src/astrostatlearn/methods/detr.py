"""``detr``: transformers' DETR panoptic model (``DetrForSegmentation``), from scratch, with windowed inference.

The network is :class:`transformers.DetrForSegmentation` built from a config alone (nothing is
downloaded: ``use_pretrained_backbone=False`` and a small :class:`~transformers.ResNetConfig`
backbone instead of timm weights), then adapted for faint galaxies of 3-50 px:

* the ResNet stem has no max-pool, so the four stages give features at strides 2, 4, 8 and 16
  (not 4-32): the transformer sees 8 x 8 tokens of a 128^2 window and the mask head predicts
  masks at half resolution (64^2), resampled bilinearly to the window. (Full resolution made a
  training step 12x slower on 2 cores, since the mask head runs once per query.);
* every layer trains (transformers freezes the stem and first stage and uses frozen BatchNorm,
  which suits pretrained weights only): the frozen norms become ordinary BatchNorm;
* ``num_channels`` follows the variant, and the input is normalised per channel from the
  training data's own statistics (``asinh((x - median) / (3 sigma))``), never ImageNet means;
* two classes, as the seed's panoptic export: ``galaxy`` (thing, class 0) and ``void`` (stuff,
  class 1), plus DETR's "no object";
* auxiliary decoding losses (one per decoder layer) and a lower backbone learning rate, as
  DETR trains.

``num_queries`` caps the objects one window can hold; the trainer refuses a value below twice
the densest training crop. At inference a window whose kept detections reach the cap (all
queries but the void's) may have lost objects: such windows are counted per tile (a window in
two tiles' halos counts twice) into ``run.json`` (``method_counters``), and the run warns.

**Overlap rule** (DETR's panoptic post-processing): a query is kept when its most probable class
is not "no object" and its class probability is at least ``score_threshold``; each pixel goes
to the kept query with the highest ``class probability x mask probability``, provided that
query's mask probability there exceeds ``mask_threshold``; pixels of void queries are
background. Across overlapping windows an object belongs to the window that owns its box centre
(the Voronoi split of overlapping windows; the centre of the mask's bounding box), and objects are painted in descending score, each
taking only unclaimed pixels; an object left with fewer than ``min_area`` pixels is dropped.
Each object's score is its ``galaxy`` class probability, in [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from astrostatlearn.errors import InputError
from astrostatlearn.methods.base import Instances, Prediction, Tile, TrainRequest, register
from astrostatlearn.methods.torch_model import WINDOW_OPTIONS
from astrostatlearn.methods.windowed import WindowedDetector

# No model ships yet: trained from scratch on 2 CPU cores (35 epochs, about 45 minutes; see
# ``astrostatlearn.training.shipped_detr``) DETR did not reach a validation PQ above 0, so
# ``segment --method detr`` needs ``--model``. When a model reaches the target it ships here.
SHIPPED_MODEL: str | None = None
FORMAT = "astrostatlearn-detr-1"
GALAXY, VOID = 0, 1  # DETR class indices; index 2 is "no object"
SATURATED = "windows_at_query_limit"

DEFAULT_CONFIG: dict[str, Any] = {"window": 128, "widths": [16, 32, 64, 128], "d_model": 64, "layers": 2,
                                  "heads": 8, "ffn": 256, "queries": 32}


class GalaxyDetr(nn.Module):
    """DETR panoptic for ``in_channels``-channel windows; ``forward(images, labels=None)``.

    ``images`` [N, C, H, W] in the variant's units (normalised inside); ``labels``: DETR's
    training targets (one dict per image: ``class_labels``, ``boxes`` as normalised
    (cx, cy, w, h), ``masks``). Returns transformers' ``DetrSegmentationOutput`` (with ``loss``
    and ``loss_dict`` when ``labels`` are given).
    """

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        from transformers import DetrConfig, DetrForSegmentation, ResNetConfig

        self.config = dict(config)
        c = self.config
        widths = list(c["widths"])
        backbone = ResNetConfig(num_channels=c["in_channels"], embedding_size=widths[0], hidden_sizes=widths,
                                depths=[1] * len(widths), layer_type="basic",
                                out_features=[f"stage{i + 1}" for i in range(len(widths))])
        detr_config = DetrConfig(
            backbone_config=backbone, use_pretrained_backbone=False, num_channels=c["in_channels"],
            num_queries=c["queries"], d_model=c["d_model"], encoder_layers=c["layers"], decoder_layers=c["layers"],
            encoder_attention_heads=c["heads"], decoder_attention_heads=c["heads"], encoder_ffn_dim=c["ffn"],
            decoder_ffn_dim=c["ffn"], num_labels=2, auxiliary_loss=True, dropout=0.0)
        self.detr = DetrForSegmentation(detr_config)
        _full_resolution_trainable_backbone(self.detr.detr.model.backbone.model)
        self.register_buffer("shift", torch.zeros(c["in_channels"]))
        self.register_buffer("scale", torch.ones(c["in_channels"]))

    def forward(self, images: torch.Tensor, labels: list[dict[str, torch.Tensor]] | None = None) -> Any:
        x = torch.asinh((images - self.shift[None, :, None, None]) / self.scale[None, :, None, None])
        return self.detr(pixel_values=x, labels=labels)

    def param_groups_lr(self) -> list[tuple[list[nn.Parameter], float]]:
        """(parameters, learning-rate factor): the backbone at 0.5x, as DETR trains its backbone slower."""
        backbone = list(self.detr.detr.model.backbone.parameters())
        ids = {id(p) for p in backbone}
        return [(backbone, 0.5), ([p for p in self.parameters() if id(p) not in ids], 1.0)]


def _full_resolution_trainable_backbone(resnet: nn.Module) -> None:
    """Stem without max-pool (stride 2); ordinary (trainable) BatchNorm; every parameter trains."""
    resnet.embedder.pooler = nn.Identity()
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
    if (c["d_model"] + c["heads"]) % 8 or c["d_model"] % c["heads"]:
        raise InputError(f"d_model {c['d_model']} must be a multiple of heads {c['heads']}, and d_model + heads of 8")
    return GalaxyDetr(c)


@dataclass
class WindowSegments:
    """One window's objects after DETR's panoptic post-processing.

    ``labels`` [H, W] int32 (1..n, 0 = background or void); ``scores`` [n] galaxy probability;
    ``boxes`` [n, 4] (y0, x0, y1, x1) in window pixels; ``prob`` [H, W] the owner's class x mask
    probability (0 on background); ``saturated``: the kept queries reached the query limit.
    """

    labels: np.ndarray
    scores: np.ndarray
    boxes: np.ndarray
    prob: np.ndarray
    saturated: bool


def window_segments(logits: torch.Tensor, boxes: torch.Tensor, mask_logits: torch.Tensor, size: tuple[int, int],
                    score_threshold: float = 0.5, mask_threshold: float = 0.5) -> WindowSegments:
    """Panoptic post-processing of one window (see the module's overlap rule).

    ``logits`` [Q, 3] (galaxy, void, no object), ``boxes`` [Q, 4] normalised (cx, cy, w, h),
    ``mask_logits`` [Q, h, w] (resampled bilinearly to ``size`` = (H, W)).
    """
    prob = logits.float().softmax(-1)
    score, cls = prob[:, :2].max(-1)
    keep = (prob.argmax(-1) != 2) & (score >= score_threshold)
    saturated = bool(int(keep.sum()) >= logits.shape[0] - 1)
    H, W = size
    if not bool(keep.any()):
        return WindowSegments(np.zeros(size, np.int32), np.zeros(0, np.float32), np.zeros((0, 4), np.float32),
                              np.zeros(size, np.float32), saturated)
    masks = nn.functional.interpolate(mask_logits[keep][None].float(), size=size, mode="bilinear",
                                      align_corners=False)[0].sigmoid()
    weighted = masks * score[keep][:, None, None]
    best, owner = weighted.max(0)
    owner_mask = masks.gather(0, owner[None])[0]
    is_galaxy = cls[keep] == GALAXY
    fg = (owner_mask > mask_threshold) & is_galaxy[owner]
    gal = torch.nonzero(is_galaxy).flatten()
    # Query k (kept, galaxy) -> label 1..n in kept order; void or unowned pixels -> 0.
    lut = torch.zeros(int(keep.sum()) + 1, dtype=torch.int32)
    lut[gal] = torch.arange(1, gal.numel() + 1, dtype=torch.int32)
    labels = torch.where(fg, lut[owner], torch.zeros((), dtype=torch.int32)).numpy()
    b = boxes[keep][gal].float()
    yx = torch.stack([(b[:, 1] - b[:, 3] / 2) * H, (b[:, 0] - b[:, 2] / 2) * W,
                      (b[:, 1] + b[:, 3] / 2) * H, (b[:, 0] + b[:, 2] / 2) * W], 1).numpy()
    return WindowSegments(labels, score[keep][gal].numpy().astype(np.float32), yx.astype(np.float32),
                          torch.where(fg, best, torch.zeros(())).numpy().astype(np.float32), saturated)


def paint_by_score(shape: tuple[int, int], objects: list[tuple[float, int, int, np.ndarray, np.ndarray]],
                   min_area: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Paint ``objects`` (score, y0, x0, bool mask, box) into one int32 map in descending score;
    each takes only unclaimed pixels and is dropped below ``min_area`` pixels. Returns (labels
    with IDs 1..n, indices of the kept objects in ID order)."""
    labels = np.zeros(shape, np.int32)
    kept: list[int] = []
    for i in sorted(range(len(objects)), key=lambda k: -objects[k][0]):
        _, y0, x0, mask, _ = objects[i]
        sl = (slice(y0, y0 + mask.shape[0]), slice(x0, x0 + mask.shape[1]))
        take = mask & (labels[sl] == 0)
        if take.sum() < min_area:
            continue
        kept.append(i)
        labels[sl][take] = len(kept)
    return labels, np.asarray(kept, np.int64)


@register
class DetrSegmenter(WindowedDetector):
    """Segmenter around a trained DETR panoptic model (see the module notes)."""

    name = "detr"
    file_format = FORMAT
    shipped_model = SHIPPED_MODEL
    options = {
        "score_threshold": "lowest class probability of a kept query (0-1)",
        "mask_threshold": "mask probability that makes a pixel part of an object (0-1)",
        "overlap": "overlap of neighbouring windows, in pixels",
        **WINDOW_OPTIONS,
    }
    train_options = {"window": "window (training crop and inference) size in px (default 128)",
                     "widths": "ResNet widths per stage, e.g. 16/32/64/128", "d_model": "transformer width (default 64)",
                     "layers": "encoder and decoder layers (default 2)", "heads": "attention heads (default 8)",
                     "queries": "object queries per window (default: max(32, 2 x the densest crop))",
                     "ffn": "feed-forward width (default 256)"}

    def __init__(self, variant: str = "snr", window: int = 128, overlap: int = 32, batch_size: int = 8,
                 score_threshold: float = 0.5, mask_threshold: float = 0.5, min_area: int = 5,
                 device: str | None = None, halo: int = 64) -> None:
        self.variant, self.window, self.overlap, self.batch_size = variant, window, overlap, batch_size
        self.score_threshold, self.mask_threshold, self.min_area = score_threshold, mask_threshold, min_area
        self.device, self.halo = device, halo
        self.net_: nn.Module | None = None

    @classmethod
    def build_network(cls, config: dict[str, Any]) -> nn.Module:
        return build_detr(config["in_channels"], **{k: v for k, v in config.items() if k != "in_channels"})

    @classmethod
    def train(cls, request: TrainRequest) -> str:
        from astrostatlearn.training.detr import train_detr_request

        return train_detr_request(request)

    def run_warnings(self, counters: dict[str, int]) -> list[str]:
        n = counters.get(SATURATED, 0)
        if not n:
            return []
        q = self.net_.config["queries"] if self.net_ is not None else "?"
        return [f"{n} DETR windows used all {q} queries and may have lost objects: use a model with more "
                "queries (train -p queries=N) or a smaller window"]

    # -- inference ---------------------------------------------------------------------------
    def segment_windows(self, image: np.ndarray) -> tuple[list[tuple[float, int, int, np.ndarray, np.ndarray]], int]:
        """Objects over ``image`` [C, y, x] by overlapping windows: ((score, y0, x0, mask, box
        (y0, x0, y1, x1) in image pixels) per object owned by its window, windows at the query limit)."""
        ny, nx = image.shape[1:]
        win = self.window
        objects, saturated = [], 0
        with torch.inference_mode():
            for chunk, batch in self.window_batches(image):
                with torch.autocast(batch.device.type, enabled=batch.device.type == "cuda"):
                    out = self.net_(batch)
                for j, (y0, x0, ysh, xsh) in enumerate(chunk):
                    ws = window_segments(out.logits[j].cpu(), out.pred_boxes[j].cpu(), out.pred_masks[j].cpu(),
                                         (win, win), self.score_threshold, self.mask_threshold)
                    saturated += ws.saturated
                    objects += _owned(ws, y0, x0, ysh, xsh, (ny, nx))
        return objects, saturated

    def predict(self, tile: Tile) -> Prediction:
        image = np.where(tile.valid[None], tile.image, 0.0).astype(np.float32)
        objects, saturated = self.segment_windows(image)
        shape = tile.valid.shape
        pad = (max(self.window, shape[0]), max(self.window, shape[1]))
        labels, kept = paint_by_score(pad, objects, self.min_area)
        labels = np.where(tile.valid, labels[:shape[0], :shape[1]], 0).astype(np.int32)
        score_map = np.zeros(shape, np.float32)
        ids = np.arange(1, kept.size + 1)
        scores = np.array([objects[i][0] for i in kept], np.float32)
        score_map[labels > 0] = np.concatenate([[0.0], scores])[labels[labels > 0]]
        boxes = np.array([objects[i][4] for i in kept], np.float32).reshape(-1, 4)
        inst = Instances(ids, scores, boxes=boxes, classes=np.ones(kept.size, np.int64))
        return Prediction(labels, score_map, inst, counters={SATURATED: int(saturated)})


def _owned(ws: WindowSegments, y0: int, x0: int, ybounds: tuple[float, float], xbounds: tuple[float, float],
           shape: tuple[int, int]) -> list[tuple[float, int, int, np.ndarray, np.ndarray]]:
    """The objects of one window whose mask's bounding-box centre lies in its share of the image
    (and inside ``shape``); a mask centre, unlike DETR's regressed box, always lies on the object."""
    from scipy import ndimage

    out = []
    for k, sl in enumerate(ndimage.find_objects(ws.labels)):
        if sl is None:
            continue
        b = ws.boxes[k] + np.array([y0, x0, y0, x0], np.float32)
        cy, cx = y0 + (sl[0].start + sl[0].stop) / 2, x0 + (sl[1].start + sl[1].stop) / 2
        if not (ybounds[0] <= cy < ybounds[1] and xbounds[0] <= cx < xbounds[1] and cy < shape[0] and cx < shape[1]):
            continue
        out.append((float(ws.scores[k]), y0 + sl[0].start, x0 + sl[1].start, ws.labels[sl] == k + 1, b))
    return out
