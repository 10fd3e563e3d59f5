"""Result objects for notebooks: readable ``repr``, an HTML view with a thumbnail, ``plot()``."""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass, field as dataclass_field
from typing import Any

import numpy as np


def quicklook(ax: Any, img: np.ndarray, labels: np.ndarray | None, title: str | None = None) -> Any:
    """Draw ``img`` with the viewer's asinh stretch (row 0 at the bottom) and the outlines of
    ``labels`` in each object's colour, on matplotlib axes ``ax``."""
    from astrostatlearn.view.layers import id_colours, outline_mask
    from astrostatlearn.view.stretch import stretch_from_sample

    step = max(1, img.size // 1_000_000)
    shown = stretch_from_sample(img.ravel()[::step]).apply(img)
    ax.imshow(shown, origin="lower", cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    if labels is not None and labels.any():
        edge = outline_mask(labels)
        rgba = np.zeros(labels.shape + (4,), np.uint8)
        rgba[edge, :3] = id_colours(labels[edge])
        rgba[edge, 3] = 255
        ax.imshow(rgba, origin="lower", interpolation="nearest")
    if title:
        ax.set_title(title)
    ax.set_xlabel("x (pixel)")
    ax.set_ylabel("y (pixel)")
    return ax


def _thumbnail(img: np.ndarray, labels: np.ndarray | None) -> str:
    """A small PNG (base64) of :func:`quicklook`."""
    import matplotlib
    from matplotlib.figure import Figure

    matplotlib.use("Agg", force=False)
    fig = Figure(figsize=(3, 3), dpi=80)
    ax = fig.add_axes((0, 0, 1, 1))
    quicklook(ax, img, labels)
    ax.set_axis_off()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return base64.b64encode(buf.getvalue()).decode()


def _html_table(rows: dict[str, Any]) -> str:
    return "<table>" + "".join(f"<tr><th style='text-align:left'>{html.escape(str(k))}</th>"
                               f"<td>{html.escape(str(v))}</td></tr>" for k, v in rows.items()) + "</table>"


def _html(title: str, rows: dict[str, Any], img: np.ndarray, labels: np.ndarray | None) -> str:
    return (f"<div style='display:flex;gap:1em;align-items:flex-start'><div><b>{html.escape(title)}</b>"
            f"{_html_table(rows)}</div><img alt='{html.escape(title)}' "
            f"src='data:image/png;base64,{_thumbnail(img, labels)}'></div>")


@dataclass
class SegmentationResult:
    """A segmentation of an array.

    ``labels``: int32 [y, x], 0 = background; ``catalog``: astropy ``QTable`` with units, a
    ``sky`` SkyCoord column when there is a WCS, and each object's ``score``; ``score``: per-pixel
    float32 map in [0, 1] or None; ``params``: how it was made; ``image``: the input (for ``plot``).
    """

    labels: np.ndarray
    catalog: Any
    score: np.ndarray | None
    params: dict[str, Any]
    image: np.ndarray = dataclass_field(repr=False)

    @property
    def segm(self) -> Any:
        """The labels as a ``photutils.segmentation.SegmentationImage``."""
        from photutils.segmentation import SegmentationImage

        return SegmentationImage(self.labels)

    @property
    def n_objects(self) -> int:
        return int(len(self.catalog))

    def __repr__(self) -> str:
        ny, nx = self.labels.shape
        return (f"SegmentationResult(method={self.params.get('method')!r}, variant={self.params.get('variant')!r}, "
                f"{ny}x{nx} pixels, {self.n_objects} objects)")

    def _repr_html_(self) -> str:
        rows = {"method": self.params.get("method"), "variant": self.params.get("variant"),
                "shape": f"{self.labels.shape[0]} x {self.labels.shape[1]}", "objects": self.n_objects,
                "foreground": f"{100 * np.count_nonzero(self.labels) / self.labels.size:.2f}%"}
        return _html("SegmentationResult", rows, self.image, self.labels)

    def plot(self, ax: Any = None) -> Any:
        """The image (asinh stretch) with the objects outlined; returns the axes."""
        if ax is None:
            import matplotlib.pyplot as plt

            ax = plt.figure(figsize=(6, 6)).add_subplot()
        return quicklook(ax, self.image, self.labels, f"{self.params.get('method')}: {self.n_objects} objects")


@dataclass
class SimulatedField:
    """A simulated field in memory: ``img``, ``rms`` (float32), ``true`` (int32 truth map),
    ``truth`` (QTable: every object, with ``mag`` and ``snr``), ``wcs`` and ``header``."""

    img: np.ndarray
    rms: np.ndarray
    true: np.ndarray
    truth: Any
    wcs: Any
    header: Any = dataclass_field(repr=False, default=None)
    params: dict[str, Any] = dataclass_field(default_factory=dict)

    def __repr__(self) -> str:
        return (f"SimulatedField({self.img.shape[0]}x{self.img.shape[1]}, preset={self.params.get('preset')!r}, "
                f"seed={self.params.get('seed')}, {len(self.truth)} objects, "
                f"{int(np.count_nonzero(np.unique(self.true)))} in the truth map)")

    def _repr_html_(self) -> str:
        rows = {"shape": f"{self.img.shape[0]} x {self.img.shape[1]}", "preset": self.params.get("preset"),
                "seed": self.params.get("seed"), "objects": len(self.truth)}
        return _html("SimulatedField", rows, self.img, self.true)

    def plot(self, ax: Any = None) -> Any:
        """The image with the truth map's objects outlined; returns the axes."""
        if ax is None:
            import matplotlib.pyplot as plt

            ax = plt.figure(figsize=(6, 6)).add_subplot()
        return quicklook(ax, self.img, self.true, "simulated field and its truth")


@dataclass
class InjectionResult:
    """Realisations of an injection, in memory: each a :class:`SimulatedField` whose ``true`` holds
    the injected objects only and whose ``ignore`` (in ``extra``) marks the image's own sources."""

    realisations: list[SimulatedField]
    description: dict[str, Any]

    def __repr__(self) -> str:
        d = self.description
        return (f"InjectionResult({len(self.realisations)} realisations x {d['request']['n']} galaxies, "
                f"mag {d['mag_range'][0]:.2f}-{d['mag_range'][1]:.2f}, PSF FWHM {d['psf']['fwhm_px']:.2f} px)")

    def _repr_html_(self) -> str:
        d = self.description
        first = self.realisations[0]
        rows = {"realisations": len(self.realisations), "galaxies each": d["request"]["n"],
                "magnitudes": f"{d['mag_range'][0]:.2f} to {d['mag_range'][1]:.2f}",
                "5σ point depth": f"{d['depth_5sigma_point']:.2f}", "PSF": d["psf"]["source"]}
        return _html("InjectionResult", rows, first.img, first.true)
