"""The one interface every segmentation method implements, and the registry of methods.

Follows scikit-learn's estimator conventions: parameters are keyword arguments of ``__init__``
stored unchanged, fitted state lives in attributes ending in ``_``, ``fit`` returns ``self``.
Methods see one :class:`Tile` at a time, never the whole field.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Sequence

import joblib
import numpy as np

from astrostatlearn.errors import InputError
from astrostatlearn.field.windows import Window


@dataclass
class Tile:
    """A window of the field as a method sees it. Arrays are ``[y, x]`` (``image`` is ``[C, y, x]``).

    ``image``: the input variant's channels; ``bkg``/``err``: background and 1-sigma noise of
    channel 0, in the same units; ``valid``: finite input pixels; ``window``: position in the
    field (0-based); ``truth``: int32 truth labels, for training only.
    """

    image: np.ndarray
    bkg: np.ndarray
    err: np.ndarray
    valid: np.ndarray
    window: Window
    channels: tuple[str, ...] = ("img",)
    truth: np.ndarray | None = None

    @property
    def signal(self) -> np.ndarray:
        """Background-subtracted channel 0."""
        return self.image[0] - self.bkg


@dataclass
class Prediction:
    """int32 instance labels (0 = background) and, where the method has one, a float32 score in [0, 1]."""

    labels: np.ndarray
    score: np.ndarray | None = None


class Segmenter:
    """Base class: subclasses set ``name``, implement :meth:`predict` and, if they learn, :meth:`fit`.

    ``halo`` (pixels) is the context a tile needs around its core for the method's filters.
    ``needs_fit``: the method must be fitted before predicting (supervised or not).
    ``supervised``: fitting needs truth labels. ``default_scheduler``: how the whole-field driver
    runs tiles unless told otherwise ("processes", or "threads" for methods that parallelise inside).
    """

    name: ClassVar[str] = ""
    default_scheduler: ClassVar[str] = "processes"
    needs_fit: ClassVar[bool] = False
    supervised: ClassVar[bool] = False
    halo: int = 32

    def get_params(self) -> dict[str, Any]:
        sig = inspect.signature(type(self).__init__)
        return {k: getattr(self, k) for k in sig.parameters if k != "self"}

    @property
    def is_fitted(self) -> bool:
        return not self.needs_fit or any(k.endswith("_") and not k.startswith("_") for k in vars(self))

    def fit(self, train: Sequence[Tile], val: Sequence[Tile] | None = None) -> "Segmenter":
        """Learn from training tiles (no-op for methods without a model)."""
        return self

    def predict(self, tile: Tile) -> Prediction:
        raise NotImplementedError

    def save(self, path: str | Path) -> Path:
        """Save parameters and fitted state (joblib)."""
        from astrostatlearn.field import check_writable

        p = check_writable(path, overwrite=True)
        p.parent.mkdir(parents=True, exist_ok=True)
        state = {k: v for k, v in vars(self).items() if k.endswith("_")}
        joblib.dump({"method": self.name, "params": self.get_params(), "state": state}, p)
        return p

    @classmethod
    def load(cls, path: str | Path) -> "Segmenter":
        return load_segmenter(path)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"


SEGMENTERS: dict[str, type[Segmenter]] = {}


def register(cls: type[Segmenter]) -> type[Segmenter]:
    """Class decorator: add a Segmenter to the registry under ``cls.name``."""
    SEGMENTERS[cls.name] = cls
    return cls


BUILTIN_METHODS = ("forest", "kmeans", "photutils", "sep", "unet")


def make_segmenter(name: str, **params: Any) -> Segmenter:
    """A new, unfitted segmenter by registry name."""
    _load_builtin(name)
    if name not in SEGMENTERS:
        known = sorted(set(SEGMENTERS) | set(BUILTIN_METHODS))
        raise InputError(f"unknown method {name!r}; choose from {', '.join(known)}")
    try:
        return SEGMENTERS[name](**params)
    except TypeError as exc:
        raise InputError(f"bad parameters for method {name!r}: {exc}") from None


def load_segmenter(path: str | Path) -> Segmenter:
    """Load a segmenter saved with :meth:`Segmenter.save` (or a method's own format)."""
    p = Path(path)
    if not p.exists():
        raise InputError("model file not found", p)
    with open(p, "rb") as fh:
        magic = fh.read(2)
    if magic == b"PK":  # torch.save archives are zip files
        _load_builtin("unet")
        return SEGMENTERS["unet"].load_file(p)  # type: ignore[attr-defined]
    _load_builtin()
    try:
        blob = joblib.load(p)
    except Exception as exc:  # joblib/pickle raise many types for foreign files
        raise InputError(f"not a saved astrostatlearn model ({type(exc).__name__})", p) from None
    if not isinstance(blob, dict) or not {"method", "params", "state"} <= set(blob):
        raise InputError("not a saved astrostatlearn model", p)
    seg = make_segmenter(blob["method"], **blob["params"])
    for k, v in blob["state"].items():
        setattr(seg, k, v)
    return seg


def _load_builtin(name: str | None = None) -> None:
    """Register the built-in methods; the U-Net (and torch) only when ``name`` asks for it."""
    import astrostatlearn.methods  # noqa: F401

    if name == "unet":
        import astrostatlearn.methods.unet  # noqa: F401
