"""Build the viewer's static site for a field: plan, render the blocks, assemble.

Layout of a site folder::

    index.html, site.js (the viewer's configuration), site.json (what each part was built from)
    static/        the viewer's code and OpenSeadragon (shipped in the package, from npm)
    image/tiles/   the field's pyramid (:mod:`.pyramid`, :mod:`.layers`)
    layers/<name>/ tiles/ (overlay pyramid), ids/ (full-resolution ID tiles), catalog/ (chunks)

The site is one output set (:class:`~astrostatlearn.field.outputs.OutputSet`): staged, then
committed whole. With ``overwrite``, every part of the old site whose inputs are unchanged (the
same file, size and modification time, the same stretch) is reused by hard links, not rebuilt:
adding a segmentation to a site costs only the new layer.

Memory: each task holds one block (:mod:`.blocks`, about 0.4 GB); the driver holds the blocks'
coarsest level for each part, ``4 * ny * nx / 256`` bytes (10 MB per part at 25000²).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from dataclasses import dataclass, field as dataclass_field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from astrostatlearn import __version__
from astrostatlearn.errors import InputError
from astrostatlearn.field import Field
from astrostatlearn.field.fitsio import open_image
from astrostatlearn.field.outputs import OutputSet
from astrostatlearn.processes import check_workers
from astrostatlearn.progress import progress_bar
from astrostatlearn.schedulers import check_scheduler, compute_context
from astrostatlearn.view.blocks import LayerJob, render_block, write_top_levels
from astrostatlearn.view.catalog_chunks import write_catalog_chunks
from astrostatlearn.view.pyramid import Pyramid
from astrostatlearn.view.sky import sky_grid
from astrostatlearn.view.stretch import Stretch, choose_stretch

RENDER_VERSION = 1  # bump when the tiles change meaning: older sites' tiles are then rebuilt
STATIC = Path(__file__).parent / "static"


@dataclass(frozen=True)
class LayerSource:
    """A label map to overlay: ``kind`` 'segmentation' or 'truth'; ``catalog``: its ECSV (with ``id``)."""

    name: str
    kind: str
    labels: Path
    catalog: Path | None = None
    method: str | None = None

    @property
    def folder(self) -> str:
        return f"layers/{self.name}"


def _file_key(path: Path | None) -> dict | None:
    if path is None:
        return None
    st = path.stat()
    return {"path": str(path.resolve()), "bytes": st.st_size, "mtime_ns": st.st_mtime_ns}


@dataclass
class SitePlan:
    """Everything a build needs, decided before any tile is made."""

    field_path: Path
    image: Path
    pyramid: Pyramid
    stretch: Stretch
    layers: list[LayerSource]
    out: Path
    overwrite: bool
    scheduler: str | None
    workers: int
    sky: dict | None
    reuse: dict[str, Path] = dataclass_field(default_factory=dict)

    def parts(self) -> dict[str, dict]:
        """Part folder -> what it is built from (compared with an old site's for reuse)."""
        common = {"render": RENDER_VERSION, "tile": self.pyramid.tile, "block_levels": self.pyramid.block_levels}
        parts = {"image": {**common, "source": _file_key(self.image), "stretch": self.stretch.to_dict()}}
        for layer in self.layers:
            parts[layer.folder] = {**common, "source": _file_key(layer.labels), "catalog": _file_key(layer.catalog),
                                   "kind": layer.kind}
        return parts


def _layer_name(name: str, taken: set[str]) -> str:
    base = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "layer"
    out, n = base, 2
    while out in taken:
        out, n = f"{base}-{n}", n + 1
    taken.add(out)
    return out


def find_layers(field: Field, segs: Sequence[Any], truth: bool) -> list[LayerSource]:
    """Layers for ``--truth`` and each ``--seg``: a ``segment`` output folder or a label FITS file,
    or a ``(name, path)`` pair that names the layer (default: the run's method, else the file's name)."""
    taken: set[str] = set()
    layers = []
    if truth:
        if field.true is None:
            raise InputError("the field has no truth map (true.fits) to show with --truth", field.img.path.parent)
        layers.append(LayerSource(_layer_name("truth", taken), "truth", field.true.path, field.catalog))
    for item in segs:
        given, seg = (item[0], Path(item[1])) if isinstance(item, tuple) else (None, Path(item))
        if not seg.exists():
            raise InputError("segmentation not found", seg)
        labels, catalog, method = seg, None, None
        if seg.is_file() and seg.name == "segmentation.fits":  # inside a segment output folder
            seg = seg.parent
        if seg.is_dir():
            labels = seg / "segmentation.fits"
            if not labels.exists():
                raise InputError("folder has no segmentation.fits (is it an astrostatlearn segment output?)", seg)
            catalog = seg / "catalog.ecsv" if (seg / "catalog.ecsv").exists() else None
            if (seg / "run.json").exists():
                method = json.loads((seg / "run.json").read_text()).get("method")
        with open_image(labels, role="segmentation") as f:
            if f.shape != field.shape:
                raise InputError(f"segmentation is {f.shape[0]}x{f.shape[1]} but the field is "
                                 f"{field.shape[0]}x{field.shape[1]}", labels)
        name = given or method or (seg.name if seg.is_dir() else seg.stem.removesuffix(".fits"))
        layers.append(LayerSource(_layer_name(name, taken), "segmentation", labels, catalog, method))
    return layers


def plan_site(field_path: str | Path, out: str | Path, segs: Sequence[Any] = (), truth: bool = False,
              stretch: str = "asinh", overwrite: bool = False, scheduler: str | None = None,
              workers: int | None = None, block_levels: int = 4) -> SitePlan:
    """Check the inputs and decide the work (see :func:`build_site`)."""
    check_workers(workers)
    check_scheduler(scheduler)
    out = Path(out).absolute()
    if out.exists() and not overwrite:
        raise InputError("site folder exists; pass --overwrite to rebuild it (unchanged parts are reused)", out)
    with Field.open(field_path) as field:
        layers = find_layers(field, segs, truth)
        plan = SitePlan(Path(field_path), field.img.path.absolute(), Pyramid(field.shape, block_levels=block_levels),
                        choose_stretch(field, stretch), layers, out, overwrite, scheduler,
                        workers or min(2, os.cpu_count() or 1), sky_grid(field))
    plan.reuse = _reusable(plan)
    return plan


def _reusable(plan: SitePlan) -> dict[str, Path]:
    """Parts of the existing site at ``plan.out`` built from the same inputs."""
    manifest = plan.out / "site.json"
    if not (plan.overwrite and manifest.exists()):
        return {}
    try:
        old = json.loads(manifest.read_text()).get("parts", {})
    except (OSError, ValueError):
        return {}
    return {part: plan.out / part for part, key in plan.parts().items()
            if old.get(part) == key and (plan.out / part).is_dir()}


def _jobs(plan: SitePlan, staging: Path) -> tuple[LayerJob, ...]:
    jobs = []
    if "image" not in plan.reuse:
        jobs.append(LayerJob("image", "image", str(plan.image), str(staging / "image"), plan.stretch))
    for layer in plan.layers:
        if layer.folder not in plan.reuse:
            jobs.append(LayerJob(layer.folder, "labels", str(layer.labels), str(staging / layer.folder)))
    return tuple(jobs)


def render_blocks(plan: SitePlan, staging: Path, progress: bool = False) -> dict[str, np.ndarray]:
    """Render every block of every part that is not reused; return each part's coarsest block
    level for the whole field (assembled from the blocks)."""
    import dask

    jobs = _jobs(plan, staging)
    if not jobs:
        return {}
    pyr = plan.pyramid
    k = pyr.levels_in_blocks - 1
    coarse_shape = pyr.level_shape(pyr.max_level - k)
    coarse = {j.name: np.full(coarse_shape, np.nan, np.float32) if j.kind == "image" else np.zeros(coarse_shape, np.int32)
              for j in jobs}
    blocks = pyr.blocks()
    tasks = [dask.delayed(render_block, pure=False)(pyr, b, jobs) for b in blocks]
    compute, close = compute_context(plan.scheduler, plan.workers, preload=["dask", "astrostatlearn.view.blocks"])
    bar = progress_bar(total=len(tasks), desc="view", unit="block", enabled=progress)
    failed = True
    try:
        batch = max(1, 4 * plan.workers)
        for b0 in range(0, len(tasks), batch):
            for block, result in zip(blocks[b0:b0 + batch], compute(tasks[b0:b0 + batch])):
                for name, data in result.items():
                    coarse[name][block.y0 >> k:(block.y0 >> k) + data.shape[0],
                                 block.x0 >> k:(block.x0 >> k) + data.shape[1]] = data
                bar.update()
        failed = False
    finally:
        close("view", failed)
        bar.close()
    for job in jobs:
        write_top_levels(pyr, Path(job.root) / "tiles", coarse[job.name], job.kind)
    return coarse


def _layer_config(layer: LayerSource, staging: Path) -> dict[str, Any]:
    catalog = None
    if layer.catalog is not None:
        manifest = staging / layer.folder / "catalog" / "index.json"
        if manifest.exists():  # reused
            catalog = json.loads(manifest.read_text())
        else:
            catalog = write_catalog_chunks(layer.catalog, staging / layer.folder / "catalog")
            manifest.write_text(json.dumps(catalog))
    return {"name": layer.name, "kind": layer.kind, "path": f"{layer.folder}/", "method": layer.method,
            "source": str(layer.labels), "catalog": catalog}


def write_site_files(plan: SitePlan, staging: Path) -> dict[str, Any]:
    """The viewer's code, its configuration (``site.js``) and the build record (``site.json``)."""
    pyr = plan.pyramid
    config = {
        "title": plan.field_path.name, "width": pyr.shape[1], "height": pyr.shape[0], "tileSize": pyr.tile,
        "maxLevel": pyr.max_level, "format": "png", "image": {"path": "image/", "stretch": plan.stretch.to_dict()},
        "layers": [_layer_config(layer, staging) for layer in plan.layers], "sky": plan.sky,
        "version": __version__,
    }
    shutil.copytree(STATIC, staging / "static", dirs_exist_ok=True)
    shutil.move(staging / "static" / "index.html", staging / "index.html")
    (staging / "site.js").write_text("window.ASTRO_SITE = " + json.dumps(config, separators=(",", ":")) + ";\n")
    record = {"version": __version__, "field": str(plan.image), "parts": plan.parts(),
              "built": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    (staging / "site.json").write_text(json.dumps(record, indent=1))
    return config


@dataclass
class SiteResult:
    """A built site: its folder, the parts built and reused, the tile count and the wall time (s)."""

    out: Path
    built: list[str]
    reused: list[str]
    n_tiles: int
    seconds: float

    def summary(self) -> str:
        reused = f", reused {', '.join(self.reused)}" if self.reused else ""
        return (f"wrote {self.out}: {len(self.built)} parts built ({self.n_tiles} tiles each){reused}, "
                f"{self.seconds:.1f} s")


def build_site(field_path: str | Path, out: str | Path, segs: Sequence[Any] = (), truth: bool = False,
               stretch: str = "asinh", overwrite: bool = False, scheduler: str | None = None,
               workers: int | None = None, progress: bool = False, block_levels: int = 4) -> SiteResult:
    """Build the viewer site of a field.

    Parameters
    ----------
    field_path : path
        A field folder (``img.fits``, optional ``true.fits``, ``truth.ecsv``) or an image file.
    out : path
        The site folder to write (``index.html``, tiles, catalogue chunks).
    segs : sequence
        ``segment`` output folders or label FITS files to overlay, each optionally as a
        ``(layer name, path)`` pair.
    truth : bool
        Overlay the field's truth map.
    stretch : {'asinh', 'zscale'}
        The display stretch (:mod:`astrostatlearn.view.stretch`).
    overwrite : bool
        Rebuild an existing site; parts whose inputs are unchanged are reused.
    scheduler, workers : optional
        As for ``segment``: 'processes', 'threads', 'synchronous' or a dask.distributed address.
    progress : bool
        Show a progress bar.
    block_levels : int
        Each task makes this many levels plus one (blocks of ``256 * 2**block_levels`` pixels);
        the tiles do not depend on it.

    Returns
    -------
    SiteResult
        The folder, the parts built and reused, the tile count and the wall time.

    Raises
    ------
    InputError
        A segmentation of another shape, an existing site without ``overwrite``, bad options.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from astrostatlearn.simulate import simulate_field
    >>> from astrostatlearn.view import build_site
    >>> tmp = Path(tempfile.mkdtemp())
    >>> _ = simulate_field(tmp / "field", 256, seed=1, workers=0, progress=False)
    >>> site = build_site(tmp / "field", tmp / "site", truth=True, scheduler="threads")
    >>> (site.out / "index.html").exists(), site.n_tiles > 0
    (True, True)
    """
    t0 = time.perf_counter()
    plan = plan_site(field_path, out, segs, truth, stretch, overwrite, scheduler, workers, block_levels)
    with OutputSet(plan.out, None, overwrite) as tx:
        staging = tx.path()
        for part, old in plan.reuse.items():
            (staging / part).parent.mkdir(parents=True, exist_ok=True)
            shutil.copytree(old, staging / part, copy_function=os.link)
        render_blocks(plan, staging, progress)
        write_site_files(plan, staging)
    built = [p for p in plan.parts() if p not in plan.reuse]
    return SiteResult(plan.out, built, sorted(plan.reuse), plan.pyramid.n_tiles(), time.perf_counter() - t0)
