"""DETR's first stage: queries seeded by the shipped U-Net (``detr -p seeds=K``).

Two-stage DETRs (Efficient DETR, two-stage Deformable DETR) start their decoder's queries from a
first network's proposals; here the first network is the frozen shipped U-Net, and its instances
are the proposals. The pieces, wrapped around transformers' ``DetrForSegmentation`` parts:

* :func:`seed_boxes`: each window's U-Net instances (its own post-processing), strongest first;
* :class:`ReferencedBoxes`: the box head predicts a correction of each seeded query's box;
* :class:`BoxedAttention`: the mask head's attention map is drawn to each query's predicted box;
* :class:`BoxPriorMasks`: each query's mask starts as the ellipse inscribed in its box.

Boxes are normalised ``(cx, cy, w, h)`` (DETR's); maps and masks are ``[..., y, x]``.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import torch
from scipy import ndimage
from torch import nn

from astrostatlearn.errors import InputError

MASK_PRIOR = 4.0  # logit of the mask prior at a box's centre (0 on its inscribed ellipse)


def seed_boxes(maps: torch.Tensor, k: int, queries: int, rule: dict[str, Any]
               ) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """(boxes [N, queries, 4] float32, seeded [N, queries] bool, overflow [N] bool) from the
    U-Net's maps [N, 2, H, W] (foreground, centre-ness probabilities).

    Each window's objects are the U-Net's instances (foreground above ``rule["threshold"]``,
    split at its centre cores as :func:`~astrostatlearn.methods.instances.core_seeded_instances`
    does with ``rule``'s levels); the ``k`` with the highest foreground x centre-ness give the
    first ``k`` boxes (their bounding boxes). ``overflow``: the window had more than ``k``.
    """
    from astrostatlearn.methods.instances import core_seeded_instances

    n, _, h, w = maps.shape
    boxes = torch.zeros((n, queries, 4))
    seeded = torch.zeros((n, queries), dtype=torch.bool)
    fg, centre = maps[:, 0].float().cpu().numpy(), maps[:, 1].float().cpu().numpy()
    overflow = np.zeros(n, bool)
    for b in range(n):
        strength = fg[b] * centre[b]
        labels = core_seeded_instances(fg[b] > rule["threshold"], strength, rule["core_level"], rule["min_area"],
                                       rule["min_dynamic"])
        found = [(float(strength[sl][labels[sl] == i + 1].max()), sl)
                 for i, sl in enumerate(ndimage.find_objects(labels)) if sl is not None]
        overflow[b] = len(found) > k
        for q, (_, (sy, sx)) in enumerate(sorted(found, key=lambda f: -f[0])[:k]):
            boxes[b, q] = torch.tensor([(sx.start + sx.stop) / 2 / w, (sy.start + sy.stop) / 2 / h,
                                        (sx.stop - sx.start) / w, (sy.stop - sy.start) / h])
            seeded[b, q] = True
    return boxes.to(maps.device), seeded.to(maps.device), overflow


class ReferencedBoxes(nn.Module):
    """DETR's box head for seeded queries: its output (box logits, which DETR passes through a
    sigmoid) plus each query's reference-box logits (``reference`` [N, queries, 4], set for each
    batch by :meth:`GalaxyDetr.inputs`), so a seeded query predicts a box relative to its seed,
    as anchor-based DETRs do. ``reference``, ``last`` (the latest boxes) and ``probs`` (the
    latest class probabilities, at inference) are per thread, since the tiles of a run share one
    network across threads."""

    def __init__(self, head: nn.Module, classifier: nn.Module) -> None:
        super().__init__()
        self.head = head
        self.classifier = [classifier]  # a list: not a second registered copy of DETR's class head
        self._batch = threading.local()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.pop("_batch")
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._batch = threading.local()

    @property
    def reference(self) -> torch.Tensor | None:
        return getattr(self._batch, "reference", None)

    @reference.setter
    def reference(self, value: torch.Tensor | None) -> None:
        self._batch.reference = value

    @property
    def last(self) -> torch.Tensor:
        return self._batch.last

    @property
    def probs(self) -> torch.Tensor:
        return self._batch.probs

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        out = self.head(hidden)
        out = out if self.reference is None else out + self.reference.to(out.dtype)
        self._batch.last = out.detach().sigmoid()  # the final layer's boxes: DETR asks for them before the mask head
        if not self.training:
            self._batch.probs = self.classifier[0](hidden).softmax(-1)
        return out


class BoxedAttention(nn.Module):
    """DETR's mask-head attention map with each query's attention drawn to its own predicted box:
    a Gaussian log-prior over the tokens, centred on the box with the box's half-sides (at least
    half a token) as its widths, is added to the attention logits, so the mask head reads a
    different place for each query (Conditional DETR's lesson: DETR's queries find their place
    slowly from scratch; here the place is given)."""

    def __init__(self, attention: nn.Module, boxes: ReferencedBoxes) -> None:
        super().__init__()
        self.attention = attention
        self.boxes = [boxes]  # a list: not a second registered copy of the box head

    def forward(self, queries: torch.Tensor, memory: torch.Tensor, attention_mask: torch.Tensor | None = None
                ) -> torch.Tensor:
        r2 = box_radius2(self.boxes[0].last.to(memory.dtype), tuple(memory.shape[-2:]))
        prior = (-0.5 * r2)[:, :, None]  # [N, Q, 1, h, w]
        mask = prior if attention_mask is None else attention_mask + prior
        return self.attention(queries, memory, attention_mask=mask)


def box_radius2(box: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """[N, Q, H, W] squared elliptical radius of each cell centre of an H x W grid over the window,
    in units of each box's half-sides (normalised (cx, cy, w, h), [N, Q, 4]; half-sides of at
    least half a cell): 0 at the box's centre, 1 on its inscribed ellipse."""
    h, w = size
    y = (torch.arange(h, device=box.device, dtype=box.dtype) + 0.5) / h
    x = (torch.arange(w, device=box.device, dtype=box.dtype) + 0.5) / w
    ry = torch.clamp(box[..., 3] / 2, min=0.5 / h)[..., None, None]
    rx = torch.clamp(box[..., 2] / 2, min=0.5 / w)[..., None, None]
    return ((y[:, None] - box[..., 1, None, None]) / ry) ** 2 + ((x[None, :] - box[..., 0, None, None]) / rx) ** 2


def box_logits(box: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """[N, Q, H, W] logits of the ellipse inscribed in each box (:func:`box_radius2`):
    :data:`MASK_PRIOR` at the centre, 0 on the ellipse, down to -10 outside."""
    return torch.clamp(MASK_PRIOR * (1 - box_radius2(box, size)), min=-10.0)


class BoxPriorMasks(nn.Module):
    """DETR's mask head for seeded queries: its output plus the logits of the ellipse inscribed in
    the query's predicted box (:func:`box_logits`), so a query's mask starts as its box's ellipse
    and the head learns the galaxy's shape as a correction.

    ``floor`` (inference only; None: every query): the head runs only for the queries whose
    galaxy or void probability reaches it, the others' masks being logits of -10 plus the prior.
    The panoptic rule reads no other mask when ``floor`` is its score threshold, and the head
    (GroupNorm, per query) gives those masks as it would with every query, for a fraction of its
    cost (the head is most of DETR's time)."""

    def __init__(self, head: nn.Module, boxes: "ReferencedBoxes") -> None:
        super().__init__()
        self.head = head
        self.boxes = [boxes]  # a list: not a second registered copy of the box head
        self.floor: float | None = None

    def forward(self, features: torch.Tensor, attention_masks: torch.Tensor, fpn_features: list[torch.Tensor]
                ) -> torch.Tensor:
        if self.training or self.floor is None:
            out = self.head(features=features, attention_masks=attention_masks, fpn_features=fpn_features)
        else:
            out = self._kept_masks(features, attention_masks, fpn_features)
        prior = box_logits(self.boxes[0].last.to(out.dtype), tuple(out.shape[-2:]))
        return out + prior.flatten(0, 1)[:, None]

    def _kept_masks(self, features: torch.Tensor, attention_masks: torch.Tensor, fpn_features: list[torch.Tensor]
                    ) -> torch.Tensor:
        """[N x Q, 1, h, w] mask logits: the head's for the queries at or above ``floor``, -10 elsewhere."""
        n, q = attention_masks.shape[:2]
        keep = self.boxes[0].probs[..., :2].max(-1).values >= self.floor
        out = features.new_full((n * q, 1, *fpn_features[-1].shape[-2:]), -10.0)
        for b in range(n):
            idx = torch.nonzero(keep[b]).flatten()
            if idx.numel():
                out[b * q + idx] = self.head(features=features[b:b + 1], attention_masks=attention_masks[b:b + 1, idx],
                                             fpn_features=[f[b:b + 1] for f in fpn_features]).to(out.dtype)
        return out


def shipped_seeder(config: dict[str, Any]) -> nn.Module:
    """The frozen U-Net that seeds the queries: built from ``config["unet"]`` (a saved model's,
    whose weights come with its state), or, when that is None, the shipped U-Net, config and
    weights, which then go into ``config``."""
    from astrostatlearn.methods.unet import UNet, UNetSegmenter

    if config["unet"] is None:
        shipped = UNetSegmenter.shipped()
        if shipped.net_.config["in_channels"] != config["in_channels"]:
            raise InputError(f"seeds need the shipped U-Net's {shipped.net_.config['in_channels']} input channel(s) "
                             f"({shipped.variant!r}), not {config['in_channels']}")
        config["unet"] = dict(shipped.net_.config)
        config["seed_rule"] = {k: getattr(shipped, k) for k in ("threshold", "core_level", "min_area", "min_dynamic")}
        net = UNet(**config["unet"])
        net.load_state_dict(shipped.net_.state_dict())
    else:
        net = UNet(**config["unet"])
    for p in net.parameters():
        p.requires_grad_(False)
    return net.eval()


def sine_embedding(y: torch.Tensor, x: torch.Tensor, dim: int, temperature: float = 10000.0) -> torch.Tensor:
    """[..., dim] sine embedding of normalised positions ``y``, ``x`` in [0, 1] (same shape): half
    the channels for y, half for x, ``sin``/``cos`` at geometric frequencies, as DETR embeds its
    tokens' positions."""
    half = dim // 2
    freq = temperature ** (2 * (torch.arange(half, device=y.device) // 2) / half)
    parts = []
    for v in (y, x):
        a = v[..., None] * 2 * torch.pi / freq
        parts.append(torch.where(torch.arange(half, device=y.device) % 2 == 0, a.sin(), a.cos()))
    return torch.cat(parts, dim=-1)
