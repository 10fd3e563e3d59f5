"""Segment a whole field of any size: tiles with a halo, Dask, seamless stitching, catalogue.

1. Global statistics and a background mesh are measured once for the whole field.
2. Each tile (core ``tile`` x ``tile`` plus ``halo`` on every side) is segmented by the method,
   as a Dask task: local threads or processes, or a dask.distributed cluster.
3. The tile keeps the objects whose centroid is in its core (see :mod:`.stitch`); results are
   taken in raster order, so global IDs (running offsets) are the same on every run.
4. ``segmentation.fits`` (int32, input header + WCS), ``score.fits`` (optional),
   ``catalog.ecsv`` and ``run.json`` are written atomically into the output folder.

Memory: the driver holds at most ``8 x workers`` tile results (about 10 bytes per window pixel,
~15 MB at tile 1024 + halo 128); each worker holds one tile's inputs and the method's work
arrays, ~0.5 GB at tile 1024 for the classical methods.
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from astrostatlearn import __version__
from astrostatlearn.errors import InputError
from astrostatlearn.field import Field, FitsImageWriter, Window, atomic_write_bytes, atomic_write_json, check_writable, tile_grid
from astrostatlearn.field.fitsio import output_header, write_window
from astrostatlearn.methods import Segmenter, load_segmenter
from astrostatlearn.preprocess import Preprocessor, fit_variant
from astrostatlearn.segment.background import BackgroundMesh
from astrostatlearn.segment.catalog import finish_catalog, measure
from astrostatlearn.segment.stitch import own_objects
from astrostatlearn.segment.tiles import tile_from_arrays

OUTPUTS = ("segmentation.fits", "score.fits", "catalog.ecsv", "run.json")


@dataclass
class SegmentResult:
    out: Path
    n_objects: int
    n_at_halo_edge: int
    timings: dict[str, float]
    run: dict[str, Any]


@dataclass
class _TileOutput:
    index: int
    window: Window
    core: Window
    labels: np.ndarray
    score: np.ndarray | None
    catalog: Any
    n_at_edge: int
    max_extent: int


@lru_cache(maxsize=4)
def _cached_model(path: str, mtime: float) -> Segmenter:
    return load_segmenter(path)


@lru_cache(maxsize=4)
def _cached_field(img: str, rms: str | None) -> Field:
    return Field.open(img=img, rms=rms)


def _segment_tile(index: int, paths: tuple[str, str | None], model: tuple[str, float], pre: Preprocessor,
                  mesh: BackgroundMesh, core: Window, window: Window, background: float, with_score: bool) -> _TileOutput:
    field = _cached_field(*paths)
    seg = _cached_model(*model)
    img, rms = field.read_img(window), field.read_rms(window)
    tile = tile_from_arrays(pre, mesh, window, img, rms)
    pred = seg.predict(tile)
    owned = own_objects(pred.labels, window, core, field.shape)
    data = np.where(tile.valid, img - background, 0.0)
    cat = measure(owned.labels, data, None if rms is None else np.where(tile.valid, rms, 0.0), window, pred.score)
    score = None
    if with_score and pred.score is not None:
        score = pred.score[core.relative_to(window)].astype(np.float32)
    return _TileOutput(index, window, core, owned.labels, score, cat, owned.n_at_edge, owned.max_extent)


def _scheduler_context(scheduler: str | None, workers: int):
    """(compute function, closer) for 'threads', 'processes', 'synchronous' or a distributed address."""
    import dask

    if scheduler in (None, "processes"):
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        # forkserver: workers fork from a clean server process, never from this one, which may
        # hold live OpenMP/torch thread pools (forking those deadlocks the child).
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(["astrostatlearn.segment.run"])
        pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx)
        return (lambda tasks: dask.compute(*tasks, scheduler="processes", pool=pool)), pool.shutdown
    if scheduler in ("threads", "synchronous", "single-threaded"):
        kw = {"num_workers": workers} if scheduler == "threads" else {}
        return (lambda tasks: dask.compute(*tasks, scheduler=scheduler, **kw)), (lambda: None)
    from distributed import Client

    try:
        client = Client(scheduler, timeout="20s")
    except OSError as exc:
        raise InputError(f"cannot reach the dask scheduler at {scheduler} ({exc})") from None
    return (lambda tasks: client.gather(client.compute(list(tasks)))), client.close


def check_segment_args(segmenter: Segmenter, out: Path, tile: int, halo: int | None, overwrite: bool) -> int:
    """Check the output folder, tile and halo before any work; returns the halo to use
    (default: max(128, the method's own))."""
    if out.exists() and not out.is_dir():
        raise InputError("output exists and is not a directory", out)
    for name in OUTPUTS:
        check_writable(out / name, overwrite)
    halo = max(128, segmenter.halo) if halo is None else int(halo)
    if halo < segmenter.halo:
        raise InputError(f"--halo {halo} is smaller than the context method {segmenter.name!r} needs ({segmenter.halo} px)")
    if tile < 64:
        raise InputError(f"--tile must be at least 64 pixels, got {tile}")
    return halo


def segment_field(field: Field, segmenter: Segmenter, out: str | Path, variant: str = "raw", tile: int = 1024,
                  halo: int | None = None, scheduler: str | None = None, workers: int | None = None,
                  score: bool = True, overwrite: bool = False, progress: bool = False,
                  pre: Preprocessor | None = None, mesh: BackgroundMesh | None = None,
                  model_path: str | None = None, region: Window | None = None) -> SegmentResult:
    """Segment ``field`` with ``segmenter`` (fitted if it needs to be) into folder ``out``.

    ``halo`` (default: max(128, the method's own halo)) must be at least the size of the largest
    object, or objects may be cut at tile seams; the run counts objects that reach the halo edge
    and reports them. ``scheduler``: 'processes', 'threads', 'synchronous', or the address of a
    dask.distributed scheduler; default: the method's own (processes; threads for the U-Net).
    Local processes start from a forkserver, so a script that calls this with the processes
    scheduler needs the usual ``if __name__ == "__main__":`` guard. ``region``: segment only this window (tiles still
    read their halo from the surrounding image); the maps keep the field's shape, zero outside.
    """
    import dask

    t_start = time.perf_counter()
    out = Path(out)
    halo = check_segment_args(segmenter, out, tile, halo, overwrite)
    if segmenter.needs_fit and not segmenter.is_fitted:
        raise InputError(f"method {segmenter.name!r} must be fitted first (pass --model)")
    scheduler = scheduler or segmenter.default_scheduler
    workers = workers or os.cpu_count() or 1
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    pre = pre or fit_variant(field, variant)
    mesh = mesh or BackgroundMesh.from_field(field, pre, progress=progress)
    timings["background"] = time.perf_counter() - t0

    tmpdir = Path(tempfile.mkdtemp(prefix=".segment-", dir=out.parent if out.parent.exists() else None))
    user_model = model_path
    try:
        if model_path is None:
            model_path = str(segmenter.save(tmpdir / "model.joblib"))
        model = (model_path, os.path.getmtime(model_path))
        paths = (str(field.img.path), None if field.rms is None else str(field.rms.path))
        region = region or field.full
        if region.intersect(field.full) != region:
            raise InputError(f"region {region} lies outside the {field.shape[0]}x{field.shape[1]} field")
        cores = [Window(c.y0 + region.y0, c.y1 + region.y0, c.x0 + region.x0, c.x1 + region.x0)
                 for c in tile_grid(region.shape, tile)]
        tasks = [dask.delayed(_segment_tile, pure=False)(i, paths, model, pre, mesh, c, c.grow(halo, field.shape),
                                                          pre.stats.img_median, score)
                 for i, c in enumerate(cores)]
        compute, close = _scheduler_context(scheduler, workers)
        out.mkdir(parents=True, exist_ok=True)
        header = output_header(field.header, CONTENT="segmentation", METHOD=segmenter.name, VARIANT=pre.variant)
        seg_writer = FitsImageWriter(out / "segmentation.fits", field.shape, np.int32, header, overwrite=overwrite)
        score_writer = FitsImageWriter(out / "score.fits", field.shape, np.float32,
                                       output_header(field.header, CONTENT="score", METHOD=segmenter.name),
                                       overwrite=overwrite) if score else None
        next_id, n_edge, max_extent, parts = 0, 0, 0, []
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=len(tasks), desc=f"segment {segmenter.name}", unit="tile", leave=False)
        t0 = time.perf_counter()
        has_score = False
        try:
            batch = max(1, 8 * workers)
            for b0 in range(0, len(tasks), batch):
                for res in compute(tasks[b0:b0 + batch]):
                    n = int(res.labels.max()) if res.labels.size else 0
                    if n:
                        _merge_labels(seg_writer, res.window, res.labels, next_id)
                        res.catalog["id"] += next_id
                        parts.append(res.catalog)
                    next_id += n
                    n_edge += res.n_at_edge
                    max_extent = max(max_extent, res.max_extent)
                    if score_writer is not None and res.score is not None:
                        score_writer.write(res.core, res.score)
                        has_score = True
                    if bar is not None:
                        bar.update()
        except BaseException:
            seg_writer.abort()
            if score_writer is not None:
                score_writer.abort()
            raise
        finally:
            close()
            if bar is not None:
                bar.close()
        timings["segment"] = time.perf_counter() - t0
        seg_writer.commit()
        if score_writer is not None:
            if has_score:
                score_writer.commit()
            else:
                score_writer.abort()
        t0 = time.perf_counter()
        run = {
            "method": segmenter.name, "params": segmenter.get_params(), "model": user_model,
            "variant": pre.variant, "variant_params": pre.params, "version": __version__,
            "field": {"img": paths[0], "rms": paths[1], "shape": list(field.shape)},
            "tile": tile, "halo": halo, "scheduler": scheduler, "workers": workers,
            "region": [region.y0, region.y1, region.x0, region.x1],
            "n_tiles": len(cores), "n_objects": next_id, "objects_at_halo_edge": n_edge,
            "largest_object_extent_px": max_extent,
        }
        if n_edge:
            run["warning"] = (f"{n_edge} objects reach the edge of a tile halo and may be cut at seams; "
                              f"the largest object spans {max_extent} px: rerun with --halo > {max_extent}")
        cat = finish_catalog(parts, field.wcs, {"method": segmenter.name, "variant": pre.variant})
        buf = io.StringIO()
        cat.write(buf, format="ascii.ecsv")
        atomic_write_bytes(out / "catalog.ecsv", buf.getvalue().encode(), overwrite=overwrite)
        timings["catalog"] = time.perf_counter() - t0
        timings["total"] = time.perf_counter() - t_start
        run["timings_s"] = timings
        run["mpix_per_s"] = region.size / 1e6 / max(timings["segment"], 1e-9)
        atomic_write_json(out / "run.json", run, overwrite=overwrite)
        return SegmentResult(out, next_id, n_edge, timings, run)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


def _merge_labels(writer: FitsImageWriter, window: Window, labels: np.ndarray, offset: int) -> None:
    """Write a tile's kept objects (IDs + offset) into the output, never over another object."""
    fname, data_offset, shape, dtype = writer.target
    mm = np.memmap(fname, dtype=np.dtype(dtype).newbyteorder(">"), mode="r", offset=data_offset, shape=shape)
    current = np.array(mm[window.slices])
    del mm
    new = np.where((labels > 0) & (current == 0), labels + offset, current).astype(np.int32)
    write_window(writer.target, window, new)

