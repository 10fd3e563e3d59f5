"""``astrostatlearn inject``: fake galaxies injected into a real image, as fields with exact truth.

Plan, then one realisation at a time:

1. **Measure** the image once: background, noise (the rms map, else the background's rms),
   own sources (:mod:`.sources`), the PSF (:mod:`.psf`), the zero-point (``--zeropoint``, else
   the header's (:attr:`~astrostatlearn.field.Field.zeropoint`), else an instrumental one that puts the depth
   ``m5`` at 24.9, a KiDS-like survey's), the gain (``--gain``,
   else the header's GAIN, else none), the pixel scale (``--pixel-scale``, else the WCS, else
   0.2"), the empty-aperture noise factors ``f(area)`` of its sky (:mod:`~astrostatlearn.methods.significance`:
   1 for white noise, more where resampling or coadding correlated the noise), and the
   point-source 5-sigma depth ``m5 = zp - 2.5 log10(5 sigma sqrt(NEA) f(NEA))``, NEA being the
   PSF's noise-equivalent area: the depth of the noise the image has, not of the white noise its
   rms map describes (empty-aperture depths, as surveys quote them).
2. **Draw** ``n`` galaxies per realisation, magnitudes uniform in ``--mag-range`` (default
   ``m5 - 4`` to ``m5 + 1``), shapes from the simulator's population model
   (:func:`~astrostatlearn.simulate.catalog.galaxy_shapes`); without a zero-point, sizes thus
   follow the depth, as in a KiDS-like survey.
3. **Place** them away from the image's own sources (:mod:`.place`), **render** them with GalSim,
   convolved with the PSF, and add them; with a gain, each pixel gets its source Poisson noise,
   and the rms map grows to ``sqrt(rms² + model / gain)`` only where the image's own rms map
   carries its sources' Poisson noise too (:func:`rms_carries_source_noise`): injected objects
   then look to the methods as the image's own do.
4. **Truth** follows the simulator's rule: a pixel belongs to the injected object whose model is
   largest there, above 1 x the local rms; its S/N is the matched-filter S/N over the rms map,
   divided by ``f`` at the object's own noise-equivalent area. ``ignore.fits`` marks the image's
   own sources (dilated) and its non-finite pixels.

Each realisation ``real-<k>/`` is a field (``img.fits``, ``rms.fits``, ``true.fits``,
``truth.ecsv``, ``ignore.fits``, and ``confirm.fits`` with ``--confirm-with``: the sources of the
other bands, :func:`~.sources.other_band_sources`), with the input's header and WCS; ``inject.json`` and
``psf.fits`` describe the run. The folder is one output set (staged, committed whole).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field as dataclass_field
from pathlib import Path
from typing import Any

import numpy as np

from astrostatlearn import __version__
from astrostatlearn.errors import InputError
from astrostatlearn.field import Field, MaskFile
from astrostatlearn.field.fitsio import output_header, write_image
from astrostatlearn.field.outputs import OutputSet
from astrostatlearn.field.zeropoint import header_number
from astrostatlearn.inject.place import free_distance, ignore_mask, place_objects
from astrostatlearn.inject.psf import PSFModel, estimate_psf, moffat_psf, psf_from_file
from astrostatlearn.inject.sources import ImageSources, find_sources, other_band_sources
from astrostatlearn.methods.significance import aperture_noise_factors, factor_at
from astrostatlearn.preprocess.sky_noise import source_noise_slope
from astrostatlearn.progress import progress_bar
from astrostatlearn.simulate.catalog import galaxy_shapes, stamp_radius
from astrostatlearn.simulate.presets import Preset
from astrostatlearn.simulate.render import draw_stamp

DEFAULT_PIXEL_SCALE, REFERENCE_DEPTH = 0.2, 24.9
ISOPHOTE = 1.0


@dataclass
class InjectRequest:
    """What to inject: ``n`` galaxies in each of ``realisations``; ``mag_range`` (bright, faint)
    or None for the default; ``psf_fwhm`` (pixels) or ``psf`` (a FITS) or neither (estimated);
    ``zeropoint``, ``gain`` (e-/unit) and ``pixel_scale`` (arcsec) override the header's;
    ``confirm_with``: images of other bands on the same pixel grid, whose sources confirm a
    segment as real (``confirm.fits``)."""

    n: int = 100
    realisations: int = 5
    mag_range: tuple[float, float] | None = None
    psf_fwhm: float | None = None
    psf: str | None = None
    seed: int = 0
    zeropoint: float | None = None
    gain: float | None = None
    pixel_scale: float | None = None
    confirm_with: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.n < 1 or self.realisations < 1:
            raise InputError(f"--n and --realisations must be at least 1, got {self.n} and {self.realisations}")
        if self.psf_fwhm is not None and self.psf is not None:
            raise InputError("give --psf-fwhm or --psf, not both")
        if self.mag_range is not None and not self.mag_range[0] < self.mag_range[1]:
            raise InputError(f"--mag-range must be BRIGHT,FAINT with BRIGHT < FAINT, got {self.mag_range}")
        if self.gain is not None and not self.gain > 0:
            raise InputError(f"--gain must be positive, got {self.gain}")
        if self.pixel_scale is not None and not self.pixel_scale > 0:
            raise InputError(f"--pixel-scale must be positive, got {self.pixel_scale}")


@dataclass
class InjectPlan:
    """The image, measured once (see the module docstring)."""

    image: Path
    request: InjectRequest
    img: np.ndarray
    header: Any
    sources: ImageSources
    psf: PSFModel
    zeropoint: float
    zeropoint_known: bool
    gain: float | None
    pixel_scale: float
    sigma: float
    m5: float
    mag_range: tuple[float, float]
    noise_areas: np.ndarray  # empty-aperture sizes (pixels) and their noise factors, measured on the sky
    noise_factors: np.ndarray
    ignore: np.ndarray = dataclass_field(repr=False, default=None)  # type: ignore[assignment]
    free: np.ndarray = dataclass_field(repr=False, default=None)  # type: ignore[assignment]  # distance to ignore
    confirm: np.ndarray | None = dataclass_field(repr=False, default=None)  # other bands' sources
    notes: list[str] = dataclass_field(default_factory=list)
    rms_source_noise: bool = False  # the rms map carries the sources' Poisson noise (so the realisations' do)

    def preset(self) -> Preset:
        return Preset(name="inject", pixel_scale=self.pixel_scale, psf_fwhm=self.psf.fwhm_px * self.pixel_scale,
                      zeropoint=self.zeropoint, sky_sigma=self.sigma, sky_sigma_variation=0.0,
                      gain=self.gain or math.inf, mag_bright=self.mag_range[0], mag_faint=self.mag_range[1])

    def noise_factor(self, area: float) -> float:
        """The empty-aperture noise factor at ``area`` pixels (1: white noise)."""
        return float(factor_at(self.noise_areas, self.noise_factors, np.asarray(area)))

    def describe(self) -> dict[str, Any]:
        return {"image": str(self.image), "version": __version__, "request": asdict(self.request),
                "psf": {"source": self.psf.source, "fwhm_px": self.psf.fwhm_px, "n_stars": self.psf.n_stars,
                        "noise_area_px": self.psf.noise_area},
                "zeropoint": self.zeropoint, "zeropoint_known": self.zeropoint_known, "gain": self.gain,
                "pixel_scale_arcsec": self.pixel_scale, "sky_sigma": self.sigma, "depth_5sigma_point": self.m5,
                "noise_factor_point": self.noise_factor(self.psf.noise_area),
                "empty_aperture_noise": {"area_px": self.noise_areas.tolist(), "factor": self.noise_factors.tolist()},
                "mag_range": list(self.mag_range), "n_own_sources": int(len(self.sources.objects)),
                "ignore_fraction": float(self.ignore.mean()), "notes": self.notes,
                "confirm_with": list(self.request.confirm_with),
                "confirm_fraction": None if self.confirm is None else float(self.confirm.mean()),
                "confirm_chance": None if self.confirm is None else float(self.confirm[~self.ignore].mean())}


def plan_injection(image: str | Path, request: InjectRequest, rms: str | Path | None = None,
                   noise_kind: str = "rms", mask: str | Path | MaskFile | None = None) -> InjectPlan:
    """Read and measure the image (step 1 of the module docstring); ``noise_kind``, what ``rms``
    holds (:meth:`~astrostatlearn.field.Field.open`); ``mask``, a bad-pixel map (non-zero = no data)."""
    with Field.open(img=image, rms=rms, noise_kind=noise_kind, mask=mask) as f:
        img = f.read_img()
        rms_map = f.read_rms()
        header, scale = f.header.copy(), f.pixel_scale
        f.zeropoint = request.zeropoint
        zp = f.zeropoint
        if rms_map is not None and not (np.isfinite(rms_map) & (rms_map > 0))[np.isfinite(img)].all():
            raise InputError("rms map must be finite and > 0 wherever the image is finite", f.rms.path)  # type: ignore[union-attr]
    if not np.isfinite(img).any():
        raise InputError("the image has no finite pixel", image)
    src = find_sources(img, rms_map)
    if request.psf is not None:
        psf = psf_from_file(request.psf)
    elif request.psf_fwhm is not None:
        psf = moffat_psf(request.psf_fwhm)
    else:
        psf = estimate_psf(img, src, Path(image))
    notes = []
    gain = request.gain if request.gain is not None else header_number(header, ("GAIN",))
    if gain is not None and not gain > 0:
        gain = None
    if gain is None:
        notes.append("no gain: injected objects carry no source Poisson noise (the sky noise is the image's own)")
    with_source_noise = rms_map is not None and rms_carries_source_noise(img, src)
    if gain is not None and not with_source_noise:
        notes.append("the rms map is the sky's alone: injected objects' Poisson noise goes into img.fits, not rms.fits")
    if request.pixel_scale is not None:
        scale = request.pixel_scale
    elif scale is None:
        scale = DEFAULT_PIXEL_SCALE
        notes.append(f"no WCS: pixel scale assumed {DEFAULT_PIXEL_SCALE}\" (pass --pixel-scale)")
    sigma = float(np.median(src.rms[src.valid]))
    ignore = ignore_mask(src.segmap, src.valid, dilate=max(3, int(round(2 * psf.fwhm_px))))
    areas, factors = sky_noise_factors(img, src, ignore)
    point_factor = float(factor_at(areas, factors, np.asarray(psf.noise_area)))
    point_limit = 2.5 * math.log10(5.0 * sigma * math.sqrt(psf.noise_area) * point_factor)  # zp - m5
    zero = REFERENCE_DEPTH + point_limit if zp is None else float(zp)
    m5 = zero - point_limit
    if zp is None:
        notes.append(f"no zero-point: magnitudes are instrumental, with the 5-sigma point-source depth put at "
                     f"{REFERENCE_DEPTH} (zero-point {zero:.3f})")
    mags = request.mag_range or (round(m5 - 4.0, 2), round(m5 + 1.0, 2))
    plan = InjectPlan(Path(image), request, img, header, src, psf, zero, zp is not None, gain, float(scale), sigma,
                      m5, (float(mags[0]), float(mags[1])), areas, factors, notes=notes,
                      rms_source_noise=with_source_noise)
    plan.ignore = ignore
    plan.free = free_distance(plan.ignore)  # the same for every realisation
    if request.confirm_with:
        plan.confirm = other_band_sources([_same_grid(p, img.shape) for p in request.confirm_with])
    return plan


def rms_carries_source_noise(img: np.ndarray, src: ImageSources) -> bool:
    """Whether the image's rms map rises with its sources' signal (their Poisson noise;
    :func:`~astrostatlearn.preprocess.sky_noise.source_noise_slope`)."""
    ok = src.valid & np.isfinite(src.rms) & (src.rms > 0)
    return source_noise_slope(np.where(ok, img - src.background, np.nan), np.where(ok, src.rms, np.nan), 0.0,
                              float(np.median(src.rms[ok]))) > 0


def sky_noise_factors(img: np.ndarray, src: ImageSources, ignore: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Empty-aperture noise factors ``(areas in pixels, f)`` of the image's sky: boxes off
    ``ignore`` (its own sources, dilated, and non-finite pixels), in units of the rms map."""
    ok = src.valid & np.isfinite(src.rms) & (src.rms > 0)
    normalised = np.where(ok, (np.where(ok, img, 0.0) - src.background) / np.where(ok, src.rms, 1.0), 0.0)
    return aperture_noise_factors(normalised.astype(np.float32), ok & ~ignore)


def _same_grid(path: str, shape: tuple[int, ...]) -> np.ndarray:
    """Another band's image, which must share the injected image's pixel grid."""
    with Field.open(img=path) as f:
        if tuple(f.shape) != tuple(shape):
            raise InputError(f"--confirm-with image is {f.shape[0]}x{f.shape[1]}, the image {shape[0]}x{shape[1]}: "
                             "it must be another band on the same pixel grid", path)
        return f.read_img()


def draw_objects(plan: InjectPlan, k: int) -> dict[str, np.ndarray]:
    """The ``n`` galaxies of realisation ``k``, placed (step 2-3 of the module docstring)."""
    rng = np.random.default_rng(np.random.SeedSequence([plan.request.seed, 7, k]))
    n, preset = plan.request.n, plan.preset()
    mag = rng.uniform(*plan.mag_range, n)
    sersic_n, hlr, q, pa = galaxy_shapes(rng, mag, preset)
    cat = {"id": np.arange(1, n + 1, dtype=np.int64), "mag": mag, "flux": 10.0 ** (-0.4 * (mag - plan.zeropoint)),
           "is_star": np.zeros(n, bool), "hlr": hlr, "sersic_n": sersic_n, "q": q, "pa": pa}
    cat["radius"] = stamp_radius(cat, preset)
    reach = stamp_radius(cat, preset.with_overrides(stamp_threshold=ISOPHOTE)).astype(float)
    cat["x"], cat["y"] = place_objects(plan.free, reach, rng)
    return cat


def render_objects(plan: InjectPlan, cat: dict[str, np.ndarray], rms: np.ndarray) -> tuple[np.ndarray, ...]:
    """``(model, truth, snr)``: the summed noiseless models, the truth map and each object's
    matched-filter S/N ``sqrt(sum m² / (rms² + m / gain)) / f(A)``, ``f`` the image's
    empty-aperture noise factor at the object's noise-equivalent area ``A = (sum m)² / sum m²``."""
    preset, psf = plan.preset(), plan.psf.galsim(plan.pixel_scale)
    shape = plan.img.shape
    full = np.zeros(shape, np.float64)
    best = np.zeros(shape, np.float64)
    truth = np.zeros(shape, np.int32)
    snr = np.zeros(cat["id"].size)
    gain = plan.gain or math.inf
    from astrostatlearn.field import Window

    whole = Window(0, shape[0], 0, shape[1])
    for i in range(cat["id"].size):
        win, stamp = draw_stamp({k: v[i] for k, v in cat.items()}, preset, psf=psf, method="no_pixel")
        part = win.intersect(whole)
        if part is None:
            continue
        s, t = stamp[part.relative_to(win)], part.slices
        noise = rms[t].astype(np.float64)
        m = np.maximum(s, 0.0)
        area = float(m.sum()) ** 2 / max(float(np.sum(m**2)), 1e-300)
        snr[i] = math.sqrt(float(np.sum(m**2 / (noise**2 + m / gain)))) / plan.noise_factor(area)
        full[t] += s
        wins = (s > ISOPHOTE * noise) & (s > best[t]) & plan.sources.valid[t]
        best[t] = np.where(wins, s, best[t])
        truth[t] = np.where(wins, np.int32(cat["id"][i]), truth[t])
    return full, truth, snr


def _truth_table(cat: dict[str, np.ndarray], snr: np.ndarray, truth: np.ndarray, plan: InjectPlan):
    from astropy.table import Table

    area = np.bincount(truth.ravel(), minlength=cat["id"].size + 1)[1:]
    t = Table({"id": cat["id"], "x": cat["x"], "y": cat["y"], "mag": cat["mag"], "flux": cat["flux"], "snr": snr,
               "half_light_radius": cat["hlr"], "sersic_n": cat["sersic_n"], "axis_ratio": cat["q"],
               "position_angle": np.degrees(cat["pa"]), "is_star": cat["is_star"], "area_true": area})
    t["x"].unit = t["y"].unit = "pix"
    t["half_light_radius"].unit = "arcsec"
    t.meta.update({"injected_into": str(plan.image), "zeropoint": plan.zeropoint,
                   "pixel_origin": "x, y are 0-based pixel coordinates; the centre of the first pixel is (0, 0)"})
    return t


def write_realisation(plan: InjectPlan, k: int, folder: Path) -> dict[str, Any]:
    """Draw, place, render and write realisation ``k`` into ``folder``."""
    cat = draw_objects(plan, k)
    rms = plan.sources.rms
    model, truth, snr = render_objects(plan, cat, rms)
    img = plan.img.astype(np.float64) + model
    rms_out = rms.astype(np.float64)
    if plan.gain is not None:
        rng = np.random.default_rng(np.random.SeedSequence([plan.request.seed, 8, k]))
        source_var = np.maximum(model, 0.0) / plan.gain
        img += np.sqrt(source_var) * rng.standard_normal(model.shape)
        if plan.rms_source_noise:  # as the image's own rms map: the sky's alone, or with source noise
            rms_out = np.sqrt(rms_out**2 + source_var)
    folder.mkdir(parents=True)
    zp_comment = "zero-point of truth.ecsv's mag" + ("" if plan.zeropoint_known else " (instrumental)")
    head = output_header(plan.header, ORIGIN="astrostatlearn inject", INJREAL=k, MAGZERO=(plan.zeropoint, zp_comment))
    write_image(folder / "img.fits", img.astype(np.float32), head)
    write_image(folder / "rms.fits", np.where(plan.sources.valid, rms_out, np.nan).astype(np.float32), head)
    write_image(folder / "true.fits", truth, output_header(plan.header, BUNIT="id", INJREAL=k))
    write_image(folder / "ignore.fits", plan.ignore.astype(np.uint8),
                output_header(plan.header, COMMENT="1 = the image's own sources (dilated) or no data"))
    if plan.confirm is not None:
        write_image(folder / "confirm.fits", plan.confirm.astype(np.uint8),
                    output_header(plan.header, COMMENT="1 = a source in the other bands (--confirm-with)"))
    _truth_table(cat, snr, truth, plan).write(folder / "truth.ecsv", format="ascii.ecsv")
    return {"realisation": k, "n_injected": int(cat["id"].size), "n_in_truth": int(np.count_nonzero(np.bincount(truth.ravel())[1:]))}


@dataclass
class InjectResult:
    out: Path
    realisations: list[Path]
    description: dict[str, Any]

    def summary(self) -> str:
        d = self.description
        return (f"wrote {self.out}: {len(self.realisations)} realisations of {d['request']['n']} galaxies, "
                f"mag {d['mag_range'][0]:.2f}-{d['mag_range'][1]:.2f} (5-sigma point depth {d['depth_5sigma_point']:.2f}), "
                f"PSF {d['psf']['source']}, FWHM {d['psf']['fwhm_px']:.2f} px; {d['n_own_sources']} own sources masked")


def inject_image(image: str | Path, out: str | Path, request: InjectRequest | None = None,
                 rms: str | Path | None = None, overwrite: bool = False, progress: bool = False,
                 noise_kind: str = "rms", mask: str | Path | MaskFile | None = None) -> InjectResult:
    """Inject simulated galaxies into a real image and write the realisations as fields.

    Parameters
    ----------
    image : path
        The real image (FITS); its header gives the zero-point, gain and WCS when present.
    out : path
        Output folder: ``real-<k>/`` (each a field with ``ignore.fits``), ``inject.json``, ``psf.fits``.
    request : InjectRequest, optional
        How many galaxies, realisations, magnitudes, PSF and overrides (default: 100 x 5).
    rms : path, optional
        The image's noise map (default: its background rms).
    overwrite : bool
        Replace an existing output folder.
    progress : bool
        Show a progress bar.
    noise_kind : str
        What ``rms`` holds: ``"rms"``, ``"weight"`` (inverse variance, 0 = no data) or ``"variance"``.
    mask : path or MaskFile, optional
        A bad-pixel map (non-zero = no data), or a :class:`~astrostatlearn.field.MaskFile` naming
        the bits of it that mean bad: never injected into.

    Returns
    -------
    InjectResult
        The folder, the realisation folders and the run's description.

    Raises
    ------
    InputError
        No stars to estimate the PSF from, no room for ``n`` objects, an rms of another shape,
        an existing output folder.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from astrostatlearn.inject import InjectRequest, inject_image
    >>> from astrostatlearn.simulate import simulate_field
    >>> tmp = Path(tempfile.mkdtemp())
    >>> _ = simulate_field(tmp / "field", 512, seed=1, workers=0, progress=False)
    >>> res = inject_image(tmp / "field" / "img.fits", tmp / "inj", InjectRequest(n=10, realisations=2, psf_fwhm=2.0))
    >>> [p.name for p in res.realisations], sorted(p.name for p in res.realisations[0].iterdir())
    (['real-000', 'real-001'], ['ignore.fits', 'img.fits', 'rms.fits', 'true.fits', 'truth.ecsv'])
    """
    request = request or InjectRequest()
    out = Path(out)
    if out.exists() and not overwrite:
        raise InputError("output exists; pass --overwrite to replace it", out)
    plan = plan_injection(image, request, rms, noise_kind, mask)
    with OutputSet(out, None, overwrite) as tx:
        stage = tx.path()
        runs = [write_realisation(plan, k, stage / f"real-{k:03d}")
                for k in progress_bar(range(request.realisations), desc="inject", unit="realisation",
                                      enabled=progress)]
        description = plan.describe() | {"realisations": runs}
        write_image(stage / "psf.fits", plan.psf.image, output_header(None, COMMENT=plan.psf.source))
        (stage / "inject.json").write_text(json.dumps(description, indent=1))
    return InjectResult(out, [out / f"real-{k:03d}" for k in range(request.realisations)], description)
