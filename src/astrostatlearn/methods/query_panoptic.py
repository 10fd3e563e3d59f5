"""What the query-based panoptic models (``detr``, ``mask2former``) share: per-query class and
mask logits to one window's objects, windows to a tile's objects, and the overlap rules.

Both models give, per window, ``Q`` queries with logits over (``galaxy``, ``void``, no object)
and a mask logit map each. **Window rule** (DETR's and Mask2Former's panoptic post-processing):
a query is kept when its ``galaxy`` or ``void`` probability is at least ``score_threshold``
(from 0.5 up that is the panoptic rule, the most probable class is not "no object"; a lower
threshold also keeps less confident queries, as DETR's detection post-processing does); each
pixel goes to the kept query with the highest ``class probability x mask probability``,
provided that query's mask probability there exceeds ``mask_threshold``; pixels of void queries
are background. Where the network has a first stage with a full-resolution foreground (a seeded
DETR's U-Net), the owner's probability blends it in inside the owner's box (``foreground_weight``,
:func:`window_segments`). **Across windows** an object belongs
to the window that owns its mask's bounding-box centre (the Voronoi split of overlapping
windows), and objects are painted in descending score, each taking only unclaimed pixels; an
object left with fewer than ``min_area`` pixels is dropped. Each object's score is its
``galaxy`` class probability, in [0, 1]. Boxes are (y0, x0, y1, x1) in pixels, half-open.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from astrostatlearn.methods.base import Instances, Prediction, Tile, TrainRequest
from astrostatlearn.methods.isophote import ISOPHOTE, OPTION_HELP as ISOPHOTE_HELP
from astrostatlearn.methods.significance import MIN_SNR, OPTION_HELP as SNR_HELP
from astrostatlearn.methods.torch_model import WINDOW_OPTIONS
from astrostatlearn.methods.windowed import WindowedDetector

GALAXY, VOID = 0, 1  # class indices; index 2 is "no object"
SATURATED = "windows_at_query_limit"


def small_resnet_config(in_channels: int, widths: list[int]) -> Any:
    """A transformers ``ResNetConfig`` backbone built from scratch: one basic block per stage of
    ``widths`` channels, every stage an output feature."""
    from transformers import ResNetConfig

    return ResNetConfig(num_channels=in_channels, embedding_size=widths[0], hidden_sizes=list(widths),
                        depths=[1] * len(widths), layer_type="basic",
                        out_features=[f"stage{i + 1}" for i in range(len(widths))])


class QueryNetwork(nn.Module):
    """Base of the query models' networks: the ``config`` dict (with ``in_channels``), the input
    normalisation from the training data (``asinh((x - shift) / scale)`` per channel: buffers
    ``shift`` and ``scale``, set by the trainer) and a slower backbone (``param_groups_lr``)."""

    backbone_lr = 0.5

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        self.config = dict(config)
        self.register_buffer("shift", torch.zeros(self.config["in_channels"]))
        self.register_buffer("scale", torch.ones(self.config["in_channels"]))

    def normalise(self, images: torch.Tensor) -> torch.Tensor:
        return torch.asinh((images - self.shift[None, :, None, None]) / self.scale[None, :, None, None])

    def backbone(self) -> nn.Module:
        raise NotImplementedError

    def param_groups_lr(self) -> list[tuple[list[nn.Parameter], float]]:
        """(trainable parameters, learning-rate factor): the backbone at ``backbone_lr``, as DETR
        trains it; a group with no trainable parameter is left out."""
        backbone = [p for p in self.backbone().parameters() if p.requires_grad]
        ids = {id(p) for p in self.backbone().parameters()}
        rest = [p for p in self.parameters() if id(p) not in ids and p.requires_grad]
        return [(group, f) for group, f in ((backbone, self.backbone_lr), (rest, 1.0)) if group]


@dataclass
class WindowSegments:
    """One window's objects after the panoptic post-processing.

    ``labels`` [H, W] int32 (1..n, 0 = background or void); ``scores`` [n] galaxy probability;
    ``boxes`` [n, 4] (y0, x0, y1, x1) in window pixels; ``prob`` [H, W] the owner's class x mask
    probability (0 on background); ``saturated``: the kept queries reached the query limit.
    """

    labels: np.ndarray
    scores: np.ndarray
    boxes: np.ndarray
    prob: np.ndarray
    saturated: bool


def mask_boxes(labels: np.ndarray, n: int) -> np.ndarray:
    """[n, 4] (y0, x0, y1, x1) bounding boxes of labels 1..n (zeros for a label with no pixel)."""
    from scipy import ndimage

    out = np.zeros((n, 4), np.float32)
    for k, sl in enumerate(ndimage.find_objects(labels, max_label=n)):
        if sl is not None:
            out[k] = (sl[0].start, sl[1].start, sl[0].stop, sl[1].stop)
    return out


@dataclass
class WindowOutputs:
    """A network's outputs for a batch of B windows: class ``logits`` [B, Q, 3], ``boxes`` [B, Q, 4]
    normalised (cx, cy, w, h) or None, ``masks`` logits [B, Q, h, w], ``over`` [B] bool (the
    windows where the network met more objects than it can hold, as DETR's seeded queries) or
    None, and ``foreground`` [B, H, W], a first stage's full-resolution foreground probability
    (the seeded DETR's U-Net) or None."""

    logits: torch.Tensor
    boxes: torch.Tensor | None
    masks: torch.Tensor
    over: np.ndarray | None = None
    foreground: torch.Tensor | None = None


def box_masks(boxes: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """[K, H, W] bool: the pixels whose centres lie in each of ``boxes`` [K, 4] normalised (cx, cy, w, h)."""
    H, W = size
    ys = (torch.arange(H, dtype=torch.float32) + 0.5) / H
    xs = (torch.arange(W, dtype=torch.float32) + 0.5) / W
    b = boxes.float()
    inside_y = (ys[None] >= (b[:, 1] - b[:, 3] / 2)[:, None]) & (ys[None] < (b[:, 1] + b[:, 3] / 2)[:, None])
    inside_x = (xs[None] >= (b[:, 0] - b[:, 2] / 2)[:, None]) & (xs[None] < (b[:, 0] + b[:, 2] / 2)[:, None])
    return inside_y[:, :, None] & inside_x[:, None, :]


def window_segments(logits: torch.Tensor, boxes: torch.Tensor | None, mask_logits: torch.Tensor,
                    size: tuple[int, int], score_threshold: float = 0.5, mask_threshold: float = 0.5,
                    foreground: torch.Tensor | None = None, foreground_weight: float = 0.0) -> WindowSegments:
    """The window rule (see the module notes) for one window.

    ``logits`` [Q, 3] (galaxy, void, no object); ``boxes`` [Q, 4] normalised (cx, cy, w, h) as
    DETR regresses them, or None (Mask2Former) for the masks' own bounding boxes; ``mask_logits``
    [Q, h, w], resampled bilinearly to ``size`` = (H, W). With ``foreground`` [H, W] and boxes,
    the owner's probability at a pixel is ``(1 - w) * mask + w * foreground`` inside its box and
    ``(1 - w) * mask`` outside (w = ``foreground_weight``), as Mask R-CNN draws its masks.
    """
    prob = logits.float().softmax(-1)
    score, cls = prob[:, :2].max(-1)
    keep = score >= score_threshold
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
    if foreground is not None and boxes is not None and foreground_weight > 0:
        inside = box_masks(boxes[keep], size).gather(0, owner[None])[0]
        owner_mask = (1.0 - foreground_weight) * owner_mask + foreground_weight * foreground.float() * inside
        best = owner_mask * score[keep][owner]
    is_galaxy = cls[keep] == GALAXY
    fg = (owner_mask > mask_threshold) & is_galaxy[owner]
    gal = torch.nonzero(is_galaxy).flatten()
    # Query k (kept, galaxy) -> label 1..n in kept order; void or unowned pixels -> 0.
    lut = torch.zeros(int(keep.sum()) + 1, dtype=torch.int32)
    lut[gal] = torch.arange(1, gal.numel() + 1, dtype=torch.int32)
    labels = torch.where(fg, lut[owner], torch.zeros((), dtype=torch.int32)).numpy()
    if boxes is None:
        yx = mask_boxes(labels, gal.numel())
    else:
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


def owned_objects(ws: WindowSegments, y0: int, x0: int, ybounds: tuple[float, float], xbounds: tuple[float, float],
                  shape: tuple[int, int]) -> list[tuple[float, int, int, np.ndarray, np.ndarray]]:
    """The objects of one window whose mask's bounding-box centre lies in its share of the image
    (and inside ``shape``); a mask centre, unlike a regressed box, always lies on the object."""
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


class QueryPanopticDetector(WindowedDetector):
    """Base of the query-based panoptic segmenters: subclasses give :meth:`window_outputs` (the
    network's per-query logits of a batch of windows); the parameters, windows, ownership,
    painting, per-object scores and the query-limit warning are shared."""

    options = {
        "score_threshold": "lowest class probability of a kept query (0-1)",
        "mask_threshold": "mask probability that makes a pixel part of an object (0-1)",
        "foreground_weight": "weight of the first stage's full-resolution foreground in each mask inside its box "
                             "(0-1; a seeded DETR's U-Net; ignored by a model without one)",
        "min_snr": SNR_HELP,
        "isophote": ISOPHOTE_HELP,
        "overlap": "overlap of neighbouring windows, in pixels",
        **WINDOW_OPTIONS,
    }

    def __init__(self, variant: str = "snr", window: int = 128, overlap: int = 32, batch_size: int = 8,
                 score_threshold: float = 0.5, mask_threshold: float = 0.5, min_area: int = 5,
                 min_snr: float | None = MIN_SNR, device: str | None = None, halo: int = 64,
                 foreground_weight: float = 0.0, isophote: float | None = ISOPHOTE) -> None:
        self.variant, self.window, self.overlap, self.batch_size = variant, window, overlap, batch_size
        self.score_threshold, self.mask_threshold, self.min_area = score_threshold, mask_threshold, min_area
        self.min_snr, self.device, self.halo = min_snr, device, halo
        self.foreground_weight, self.isophote = foreground_weight, isophote
        self.net_: nn.Module | None = None

    build_model: Callable[..., nn.Module]  # the network from (in_channels, **config)
    trainer: str  # the module whose ``train_request(request)`` runs ``astrostatlearn train``

    @classmethod
    def build_network(cls, config: dict[str, Any]) -> nn.Module:
        return cls.build_model(config["in_channels"], **{k: v for k, v in config.items() if k != "in_channels"})

    @classmethod
    def train(cls, request: TrainRequest) -> str:
        import importlib

        return importlib.import_module(cls.trainer).train_request(request)

    def window_outputs(self, batch: torch.Tensor) -> WindowOutputs:
        """The network's outputs for a batch of windows [B, C, window, window]; ``over`` windows
        are counted with the windows at the query limit."""
        raise NotImplementedError

    def run_warnings(self, counters: dict[str, int]) -> list[str]:
        n = counters.get(SATURATED, 0)
        if not n:
            return []
        q = self.net_.config["queries"] if self.net_ is not None else "?"
        return [f"{n} {self.name} windows used all {q} queries (or met more objects than the model seeds) and may "
                "have lost objects: use a model with more "
                "queries (train -p queries=N, and -p seeds=N for a seeded DETR) or a smaller window"]

    def segment_windows(self, image: np.ndarray) -> tuple[list[tuple[float, int, int, np.ndarray, np.ndarray]], int]:
        """Objects over ``image`` [C, y, x] by overlapping windows: ((score, y0, x0, mask, box
        (y0, x0, y1, x1) in image pixels) per object owned by its window, windows at the query limit)."""
        ny, nx = image.shape[1:]
        win = self.window
        objects: list[Any] = []
        saturated = 0
        with torch.inference_mode():
            for chunk, batch in self.window_batches(image):
                with torch.autocast(batch.device.type, enabled=batch.device.type == "cuda"):
                    out = self.window_outputs(batch)
                for j, (y0, x0, ysh, xsh) in enumerate(chunk):
                    ws = window_segments(out.logits[j].cpu(), None if out.boxes is None else out.boxes[j].cpu(),
                                         out.masks[j].cpu(), (win, win), self.score_threshold, self.mask_threshold,
                                         None if out.foreground is None else out.foreground[j].cpu(),
                                         self.foreground_weight)
                    saturated += ws.saturated or (out.over is not None and bool(out.over[j]))
                    objects += owned_objects(ws, y0, x0, ysh, xsh, (ny, nx))
        return objects, saturated

    def predict(self, tile: Tile) -> Prediction:
        image = tile.network_input()
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
        return self.apply_cuts(Prediction(labels, score_map, inst, counters={SATURATED: int(saturated)}), tile)
