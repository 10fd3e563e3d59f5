"""Segment a whole field of any size: tiles with a halo, local workers or Dask, seamless stitching, catalogue.

1. Global statistics and a background mesh are measured once for the whole field.
2. Each tile (core ``tile`` x ``tile`` plus ``halo`` on every side) is segmented by the method,
   as one task (a ``functools.partial`` of the tile function): local processes or threads, which
   need no dask, or a dask.distributed cluster.
3. The tile keeps the objects whose centroid is in its core (see :mod:`.stitch`); results are
   taken in raster order, so global IDs (running offsets) are the same on every run.
4. ``segmentation.fits`` (int32, input header + WCS), ``score.fits`` (optional),
   ``catalog.ecsv`` and ``run.json`` are staged and committed as one set, under a lock
   (:class:`~astrostatlearn.field.outputs.OutputSet`): never a mix of two runs' files.

Memory: the driver holds at most ``2 x workers + 1`` tile results (4 bytes per window pixel for
the labels plus 4 per core pixel for the score: ~21 MB at tile 2048 + halo 128; local worker
processes leave the score in one of ``2 x workers + 1`` shared slot files instead, see
:mod:`.score_slots`) and merges them
as they arrive into the rows of the maps that later tiles can still reach (:mod:`.output_rows`:
``(tile + 2 halo) x width x 4`` bytes for the labels, 230 MB at width 25000, and a tile of rows
for the score); each worker holds one tile's inputs and the method's work arrays, about
100 bytes per window pixel for the classical methods (~0.6 GB at tile 2048 + halo 128; measured
by ``benchmarks/bench_full_field.py``).
"""

from __future__ import annotations

import functools
import os
import threading
import time
import uuid
import warnings
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from dataclasses import field as dc_field
from pathlib import Path
from typing import Any

import numpy as np

from astrostatlearn import __version__
from astrostatlearn.errors import InputError
from astrostatlearn.field import Field, FitsImageWriter, Window, atomic_write_bytes, atomic_write_json, check_writable, tile_grid
from astrostatlearn.field.fitsio import output_header
from astrostatlearn.field.outputs import OutputSet
from astrostatlearn.methods import Segmenter, load_segmenter
from astrostatlearn.preprocess import Preprocessor, channel0_is_image, fit_variant
from astrostatlearn.segment.background import BackgroundMesh
from astrostatlearn.segment.catalog import CatalogText, CatalogWcs, measure_pixels, object_flags
from astrostatlearn.segment.kron import add_kron_columns
from astrostatlearn.segment.output_rows import OutputRows
from astrostatlearn.segment.score_slots import ScoreSlots, SlotRef, forget_slots, write_slot
from astrostatlearn.segment.checkpoint import Checkpoint, file_digest
from astrostatlearn.segment.stitch import own_objects
from astrostatlearn.segment.tiles import sky_of, tile_from_arrays
from astrostatlearn.processes import WorkerDiedError, check_workers
from astrostatlearn.schedulers import (check_scheduler, compute_context, local_process_pool,
                                       segment_preload, stream_ahead, warm_up)
from astrostatlearn.progress import progress_bar

OUTPUTS = ("segmentation.fits", "score.fits", "catalog.ecsv", "run.json")


def worker_modules(segmenter: Segmenter) -> list[str]:
    """What a local worker imports once, in the forkserver (:func:`~astrostatlearn.schedulers.segment_preload`)."""
    return segment_preload(type(segmenter).__module__)


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
    pixels: np.ndarray  # the kept objects' pixels: flat indices into ``window``, increasing
    pixel_ids: np.ndarray  # their tile IDs, 1..n_objects
    n_objects: int
    score: np.ndarray | SlotRef | None  # the score core, or where a local worker left it (:mod:`.score_slots`)
    catalog: Any
    n_at_edge: int
    max_extent: int
    counters: dict[str, int] = dc_field(default_factory=dict)


# Worker-side state per run: run id -> (field, segmenter), so a worker opens the field and loads
# the model once per run. The driver drops its run's entry when the run ends (locally, and on
# every dask.distributed worker); local process pools end with the run.
_RUN_STATE: dict[str, tuple[Field, Segmenter]] = {}
_RUN_LOCK = threading.Lock()


def _run_state(run_id: str, paths: tuple[Any, Any], model: tuple[str, dict[str, Any]]) -> tuple[Field, Segmenter]:
    """The run's field and segmenter: ``model`` is (model file, the driver's parameters), so the
    options given at segment time (``-p``) hold on every worker, not only those in the file."""
    with _RUN_LOCK:
        if run_id not in _RUN_STATE:
            seg = load_segmenter(model[0]).set_params(**model[1])
            _RUN_STATE[run_id] = (Field.from_sources(*paths), seg)
        return _RUN_STATE[run_id]


def forget_run(run_id: str | None = None) -> None:
    """Drop this process's cached field and model of ``run_id`` (of every run when None), and its
    maps of score slots."""
    forget_slots()
    with _RUN_LOCK:
        for key in [k for k in _RUN_STATE if run_id is None or k == run_id]:
            _RUN_STATE.pop(key)[0].close()


def _segment_tile(run_id: str, index: int, paths: tuple[Any, Any], model: tuple[str, dict[str, Any]],
                  pre: Preprocessor, mesh: BackgroundMesh, core: Window, window: Window, background: float,
                  with_score: bool, score_slot: str | None = None, kron: bool = False) -> _TileOutput:
    field, seg = _run_state(run_id, paths, model)
    img, rms = field.read_img_rms(window)
    sky = sky_of(pre, img, rms, window)
    tile = tile_from_arrays(pre, mesh, window, img, rms, sky=sky)
    tile.want_score = with_score
    pred = seg.predict(tile)
    owned = own_objects(pred.labels, window, core, field.shape, pred.instances)
    noise = pre.stats.rms_median if rms is None else rms  # without a map, the sky rms in every pixel
    local = pre.image_level(tile.bkg, rms, sky)  # the background mesh, as SExtractor's photometry takes it
    level: np.ndarray | float = background if local is None else local
    if tile.all_valid:  # the usual case: no pass over the whole window (the level comes off the measured pixels)
        data, error = img, noise
    else:
        data, level = np.where(tile.valid, img - level, 0.0), 0.0
        error = np.where(tile.valid, noise, 0.0)
    cat = measure_pixels(owned.pixels, owned.pixel_ids, window.shape, data, error, window, pred.score,
                         owned.instances, level)
    cat["flags"] = object_flags(owned.pixels, owned.pixel_ids, window.shape, window, field.shape,
                                None if tile.all_valid else ~tile.valid, owned.at_edge)
    if kron:
        add_kron_columns(cat, img - level if tile.all_valid else data, error, None if tile.all_valid else ~tile.valid,
                         pred.labels, owned.pixels, owned.pixel_ids, window.y0, window.x0)
    score: np.ndarray | SlotRef | None = None
    if with_score and pred.score is not None:
        core_score = pred.score[core.relative_to(window)]
        score = write_slot(score_slot, core_score) if score_slot else core_score.astype(np.float32)
    return _TileOutput(index, window, core, owned.pixels, owned.pixel_ids, owned.n_objects, score, cat,
                       owned.n_at_edge, owned.max_extent, dict(pred.counters))


def check_segment_args(segmenter: Segmenter, out: Path, tile: int, halo: int | None, overwrite: bool,
                       resume: bool = False, partial: bool = True) -> int:
    """Check the output folder (with ``partial``: no live writer, and a killed run's partial state
    only with ``resume`` or ``overwrite``), tile and halo before any work; returns the halo to use
    (default: max(128, the method's own))."""
    if out.exists() and not out.is_dir():
        raise InputError("output exists and is not a directory", out)
    for name in OUTPUTS:
        check_writable(out / name, overwrite)
    if partial:
        OutputSet(out, OUTPUTS, overwrite, resumable=True, resume=resume).check_partial()
    halo = max(128, segmenter.halo) if halo is None else int(halo)
    if halo < segmenter.halo:
        raise InputError(f"--halo {halo} is smaller than the context method {segmenter.name!r} needs ({segmenter.halo} px)")
    if tile < 64:
        raise InputError(f"--tile must be at least 64 pixels, got {tile}")
    if halo < 0:
        raise InputError(f"--halo must be >= 0, got {halo}")
    return halo


@dataclass
class SegmentPlan:
    """Everything a run needs, decided before any tile is segmented (:func:`plan_segment`)."""

    field: Field
    segmenter: Segmenter
    out: Path
    pre: Preprocessor
    mesh: BackgroundMesh
    tile: int
    halo: int
    scheduler: str
    workers: int
    score: bool
    overwrite: bool
    region: Window
    cores: list[Window]
    user_model: str | None
    run_id: str = ""
    model_path: str = ""
    stage: Path = Path()  # where the outputs are written before the set is committed to ``out``
    resumed_at: int = 0  # tiles a killed run had finished when this run resumed it
    pool: Any = None  # the run's local process pool, already started (the tiles take it over)
    slots: ScoreSlots | None = None  # where local workers leave their score cores (:mod:`.score_slots`)
    wcs: CatalogWcs | None = None  # the catalogue's WCS, made while the tiles run
    kron: bool = False  # the catalogue has Kron (AUTO) photometry (:mod:`.kron`)

    @property
    def paths(self) -> tuple[str, str | None]:
        """Absolute paths of the image and rms (``file.fits[N]`` where an HDU was chosen): workers of
        a cluster open them from their own cwd."""
        paths = self.field.file_paths
        if paths is not None:
            return paths
        rms = self.field.rms
        return str(self.field.img.path.resolve()), None if rms is None else str(rms.path.resolve())

    def tasks(self) -> list[Any]:
        """One task per tile core, in raster order: a picklable zero-argument call of the tile
        function (``functools.partial``), which local workers run with no dask to import and a
        dask.distributed cluster submits as it is; workers open the field from its
        :attr:`~astrostatlearn.field.Field.sources` (no header to parse, no astropy to import)."""
        bkg = self.pre.stats.img_median
        model = (self.model_path, self.segmenter.get_params())
        sources = self.field.sources or self.paths
        return [functools.partial(_segment_tile, self.run_id, i, sources, model, self.pre, self.mesh, c,
                                  c.grow(self.halo, self.field.shape), bkg, self.score,
                                  None if self.slots is None else self.slots.slot(i), self.kron)
                for i, c in enumerate(self.cores)]


def plan_segment(field: Field, segmenter: Segmenter, out: str | Path, variant: str = "raw", tile: int | None = None,
                 halo: int | None = None, scheduler: str | None = None, workers: int | None = None,
                 score: bool = True, overwrite: bool = False, pre: Preprocessor | None = None,
                 mesh: BackgroundMesh | None = None, model_path: str | None = None,
                 region: Window | None = None, progress: bool = False) -> SegmentPlan:
    """Check the arguments and fix the run: variant, background mesh, halo, tile cores."""
    out = Path(out)
    tile = segmenter.default_tile if tile is None else tile
    halo = check_segment_args(segmenter, out, tile, halo, overwrite, partial=False)  # the OutputSet holds the lock
    check_scheduler(scheduler)
    check_workers(workers)
    if segmenter.needs_fit and not segmenter.is_fitted:
        raise InputError(f"method {segmenter.name!r} must be fitted first (pass --model)")
    region = region or field.full
    if region.intersect(field.full) != region:
        raise InputError(f"region {region} lies outside the {field.shape[0]}x{field.shape[1]} field")
    pre = pre or fit_variant(field, variant)
    halo = max(halo, pre.context)  # every core pixel's channels as the whole field's
    mesh = mesh or BackgroundMesh.from_field(field, pre, progress=progress, sample=segmenter.background_sample)
    cores = [Window(c.y0 + region.y0, c.y1 + region.y0, c.x0 + region.x0, c.x1 + region.x0)
             for c in tile_grid(region.shape, tile)]
    return SegmentPlan(field, segmenter, out, pre, mesh, tile, halo, scheduler or segmenter.default_scheduler,
                       workers or os.cpu_count() or 1, score, overwrite, region, cores, model_path)


@dataclass
class _Assembly:
    """The driver's running state while tile results arrive in raster order."""

    seg_writer: FitsImageWriter
    score_writer: FitsImageWriter | None
    labels: OutputRows
    scores: OutputRows | None
    next_id: int = 0
    n_edge: int = 0
    max_extent: int = 0
    has_score: bool = False
    counters: dict[str, int] = dc_field(default_factory=dict)  # the method's own tallies, summed over tiles
    slots: ScoreSlots | None = None  # the run's score slots, read when a tile's score is in one
    # the catalogue's rows, formatted as the parts arrive (_open_assembly gives it the run's WCS)
    catalog: CatalogText = dc_field(default_factory=lambda: CatalogText(lambda: None))

    def __post_init__(self) -> None:
        self.parts: list[Any] = []

    def add(self, res: _TileOutput) -> None:
        """Merge one tile: its objects get global IDs (running offset), its catalogue rows too."""
        n = res.n_objects
        if n:
            self.labels.merge_labels(res.window, res.pixels, res.pixel_ids, self.next_id)
            res.catalog["id"] += self.next_id
            self.parts.append(res.catalog)
            self.catalog.format(self.parts)
        self.next_id += n
        self.n_edge += res.n_at_edge
        self.max_extent = max(self.max_extent, res.max_extent)
        for k, v in res.counters.items():
            self.counters[k] = self.counters.get(k, 0) + int(v)
        if self.score_writer is not None and res.score is not None:
            score = self.slots.view(res.score) if isinstance(res.score, SlotRef) else res.score  # type: ignore[union-attr]
            self.scores.place(res.core, score)  # type: ignore[union-attr]
            self.has_score = True

    def _bands(self) -> list[OutputRows]:
        return [b for b in (self.labels, self.scores) if b is not None]

    def state(self) -> dict[str, Any]:
        """The counters a checkpoint saves (the catalogue parts are saved apart)."""
        return {"next_id": self.next_id, "n_edge": self.n_edge, "max_extent": self.max_extent,
                "has_score": self.has_score, "counters": dict(self.counters)}

    def restore(self, state: dict[str, Any], parts: list[Any]) -> None:
        for k, v in state.items():
            setattr(self, k, v)
        self.parts = list(parts)

    def sync(self) -> None:
        for rows in self._bands():
            rows.flush()
        for w in (self.seg_writer, self.score_writer):
            if w is not None:
                w.sync()

    def abort(self) -> None:
        for rows in self._bands():
            rows.discard()
        self.seg_writer.abort()
        if self.score_writer is not None:
            self.score_writer.abort()

    def commit(self) -> None:
        for rows in self._bands():
            rows.close()
        self.seg_writer.commit()
        if self.score_writer is not None:
            (self.score_writer.commit if self.has_score else self.score_writer.abort)()


def execute_plan(plan: SegmentPlan, assembly: _Assembly, progress: bool = False,
                 checkpoint: Checkpoint | None = None, start: int = 0) -> None:
    """Segment every tile from ``start`` on (Dask) and feed the results to ``assembly`` in raster
    order as they arrive (the workers go on computing meanwhile); after every ``8 x workers``
    tiles but the last, the maps are flushed (``fsync``) and ``checkpoint`` records the tiles
    done (the last batch is committed at once, so flushing it would only wait on the disk)."""
    tasks = plan.tasks()
    compute, close = compute_context(plan.scheduler, plan.workers, preload=worker_modules(plan.segmenter),
                                     forget=forget_run, pool=plan.pool)
    bar = progress_bar(total=len(tasks), initial=start, desc=f"segment {plan.segmenter.name}", unit="tile",
                       enabled=progress)
    failed = True
    try:
        batch = max(1, 8 * plan.workers)
        n_parts = len(assembly.parts)
        for done, res in enumerate(compute(tasks[start:]), start=start + 1):
            assembly.add(res)
            bar.update()
            if checkpoint is not None and done % batch == 0 and done < len(tasks):  # the last: commit follows
                assembly.sync()
                checkpoint.save(done, assembly.state(), assembly.parts[n_parts:])
                n_parts = len(assembly.parts)
        failed = False
    except BrokenProcessPool:
        raise WorkerDiedError() from None
    finally:
        close(plan.run_id, failed)
        forget_run(plan.run_id)
        bar.close()


def _fingerprint(plan: SegmentPlan) -> dict[str, Any]:
    """What a resumed run must share with the killed one for its outputs to be the same."""
    r = plan.region
    return {"img": plan.paths[0], "rms": plan.paths[1], "noise": plan.field.noise_kind, "mask": plan.field.mask,
            "shape": list(plan.field.shape),
            "method": plan.segmenter.name, "model_sha256": file_digest(plan.model_path),
            "variant": plan.pre.variant, "tile": plan.tile, "halo": plan.halo,
            "region": [r.y0, r.y1, r.x0, r.x1], "score": plan.score,
            **({"kron": True} if plan.kron else {})}  # absent when off: a run killed by an older version resumes


def assemble_outputs(plan: SegmentPlan, assembly: _Assembly, timings: dict[str, float], t_start: float) -> SegmentResult:
    """Write ``catalog.ecsv`` and ``run.json`` once the maps are committed."""
    t0 = time.perf_counter()
    field, seg, region = plan.field, plan.segmenter, plan.region
    run = {
        "method": seg.name, "params": seg.get_params(), "model": plan.user_model,
        "variant": plan.pre.variant, "variant_params": plan.pre.params, "version": __version__,
        "field": {"img": plan.paths[0], "rms": plan.paths[1], "noise": field.noise_kind, "mask": field.mask,
                  "shape": list(field.shape)},
        "tile": plan.tile, "halo": plan.halo, "scheduler": plan.scheduler, "workers": plan.workers,
        "region": [region.y0, region.y1, region.x0, region.x1], "kron": plan.kron,
        "n_tiles": len(plan.cores), "n_objects": assembly.next_id, "objects_at_halo_edge": assembly.n_edge,
        "largest_object_extent_px": assembly.max_extent, "resumed_at_tile": plan.resumed_at,
        "method_counters": dict(assembly.counters),
    }
    if assembly.n_edge:
        run["warning"] = (f"{assembly.n_edge} objects reach the edge of a tile halo and may be cut at seams; "
                          f"the largest object spans {assembly.max_extent} px: rerun with --halo > {assembly.max_extent}")
    method_warnings = seg.run_warnings(assembly.counters)
    if method_warnings:
        run["method_warnings"] = method_warnings
        for msg in method_warnings:
            warnings.warn(msg, stacklevel=2)
    text = assembly.catalog.ecsv(assembly.parts, {"method": seg.name, "variant": plan.pre.variant})
    atomic_write_bytes(plan.stage / "catalog.ecsv", text, overwrite=True)
    timings["catalog"] = time.perf_counter() - t0
    timings["total"] = time.perf_counter() - t_start
    run["timings_s"] = timings
    run["mpix_per_s"] = region.size / 1e6 / max(timings["segment"], 1e-9)
    atomic_write_json(plan.stage / "run.json", run, overwrite=True)
    return SegmentResult(plan.out, assembly.next_id, assembly.n_edge, timings, run)


def segment_field(field: Field, segmenter: Segmenter, out: str | Path, variant: str = "raw", tile: int | None = None,
                  halo: int | None = None, scheduler: str | None = None, workers: int | None = None,
                  score: bool = True, overwrite: bool = False, progress: bool = False,
                  pre: Preprocessor | None = None, mesh: BackgroundMesh | None = None,
                  model_path: str | None = None, region: Window | None = None, resume: bool = False,
                  pool: Any = None, kron: bool = False) -> SegmentResult:
    """Segment a whole field of any size, tile by tile, into ``segmentation.fits``,
    ``score.fits``, ``catalog.ecsv`` and ``run.json``.

    Three steps: :func:`plan_segment` (checks, variant, background mesh, tile cores),
    :func:`execute_plan` (tiles on local workers or a Dask cluster, results merged in raster order) and
    :func:`assemble_outputs` (catalogue, run record). Local processes start from a forkserver, so
    a script that uses the processes scheduler needs the usual ``if __name__ == "__main__":`` guard.

    Parameters
    ----------
    field : Field
        The field (image, optional rms).
    segmenter : Segmenter
        A method, fitted if it needs to be.
    out : path
        The output folder (one output set, staged and committed whole).
    variant : str
        The input variant.
    tile : int, optional
        Tile core size, pixels (default: the method's ``default_tile``).
    halo : int, optional
        Default max(128, the method's own halo); must be at least the largest object, or objects
        may be cut at tile seams (objects that reach the halo edge are counted and reported).
    scheduler : str, optional
        'processes', 'threads', 'synchronous', or a dask.distributed address; default: the
        method's own (processes; threads for torch methods).
    workers : int, optional
        Local workers (default: all cores).
    score : bool
        Write ``score.fits`` when the method has a score.
    overwrite : bool
        Replace existing outputs (and a killed run's partial state).
    progress : bool
        Show a progress bar.
    pre, mesh : optional
        A fitted variant and background mesh (default: fitted here).
    model_path : str, optional
        The model file the workers load (default: the method's default model).
    region : Window, optional
        Segment only this window (tiles still read their halo around it); the maps keep the
        field's shape, zero outside.
    resume : bool
        Continue a run into ``out`` that was killed, from its finished tiles; the outputs equal an
        uninterrupted run's.
    pool : optional
        The run's :func:`~astrostatlearn.schedulers.local_process_pool`, started before (by
        :func:`prepare_and_segment`, for the background mesh), for the processes scheduler: the
        tiles take it over and end it (default: a pool of their own).
    kron : bool
        Add Kron photometry to the catalogue (``flux_auto``, ``kron_radius``, and ``mag_auto``
        with a zero-point; :mod:`~astrostatlearn.segment.kron`), as SExtractor's ``FLUX_AUTO``.

    Returns
    -------
    SegmentResult
        The number of objects, the run record and the timings.

    Raises
    ------
    InputError
        Bad options, existing outputs without ``overwrite``, a worker that died.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from astrostatlearn.field import Field
    >>> from astrostatlearn.methods import default_segmenter
    >>> from astrostatlearn.segment import segment_field
    >>> from astrostatlearn.simulate import simulate_field
    >>> tmp = Path(tempfile.mkdtemp())
    >>> _ = simulate_field(tmp / "field", 256, seed=1, workers=0, progress=False)
    >>> with Field.open(tmp / "field") as f:
    ...     res = segment_field(f, default_segmenter("sep"), tmp / "run", tile=128, scheduler="threads")
    >>> sorted(p.name for p in (tmp / "run").iterdir())
    ['catalog.ecsv', 'run.json', 'score.fits', 'segmentation.fits']
    """
    t_start = time.perf_counter()
    with OutputSet(out, OUTPUTS, overwrite, expected_bytes=field.shape[0] * field.shape[1] * (8 if score else 4),
                   resumable=True, resume=resume) as tx:
        t0 = time.perf_counter()
        plan = plan_segment(field, segmenter, out, variant, tile, halo, scheduler, workers, score, overwrite, pre, mesh,
                            model_path, region, progress)
        timings: dict[str, float] = {"background": time.perf_counter() - t0}
        plan.stage, plan.pool, plan.kron = tx.path(), pool, kron
        scratch = tx.scratch()
        if plan.score and plan.scheduler in (None, "processes"):  # workers on this machine: shared pages
            plan.slots = ScoreSlots(scratch, stream_ahead(plan.workers) + 1, plan.tile)
        plan.model_path = str(Path(model_path or segmenter.save(scratch / "model.bin")).resolve())
        plan.run_id = f"{os.getpid()}-{uuid.uuid4().hex}"  # worker caches are keyed by run
        checkpoint = Checkpoint(plan.stage, _fingerprint(plan))
        assembly, start = _open_assembly(plan, tx, *(checkpoint.load() if tx.resumed else (0, {}, [])))
        plan.wcs = CatalogWcs(field)  # after the output headers: the header is only read meanwhile
        t0 = time.perf_counter()
        try:
            execute_plan(plan, assembly, progress, checkpoint, start)
        except BaseException:
            assembly.abort()
            raise
        finally:
            if plan.slots is not None:
                plan.slots.close()
        timings["segment"] = time.perf_counter() - t0
        assembly.commit()
        plan.resumed_at = start
        return assemble_outputs(plan, assembly, timings, t_start)


def prepare_and_segment(field: Field, segmenter: Segmenter, out: str | Path, variant: str = "raw",
                        progress: bool = False, **options: Any) -> SegmentResult:
    """What ``astrostatlearn segment`` does once its arguments are checked: scan every pixel of
    ``field`` (the checks of :func:`~astrostatlearn.field.scan_field`, in the same pass as the
    background mesh), fit the variant and the background mesh,
    fit an unsupervised method on a sample of 16 tiles of the field, then :func:`segment_field`
    with ``options`` (tile, halo, scheduler, workers, score, overwrite, model_path, resume).

    Parameters
    ----------
    field : Field
        The opened field.
    segmenter : Segmenter
        The method, with its model when it has one.
    out : str or Path
        The output folder.
    variant : str
        The input variant (``raw``, ``snr``, ...).
    progress : bool
        Show progress bars.
    **options
        Passed to :func:`segment_field`.

    Returns
    -------
    SegmentResult
        As :func:`segment_field`.

    Raises
    ------
    InputError
        Bad pixels (:func:`~astrostatlearn.field.scan_field`), a variant the model was not trained
        on, or anything :func:`segment_field` refuses.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from astrostatlearn.field import Field
    >>> from astrostatlearn.methods import default_segmenter
    >>> from astrostatlearn.segment.run import prepare_and_segment
    >>> from astrostatlearn.simulate import simulate_field
    >>> tmp = Path(tempfile.mkdtemp())
    >>> _ = simulate_field(tmp / "field", 256, seed=1, workers=0, progress=False)
    >>> with Field.open(tmp / "field") as f:
    ...     res = prepare_and_segment(f, default_segmenter("sep"), tmp / "run", scheduler="threads")
    >>> res.n_objects > 0, (tmp / "run" / "catalog.ecsv").exists()
    (True, True)
    """
    from astrostatlearn.segment.tiles import region_tiles

    if segmenter.needs_fit and not segmenter.is_fitted and segmenter.supervised:
        raise InputError(f"method {segmenter.name!r} is supervised: train it first (astrostatlearn train) and pass "
                         "a model")
    # The workers' imports run in the forkserver while this process reads the field.
    scheduler = options.get("scheduler") or segmenter.default_scheduler
    warm_up(scheduler, worker_modules(segmenter))
    check_scheduler(scheduler)
    check_workers(options.get("workers"))
    workers = options.get("workers") or os.cpu_count() or 1
    with ThreadPoolExecutor(1, thread_name_prefix="variant") as side:
        # The variant's statistics (a sort of 4 Mpix, 0.25 s) in a thread: for a variant whose
        # channel 0 is the image, while the workers measure the mesh, so no core waits on them.
        fitting = side.submit(fit_variant, field, variant)
        pre = None if channel0_is_image(variant) else fitting.result()
        # One pass over the pixels: the mesh strips make the scan's image and rms checks too, in
        # the run's own worker processes for a field on disk (threads: the GIL holds them to
        # ~1.7x); the tiles then take the same pool over, its workers started and warm.
        with local_process_pool(scheduler if field.file_paths is not None else "threads", workers,
                                worker_modules(segmenter)) as pool:
            mesh = BackgroundMesh.from_field(field, pre, progress=progress, check=True, workers=max(2, workers),
                                             pool=pool, sample=segmenter.background_sample)
            pre = fitting.result()
            if segmenter.needs_fit and not segmenter.is_fitted:  # unsupervised (kmeans): fit on a sample of this field
                segmenter.fit(list(region_tiles(field, pre, mesh, field.full, tile=512, max_tiles=16)))
            return segment_field(field, segmenter, out, variant=variant, progress=progress, pre=pre, mesh=mesh,
                                 pool=pool, **options)


def _open_assembly(plan: SegmentPlan, tx: OutputSet, start: int, state: dict[str, Any],
                   parts: list[Any]) -> tuple[_Assembly, int]:
    """The output maps, filled in fixed ``*.part`` files of the partial folder: reopened when
    resuming at tile ``start`` > 0 (a fresh start, or maps that did not survive, begin at 0)."""
    field, seg = plan.field, plan.segmenter
    part = {n: tx.path() / f"{n}.part" for n in ("segmentation.fits", "score.fits")}
    if start == 0:
        for p in part.values():
            p.unlink(missing_ok=True)
    header = output_header(field.header, CONTENT="segmentation", METHOD=seg.name, VARIANT=plan.pre.variant)
    seg_writer = FitsImageWriter(tx.path("segmentation.fits"), field.shape, np.int32, header, overwrite=True,
                                 tmp=part["segmentation.fits"])
    score_writer = FitsImageWriter(tx.path("score.fits"), field.shape, np.float32,
                                   output_header(field.header, CONTENT="score", METHOD=seg.name),
                                   overwrite=True, tmp=part["score.fits"]) if plan.score else None
    writers = [w for w in (seg_writer, score_writer) if w is not None]
    if start and not all(w.resumed for w in writers):
        for w in writers:
            w.abort()
        return _open_assembly(plan, tx, 0, {}, [])
    labels = OutputRows(seg_writer, resumed=start > 0, rows=plan.tile + 2 * plan.halo)
    scores = None if score_writer is None else OutputRows(score_writer, resumed=start > 0, rows=plan.tile)
    # The catalogue's WCS is plan.wcs (made after these output headers, while the tiles run), asked for at the first rows.
    assembly = _Assembly(seg_writer, score_writer, labels, scores, slots=plan.slots,
                         catalog=CatalogText(lambda: plan.wcs.result() if plan.wcs is not None else field.wcs,
                                             field.zeropoint))
    assembly.restore(state, parts)
    return assembly, start

