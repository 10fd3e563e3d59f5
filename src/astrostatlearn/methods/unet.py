"""``unet``: an instance-aware U-Net (PyTorch) with tiled, smoothly blended inference.

The network predicts two maps per pixel: the foreground probability and a *centre-ness* map (the
distance to the object's edge, normalised to 1 at its centre). Touching galaxies are split by a
watershed on the centre-ness inside the foreground, seeded by its cores: regional maxima above
``core_level`` that stand at least ``min_dynamic`` above the saddle to any higher one (each core is
one object; plateau bumps smaller than that do not shatter large galaxies).

The model file (``torch.save``) holds the architecture, the input variant and the weights, so
``segment --method unet --model FILE`` needs nothing else. A small model trained on simulated
fields ships inside the package and is the default.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from scipy import ndimage
from torch import nn

from astrostatlearn.errors import InputError
from astrostatlearn.methods.base import Prediction, Tile, TrainRequest, register
from astrostatlearn.methods.cpu_inference import (ENGINE_OPTIONS, CompiledCache, CompilesForCPU, check_engine_options,
                                                   resolve_engine)
from astrostatlearn.methods.instances import core_seeded_instances
from astrostatlearn.methods.isophote import ISOPHOTE, OPTION_HELP as ISOPHOTE_HELP, check_isophote, cut_then_trim
from astrostatlearn.methods.significance import MIN_SNR, OPTION_HELP as SNR_HELP, check_min_snr
from astrostatlearn.methods.torch_model import WINDOW_OPTIONS, TorchSegmenter

SHIPPED_MODEL = "unet-default.pt"
LOCAL_BACKGROUND = False


class ConvBlock(nn.Sequential):
    def __init__(self, cin: int, cout: int, dropout: float) -> None:
        super().__init__(
            nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
            nn.Dropout2d(dropout) if dropout > 0 else nn.Identity(),
            nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
        )


class UNet(nn.Module):
    """U-Net with BatchNorm and dropout. Input ``[N, C, H, W]`` (H, W multiples of 2**depth after
    padding); output ``[N, 2, H, W]`` logits: foreground and centre-ness.

    ``input_scale``: inputs are compressed as ``asinh(x / input_scale)`` first, so S/N maps from
    shallow and deep data share one dynamic range.
    """

    def __init__(self, in_channels: int = 1, out_channels: int = 2, width: int = 16, depth: int = 4,
                 dropout: float = 0.1, input_scale: float = 3.0) -> None:
        super().__init__()
        self.config = {"in_channels": in_channels, "out_channels": out_channels, "width": width, "depth": depth,
                       "dropout": dropout, "input_scale": input_scale}
        self.input_scale = input_scale
        chans = [width * 2**i for i in range(depth + 1)]
        self.down = nn.ModuleList([ConvBlock(in_channels, chans[0], 0.0)] +
                                  [ConvBlock(chans[i], chans[i + 1], dropout if i + 1 >= depth - 1 else 0.0)
                                   for i in range(depth)])
        self.pool = nn.MaxPool2d(2)
        self.up = nn.ModuleList([nn.ConvTranspose2d(chans[i + 1], chans[i], 2, stride=2) for i in reversed(range(depth))])
        self.dec = nn.ModuleList([ConvBlock(2 * chans[i], chans[i], 0.0) for i in reversed(range(depth))])
        self.head = nn.Conv2d(chans[0], out_channels, 1)

    @property
    def multiple(self) -> int:
        return 2 ** self.config["depth"]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.asinh(x / self.input_scale)
        skips = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else self.pool(x))
            skips.append(x)
        x = skips.pop()
        for up, dec in zip(self.up, self.dec):
            x = dec(torch.cat([up(x), skips.pop()], dim=1))
        return self.head(x)


def instance_targets(instances: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(foreground, centre-ness) training targets from an instance map.

    Centre-ness is each object's distance transform (borders between touching objects count as
    edges), divided by its maximum within the object: 1 at the centre, ~0 at the edge.
    """
    fg = instances > 0
    edge = np.zeros_like(fg)
    for axis in (0, 1):
        d = np.diff(instances, axis=axis) != 0
        if axis == 0:
            edge[1:] |= d
            edge[:-1] |= d
        else:
            edge[:, 1:] |= d
            edge[:, :-1] |= d
    dist = ndimage.distance_transform_edt(fg & ~edge) + fg
    ids = np.unique(instances[fg])
    cen = np.zeros(instances.shape, np.float32)
    if ids.size:
        peak = np.asarray(ndimage.maximum(dist, instances, ids), float)
        lut = np.zeros(int(instances.max()) + 1)
        lut[ids] = peak
        cen[fg] = dist[fg] / np.maximum(lut[instances[fg]], 1.0)
    return fg.astype(np.float32), cen


def blend_window(size: int, overlap: int) -> np.ndarray:
    """2-D weights that fall smoothly (sin^2) to ~0 over ``overlap`` pixels at each edge."""
    ramp = np.ones(size)
    if overlap > 0:
        t = (np.arange(overlap) + 0.5) / overlap
        ramp[:overlap] = np.sin(t * np.pi / 2) ** 2
        ramp[-overlap:] = ramp[:overlap][::-1]
    return np.outer(ramp, ramp).astype(np.float32)


@register
class UNetSegmenter(CompilesForCPU, TorchSegmenter):
    """Segmenter around a trained :class:`UNet`. ``model_state`` holds config + weights (None: the shipped model)."""

    name = "unet"
    file_format = "astrostatlearn-unet-1"
    default_scheduler = "threads"  # torch parallelises inside each tile and releases the GIL
    needs_fit = True
    supervised = True
    shipped_model = SHIPPED_MODEL
    default_variant = "snr"
    # 2048-px tiles: halos cost 1.27x instead of 1.56x, on top of the windows' own overlap (8192^2,
    # 2 cores: 61 s against 80 s, 2.0 GB peak with the threads scheduler against the 3 GB bound)
    default_tile = 2048
    options = {
        "tta": "average over 1, 2, 4 or 8 dihedral transforms (test-time augmentation; that many times slower)",
        "threshold": "foreground probability threshold",
        "core_level": "centre-ness level of an object's core",
        "min_dynamic": "h-maxima depth that separates two cores (none: connected cores)",
        "min_snr": SNR_HELP,
        "isophote": ISOPHOTE_HELP,
        "local_background": "subtract the field's 64-px background mesh from channel 0 first, as SExtractor does "
                            "(gradients, scattered and intracluster light)",
        **ENGINE_OPTIONS,
        "window": "inference window in pixels (a multiple of 16)",
        "overlap": "overlap of neighbouring windows in pixels, blended smoothly",
        **WINDOW_OPTIONS,
    }
    train_options = {"width": "channels of the first level (default 16)", "depth": "down-sampling levels (default 4)",
                     "crop": "random training crop in pixels (default 128; 0 = whole patches)"}

    def __init__(self, variant: str = "snr", window: int = 256, overlap: int = 32, batch_size: int = 8,
                 threshold: float = 0.5, core_level: float = 0.5, min_dynamic: float | None = 0.3,
                 min_area: int = 5, tta: int = 1, device: str | None = None, halo: int = 64,
                 engine: str = "auto", precision: str = "auto", min_snr: float | None = MIN_SNR,
                 local_background: bool = LOCAL_BACKGROUND, isophote: float | None = ISOPHOTE) -> None:
        self.variant, self.window, self.overlap, self.batch_size = variant, window, overlap, batch_size
        self.threshold, self.core_level, self.min_dynamic, self.min_area = threshold, core_level, min_dynamic, min_area
        self.tta, self.device, self.halo = tta, device, halo
        self.engine, self.precision, self.min_snr = engine, precision, min_snr
        self.local_background, self.isophote = local_background, isophote
        self.net_: UNet | None = None
        self._compiled = CompiledCache()

    # -- model handling ---------------------------------------------------------------------
    @classmethod
    def build_network(cls, config: dict[str, Any]) -> UNet:
        return UNet(**config)

    def check_options(self) -> None:
        if self.tta not in (1, 2, 4, 8):
            raise InputError(f"tta must be 1, 2, 4 or 8, got {self.tta}")
        check_min_snr(self.min_snr)
        check_isophote(self.isophote)
        check_engine_options(self.engine, self.precision, self._device())

    @classmethod
    def shipped(cls) -> "UNetSegmenter":
        """The small model trained on simulated fields that ships with the package."""
        return cls.default()  # type: ignore[return-value]

    @classmethod
    def train(cls, request: TrainRequest) -> str:
        from astrostatlearn.training.unet import train_unet_request

        return train_unet_request(request)

    # -- inference ---------------------------------------------------------------------------
    def predict_maps(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(foreground probability, centre-ness) for ``image`` [C, y, x], by overlapping windows
        blended with a smooth weight, batched, in inference mode.

        ``tta`` (1, 2, 4 or 8) averages the maps over that many of the image's dihedral transforms
        (identity, flip, then the rotations); inference time grows by the same factor.
        """
        if self.net_ is None:
            raise InputError("unet is not fitted: pass --model or use the shipped model")
        self.check_options()
        prob = np.zeros(image.shape[1:], np.float32)
        centre = np.zeros(image.shape[1:], np.float32)
        for k in range(self.tta):
            rot, flip = k // 2, k % 2 == 1
            img = np.rot90(image, rot, axes=(1, 2))
            img = np.ascontiguousarray(img[:, :, ::-1] if flip else img)
            p, c = self._predict_maps_once(img)
            if flip:
                p, c = p[:, ::-1], c[:, ::-1]
            prob += np.rot90(p, -rot)
            centre += np.rot90(c, -rot)
        return prob / self.tta, centre / self.tta

    def _predict_maps_once(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        net = self.net_
        dev = self._device()
        net.to(dev).eval()
        c, ny, nx = image.shape
        win = self.window
        m = net.multiple
        win = max(m, (win // m) * m)
        py, px = max(win - ny, 0), max(win - nx, 0)
        img = np.pad(image, ((0, 0), (0, py), (0, px)), mode="reflect" if min(ny, nx) > 1 else "edge")
        H, W = img.shape[1:]
        stride = max(1, win - self.overlap)
        ys = list(range(0, max(H - win, 0) + 1, stride))
        xs = list(range(0, max(W - win, 0) + 1, stride))
        if ys[-1] + win < H:
            ys.append(H - win)
        if xs[-1] + win < W:
            xs.append(W - win)
        weight = blend_window(win, self.overlap)
        acc = np.zeros((2, H, W), np.float32)
        wsum = np.zeros((H, W), np.float32)
        boxes = [(y, x) for y in ys for x in xs]
        infer = self._inference(net, dev, (self.batch_size, c, win, win))
        for b0 in range(0, len(boxes), self.batch_size):
            chunk = boxes[b0:b0 + self.batch_size]
            out = infer(np.stack([img[:, y:y + win, x:x + win] for y, x in chunk]).astype(np.float32))
            for (y, x), o in zip(chunk, out):
                acc[:, y:y + win, x:x + win] += o * weight
                wsum[y:y + win, x:x + win] += weight
        maps = acc / np.maximum(wsum, 1e-6)
        return maps[0, :ny, :nx], maps[1, :ny, :nx]

    def _inference(self, net: UNet, dev: torch.device, shape: tuple[int, int, int, int]):
        """A function from a batch of windows [n <= shape[0], C, H, W] to their sigmoid maps, by the
        resolved engine: OpenVINO (compiled once per run for ``shape``; short batches are padded)
        or PyTorch (the reference; AMP on CUDA)."""
        if resolve_engine(self.engine, dev) == "openvino":
            return self._compiled.get(net, shape, self.precision)  # pads a short batch itself

        def run_torch(batch: np.ndarray) -> np.ndarray:
            with torch.inference_mode(), torch.autocast(dev.type, enabled=dev.type == "cuda"):
                return torch.sigmoid(net(torch.from_numpy(batch).to(dev))).float().cpu().numpy()

        return run_torch

    def postprocess(self, prob: np.ndarray, centre: np.ndarray, valid: np.ndarray) -> np.ndarray:
        """Instances: foreground = prob > threshold, split by a watershed on the centre-ness seeded by
        its cores (see :func:`core_seeded_instances`), so large objects are not shattered."""
        fg = (prob > self.threshold) & valid
        return core_seeded_instances(fg, centre * fg, self.core_level, self.min_area, self.min_dynamic)

    def network_input(self, tile: Tile) -> np.ndarray:
        """The tile's channels as the network reads them (:meth:`Tile.network_input`, with ``local_background``)."""
        return tile.network_input(self.local_background)

    def predict(self, tile: Tile) -> Prediction:
        prob, centre = self.predict_maps(self.network_input(tile))
        prob = np.where(tile.valid, prob, 0.0).astype(np.float32)
        labels = self.postprocess(prob, centre, tile.valid)
        labels = cut_then_trim(labels, tile, self.min_snr, self.isophote)
        return Prediction(labels, np.where(labels > 0, prob, np.minimum(prob, self.threshold)).astype(np.float32))
