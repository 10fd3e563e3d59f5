"""A CPU inference engine for the torch networks: OpenVINO, compiled once per network and input shape.

PyTorch stays the reference path (``engine='torch'``, and always on a GPU); the tests check that the
compiled network agrees with it. On a CPU with bf16 support (AVX-512 BF16, AMX) OpenVINO's default
precision is bf16, about 10x PyTorch's float32 speed on 2 cores for the U-Net; ``precision='f32'``
keeps float32 (about 3x).
"""

from __future__ import annotations

import threading
import warnings
from typing import Any

import numpy as np
import torch
from torch import nn

from astrostatlearn.errors import InputError

ENGINES = ("auto", "torch", "openvino")
PRECISIONS = ("auto", "bf16", "f32")


def openvino_available() -> bool:
    try:
        import openvino  # noqa: F401
    except ImportError:
        return False
    return True


def check_precision(precision: str) -> None:
    if precision not in PRECISIONS:
        raise InputError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")


def resolve_engine(engine: str, device: torch.device) -> str:
    """``'torch'`` or ``'openvino'`` for ``engine`` on ``device`` (``'auto'``: OpenVINO on a CPU when
    it is installed)."""
    if engine not in ENGINES:
        raise InputError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    if engine == "auto":
        return "openvino" if device.type == "cpu" and openvino_available() else "torch"
    if engine == "openvino":
        if device.type != "cpu":
            raise InputError(f"engine 'openvino' runs on the CPU, not on {device.type}; use engine=torch")
        if not openvino_available():
            raise InputError("engine 'openvino' needs the openvino package (pip install openvino)")
    return engine


class _Sigmoid(nn.Module):
    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.net(x))


class CompiledNetwork:
    """``sigmoid(net(x))`` compiled by OpenVINO for one input shape ``[N, C, H, W]`` (float32 in,
    float32 out). Thread-safe: each calling thread gets its own infer request."""

    def __init__(self, net: nn.Module, shape: tuple[int, int, int, int], precision: str = "auto",
                 threads: int | None = None) -> None:
        import openvino as ov

        check_precision(precision)
        self.shape = shape
        # Tracing a small example is enough for a fully convolutional network (and 3x faster than
        # tracing the real shape); the model is then compiled for the real shape. The trace is ours,
        # without the tracer's re-run check (which alone imports torch.distributed: 1 s).
        small = (1, shape[1], min(shape[2], 64), min(shape[3], 64))
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the tracer's deprecation notices
            traced = torch.jit.trace(_Sigmoid(net.eval()), torch.zeros(small), check_trace=False)
            model = ov.convert_model(traced, input=[list(shape)])
        config: dict[str, Any] = {"INFERENCE_NUM_THREADS": int(threads or torch.get_num_threads()),
                                  "NUM_STREAMS": 1, "PERFORMANCE_HINT": "LATENCY"}
        if precision != "auto":
            config["INFERENCE_PRECISION_HINT"] = precision
        self.compiled = ov.Core().compile_model(model, "CPU", config)
        self.precision = str(self.compiled.get_property("INFERENCE_PRECISION_HINT"))
        self._local = threading.local()

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if tuple(x.shape) != self.shape:
            raise ValueError(f"compiled for {self.shape}, got {tuple(x.shape)}")
        req = getattr(self._local, "request", None)
        if req is None:
            req = self._local.request = self.compiled.create_infer_request()
        return np.array(req.infer({0: np.ascontiguousarray(x, np.float32)})[0], np.float32)


class CompiledCache:
    """Compiled networks of one segmenter, by input shape; dropped with the segmenter (one run)
    and never pickled (a worker compiles its own)."""

    def __init__(self) -> None:
        self._nets: dict[tuple, CompiledNetwork] = {}
        self._lock = threading.Lock()

    def get(self, net: nn.Module, shape: tuple[int, int, int, int], precision: str) -> CompiledNetwork:
        key = (id(net), shape, precision)
        with self._lock:
            if key not in self._nets:
                self._nets[key] = CompiledNetwork(net, shape, precision)
            return self._nets[key]
