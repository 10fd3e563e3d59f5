"""The named input variants, computed pixel by pixel from global statistics.

| name           | channels        | definition |
| -------------- | --------------- | ---------- |
| ``raw``        | img             | the image as read (non-finite pixels set to 0) |
| ``norm``       | img             | linear normalisation to [0, 1] on the robust interval [p0.5, p99.5] |
| ``soft``       | img             | "software" stretch: black point median - 1 sigma, white point median + 100 sigma, then asinh (a = 0.02, default), log, sqrt or power, to [0, 1] |
| ``soft+rms``   | img, rms        | ``soft`` plus rms normalised linearly on its robust interval |
| ``soft+rms+log``| img, rms       | ``soft`` plus rms normalised then log-stretched |
| ``snr``        | snr             | (img - global sigma-clipped median) / sky rms (the rms map without the sources' own Poisson noise, :mod:`~astrostatlearn.preprocess.sky_noise`) |
| ``summed``     | img             | the seed's single channel: norm(norm(img) + norm(rms)) |

``soft`` is a reproducible stand-in for the seed's manual FITS Liberator 3 step. All stretches
are astropy.visualization objects. Output is float32 ``[C, y, x]``.
"""

from __future__ import annotations

from dataclasses import dataclass, field as dc_field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from astropy.visualization import BaseStretch

from astrostatlearn.errors import InputError
from astrostatlearn.field import Field, Window
from astrostatlearn.preprocess.sky_noise import SKY_CONTEXT, sky_rms
from astrostatlearn.preprocess.stats import GlobalStats, global_stats

VARIANTS: dict[str, tuple[str, ...]] = {
    "raw": ("img",),
    "norm": ("img",),
    "soft": ("img",),
    "soft+rms": ("img", "rms"),
    "soft+rms+log": ("img", "rms"),
    "snr": ("snr",),
    "summed": ("img+rms",),
}
STRETCHES = ("asinh", "log", "sqrt", "power", "linear")


def channel0_is_image(variant: str) -> bool:
    """Whether channel 0 of ``variant`` is the image itself wherever it is finite (``raw``), so
    it needs no global statistics: the background mesh of such a variant can be measured before
    them, or while they are. False for an unknown name (:func:`fit_variant` refuses it)."""
    return variant == "raw"


def _stretch(name: str, a: float) -> BaseStretch:
    from astropy.visualization import AsinhStretch, LinearStretch, LogStretch, PowerStretch, SqrtStretch

    if name == "asinh":
        return AsinhStretch(a=a)
    if name == "log":
        return LogStretch(a=1.0 / max(a, 1e-6))
    if name == "sqrt":
        return SqrtStretch()
    if name == "power":
        return PowerStretch(a=a)
    if name == "linear":
        return LinearStretch()
    raise InputError(f"unknown stretch {name!r}; choose from {', '.join(STRETCHES)}")


def _scaled(x: np.ndarray, lo: float, hi: float, stretch: BaseStretch) -> np.ndarray:
    """Clip to [lo, hi], map to [0, 1], apply ``stretch``."""
    from astropy.visualization import ManualInterval

    unit = ManualInterval(lo, hi)(x, clip=True)
    return np.asarray(stretch(unit, clip=True), dtype=np.float32)


@dataclass
class Preprocessor:
    """A fitted variant: global statistics plus parameters; :meth:`apply` works on any window.

    Build with :func:`fit_variant`. ``params`` (with the statistics) go in output metadata.
    """

    variant: str
    stats: GlobalStats
    stretch: str = "asinh"
    stretch_a: float = 0.02
    white_sigma: float = 100.0
    log_a: float = 1000.0
    params: dict[str, Any] = dc_field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise InputError(f"unknown variant {self.variant!r}; choose from {', '.join(VARIANTS)}")
        s = self.stats
        black = s.img_median - 1.0 * s.img_std
        white = min(s.img_median + self.white_sigma * s.img_std, s.img_max)
        if white <= black:
            white = black + max(s.img_std, 1e-12)
        self.params = {
            "variant": self.variant, "channels": list(self.channels), "stretch": self.stretch,
            "stretch_a": self.stretch_a, "white_sigma": self.white_sigma, "log_a": self.log_a, "norm_interval": [s.img_lo, s.img_hi],
            "soft_black": black, "soft_white": white, "rms_interval": [s.rms_lo, s.rms_hi],
            "background": s.img_median, "stats": s.as_dict(),
        }

    @property
    def channels(self) -> tuple[str, ...]:
        return VARIANTS[self.variant]

    def apply(self, img: np.ndarray, rms: np.ndarray | None = None, checked: bool = False,
              sky: np.ndarray | None = None, origin: tuple[int, int] = (0, 0)) -> np.ndarray:
        """Variant of an image window (and its rms window): float32 ``[C, y, x]``. Non-finite
        image pixels take the global median, bad rms pixels the global median rms; ``checked``:
        the caller knows every pixel is good, so those passes are skipped. ``sky``: the window's
        :meth:`sky_rms`, when the caller has it already; else computed, with the window's first
        pixel at field position ``origin``. A one-channel variant that is the image itself
        (``raw``) shares the float32 input's memory."""
        img = np.asarray(img, np.float32)
        ok = True if checked else np.isfinite(img)
        if not np.all(ok):  # the where pass only for windows with bad pixels
            img = np.where(ok, img, np.float32(self.stats.img_median))
        if rms is None:
            rms = np.full(img.shape, self.stats.rms_median, np.float32) if self.variant != "raw" else None
        else:
            rms = np.asarray(rms, np.float32)
            ok = True if checked else np.isfinite(rms) & (rms > 0)
            if not np.all(ok):
                rms = np.where(ok, rms, np.float32(self.stats.rms_median))
        p = self.params
        v = self.variant
        if v not in ("raw", "snr"):  # the stretches (astropy.visualization) only where needed
            from astropy.visualization import LinearStretch, LogStretch
        if v == "raw":
            out = [img]
        elif v == "norm":
            out = [_scaled(img, *p["norm_interval"], LinearStretch())]
        elif v.startswith("soft"):
            out = [_scaled(img, p["soft_black"], p["soft_white"], _stretch(self.stretch, self.stretch_a))]
            if v == "soft+rms":
                out.append(_scaled(rms, *p["rms_interval"], LinearStretch()))
            elif v == "soft+rms+log":
                out.append(_scaled(rms, *p["rms_interval"], LogStretch(a=self.log_a)))
        elif v == "snr":
            out = [((img - p["background"]) / (self.sky_rms(img, rms, origin) if sky is None else sky)).astype(np.float32)]
        else:  # summed: the seed's norm(norm(img) + norm(rms))
            s = _scaled(img, *p["norm_interval"], LinearStretch()) + _scaled(rms, *p["rms_interval"], LinearStretch())
            out = [_scaled(s, 0.0, 2.0, LinearStretch())]
        if len(out) == 1:
            return np.asarray(out[0], np.float32)[None]
        return np.stack(out).astype(np.float32, copy=False)

    @property
    def context(self) -> int:
        """Pixels around a pixel that its channels depend on: :data:`~astrostatlearn.preprocess.sky_noise.SKY_CONTEXT`
        for ``snr`` when the rms map carries the sources' Poisson noise, else 0 (pixel by pixel). A
        window's channels equal the whole field's at pixels at least this far from its edges
        (or on the field's own edges)."""
        return SKY_CONTEXT if self.variant == "snr" and self.stats.rms_source_slope > 0 else 0

    @property
    def flux_scale_invariant(self) -> bool:
        """Whether scaling the image about the field's median and the rms by one factor leaves the
        channels unchanged (``snr``)."""
        return self.variant == "snr"

    def sky_rms(self, img: np.ndarray, rms: np.ndarray, origin: tuple[int, int] = (0, 0)) -> np.ndarray:
        """The sky part of ``rms`` (finite, > 0) beside ``img`` (finite), a window whose first pixel
        is at field position ``origin``, as ``snr`` divides by it: ``rms`` itself unless the field's
        rms map carries the sources' Poisson noise (:func:`~astrostatlearn.preprocess.sky_noise.sky_rms`)."""
        return sky_rms(img, rms, self.stats.rms_source_slope, self.params["background"], origin)

    def image_level(self, values: np.ndarray, rms: np.ndarray | None,
                    sky: np.ndarray | None = None) -> np.ndarray | None:
        """Channel-0 ``values`` (a background mesh, say) in image units, for the variants linear in
        the image: ``raw`` (themselves), ``snr`` (``median + values * sky``, the window's
        :meth:`sky_rms`, else ``rms``, the field's median rms where that is None or bad) and
        ``norm``; None for the stretched ones."""
        if self.variant == "raw":
            return values
        if self.variant == "norm":
            lo, hi = self.params["norm_interval"]
            return (lo + values * (hi - lo)).astype(np.float32)
        if self.variant != "snr":
            return None
        if sky is not None:
            return (self.params["background"] + values * sky).astype(np.float32)
        if rms is None:
            return (self.params["background"] + values * self.stats.rms_median).astype(np.float32)
        safe = np.where(np.isfinite(rms) & (rms > 0), rms, np.float32(self.stats.rms_median))
        return (self.params["background"] + values * safe).astype(np.float32)

    def linear_noise(self, rms: np.ndarray, sky: np.ndarray | None = None) -> np.ndarray | None:
        """Channel 0's 1-sigma noise for a variant linear in the image with unit or 1/rms slope
        (``raw``: the rms itself; ``snr``: ``rms / sky``, the window's :meth:`sky_rms`, 1 without
        it or where the rms map is the sky's alone), computed directly; None for the others, whose
        noise is propagated through the variant."""
        if self.variant == "raw":
            return rms
        if self.variant == "snr":
            if sky is None or sky is rms:
                return np.ones_like(rms)
            return (rms / sky).astype(np.float32)
        return None

    def read(self, field: Field, window: Window,
             arrays: tuple[np.ndarray, np.ndarray | None] | None = None) -> np.ndarray:
        """Read ``window`` of ``field`` and apply the variant, with its :attr:`context` read around
        it, so the channels equal the whole field's. ``arrays``: the window's image and rms, already
        read (used as they are when the variant needs no context)."""
        if self.context == 0:
            return self.apply(*(arrays if arrays is not None else field.read_img_rms(window)))
        big = window.grow(self.context, field.shape)
        return self.apply(*field.read_img_rms(big), origin=(big.y0, big.x0))[(slice(None),) + window.relative_to(big)]


def fit_variant(field: Field, variant: str, stretch: str = "asinh", stretch_a: float = 0.02,
                stats: GlobalStats | None = None) -> Preprocessor:
    """Compute the global statistics of ``field`` (unless given) and return the fitted variant."""
    if variant not in VARIANTS:
        raise InputError(f"unknown variant {variant!r}; choose from {', '.join(VARIANTS)}")
    if stretch not in STRETCHES:
        raise InputError(f"unknown stretch {stretch!r}; choose from {', '.join(STRETCHES)}")
    if variant.startswith("soft"):  # validate its parameter early too; only these stretch (astropy.visualization: 0.06 s)
        _stretch(stretch, stretch_a)
    return Preprocessor(variant, stats or global_stats(field), stretch=stretch, stretch_a=stretch_a)
