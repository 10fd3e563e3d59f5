"""Simulate a whole survey field, streamed tile by tile over all cores.

Peak memory is the catalogue (about 100 bytes per object, 17 MB for 170k objects) plus, per
worker, one tile of float64 work arrays (about 50 MB for 1024^2 tiles) and the largest stamps;
images go straight to disk with ``os.pwrite``. A 25000^2 field stays well below 3 GB.
"""

from __future__ import annotations

import io
import os
from concurrent.futures import as_completed
from concurrent.futures.process import BrokenProcessPool
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS

from astrostatlearn.errors import InputError
from astrostatlearn.field import FitsImageWriter, Window, atomic_write_bytes, check_writable, tile_grid
from astrostatlearn.field.fitsio import write_window
from astrostatlearn.field.outputs import OutputSet
from astrostatlearn.processes import WorkerDiedError, check_workers, process_pool, stop_pool
from astrostatlearn.simulate.catalog import draw_catalog
from astrostatlearn.simulate.presets import Preset, get_preset
from astrostatlearn.simulate.render import TileResult, render_tile

OUTPUT_FILES = ("img.fits", "rms.fits", "true.fits", "truth.ecsv")


@dataclass
class SimulationSummary:
    out: Path
    shape: tuple[int, int]
    n_objects: int
    n_in_truth: int
    n_stars: int
    foreground_fraction: float


def field_wcs(shape: tuple[int, int], pixel_scale: float, center: tuple[float, float] = (150.1, 2.2)) -> WCS:
    """A north-up TAN WCS with ``pixel_scale`` arcsec/pixel centred on ``center`` (RA, Dec deg)."""
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = list(center)
    w.wcs.crpix = [shape[1] / 2.0 + 0.5, shape[0] / 2.0 + 0.5]
    w.wcs.cd = np.array([[-pixel_scale / 3600.0, 0.0], [0.0, pixel_scale / 3600.0]])
    return w


def _header(shape: tuple[int, int], preset: Preset, seed: int, content: str) -> fits.Header:
    h = field_wcs(shape, preset.pixel_scale).to_header()
    h["CONTENT"] = (content, "img, rms or true")
    h["BUNIT"] = ("ID" if content == "true" else "adu", "flux = 10**(-0.4 (mag - MAGZP))")
    h["PRESET"] = (preset.name, "astrostatlearn simulate preset")
    h["SIMSEED"] = (seed, "simulation seed")
    h["PIXSCALE"] = (preset.pixel_scale, "arcsec / pixel")
    h["PSFFWHM"] = (preset.psf_fwhm, "PSF FWHM, arcsec")
    if preset.psf_file:
        h["PSFFILE"] = (Path(preset.psf_file).name[:60], "PSF image used instead of the Moffat")
    h["MAGZP"] = (preset.zeropoint, "AB zero point of one image unit")
    h["SKYSIG"] = (preset.sky_sigma, "mean per-pixel sky sigma, image units")
    h["SKYLEVEL"] = (preset.sky_level, "background level in img")
    h["ISOPHOTE"] = (preset.isophote, "truth isophote, in local sky sigma")
    return h


def _objects_for(window: Window, cat: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    ix = np.floor(cat["x"] + 0.5)
    iy = np.floor(cat["y"] + 0.5)
    r = cat["radius"]
    sel = (ix - r < window.x1) & (ix + r + 1 > window.x0) & (iy - r < window.y1) & (iy + r + 1 > window.y0)
    return {k: v[sel] for k, v in cat.items()}


def _render_and_write(window: Window, cat: dict[str, np.ndarray], preset: Preset, seed: int,
                      shape: tuple[int, int], targets: tuple) -> TileResult:
    img, rms, truth, result = render_tile(window, cat, preset, seed, shape)
    for target, data in zip(targets, (img, rms, truth)):
        write_window(target, window, data)
    return result


def simulate_field(out: str | Path, size: int | tuple[int, int], seed: int = 0,
                   preset: str | Preset = "euclid-vis", tile: int = 1024, workers: int | None = None,
                   overwrite: bool = False, progress: bool = True,
                   on_tile: Callable[[TileResult], None] | None = None) -> SimulationSummary:
    """Simulate a field into folder ``out``: ``img.fits``, ``rms.fits``, ``true.fits``, ``truth.ecsv``.

    ``size`` is N (an N x N field) or (ny, nx). The result is identical for a given seed and
    preset whatever ``tile`` and ``workers`` (default: all cores) are. Files are written under
    temporary names and committed as one set when complete (:class:`OutputSet`); existing files are
    refused unless ``overwrite``.

    Parameters
    ----------
    out : str or Path
        The field folder to write.
    size : int or (int, int)
        N for an N x N field, or (ny, nx), in pixels.
    seed : int
        Seed of the catalogue and the noise.
    preset : str or Preset
        ``"euclid-vis"`` (default, 0.1 arcsec pixels) or ``"ground"`` (KiDS-like), or a
        :class:`Preset`.
    tile : int
        Pixels per side of a generation tile (does not change the result).
    workers : int, optional
        Worker processes; default all cores, 0 runs in this process.
    overwrite : bool
        Replace an existing field.
    progress : bool
        Show a progress bar.
    on_tile : callable, optional
        Called with each finished tile's :class:`TileResult`.

    Returns
    -------
    SimulationSummary
        The folder, the shape, the number of objects (and of them in the truth map and stars)
        and the foreground fraction.

    Raises
    ------
    InputError
        A bad size, tile or preset, or existing files without ``overwrite``.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from astrostatlearn.simulate import simulate_field
    >>> out = Path(tempfile.mkdtemp()) / "field"
    >>> s = simulate_field(out, 128, seed=1, workers=0, progress=False)
    >>> s.shape, sorted(p.name for p in out.iterdir())
    ((128, 128), ['img.fits', 'rms.fits', 'true.fits', 'truth.ecsv'])
    """
    shape = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    if min(shape) < 8:
        raise InputError(f"field size must be at least 8 pixels, got {shape[0]}x{shape[1]}")
    if tile < 16:
        raise InputError(f"tile size must be at least 16 pixels, got {tile}")
    if isinstance(preset, str):
        try:
            preset = get_preset(preset)
        except KeyError as exc:
            raise InputError(str(exc.args[0])) from None
    if preset.psf_file:  # stamp sizes follow the PSF image's width
        from astrostatlearn.simulate.render import image_fwhm, read_psf_image

        preset = preset.with_overrides(psf_fwhm=image_fwhm(read_psf_image(preset.psf_file)) * preset.pixel_scale)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError("output exists and is not a directory", out)
    for name in OUTPUT_FILES:
        check_writable(out / name, overwrite)
    check_workers(workers)
    workers = workers or os.cpu_count() or 1
    with OutputSet(out, OUTPUT_FILES, overwrite, expected_bytes=12 * shape[0] * shape[1]) as tx:
        cat = draw_catalog(shape, preset, seed)
        snr, area = _render_images(tx, cat, shape, preset, seed, tile, workers, progress, on_tile)
        table = _catalog_table(cat, snr, area, shape, preset, seed)
        buf = io.StringIO()
        table.write(buf, format="ascii.ecsv")
        atomic_write_bytes(tx.path("truth.ecsv"), buf.getvalue().encode(), overwrite=True)
    return SimulationSummary(out, shape, len(cat["id"]), int((area > 0).sum()), int(cat["is_star"].sum()),
                             float(area.sum()) / (shape[0] * shape[1]))


def _render_images(tx: OutputSet, cat: dict[str, np.ndarray], shape: tuple[int, int], preset: Preset, seed: int,
                   tile: int, workers: int, progress: bool,
                   on_tile: Callable[[TileResult], None] | None) -> tuple[np.ndarray, np.ndarray]:
    """Render every tile into the staged img/rms/true.fits; returns (snr, area_true) per object."""
    windows = tile_grid(shape, tile)
    snr = np.zeros(len(cat["id"]))
    area = np.zeros(len(cat["id"]), dtype=np.int64)

    def collect(res: TileResult) -> None:
        snr[res.owned_ids - 1] = res.owned_snr
        np.add.at(area, res.area_ids - 1, res.area_counts)
        if on_tile is not None:
            on_tile(res)

    with ExitStack() as stack:
        writers = [
            stack.enter_context(FitsImageWriter(tx.path(name), shape, dtype, _header(shape, preset, seed, content), True))
            for name, dtype, content in (("img.fits", np.float32, "img"), ("rms.fits", np.float32, "rms"),
                                         ("true.fits", np.int32, "true"))
        ]
        targets = tuple(w.target for w in writers)
        bar = _progress(len(windows), progress, f"simulating {shape[0]}x{shape[1]}")
        if workers == 1:
            for w in windows:
                collect(_render_and_write(w, _objects_for(w, cat), preset, seed, shape, targets))
                bar.update()
        else:
            pool = process_pool(workers, preload=["astrostatlearn.simulate.field"])
            failed = True
            try:
                futures = [pool.submit(_render_and_write, w, _objects_for(w, cat), preset, seed, shape, targets)
                           for w in windows]
                for fut in as_completed(futures):
                    collect(fut.result())
                    bar.update()
                failed = False
            except BrokenProcessPool:
                raise WorkerDiedError() from None
            finally:
                stop_pool(pool, kill=failed)
        bar.close()
    return snr, area


def _progress(total: int, enabled: bool, desc: str):
    from astrostatlearn.progress import progress_bar

    return progress_bar(total=total, desc=desc, unit="tile", enabled=enabled)


def _catalog_table(cat: dict[str, np.ndarray], snr: np.ndarray, area: np.ndarray, shape: tuple[int, int],
                   preset: Preset, seed: int) -> Table:
    wcs = field_wcs(shape, preset.pixel_scale)
    ra, dec = wcs.wcs_pix2world(cat["x"], cat["y"], 0)
    t = Table()
    t["id"] = cat["id"].astype(np.int32)
    t["x"] = cat["x"]
    t["y"] = cat["y"]
    t["ra"] = ra
    t["dec"] = dec
    t["flux"] = cat["flux"]
    t["mag"] = cat["mag"]
    t["snr"] = snr
    t["half_light_radius"] = cat["hlr"]
    t["sersic_n"] = cat["sersic_n"]
    t["axis_ratio"] = cat["q"]
    t["position_angle"] = np.degrees(cat["pa"])
    t["is_star"] = cat["is_star"]
    t["area_true"] = area
    units = {"x": "pix", "y": "pix", "ra": "deg", "dec": "deg", "mag": "mag", "half_light_radius": "arcsec",
             "position_angle": "deg", "area_true": "pix"}
    for k, u in units.items():
        t[k].unit = u
    t.meta.update({
        "description": "astrostatlearn simulated truth catalogue",
        "pixel_origin": "x, y are 0-based pixel coordinates; the centre of the first pixel is (0, 0)",
        "columns": {
            "flux": "total flux in image units, flux = 10**(-0.4 (mag - zeropoint))",
            "snr": "matched-filter S/N of the noiseless model against sky + source noise",
            "half_light_radius": "circularised half-light radius before PSF convolution (0 for stars)",
            "position_angle": "major axis, degrees counter-clockwise from +x",
            "area_true": "pixels assigned to the object in true.fits (0: not in the truth map)",
        },
        "truth_rule": "a pixel belongs to the object whose noiseless PSF-convolved model is largest there, "
                      f"counting only models above {preset.isophote} x the local sky sigma",
        "seed": seed, "preset": preset.as_dict(), "shape": list(shape),
        "zeropoint": preset.zeropoint, "n_objects": int(len(cat["id"])),
    })
    return t
