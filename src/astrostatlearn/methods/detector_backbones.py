"""Backbones for the detectors: the feature maps under torchvision's FPN, fine to coarse.

Two bodies, chosen by the model config's ``backbone`` key:

* ``"galaxy"`` (:class:`GalaxyBackbone`): a small residual CNN trained from scratch, which
  normalises its input per channel as ``asinh((x - shift) / scale)`` from the training data;
  (maps at strides 4, 8, 16);
* ``"unet"`` (:class:`UNetFeatures`): a frozen, trained U-Net
  (:class:`~astrostatlearn.methods.unet.UNet`; the shipped one) that reads its input as the
  U-Net does (``asinh(x / input_scale)``), with trainable copies of its three coarsest decoder
  stages (maps at strides 2, 4, 8, 16); its own foreground and centre-ness maps join the two
  finest levels, so the detector inherits the U-Net's sensitivity to faint objects and learns
  to separate and box them.

Both expose ``pyramid`` (the names of the maps fed to the FPN, fine to coarse), ``channels``
(their widths), ``anchor_sizes`` (per FPN level, the pooled one last) and
``set_input_stats(shift, scale)``.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn


class ResBlock(nn.Module):
    """Two 3x3 convolutions with BatchNorm and a residual connection; ``stride`` 2 halves the size."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout))
        self.skip = (nn.Identity() if stride == 1 and cin == cout else
                     nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)))
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.body(x) + self.skip(x))


class GalaxyBackbone(nn.Module):
    """Residual CNN: ``[N, C, H, W]`` -> feature maps ``c1``..``c4`` at strides 2, 4, 8, 16.

    The first layer normalises the input per channel: ``asinh((x - shift) / scale)``, with
    ``shift`` and ``scale`` (buffers) set from the training data.
    """

    pyramid = ("c2", "c3", "c4")
    anchor_sizes = ((4, 6), (8, 12), (16, 24), (32, 48))  # px, per FPN level: strides 4, 8, 16, pooled 32

    def __init__(self, in_channels: int, widths: tuple[int, ...] = (16, 32, 48, 64)) -> None:
        super().__init__()
        self.register_buffer("shift", torch.zeros(in_channels))
        self.register_buffer("scale", torch.ones(in_channels))
        self.stem = nn.Sequential(nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False), nn.BatchNorm2d(widths[0]),
                                  nn.ReLU(inplace=True))
        layers, cin = [], widths[0]
        for w in widths:
            layers.append(nn.Sequential(ResBlock(cin, w, 2), ResBlock(w, w)))
            cin = w
        self.layers = nn.ModuleList(layers)
        self.channels = list(widths[1:])

    def set_input_stats(self, shift: torch.Tensor, scale: torch.Tensor) -> None:
        """Per-channel robust median and sigma of the training inputs."""
        self.shift.copy_(shift)
        self.scale.copy_(scale)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        x = torch.asinh((x - self.shift[None, :, None, None]) / self.scale[None, :, None, None])
        x = self.stem(x)
        out = {}
        for i, layer in enumerate(self.layers):
            x = layer(x)
            out[f"c{i + 1}"] = x
        return out


class UNetFeatures(nn.Module):
    """A trained U-Net (``unet_config``, depth 4) as a detector body: maps ``s2``, ``s4``, ``s8`` and
    ``s16`` with 2w + 2, 4w + 2, 8w and 16w channels (w: the U-Net width).

    * ``unet``: the whole U-Net, frozen (no gradient; BatchNorm statistics kept in train mode).
      Its encoder gives the skips and the bottleneck ``s16``; its full output, the foreground
      and centre-ness probabilities at full resolution, max-pooled to strides 2 and 4, is
      appended to ``s2`` and ``s4``, so the detector sees what the U-Net sees, down to objects of
      a few pixels. The full-resolution maps are also returned as ``maps`` [N, 2, H, W], for
      the detector's masks to be drawn at the U-Net's resolution and its own objects to be
      proposed to the box head.
    * ``up``/``dec``: trainable copies of the U-Net's first three decoder stages (stride 16 -> 8
      -> 4 -> 2), started from its weights, which give ``s8`` and the rest of ``s4`` and ``s2``.
      The stride-2 level places boxes of 3-10 px finely enough for mask IoU > 0.5.
    """

    pyramid = ("s2", "s4", "s8", "s16")
    # Anchors (px) per FPN level, strides 2, 4, 8, 16 and the pooled 32: 4 px boxes get anchors every 2 px.
    anchor_sizes = ((4, 6), (8, 12), (16, 24), (32, 48), (64, 96))

    def __init__(self, unet_config: dict[str, Any]) -> None:
        super().__init__()
        from astrostatlearn.methods.unet import UNet

        if unet_config.get("depth", 4) != 4:
            raise ValueError("a U-Net backbone needs a depth-4 U-Net (bottleneck at stride 16)")
        self.unet = UNet(**unet_config)
        self.unet_config = dict(self.unet.config)
        self.up, self.dec = copy.deepcopy(self.unet.up[:3]), copy.deepcopy(self.unet.dec[:3])
        width, n_maps = self.unet_config["width"], self.unet_config["out_channels"]
        self.channels = [2 * width + n_maps, 4 * width + n_maps, 8 * width, 16 * width]
        self.freeze(True)

    def freeze(self, frozen: bool = True) -> None:
        """Freeze the U-Net (the default), or release it to train with the rest (from scratch)."""
        self.frozen = frozen
        for p in self.unet.parameters():
            p.requires_grad_(not frozen)
        self.train(self.training)

    def train(self, mode: bool = True) -> "UNetFeatures":
        super().train(mode)
        if self.frozen:
            self.unet.eval()
        return self

    def set_input_stats(self, shift: torch.Tensor, scale: torch.Tensor) -> None:
        """Ignored: the input is read as the U-Net reads it, ``asinh(x / input_scale)``."""

    def load_unet(self, state_dict: dict[str, torch.Tensor]) -> None:
        """Take a trained U-Net's weights (its ``state_dict``) for the frozen U-Net and the decoder copies."""
        self.unet.load_state_dict(state_dict)
        self.up.load_state_dict(self.unet.up[:3].state_dict())
        self.dec.load_state_dict(self.unet.dec[:3].state_dict())

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        u = self.unet
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen):
            h = torch.asinh(x / u.input_scale)
            skips = []
            for i, block in enumerate(u.down):
                h = block(h if i == 0 else u.pool(h))
                skips.append(h)
            y = skips[-1]
            for k, (up, dec) in enumerate(zip(u.up, u.dec)):
                y = dec(torch.cat([up(y), skips[-2 - k]], dim=1))
            maps = torch.sigmoid(u.head(y))
        out = {"s16": skips[-1]}
        y = skips[-1]
        for k, (up, dec, name) in enumerate(zip(self.up, self.dec, ("s8", "s4", "s2"))):
            y = dec(torch.cat([up(y), skips[-2 - k]], dim=1))
            out[name] = y
        for name, stride in (("s2", 2), ("s4", 4)):
            out[name] = torch.cat([out[name], nn.functional.max_pool2d(maps, stride)], dim=1)
        out["maps"] = maps
        return out


class FPNBackbone(nn.Module):
    """A body with torchvision's FeaturePyramidNetwork on top: ``out_channels`` maps named
    ``"0"``, ``"1"``, ... (one per ``body.pyramid`` map, fine to coarse) plus the extra block's."""

    def __init__(self, body: nn.Module, out_channels: int, extra: Any) -> None:
        super().__init__()
        from torchvision.ops.feature_pyramid_network import FeaturePyramidNetwork

        self.body = body
        self.fpn = FeaturePyramidNetwork(list(body.channels), out_channels, extra_blocks=extra())
        self.out_channels = out_channels

    def features(self, x: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
        """(the FPN maps, the body's full-resolution (foreground, centre-ness) probabilities
        [N, 2, H, W], or None where the body has none: the ``galaxy`` body)."""
        feats = self.body(x)
        return self.fpn({str(i): feats[k] for i, k in enumerate(self.body.pyramid)}), feats.get("maps")

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.features(x)[0]

    def level_names(self) -> list[str]:
        """The names of the FPN maps, fine to coarse: one per body level, then the extra block's."""
        names = [str(i) for i in range(len(self.body.pyramid))]
        extra = self.fpn.extra_blocks
        return names + (["pool"] if extra is not None else [])


def build_body(in_channels: int, backbone: str, widths: tuple[int, ...], unet_config: dict[str, Any] | None
               ) -> nn.Module:
    """The body named ``backbone`` (``"galaxy"`` or ``"unet"``) for ``in_channels`` inputs."""
    if backbone == "galaxy":
        return GalaxyBackbone(in_channels, tuple(widths))
    if backbone == "unet":
        cfg = dict(unet_config or {})  # the U-Net's own defaults: width 16, depth 4
        cfg["in_channels"] = in_channels
        return UNetFeatures(cfg)
    raise ValueError(f"unknown backbone {backbone!r} (galaxy or unet)")
