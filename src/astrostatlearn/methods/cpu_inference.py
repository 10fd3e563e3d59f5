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


ENGINE_OPTIONS = {
    "engine": f"inference engine, one of {', '.join(ENGINES)} (auto: OpenVINO on a CPU, PyTorch on a GPU)",
    "precision": f"OpenVINO precision, one of {', '.join(PRECISIONS)} (auto: bf16 where the CPU has it)",
}


def check_engine_options(engine: str, precision: str, device: torch.device) -> None:
    """One clear error for a bad ``engine`` or ``precision`` (or OpenVINO asked for on a GPU)."""
    check_precision(precision)
    resolve_engine(engine, device)


class SigmoidOutput(nn.Module):
    """``sigmoid(net(x))``: a segmentation network's probabilities, as one module to compile."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.net(x))


class CompiledNetwork:
    """A fully convolutional ``net`` (one tensor, or a tuple of them, out) compiled by OpenVINO for
    one input shape ``[N, C, H, W]`` (float32 in, float32 out). Thread-safe: each calling thread
    gets its own infer request."""

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
            traced = torch.jit.trace(net.eval(), torch.zeros(small), check_trace=False)
            model = ov.convert_model(traced, input=[list(shape)])
        config: dict[str, Any] = {"INFERENCE_NUM_THREADS": int(threads or torch.get_num_threads()),
                                  "NUM_STREAMS": 1, "PERFORMANCE_HINT": "LATENCY"}
        if precision != "auto":
            config["INFERENCE_PRECISION_HINT"] = precision
        self.compiled = ov.Core().compile_model(model, "CPU", config)
        self.precision = str(self.compiled.get_property("INFERENCE_PRECISION_HINT"))
        self._local = threading.local()

    def outputs(self, x: np.ndarray) -> list[np.ndarray]:
        """Every output of the network for a batch ``x`` of at most the compiled batch size (a short
        batch is padded with zeros, and its outputs cut back)."""
        n = x.shape[0]
        if tuple(x.shape[1:]) != self.shape[1:] or n > self.shape[0]:
            raise ValueError(f"compiled for {self.shape}, got {tuple(x.shape)}")
        if n < self.shape[0]:
            x = np.concatenate([x, np.zeros((self.shape[0] - n, *x.shape[1:]), x.dtype)])
        req = getattr(self._local, "request", None)
        if req is None:
            req = self._local.request = self.compiled.create_infer_request()
        out = req.infer({0: np.ascontiguousarray(x, np.float32)})
        return [np.array(out[k], np.float32)[:n] for k in range(len(self.compiled.outputs))]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """The network's (first) output for ``x``."""
        return self.outputs(x)[0]


class CompiledCache:
    """Compiled networks of one segmenter, by network, input shape and precision; dropped with the
    segmenter (one run) and never pickled (a worker compiles its own)."""

    def __init__(self) -> None:
        self._nets: dict[tuple, CompiledNetwork] = {}
        self._lock = threading.Lock()

    def get(self, net: nn.Module, shape: tuple[int, int, int, int], precision: str,
            wrap: type[nn.Module] = SigmoidOutput) -> CompiledNetwork:
        """``wrap(net)`` (by default ``sigmoid(net(x))``) compiled for ``shape``, once."""
        key = (id(net), shape, precision, wrap)
        with self._lock:
            if key not in self._nets:
                self._nets[key] = CompiledNetwork(wrap(net), shape, precision)
            return self._nets[key]


class CompilesForCPU:
    """Mixin of the segmenters that compile their networks for the CPU: their ``_compiled``
    cache stays in the process that built it (a pickled copy, e.g. for a worker, starts empty)."""

    _compiled: CompiledCache

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_compiled"] = None  # compiled networks stay in the process that built them
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state, _compiled=CompiledCache())
