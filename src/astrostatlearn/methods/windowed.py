"""What the windowed detectors (``maskrcnn``, ``detr``) share: their declarations, option checks,
and the overlapping windows they run over a tile, each window owning a share of it."""

from __future__ import annotations

from typing import Any, ClassVar, Iterator

import numpy as np
import torch
from torch import nn

from astrostatlearn.errors import InputError
from astrostatlearn.methods.base import Prediction, Tile
from astrostatlearn.methods.isophote import check_isophote, cut_then_trim
from astrostatlearn.methods.significance import check_min_snr
from astrostatlearn.methods.torch_model import TorchSegmenter


def window_starts(size: int, window: int, overlap: int) -> list[int]:
    """Start offsets of windows of ``window`` px overlapping by ``overlap`` px that cover ``size``."""
    if size <= window:
        return [0]
    stride = max(1, window - overlap)
    starts = list(range(0, size - window + 1, stride))
    if starts[-1] + window < size:
        starts.append(size - window)
    return starts


def share_bounds(starts: list[int], window: int, size: int) -> list[tuple[float, float]]:
    """Each window's share of the axis: from the midpoint of its overlap with the previous window
    to the midpoint of its overlap with the next (the ends reach the axis ends)."""
    out = []
    for k, s in enumerate(starts):
        lo = 0.0 if k == 0 else (s + starts[k - 1] + window) / 2.0
        hi = float(size) if k == len(starts) - 1 else (starts[k + 1] + s + window) / 2.0
        out.append((lo, hi))
    return out


def paste_share(out: np.ndarray, window_map: np.ndarray, y0: int, x0: int, y_share: tuple[float, float],
                x_share: tuple[float, float]) -> None:
    """Copy into ``out`` (in place) the pixels of ``window_map``, a window placed at (``y0``, ``x0``),
    whose centres lie in the window's share (:func:`share_bounds`): the shares of a tile's windows
    partition it, so every pixel comes from exactly one window."""
    h, w = window_map.shape
    ya, yb = max(int(np.ceil(y_share[0] - 0.5)), y0), min(int(np.ceil(y_share[1] - 0.5)), y0 + h, out.shape[0])
    xa, xb = max(int(np.ceil(x_share[0] - 0.5)), x0), min(int(np.ceil(x_share[1] - 0.5)), x0 + w, out.shape[1])
    if yb > ya and xb > xa:
        out[ya:yb, xa:xb] = window_map[ya - y0:yb - y0, xa - x0:xb - x0]


class WindowedDetector(TorchSegmenter):
    """Base of the detectors that run a network over overlapping ``window``-sized windows.

    Subclasses keep ``variant``, ``window``, ``overlap``, ``batch_size``, ``score_threshold``,
    ``mask_threshold``, ``foreground_weight``, ``min_area``, ``min_snr``, ``isophote``, ``device``
    and ``halo`` as parameters.
    """

    config_params: ClassVar[tuple[str, ...]] = ("window",)
    default_scheduler: ClassVar[str] = "threads"  # torch parallelises inside each tile and releases the GIL
    needs_fit: ClassVar[bool] = True
    supervised: ClassVar[bool] = True
    default_variant: ClassVar[str] = "snr"
    fraction_options: ClassVar[tuple[str, ...]] = ("score_threshold", "mask_threshold", "foreground_weight")  # in [0, 1]
    window: int
    overlap: int
    batch_size: int
    min_snr: float | None
    isophote: float | None

    @classmethod
    def from_network(cls, net: nn.Module, variant: str, **params: Any) -> "WindowedDetector":
        seg = super().from_network(net, variant, **params)
        seg.overlap = min(seg.overlap, seg.window // 4)  # a small window (a test model) overlaps by a quarter
        return seg  # type: ignore[return-value]

    def check_options(self) -> None:
        for k in self.fraction_options:
            if not 0.0 <= getattr(self, k) <= 1.0:
                raise InputError(f"{k} must be in [0, 1], got {getattr(self, k)}")
        if not 0 <= self.overlap < self.window:
            raise InputError(f"overlap {self.overlap} must be in [0, the window {self.window})")
        check_min_snr(self.min_snr)
        check_isophote(self.isophote)

    def apply_cuts(self, prediction: Prediction, tile: Tile) -> Prediction:
        """``prediction`` after the U-Net's two cuts: without its objects below ``min_snr``
        (:mod:`~astrostatlearn.methods.significance`), and with the rest's masks trimmed to the
        ``isophote`` (:mod:`~astrostatlearn.methods.isophote`); the records of the objects that go
        and the score-map pixels that go are dropped too, the IDs of the rest are kept."""
        labels = cut_then_trim(prediction.labels, tile, self.min_snr, self.isophote)
        if labels is prediction.labels:
            return prediction
        gone = (labels == 0) & (prediction.labels > 0)
        score = None if prediction.score is None else np.where(gone, 0.0, prediction.score).astype(np.float32)
        inst = prediction.instances
        if inst is not None:
            inst = inst.take(np.intersect1d(inst.ids, np.unique(labels[labels > 0])))
        return Prediction(labels, score, inst, dict(prediction.counters))

    def window_batches(self, image: np.ndarray) -> Iterator[tuple[list[tuple[int, int, tuple[float, float], tuple[float, float]]], torch.Tensor]]:
        """Batches of windows over ``image`` [C, y, x] (zero-padded to one window where smaller):
        ([(y0, x0, y share, x share) per window], tensor [B, C, window, window] on the device),
        with the network in eval mode on the device; the channel count is checked first."""
        if self.net_ is None:
            raise InputError(f"{self.name} is not fitted: pass --model (or use a shipped model where there is one)")
        net, dev, win = self.net_, self._device(), self.window
        net.to(dev).eval()
        c, ny, nx = image.shape
        if c != net.config["in_channels"]:
            raise InputError(f"this {self.name} model takes {net.config['in_channels']} channels, the input has {c}")
        img = np.pad(image, ((0, 0), (0, max(win - ny, 0)), (0, max(win - nx, 0))))
        H, W = img.shape[1:]
        ys, xs = window_starts(H, win, self.overlap), window_starts(W, win, self.overlap)
        yb, xb = share_bounds(ys, win, H), share_bounds(xs, win, W)
        jobs = [(ys[iy], xs[ix], yb[iy], xb[ix]) for iy in range(len(ys)) for ix in range(len(xs))]
        for b0 in range(0, len(jobs), self.batch_size):
            chunk = jobs[b0:b0 + self.batch_size]
            yield chunk, torch.from_numpy(np.stack([img[:, y:y + win, x:x + win] for y, x, _, _ in chunk])).float().to(dev)
