"""Build the :class:`~astrostatlearn.methods.Tile` a method sees for a window of the field."""

from __future__ import annotations

from typing import Iterator

import numpy as np

from astrostatlearn.field import Field, Window, tile_grid
from astrostatlearn.methods import Tile
from astrostatlearn.preprocess import Preprocessor
from astrostatlearn.segment.background import BackgroundMesh


def channel0_noise(pre: Preprocessor, img: np.ndarray, rms: np.ndarray | None, mesh: BackgroundMesh,
                   window: Window, sky: np.ndarray | None = None) -> np.ndarray:
    """1-sigma noise of channel 0 of ``window`` in variant units.

    With an rms map it is propagated through the variant, ``|f(img + rms) - f(img - rms)| / 2``
    (exact for the linear variants, first order for the stretches); where that falls below 1e-3
    of the background mesh rms (the stretch clipped flat, with no derivative), or there is no rms
    map, the mesh rms is used. The mesh rms is interpolated only when some pixel needs it.
    ``sky``: the window's :meth:`~astrostatlearn.preprocess.Preprocessor.sky_rms`, when known.
    """
    if rms is None:
        return mesh.rms_at(window)
    err = pre.linear_noise(rms, sky)
    if err is None:
        up = pre.apply(img + rms, rms)[0]
        down = pre.apply(img - rms, rms)[0]
        err = np.abs(up - down) / 2.0
    if err.min() > 1e-3 * mesh.rms_max(window):  # the usual case: no pixel falls back to the mesh
        return np.asarray(err, np.float32)
    mesh_rms = mesh.rms_at(window)
    return np.where(err > 1e-3 * mesh_rms, err, mesh_rms).astype(np.float32)


def sky_of(pre: Preprocessor, img: np.ndarray, rms: np.ndarray | None, window: Window) -> np.ndarray | None:
    """The sky rms ``pre``'s ``snr`` channel divides ``img`` (of ``window``) by
    (:meth:`~astrostatlearn.preprocess.Preprocessor.sky_rms`; bad pixels as in
    :func:`tile_from_arrays`), or None where that is the rms map itself or there is none."""
    if rms is None or pre.context == 0:
        return None
    _, safe_img, safe_rms = repaired(pre, img, rms)
    return pre.sky_rms(safe_img, safe_rms, (window.y0, window.x0))


def repaired(pre: Preprocessor, img: np.ndarray, rms: np.ndarray | None) -> tuple[np.ndarray, np.ndarray,
                                                                                   np.ndarray | None]:
    """(valid, image, rms) of a window: valid where the image is finite and the rms finite and > 0;
    elsewhere the image takes the field's median and the rms its median rms (float32 both)."""
    valid = np.isfinite(img)
    if rms is not None:
        valid &= np.isfinite(rms) & (rms > 0)
    if valid.all():
        return valid, np.asarray(img, np.float32), None if rms is None else np.asarray(rms, np.float32)
    safe_img = np.where(valid, img, np.float32(pre.stats.img_median)).astype(np.float32)
    safe_rms = None if rms is None else np.where(valid, rms, np.float32(pre.stats.rms_median)).astype(np.float32)
    return valid, safe_img, safe_rms


def make_tile(field: Field, pre: Preprocessor, mesh: BackgroundMesh, window: Window, with_truth: bool = False) -> Tile:
    """Read ``window`` and build the method's view of it."""
    truth = field.read_true(window) if with_truth else None
    return tile_from_arrays(pre, mesh, window, *field.read_img_rms(window), truth)


def tile_from_arrays(pre: Preprocessor, mesh: BackgroundMesh, window: Window, img: np.ndarray,
                     rms: np.ndarray | None, truth: np.ndarray | None = None,
                     sky: np.ndarray | None = None) -> Tile:
    """The method's view of ``window`` from its raw image and rms, already read. Invalid pixels
    (non-finite image, or rms non-finite or <= 0) take the field's median in the image and its
    median rms in the noise, so no pixel's inputs depend on which tile holds it. ``sky``: the
    window's :func:`sky_of`, when the caller has it already."""
    valid, safe_img, safe_rms = repaired(pre, img, rms)
    all_valid = bool(valid.all())
    bkg = mesh.background_at(window)
    if sky is None and safe_rms is not None and pre.context > 0:  # sky_of, on the arrays repaired here
        sky = pre.sky_rms(safe_img, safe_rms, (window.y0, window.x0))
    image = pre.apply(img, rms, checked=all_valid, sky=sky)
    err = channel0_noise(pre, safe_img, safe_rms, mesh, window, sky)
    return Tile(image, bkg, err, valid, window, pre.channels, truth, all_valid=all_valid)


def region_tiles(field: Field, pre: Preprocessor, mesh: BackgroundMesh, region: Window, tile: int = 512,
                 with_truth: bool = False, max_tiles: int | None = None) -> Iterator[Tile]:
    """Tiles covering ``region`` (e.g. the training split), for fitting.

    With ``max_tiles``, an evenly spaced subset of at most that many windows is chosen *before*
    anything is read, so fitting on a 25k^2 field holds only the sample in memory.
    """
    windows = tile_grid(region.shape, tile)
    if max_tiles is not None and len(windows) > max_tiles:
        pick = np.unique(np.linspace(0, len(windows) - 1, max_tiles).round().astype(int))
        windows = [windows[i] for i in pick]
    for w in windows:
        yield make_tile(field, pre, mesh, Window(w.y0 + region.y0, w.y1 + region.y0, w.x0 + region.x0,
                                                   w.x1 + region.x0), with_truth)
