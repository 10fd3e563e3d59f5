"""The one interface every segmentation method implements, and the registry of methods.

Follows scikit-learn's estimator conventions: parameters are keyword arguments of ``__init__``
stored unchanged, fitted state lives in attributes ending in ``_``, ``fit`` returns ``self``.
Methods see one :class:`Tile` at a time, never the whole field.
"""

from __future__ import annotations

import importlib
import inspect
import io
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar, Sequence

import numpy as np

from astrostatlearn.errors import InputError
from astrostatlearn.field.windows import Window
from astrostatlearn.methods.registry import BUILTIN_METHODS


@dataclass
class Tile:
    """A window of the field as a method sees it. Arrays are ``[y, x]`` (``image`` is ``[C, y, x]``).

    ``image``: the input variant's channels; ``bkg``/``err``: background and 1-sigma noise of
    channel 0, in the same units; ``valid``: finite input pixels; ``window``: position in the
    field (0-based); ``truth``: int32 truth labels, for training only; ``want_score``: whether
    the caller uses the per-pixel score map (a method may skip computing it when False, as
    ``segment --no-score`` asks); ``all_valid``: every pixel is valid (found when not given), so
    a method can skip its masking passes.
    """

    image: np.ndarray
    bkg: np.ndarray
    err: np.ndarray
    valid: np.ndarray
    window: Window
    channels: tuple[str, ...] = ("img",)
    truth: np.ndarray | None = None
    want_score: bool = True
    all_valid: bool | None = None

    def __post_init__(self) -> None:
        if self.all_valid is None:
            self.all_valid = bool(np.all(self.valid))

    @property
    def signal(self) -> np.ndarray:
        """Background-subtracted channel 0."""
        return self.image[0] - self.bkg

    def network_input(self, local_background: bool = False) -> np.ndarray:
        """float32 ``image`` as a network reads it: non-finite pixels 0; with ``local_background``,
        channel 0 minus ``bkg`` (the field's background mesh), as SExtractor subtracts its background."""
        image = self.image
        if local_background:
            image = image.copy()
            image[0] -= self.bkg
        return np.where(self.valid[None], image, 0.0).astype(np.float32)

    def zero_invalid(self, values: np.ndarray) -> np.ndarray:
        """float32 ``values`` (``[y, x]`` or ``[C, y, x]``) with 0 at invalid pixels; no masking
        pass (and no copy of float32 input) when every pixel is valid."""
        if self.all_valid:
            return np.asarray(values, np.float32)
        return np.where(self.valid, values, 0.0).astype(np.float32)


@dataclass
class Instances:
    """Per-object records of a :class:`Prediction`, aligned with the IDs in its ``labels``.

    ``ids``: int32 (> 0); ``scores``: float32 in [0, 1] (the method's confidence that the object
    is real); ``boxes``: optional ``[N, 4]`` float32 ``(y0, x0, y1, x1)`` in window pixels
    (0-based, end-exclusive); ``classes``: optional int class per object (1 = galaxy).
    """

    ids: np.ndarray
    scores: np.ndarray
    boxes: np.ndarray | None = None
    classes: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.ids = np.asarray(self.ids, np.int32).reshape(-1)
        self.scores = np.clip(np.asarray(self.scores, np.float32).reshape(-1), 0.0, 1.0)
        if self.scores.size != self.ids.size:
            raise ValueError(f"{self.ids.size} instance IDs but {self.scores.size} scores")
        if self.boxes is not None:
            self.boxes = np.asarray(self.boxes, np.float32).reshape(-1, 4)
        if self.classes is not None:
            self.classes = np.asarray(self.classes, np.int64).reshape(-1)
        for name in ("boxes", "classes"):
            v = getattr(self, name)
            if v is not None and len(v) != self.ids.size:
                raise ValueError(f"{self.ids.size} instance IDs but {len(v)} {name}")

    def __len__(self) -> int:
        return int(self.ids.size)

    def take(self, ids: np.ndarray, new_ids: np.ndarray | None = None,
             shift: tuple[int, int] = (0, 0)) -> "Instances":
        """Records of ``ids`` (in that order; IDs without a record get score 0), renamed to
        ``new_ids`` and with boxes shifted by ``shift`` = (dy, dx)."""
        ids = np.asarray(ids, np.int64).reshape(-1)
        order = np.argsort(self.ids, kind="stable")
        at = np.minimum(np.searchsorted(self.ids[order], ids), max(self.ids.size - 1, 0))
        have = (self.ids[order][at] == ids) if self.ids.size else np.zeros(ids.size, bool)
        idx = np.where(have, order[at] if self.ids.size else 0, -1)
        scores = np.where(have, self.scores[np.maximum(idx, 0)] if self.ids.size else 0.0, 0.0)
        boxes = classes = None
        if self.boxes is not None:
            boxes = np.where(have[:, None], self.boxes[np.maximum(idx, 0)] if self.ids.size else np.nan, np.nan)
            boxes = (boxes + np.array([shift[0], shift[1], shift[0], shift[1]], np.float32)).astype(np.float32)
        if self.classes is not None:
            classes = np.where(have, self.classes[np.maximum(idx, 0)] if self.ids.size else 0, 0)
        return Instances(ids if new_ids is None else new_ids, scores, boxes, classes)


@dataclass
class Prediction:
    """What a method returns for a tile.

    ``labels``: int32 instance map (0 = background), with any overlap between the method's
    instances already resolved by its own stated rule; ``score``: optional float32 per-pixel
    score in [0, 1]; ``instances``: optional per-object records (scores, boxes, classes) for
    methods that have them, such as detectors; ``counters``: the method's own tallies for the
    tile (e.g. windows that hit a detector's query limit), summed over tiles into ``run.json``
    (``method_counters``) and turned into warnings by :meth:`Segmenter.run_warnings`.
    """

    labels: np.ndarray
    score: np.ndarray | None = None
    instances: Instances | None = None
    counters: dict[str, int] = field(default_factory=dict)

    def object_scores(self, ids: np.ndarray) -> np.ndarray:
        """Per-object scores of ``ids``: the method's own where it gives them, else the mean of the
        score map over each object, else NaN."""
        pix = np.flatnonzero(self.labels.ravel() != 0)  # object pixels only (a bool scan: 10x faster)
        return object_scores(pix, self.labels.ravel()[pix], ids, self.score, self.instances)


def object_scores(pix: np.ndarray, lab: np.ndarray, ids: np.ndarray, score: np.ndarray | None = None,
                  instances: Instances | None = None) -> np.ndarray:
    """The rule of :meth:`Prediction.object_scores`, from the labelled pixels: ``pix`` (flat
    indices into the score map) and their IDs ``lab``."""
    ids = np.asarray(ids, np.int64)
    if instances is not None:
        return instances.take(ids).scores.astype(float)
    if score is not None and ids.size:
        n = max(int(lab.max(initial=0)), int(ids.max())) + 1
        total = np.bincount(lab, weights=np.asarray(score).ravel()[pix].astype(np.float64), minlength=n)
        with np.errstate(invalid="ignore", divide="ignore"):
            return total[ids] / np.bincount(lab, minlength=n)[ids]
    return np.full(ids.size, np.nan)


@dataclass(frozen=True)
class TrainRequest:
    """What ``astrostatlearn train`` asks of a method: the fields, the output and the shared settings.

    ``fields``: field folders with truth; ``fractions``: train/val/test split of each field;
    ``params``: the method's own trainer options (see ``Segmenter.train_options``). The loop
    settings (``epochs`` ... ``resume``) apply to learned methods that use the shared loop.
    """

    fields: tuple[Path, ...]
    out: Path
    variant: str | None = None
    fractions: tuple[float, float, float] = (0.7, 0.15, 0.15)
    seed: int = 0
    overwrite: bool = False
    epochs: int = 30
    batch: int = 16
    steps: int | None = None
    lr: float | None = None
    patch: int = 256
    device: str | None = None
    resume: bool = False
    snapshot_every: int = 0
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        """Refuse impossible settings before any work (one line each)."""
        import math

        for name, value, low in (("--epochs", self.epochs, 1), ("--batch", self.batch, 1), ("--patch", self.patch, 16),
                                 ("--snapshot-every", self.snapshot_every, 0)):
            if value < low:
                raise InputError(f"{name} must be >= {low}, got {value}")
        if self.steps is not None and self.steps < 1:
            raise InputError(f"--steps must be >= 1 (or 0 for all), got {self.steps}")
        if self.lr is not None and not (math.isfinite(self.lr) and self.lr > 0):
            raise InputError(f"--lr must be a positive number, got {self.lr}")
        if not self.fields:
            raise InputError("give at least one --field")


class Segmenter:
    """Base class: subclasses set ``name``, implement :meth:`predict` and, if they learn, :meth:`fit`.

    Everything code outside ``methods/`` needs to know about a method is declared here, so the
    CLI, the benchmark and the demo never branch on a method's name:

    ``halo`` (pixels): the context a tile needs around its core for the method's filters.
    ``default_tile`` (pixels): the tile core size ``segment`` uses unless told (bigger tiles
    spend less on halos and per-tile work; memory per worker grows as its square).
    ``needs_fit``: the method must be fitted before predicting (supervised or not).
    ``supervised``: fitting needs truth labels. ``default_scheduler``: how the whole-field driver
    runs tiles unless told otherwise ("processes", or "threads" for methods that parallelise
    inside). ``shipped_model``: a model file in ``astrostatlearn/data`` used when no model is
    given (None: a new instance). ``default_variant``: the input variant used when none is given
    and the model does not fix one. ``options``: parameters a user may set at segmentation time
    (``segment -p NAME=VALUE``), name -> help. ``train_options``: the trainer's own options
    (``train -p NAME=VALUE``), name -> help. ``background_sample``: the pixel step the
    whole-field background mesh is measured with for the method (1: every pixel; see
    :meth:`~astrostatlearn.segment.background.BackgroundMesh.from_field`).
    """

    name: ClassVar[str] = ""
    background_sample: ClassVar[int] = 1
    default_scheduler: ClassVar[str] = "processes"
    needs_fit: ClassVar[bool] = False
    supervised: ClassVar[bool] = False
    shipped_model: ClassVar[str | None] = None
    default_variant: ClassVar[str] = "raw"
    options: ClassVar[dict[str, str]] = {}
    train_options: ClassVar[dict[str, str]] = {}
    halo: int = 32
    default_tile: ClassVar[int] = 1024

    def get_params(self) -> dict[str, Any]:
        sig = inspect.signature(type(self).__init__)
        return {k: getattr(self, k) for k in sig.parameters if k != "self"}

    def set_params(self, **params: Any) -> "Segmenter":
        """Set parameters (scikit-learn style); unknown names raise InputError."""
        known = self.get_params()
        for k, v in params.items():
            if k not in known:
                raise InputError(f"method {self.name!r} has no parameter {k!r}; it has {', '.join(sorted(known))}")
            setattr(self, k, v)
        return self

    def set_options(self, options: dict[str, str]) -> "Segmenter":
        """Apply user options given as text (``NAME=VALUE`` from the CLI), checked against
        :attr:`options` and converted to the type of the current value."""
        new = {}
        for k, text in options.items():
            if k not in self.options:
                have = ", ".join(sorted(self.options)) or "none"
                raise InputError(f"method {self.name!r} has no option {k!r} (its options: {have})")
            new[k] = convert_option(text, getattr(self, k), k)
        old = {k: getattr(self, k) for k in new}
        self.set_params(**new)
        try:
            self.check_options()
        except InputError:
            self.set_params(**old)  # a refused option leaves the segmenter as it was
            raise
        return self

    def check_options(self) -> None:
        """Raise InputError when a parameter is out of range (subclasses check their own)."""

    def run_warnings(self, counters: dict[str, int]) -> list[str]:
        """Warnings for a whole-field run, from the :attr:`Prediction.counters` summed over its
        tiles (none by default)."""
        return []

    @property
    def is_fitted(self) -> bool:
        return not self.needs_fit or any(k.endswith("_") and not k.startswith("_") for k in vars(self))

    @property
    def trained_variant(self) -> str | None:
        """The input variant a fitted model expects (None: any variant)."""
        return getattr(self, "variant_", None)

    def fit(self, train: Sequence[Tile], val: Sequence[Tile] | None = None) -> "Segmenter":
        """Learn from training tiles (no-op for methods without a model)."""
        return self

    def predict(self, tile: Tile) -> Prediction:
        raise NotImplementedError

    @classmethod
    def default(cls) -> "Segmenter":
        """The segmenter used when no model file is given: the shipped model, else a new one."""
        if cls.shipped_model is None:
            return cls()
        ref = resources.files("astrostatlearn.data") / cls.shipped_model
        if not ref.is_file():
            raise InputError(f"the shipped {cls.name} model is missing from this installation")
        with ref.open("rb") as fh:
            return load_segmenter_bytes(fh.read(), f"<shipped {cls.name} model>")

    @classmethod
    def train(cls, request: TrainRequest) -> str:
        """Train from ``request`` and save the model to ``request.out``; returns a one-line summary.

        The default fits on tiles of the training band of one field (classical methods); learned
        methods override it with their trainer on the shared loop.
        """
        from astrostatlearn.training.tiles import fit_on_train_tiles

        return fit_on_train_tiles(cls, request)

    def save(self, path: str | Path) -> Path:
        """Save parameters and fitted state (joblib), with the method, variant and package version."""
        import io

        from astrostatlearn import __version__
        from astrostatlearn.field import atomic_write_bytes

        state = {k: v for k, v in vars(self).items() if k.endswith("_")}
        buf = io.BytesIO()
        import joblib

        joblib.dump({"method": self.name, "params": self.get_params(), "state": state, "version": __version__,
                     "variant": self.trained_variant}, buf)
        return atomic_write_bytes(path, buf.getvalue(), overwrite=True)  # never a half-written model

    @classmethod
    def from_blob(cls, blob: dict[str, Any], source: str) -> "Segmenter":
        """Rebuild from a loaded model file (joblib dict by default; torch methods override)."""
        seg = cls(**blob["params"])
        for k, v in blob["state"].items():
            setattr(seg, k, v)
        return seg

    @classmethod
    def load(cls, path: str | Path) -> "Segmenter":
        return load_segmenter(path)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"


def convert_option(text: str, current: Any, name: str) -> Any:
    """``text`` converted to the type of ``current`` (bool, int, float or str; an unset optional
    becomes a number where the text is one, else stays text; ``none`` unsets it)."""
    try:
        if isinstance(current, bool):
            if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(text)
            return text.lower() in ("true", "1", "yes")
        if isinstance(current, int):
            return int(text)
        if isinstance(current, float):
            return None if text.lower() == "none" else float(text)
    except ValueError:
        raise InputError(f"option {name}={text!r}: expected a {type(current).__name__}") from None
    if current is None:  # an unset optional: a number where the text is one, else the text
        if text.lower() == "none":
            return None
        try:
            return float(text)
        except ValueError:
            return text
    return text


def check_positive_or_none(name: str, value: Any) -> None:
    """Raise :class:`InputError` unless the option ``name`` is None or a positive number (not a bool)."""
    if value is not None and not (isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0):
        raise InputError(f"{name} must be a positive number or none, got {value!r}")


SEGMENTERS: dict[str, type[Segmenter]] = {}

def register(cls: type[Segmenter]) -> type[Segmenter]:
    """Class decorator: add a Segmenter to the registry under ``cls.name``."""
    SEGMENTERS[cls.name] = cls
    return cls


def method_names() -> list[str]:
    """Every known method name (built-in and registered), in registry order."""
    return list(BUILTIN_METHODS) + [n for n in SEGMENTERS if n not in BUILTIN_METHODS]


def resolve_variant(seg: Segmenter, variant: str | None) -> str:
    """The input variant for ``seg``: the model's own (a different one is refused), else the
    requested one, else the method's default."""
    trained = seg.trained_variant
    if trained and variant and variant != trained:
        raise InputError(f"this {seg.name} model was trained on variant {trained!r}, not {variant!r}; "
                         f"drop --variant or pass a model trained on {variant!r}")
    return variant or trained or seg.default_variant


def benchmarkable(name: str) -> bool:
    """Whether ``benchmark`` can run method ``name`` with no model file: it needs no fitting, has a
    shipped model, or learns from the field's own tiles (its class implements :meth:`Segmenter.fit`:
    k-means, the forest). A detector trained only by ``astrostatlearn train`` with no shipped model
    cannot (none of the built-in ones since DETR ships a model).

    Examples
    --------
    >>> from astrostatlearn.methods import benchmarkable
    >>> benchmarkable("sep"), benchmarkable("forest"), benchmarkable("detr")
    (True, True, True)
    """
    cls = method_class(name)
    return not cls.needs_fit or cls.shipped_model is not None or cls.fit is not Segmenter.fit


def ready_methods() -> list[str]:
    """Methods that run on any image as they come: no fitting, an unsupervised fit on the image
    itself, or a shipped model (everything but supervised methods without one).

    Returns
    -------
    list of str
        Method names, in registry order.

    Examples
    --------
    >>> from astrostatlearn.methods import ready_methods
    >>> "sep" in ready_methods() and "forest" not in ready_methods()
    True
    """
    return [n for n in method_names()
            if not (method_class(n).needs_fit and method_class(n).supervised and not method_class(n).shipped_model)]


def method_class(name: str) -> type[Segmenter]:
    """The Segmenter class registered under ``name`` (imports its module on first use)."""
    if name not in SEGMENTERS and name in BUILTIN_METHODS:
        importlib.import_module(BUILTIN_METHODS[name])
    if name not in SEGMENTERS:
        raise InputError(f"unknown method {name!r}; choose from {', '.join(method_names())}")
    return SEGMENTERS[name]


def make_segmenter(name: str, **params: Any) -> Segmenter:
    """A new, unfitted segmenter by registry name."""
    cls = method_class(name)
    try:
        return cls(**params)
    except TypeError as exc:
        raise InputError(f"bad parameters for method {name!r}: {exc}") from None


def parse_method_spec(text: str) -> tuple[str, dict[str, str]]:
    """A method and its options in one string: ``"unet:min_snr=7:tta=4"`` ->
    ``("unet", {"min_snr": "7", "tta": "4"})`` (each option as ``-p NAME=VALUE`` gives it), so
    one run can compare settings of a method. The name, the option names and their values are
    checked here, before any work (InputError).

    Examples
    --------
    >>> from astrostatlearn.methods import parse_method_spec
    >>> parse_method_spec("unet:min_snr=7")
    ('unet', {'min_snr': '7'})
    """
    name, *items = [t.strip() for t in text.split(":")]
    options: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise InputError(f"method {text!r}: options look like NAME:OPTION=VALUE[:OPTION=VALUE...], got {item!r}")
        options[key.strip()] = value.strip()
    make_segmenter(name).set_options(options)  # unknown names and bad values fail here
    return name, options


def default_segmenter(name: str) -> Segmenter:
    """The segmenter ``name`` as used without a model file (its shipped model, if it has one).

    Parameters
    ----------
    name : str
        A registered method (``astrostatlearn methods`` lists them).

    Returns
    -------
    Segmenter
        A fresh instance, with the method's shipped model loaded when it has one.

    Raises
    ------
    InputError
        An unknown method name.

    Examples
    --------
    >>> from astrostatlearn.methods import default_segmenter
    >>> seg = default_segmenter("sep")
    >>> seg.name, seg.needs_fit
    ('sep', False)
    """
    return method_class(name).default()


def load_segmenter(path: str | Path) -> Segmenter:
    """Load a model file saved by any method (joblib or torch format); the file names its method."""
    p = Path(path)
    if not p.exists():
        raise InputError("model file not found", p)
    if p.is_dir():
        raise InputError("model is a directory, not a file", p)
    return load_segmenter_bytes(p.read_bytes(), str(p))


def load_segmenter_bytes(payload: bytes, source: str) -> Segmenter:
    """Load a model from its file contents; ``source`` names it in errors."""
    blob: Any = None
    if payload[:2] == b"PK":  # torch.save archives are zip files
        import torch

        try:
            blob = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises many types for foreign or damaged files
            raise InputError(f"not a readable astrostatlearn model ({type(exc).__name__})", source) from None
    else:
        try:
            import joblib

            blob = joblib.load(io.BytesIO(payload))
        except Exception as exc:  # joblib/pickle raise many types for foreign files
            raise InputError(f"not a saved astrostatlearn model ({type(exc).__name__})", source) from None
    if isinstance(blob, dict) and "method" not in blob and str(blob.get("format", "")).startswith("astrostatlearn-"):
        blob["method"] = str(blob["format"]).split("-")[1]  # files written before "method" was recorded
    if not isinstance(blob, dict) or not isinstance(blob.get("method"), str):
        raise InputError("not a saved astrostatlearn model", source)
    try:
        cls = method_class(blob["method"])
    except InputError:
        raise InputError(f"model of unknown method {blob['method']!r}", source) from None
    try:
        return cls.from_blob(blob, source)
    except InputError:
        raise
    except Exception as exc:  # a damaged or mismatched state
        raise InputError(f"damaged {blob['method']} model ({type(exc).__name__}: {exc})", source) from None
