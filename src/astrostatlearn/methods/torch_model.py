"""What the PyTorch methods share: a network in ``net_``, its model file, and the device."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from astrostatlearn.errors import InputError
from astrostatlearn.methods.base import Segmenter


# The options every windowed torch method takes (``segment -p NAME=VALUE``), beside its own.
WINDOW_OPTIONS = {
    "min_area": "smallest object kept, in pixels",
    "batch_size": "windows per inference batch",
    "device": "torch device (default: cuda when available, else cpu)",
}


class TorchSegmenter(Segmenter):
    """Base of the torch methods. Subclasses set ``file_format`` and implement :meth:`build_network`
    (a network from its ``config`` dict, which the network carries as ``net.config``).

    The model file (``torch.save``, weights as float16, cast back to float32 on load) records the
    method, the package version, the variant, the input channels, the parameters and the config.
    ``config_params``: parameters taken from the network's config rather than from the file's
    parameters (e.g. the window a detector was built for).
    """

    file_format: ClassVar[str] = ""
    config_params: ClassVar[tuple[str, ...]] = ()
    variant: str
    device: str | None
    net_: nn.Module | None

    @classmethod
    def build_network(cls, config: dict[str, Any]) -> nn.Module:
        raise NotImplementedError

    @classmethod
    def from_network(cls, net: nn.Module, variant: str, **params: Any) -> "TorchSegmenter":
        seg = cls(variant=variant, **{k: net.config[k] for k in cls.config_params}, **params)
        seg.net_ = net.eval()
        return seg

    @property
    def is_fitted(self) -> bool:
        return self.net_ is not None

    @property
    def trained_variant(self) -> str | None:
        return self.variant if self.net_ is not None else None

    def save(self, path: str | Path) -> Path:
        from astrostatlearn import __version__
        from astrostatlearn.field import atomic_write_bytes

        if self.net_ is None:
            raise InputError(f"{self.name} has no network to save")
        buf = io.BytesIO()
        torch.save({"format": self.file_format, "method": self.name, "version": __version__,
                    "variant": self.variant, "channels": self.net_.config["in_channels"],
                    "params": self.get_params(), "config": self.net_.config,
                    "state_dict": {k: (v.half() if v.is_floating_point() else v).cpu()
                                   for k, v in self.net_.state_dict().items()}}, buf)
        return atomic_write_bytes(path, buf.getvalue(), overwrite=True)

    @classmethod
    def from_blob(cls, blob: dict[str, Any], source: str) -> "TorchSegmenter":
        if blob.get("format") != cls.file_format:
            raise InputError(f"not an astrostatlearn {cls.name} model file", source)
        net = cls.build_network(blob["config"])
        net.load_state_dict({k: (v.float() if v.is_floating_point() else v) for k, v in blob["state_dict"].items()})
        known = cls().get_params()
        params = {k: v for k, v in blob["params"].items() if k in known and k not in cls.config_params}
        return cls.from_network(net, **params)

    @classmethod
    def load_file(cls, source: str | Path) -> "TorchSegmenter":
        """Load a model file of this method (any other model file is refused)."""
        from astrostatlearn.methods.base import load_segmenter

        seg = load_segmenter(source)
        if not isinstance(seg, cls):
            raise InputError(f"a {seg.name} model, not a {cls.name} model", source)
        return seg

    def _device(self) -> torch.device:
        if self.device:
            return torch.device(self.device)
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
