"""Command line: a thin Typer layer over the library. Every command has ``--help``.

Bad input (:class:`~astrostatlearn.errors.InputError`) prints one line, ``error: ...``, on stderr
and exits with code 2, without a traceback.
"""

from __future__ import annotations

import functools
import json
import math
import os
import sys
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional

import typer

from astrostatlearn.errors import InputError, Terminated

if TYPE_CHECKING:
    from astrostatlearn.field import MaskFile, Window

# Method names for help texts come from the light registry (no import of the methods, numpy or astropy).
from astrostatlearn.methods.registry import BUILTIN_METHODS as _BUILTIN, default_benchmark_methods  # noqa: E402

METHOD_LIST = ", ".join(_BUILTIN)
WEIGHT_HELP = "Inverse-variance weight map (0 = no data), in place of --rms, as SExtractor's MAP_WEIGHT."
VARIANCE_HELP = "Variance map (as HSC and LSST ship; 0 = no data), in place of --rms."
MASK_HELP = "Bad-pixel map, e.g. a DQ or flag map: non-zero pixels have no data."
MASK_BITS_HELP = ("The bits of --mask that mean no data (others are ignored): a sum (131, 0x83), bit values "
                  "(1,2,128), names from the mask's MP_* cards (BAD,SAT,NO_DATA; LSST, HSC) or ~BITS for all "
                  "bits but those. Default: any non-zero value.")
DEFAULT_BENCHMARK = default_benchmark_methods()

app = typer.Typer(
    name="astrostatlearn",
    help="Find and segment every galaxy in very large astronomical survey images.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


@app.callback()
def _main() -> None:
    """Find and segment every galaxy in very large astronomical survey images."""
    # Header-card chatter from astropy (non-standard keywords, fixed WCS cards) is not the
    # user's concern on the command line; real problems surface as InputError.
    from astropy.utils.exceptions import AstropyWarning

    warnings.simplefilter("ignore", AstropyWarning)


def fail(message: str) -> None:
    """Print a one-line error and exit with code 2."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code=2)


def user_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn InputError (and a few OS errors) into a one-line message and exit code 2."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except InputError as exc:
            fail(str(exc))
        except (PermissionError, IsADirectoryError, NotADirectoryError) as exc:
            fail(f"{exc.filename}: {exc.strerror}")
        except OSError as exc:
            if exc.errno is None:
                raise
            fail(f"{exc.filename + ': ' if exc.filename else ''}{exc.strerror}")
        except Terminated:
            typer.echo("terminated", err=True)
            raise typer.Exit(code=143)

    return wrapper


def parse_params(items: list[str], option: str = "--param") -> dict[str, str]:
    """``["a=1", "b=x"]`` -> ``{"a": "1", "b": "x"}``; a malformed item is an InputError."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InputError(f"{option} must look like NAME=VALUE, got {item!r}")
        out[key.strip()] = value.strip()
    return out


def _fmt(value: float) -> str:
    return f"{value:.6g}"


def noise_map(rms: Path | None, weight: Path | None, variance: Path | None) -> dict[str, Any]:
    """``Field.open``'s ``rms`` and ``noise_kind`` from at most one of --rms, --weight and --variance."""
    given = [(kind, path) for kind, path in (("rms", rms), ("weight", weight), ("variance", variance)) if path is not None]
    if len(given) > 1:
        raise InputError(f"give one noise map, not --{' and --'.join(kind for kind, _ in given)}", given[-1][1])
    kind, path = given[0] if given else ("rms", None)
    return {"rms": path, "noise_kind": kind}


def bad_pixel_map(mask: Path | None, mask_bits: str | None) -> Path | MaskFile | None:
    """``Field.open``'s ``mask`` from --mask and --mask-bits."""
    from astrostatlearn.field import MaskFile

    if mask_bits is None:
        return mask
    if mask is None:
        raise InputError("--mask-bits needs --mask")
    return MaskFile(mask, mask_bits)


@app.command()
@user_errors
def info(
    field: Path = typer.Argument(..., help="Field directory (img.fits [rms.fits] [true.fits]) or an image file."),
    rms: Optional[Path] = typer.Option(None, help="Noise map, overriding the field directory's rms.fits."),
    weight: Optional[Path] = typer.Option(None, help=WEIGHT_HELP),
    variance: Optional[Path] = typer.Option(None, help=VARIANCE_HELP),
    mask: Optional[Path] = typer.Option(None, help=MASK_HELP),
    mask_bits: Optional[str] = typer.Option(None, "--mask-bits", help=MASK_BITS_HELP),
    true: Optional[Path] = typer.Option(None, help="Truth map, overriding the field directory's true.fits."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON instead of text."),
) -> None:
    """Describe a field: size, dtype, WCS, robust statistics, objects and foreground fraction.

    Every pixel is checked (streamed in bounded memory): pixels with no data (non-finite, in
    zero-filled regions of a noisy image, of weight or variance 0, or masked) are counted, and a
    bad rms or truth map is reported as an error.
    """
    from astrostatlearn.field import Field, robust_stats, scan_field
    from astrostatlearn.field.zeropoint import header_zeropoint

    bad = bad_pixel_map(mask, mask_bits)
    with Field.open(field, true=true, mask=bad, **noise_map(rms, weight, variance)) as f:
        report = scan_field(f, progress=True)
        mean, median, std = robust_stats(f)
        out: dict[str, Any] = {
            "image": str(f.img.path), "hdu": f.img.hdu_index, "compressed": f.img.compressed,
            "shape": list(f.shape), "dtype": str(f.img.dtype), "wcs": f.wcs is not None,
            "pixel_scale_arcsec": f.pixel_scale,
            "sigma_clipped_mean": mean, "sigma_clipped_median": median, "sigma_clipped_std": std,
            "nonfinite_pixels": report.n_nonfinite, "zero_filled_is_blank": f.zero_blank,
            "rms": None if f.rms is None else str(f.rms.path), "noise_kind": f.noise_kind,
            "mask": f.mask, "truth": None if f.true is None else str(f.true.path),
            "zeropoint": f.zeropoint, "zeropoint_card": (header_zeropoint(f.header) or (None, None))[1],
        }
        if f.true is not None:
            out.update(n_objects=report.n_objects, foreground_fraction=report.foreground_fraction,
                       max_id=report.max_id)
    if json_out:
        typer.echo(json.dumps(out, indent=2))
        return
    ny, nx = out["shape"]
    bits = (out["mask"] or {}).get("bad_bits")
    no_data = ["non-finite"] + ["zero-filled"] * out["zero_filled_is_blank"] \
        + ["noise map 0"] * (out["noise_kind"] in ("weight", "variance")) + ["masked"] * bool(mask) \
        + ([] if bits is None else [f"mask bits {bits:#x}"])
    lines = [
        f"image      {out['image']} (HDU {out['hdu']}{', tile-compressed' if out['compressed'] else ''})",
        f"size       {ny} x {nx} pixels (y, x) = {ny * nx / 1e6:.2f} Mpix, dtype {out['dtype']}",
        f"WCS        {'yes' if out['wcs'] else 'no'}"
        + (f", {out['pixel_scale_arcsec']:.4g} arcsec/pixel" if out["pixel_scale_arcsec"] else ""),
        f"stats      sigma-clipped median {_fmt(median)}, std {_fmt(std)} (mean {_fmt(mean)})",
        f"no data    {out['nonfinite_pixels']} pixels ({', '.join(no_data)}; masked downstream)",
        f"rms        {out['rms'] or 'none'}" + (f" ({out['noise_kind']} map)" if out["noise_kind"] not in (None, "rms") else ""),
        "zero-point " + (f"{out['zeropoint']:.4f} mag ({out['zeropoint_card']})" if out["zeropoint"] is not None
                         else "none (catalogues get magnitudes with segment --zeropoint)"),
    ]
    if f.true is not None:
        lines += [f"truth      {out['truth']}",
                  f"objects    {out['n_objects']} (max ID {out['max_id']}), foreground fraction "
                  f"{100 * out['foreground_fraction']:.2f}%"]
    else:
        lines.append("truth      none")
    typer.echo("\n".join(lines))


@app.command()
@user_errors
def simulate(
    out: Path = typer.Argument(..., help="Output folder for img.fits, rms.fits, true.fits and truth.ecsv."),
    size: int = typer.Option(2048, "--size", "-n", help="Field size N: the field is N x N pixels."),
    seed: int = typer.Option(0, help="Random seed; the field is identical for a seed whatever --tile/--workers."),
    preset: str = typer.Option("euclid-vis", help="Survey preset: euclid-vis (0.1\" pixels, 0.17\" PSF) or ground."),
    noise_correlation: float = typer.Option(0.0, "--noise-correlation", help="Gaussian sigma (pixels) of the noise's correlation, as in resampled or coadded images (0 = white)."),
    background_gradient: float = typer.Option(0.0, "--background-gradient", help="Leave a sky plane rising by this many sky sigmas across the field."),
    stripes: float = typer.Option(0.0, "--stripes", help="Per-row offsets, normal with this many sky sigmas (readout/sky stripes)."),
    bad_columns: float = typer.Option(0.0, "--bad-columns", help="Fraction of columns with no data (NaN)."),
    holes: float = typer.Option(0.0, "--holes", help="Fraction of the field in circular holes with no data (NaN), radii 20-200 px."),
    bright_stars: float = typer.Option(0.0, "--bright-stars", help="Bright stars with halos and diffraction spikes per arcmin^2 (mag 12-17)."),
    saturation: float = typer.Option(0.0, "--saturation", help="Pixel level (image units) where the detector saturates; saturated stars bleed along columns (0 = never)."),
    clusters: float = typer.Option(0.0, "--clusters", help="Bright central galaxies in intracluster light, per arcmin^2 (the ICL is background in the truth)."),
    psf: Optional[Path] = typer.Option(None, "--psf", help="A PSF image (FITS, at the field's pixel scale, e.g. inject's psf.fits) instead of the preset's Moffat."),
    tile: int = typer.Option(1024, help="Tile size in pixels for streaming (memory per worker grows as tile^2)."),
    workers: int = typer.Option(0, help="Worker processes (0 = all cores)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing output files."),
) -> None:
    """Simulate a survey field with exact truth (GalSim), streamed over tiles and cores.

    Truth rule: a pixel belongs to the object whose noiseless, PSF-convolved model is largest
    there, counting only models above the isophote (1 x local sky sigma). Objects with no such
    pixel stay in truth.ecsv (area_true = 0) but not in true.fits.
    """
    from astrostatlearn.simulate import simulate_field

    if size <= 0:
        fail(f"--size must be positive, got {size}")
    # preset field: (value, flag, exclusive upper bound)
    options = {"noise_correlation": (noise_correlation, "--noise-correlation", math.inf),
               "background_gradient": (background_gradient, "--background-gradient", math.inf),
               "stripe_sigma": (stripes, "--stripes", math.inf), "bad_column_rate": (bad_columns, "--bad-columns", 1.0),
               "hole_fraction": (holes, "--holes", 1.0), "bright_stars": (bright_stars, "--bright-stars", math.inf),
               "saturation": (saturation, "--saturation", math.inf), "clusters": (clusters, "--clusters", math.inf)}
    for value, flag, upper in options.values():
        if not 0 <= value < upper:
            fail(f"{flag} must be >= 0" + ("" if upper == math.inf else f" and < {upper:g}") + f", got {value}")
    overrides: dict[str, Any] = {key: value for key, (value, _, _) in options.items() if value}
    if psf is not None:
        if not psf.is_file():
            fail(f"--psf: no such file: {psf}")
        overrides["psf_file"] = str(psf.resolve())
    from astrostatlearn.simulate import get_preset

    chosen: Any = preset
    if overrides:
        try:
            chosen = get_preset(preset).with_overrides(**overrides)
        except KeyError as exc:
            raise InputError(str(exc.args[0])) from None
    s = simulate_field(out, size, seed=seed, preset=chosen, tile=tile, workers=workers or None,
                       overwrite=overwrite, progress=True)
    typer.echo(
        f"wrote {s.out}/{{img,rms,true}}.fits and truth.ecsv: {s.shape[0]}x{s.shape[1]} pixels, "
        f"{s.n_objects} objects ({s.n_stars} stars), {s.n_in_truth} in the truth map, "
        f"foreground {100 * s.foreground_fraction:.2f}%")


@app.command()
@user_errors
def preprocess(
    field: Path = typer.Argument(..., help="Field directory or image file."),
    variant: str = typer.Option(..., "--variant", "-v", help="raw, norm, soft, soft+rms, soft+rms+log, snr or summed."),
    out: Path = typer.Option(..., "--out", "-o", help="Output FITS (a cube [C, y, x] when multi-channel); a PNG preview goes beside it."),
    stretch: str = typer.Option("asinh", help="Stretch of the soft variants: asinh, log, sqrt, power or linear."),
    rms: Optional[Path] = typer.Option(None, help="Noise map, overriding the field directory's rms.fits."),
    weight: Optional[Path] = typer.Option(None, help=WEIGHT_HELP),
    variance: Optional[Path] = typer.Option(None, help=VARIANCE_HELP),
    mask: Optional[Path] = typer.Option(None, help=MASK_HELP),
    mask_bits: Optional[str] = typer.Option(None, "--mask-bits", help=MASK_BITS_HELP),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing outputs."),
) -> None:
    """Write a named input variant of a field, computed tile by tile with global statistics.

    Variant parameters (intervals, stretch, statistics) are recorded in the FITS header.
    Without an rms map, the rms channel is the global sigma-clipped std (a constant).
    """
    from astrostatlearn.field import Field, check_writable, scan_field
    from astrostatlearn.preprocess import fit_variant, preprocess_field

    check_writable(out, overwrite)
    with Field.open(field, mask=bad_pixel_map(mask, mask_bits), **noise_map(rms, weight, variance)) as f:
        scan_field(f)  # the rms checks info and segment make, before any work
        pre = fit_variant(f, variant, stretch=stretch)
        res = preprocess_field(f, pre, out, overwrite=overwrite, progress=True)
    typer.echo(f"wrote {res['fits']} ({', '.join(pre.channels)}) and preview {res['png']}")


def _fractions(text: str) -> tuple[float, float, float]:
    try:
        parts = tuple(float(v) for v in text.split(","))
    except ValueError:
        parts = ()
    if len(parts) != 3:
        raise InputError(f"--split must be three fractions like 0.7,0.15,0.15, got {text!r}")
    return parts  # type: ignore[return-value]


@app.command()
@user_errors
def dataset(
    field: Path = typer.Argument(..., help="Field directory with img.fits, true.fits (and rms.fits, truth.ecsv)."),
    variant: str = typer.Option(..., "--variant", "-v", help="Input variant stored in the patches."),
    out: Path = typer.Option(..., "--out", "-o", help="Output dataset folder."),
    patch: int = typer.Option(256, help="Patch size in pixels."),
    split: str = typer.Option("0.7,0.15,0.15", help="Train,val,test fractions of the field height."),
    guard: int = typer.Option(64, help="Guard band (rows) between splits; widened until no object spans two."),
    keep_empty: bool = typer.Option(False, "--keep-empty/--skip-empty", help="Keep patches with no object."),
    coco: bool = typer.Option(True, "--coco/--no-coco", help="Also export COCO instances and panoptic per split."),
    seed: int = typer.Option(0, help="Seed recorded in the manifest (and used by augmentation)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing dataset folder."),
) -> None:
    """Cut a field into leak-free patch datasets (train/val/test) with COCO exports.

    Splits are spatially disjoint horizontal bands separated by guard bands, so no object
    touches two splits. Patches go to npz shards with a manifest.json.
    """
    from astrostatlearn.datasets import SPLITS, build_dataset
    from astrostatlearn.field import Field

    fr = _fractions(split)
    with Field.open(field) as f:
        man = build_dataset(f, variant, out, patch=patch, fractions=fr, guard=guard, keep_empty=keep_empty,
                            seed=seed, overwrite=overwrite, progress=True, coco=coco)
    typer.echo(f"wrote {out}: " + ", ".join(f"{s} {man['n_patches'][s]} patches" for s in SPLITS)
               + f" (guard {man['splits']['guard']} px)")
    if coco:
        for s in SPLITS:
            inst = json.loads((out / "coco" / f"instances_{s}.json").read_text())
            typer.echo(f"  coco/{s}: {len(inst['images'])} images, {len(inst['annotations'])} objects "
                       f"({sum(a['cut'] for a in inst['annotations'])} cut by a patch edge)")


@app.command()
@user_errors
def segment(
    field: Path = typer.Argument(..., help="Field directory or image file."),
    method: str = typer.Option(..., "--method", "-m", help=f"Method: {METHOD_LIST}."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder: segmentation.fits, score.fits, catalog.ecsv, run.json."),
    model: Optional[Path] = typer.Option(None, help="A model saved by `train` (forest needs one; kmeans fits on the field; unet and maskrcnn default to their shipped models)."),
    variant: Optional[str] = typer.Option(None, "--variant", "-v", help="Input variant (default: the model's own, else the method's default)."),
    rms: Optional[Path] = typer.Option(None, help="Noise map, overriding the field directory's rms.fits."),
    weight: Optional[Path] = typer.Option(None, help=WEIGHT_HELP),
    variance: Optional[Path] = typer.Option(None, help=VARIANCE_HELP),
    mask: Optional[Path] = typer.Option(None, help=MASK_HELP),
    mask_bits: Optional[str] = typer.Option(None, "--mask-bits", help=MASK_BITS_HELP),
    tile: Optional[int] = typer.Option(None, help="Tile core size in pixels (default: the method's own; sep 2048, others 1024)."),
    halo: Optional[int] = typer.Option(None, help="Halo around each tile core; must exceed the largest object (default 128)."),
    scheduler: Optional[str] = typer.Option(None, help="'processes', 'threads', or a dask.distributed scheduler address (default: the method's own)."),
    workers: int = typer.Option(0, help="Local workers (0 = all cores)."),
    score: bool = typer.Option(True, "--score/--no-score", help="Write score.fits when the method has a score."),
    param: list[str] = typer.Option([], "--param", "-p", help="A method option NAME=VALUE (repeatable), e.g. unet: -p tta=4; `astrostatlearn methods` lists each method's options."),
    kron: bool = typer.Option(False, "--kron", help="Add Kron photometry to the catalogue (flux_auto, kron_radius, mag_auto), as SExtractor's FLUX_AUTO and MAG_AUTO."),
    zeropoint: Optional[float] = typer.Option(None, help="Magnitude zero-point of one image unit, for the catalogue's mag and mag_err (default: the header's MAGZERO, MAGZPT, PHOTZP, FLUXMAG0, PHOTFLAM/PHOTPLAM...; none: no magnitudes)."),
    resume: bool = typer.Option(False, "--resume", help="Continue a run into OUT that was killed (kill -9, out of memory, a lost machine) from its finished tiles; the outputs equal an uninterrupted run's."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing outputs."),
) -> None:
    """Segment a whole field of any size, tile by tile, with seamless stitching.

    Each footprint (an object, or a blend with its deblended children) is kept by the tile
    whose core holds its centroid; every object gets exactly one global ID. The halo must
    exceed the largest footprint: the run warns when one reaches it. Outputs carry the
    input's header and WCS; the catalogue has each object's score.
    """
    from astrostatlearn.methods.registry import BUILTIN_METHODS, builtin_scheduler
    from astrostatlearn.schedulers import segment_preload, warm_up

    if method in BUILTIN_METHODS:  # the workers' imports run beside this process's own, from here on
        warm_up(scheduler or builtin_scheduler(method), segment_preload(BUILTIN_METHODS[method]))
    from astrostatlearn.field import Field
    from astrostatlearn.methods import default_segmenter, load_segmenter, resolve_variant
    from astrostatlearn.segment.run import check_segment_args, prepare_and_segment

    seg = load_segmenter(model) if model else default_segmenter(method)
    if seg.name != method:
        raise InputError(f"model is a {seg.name!r} model, not {method!r}", model)
    seg.set_options(parse_params(param))
    variant = resolve_variant(seg, variant)
    tile = seg.default_tile if tile is None else tile
    check_segment_args(seg, out, tile, halo, overwrite, resume)  # before the field is scanned
    t0 = time.perf_counter()
    with Field.open(field, mask=bad_pixel_map(mask, mask_bits), **noise_map(rms, weight, variance)) as f:
        f.zeropoint = zeropoint
        res = prepare_and_segment(f, seg, out, variant=variant, tile=tile, halo=halo, scheduler=scheduler,
                                  workers=workers or None, score=score, overwrite=overwrite, progress=True,
                                  model_path=str(model) if model else None, resume=resume, kron=kron)
        mpix = f.shape[0] * f.shape[1] / 1e6
    wall = time.perf_counter() - t0
    typer.echo(f"wrote {out}: {res.n_objects} objects, {res.run['n_tiles']} tiles in {wall:.1f} s "
               f"({mpix / wall:.2f} Mpix/s with statistics and mesh; tiles alone {res.run['mpix_per_s']:.2f})")
    for msg in ([res.run["warning"]] if "warning" in res.run else []) + res.run.get("method_warnings", []):
        typer.echo("warning: " + msg, err=True)


@app.command()
@user_errors
def train(
    method: str = typer.Argument(..., help="Method to train: any that learns (`astrostatlearn methods` lists them)."),
    field: list[Path] = typer.Option(..., "--field", "-f", help="Training field(s) with a truth map; repeat for several (learned models)."),
    out: Path = typer.Option(..., "--out", "-o", help="Where to save the fitted model."),
    variant: Optional[str] = typer.Option(None, "--variant", "-v", help="Input variant (default: the method's own)."),
    split: str = typer.Option("0.7,0.15,0.15", help="Train,val,test fractions; train and val bands are used."),
    epochs: int = typer.Option(30, help="Learned models: maximum epochs (early stopping on the validation metric)."),
    batch: int = typer.Option(16, help="Learned models: batch size."),
    steps: int = typer.Option(0, help="Learned models: batches per epoch (0 = all)."),
    lr: Optional[float] = typer.Option(None, help="Learned models: peak learning rate (AdamW, one-cycle; default: the method's own)."),
    patch: int = typer.Option(256, help="Learned models: dataset patch size."),
    device: Optional[str] = typer.Option(None, help="Learned models: torch device (default cuda when available, else cpu)."),
    seed: int = typer.Option(0, help="Random seed."),
    resume: bool = typer.Option(False, "--resume", help="Learned models: continue from OUT.ckpt."),
    snapshot_every: int = typer.Option(0, help="Learned models: also save the model after every N-th epoch, as <OUT stem>.epochNNN.pt (0 = never)."),
    param: list[str] = typer.Option([], "--param", "-p", help="A trainer option NAME=VALUE (repeatable), e.g. unet: -p width=16; `astrostatlearn methods` lists them."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing model file."),
) -> None:
    """Fit a method on the training split of a field (or several) and save it.

    Learned models: patch datasets are built beside OUT (OUT.datasets/), then the shared loop
    trains with augmentation, AdamW, early stopping on the validation metric, a checkpoint per
    epoch (OUT.ckpt) and a CSV log (OUT with suffix .csv). The best model goes to OUT.
    """
    from astrostatlearn.methods import TrainRequest, method_class

    cls = method_class(method)
    if not cls.needs_fit:
        raise InputError(f"method {method!r} has nothing to train")
    request = TrainRequest(fields=tuple(field), out=out, variant=variant, fractions=_fractions(split), seed=seed,
                           overwrite=overwrite, epochs=epochs, batch=batch, steps=steps or None, lr=lr, patch=patch,
                           device=device, resume=resume, snapshot_every=snapshot_every, params=parse_params(param))
    typer.echo(cls.train(request))


@app.command()
@user_errors
def methods() -> None:
    """List the methods, with their default variant, shipped model and options."""
    from astrostatlearn.methods import method_class, method_names

    for name in method_names():
        cls = method_class(name)
        kind = "supervised" if cls.supervised else ("fitted" if cls.needs_fit else "no training")
        typer.echo(f"{name}: {kind}, default variant {cls.default_variant}, "
                   f"shipped model {cls.shipped_model or 'none'}, scheduler {cls.default_scheduler}")
        for label, opts in (("segment -p", cls.options), ("train -p", cls.train_options)):
            for k, h in opts.items():
                typer.echo(f"    {label} {k}=...: {h}")


@app.command()
@user_errors
def benchmark(
    field: Path = typer.Option(..., "--field", "-f", help="Field directory with img.fits, rms.fits, true.fits (truth.ecsv)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder for results and the report."),
    methods: str = typer.Option(",".join(DEFAULT_BENCHMARK), help=f"Comma-separated methods, from {METHOD_LIST}."),
    variants: str = typer.Option("raw,norm,soft,soft+rms,soft+rms+log,snr", help="Comma-separated input variants."),
    split: str = typer.Option("0.7,0.15,0.15", help="Train,val,test fractions (horizontal bands with guard bands)."),
    model: list[str] = typer.Option([], "--model", help="METHOD=PATH: benchmark this model file for METHOD (repeatable; default: the method's shipped model, or trained on the train split)."),
    peers: bool = typer.Option(True, "--peers/--no-peers", help="Add SExtractor and NoiseChisel rows when installed."),
    view: bool = typer.Option(True, "--view/--no-view", help="Build the viewer site view/ with every run as a layer; the report links to it."),
    tile: int = typer.Option(1024, help="Tile core size for segmentation."),
    workers: int = typer.Option(0, help="Workers (0 = all cores)."),
    scheduler: Optional[str] = typer.Option(None, help="'processes' (default), 'threads' or a dask.distributed address."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing results."),
) -> None:
    """Run every method x variant on the same held-out test region and write the report.

    Methods that learn are trained on the train split. Writes results.csv, results.json,
    report.md (pixel, instance and cost tables), a self-contained report.html with figures, and
    the viewer site view/ (every run as a layer; each row of the report links to its layer).
    """
    from astrostatlearn.benchmark import run_benchmark

    fr = _fractions(split)
    if fr[2] <= 0:
        raise InputError("--split needs a non-empty test fraction")
    res = run_benchmark(field, out, [m.strip() for m in methods.split(",") if m.strip()],
                        [v.strip() for v in variants.split(",") if v.strip()], tile=tile, workers=workers or None,
                        scheduler=scheduler, peers_too=peers, models=parse_params(model, "--model"),
                        overwrite=overwrite, view=view, log=typer.echo)
    typer.echo(f"report: {res['report_html']} (summary {res['report_md']})")


@app.command()
@user_errors
def view(
    field: Path = typer.Argument(..., help="Field directory or image file; with --serve and no --out, a built site to serve."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Site folder to build (index.html, tiles, catalogue chunks)."),
    seg: list[Path] = typer.Option([], "--seg", "-s", help="A segment output folder (or a label FITS) to overlay; repeatable."),
    truth: bool = typer.Option(False, "--truth", help="Overlay the field's truth map (true.fits) with truth.ecsv."),
    stretch: str = typer.Option("asinh", help="Display stretch: asinh (sky-2σ to the 99.95th percentile, linear to ~5σ) or zscale."),
    scheduler: Optional[str] = typer.Option(None, help="'processes', 'threads', or a dask.distributed scheduler address."),
    workers: int = typer.Option(0, help="Local workers (0 = all cores)."),
    serve: bool = typer.Option(False, "--serve", help="Then serve the site at http://127.0.0.1:PORT/ until Ctrl-C."),
    port: int = typer.Option(8000, help="Port for --serve (on 127.0.0.1)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Rebuild an existing site; parts whose inputs are unchanged are reused."),
) -> None:
    """Build a zoomable offline web viewer of a field: image, segmentation overlays, catalogue.

    A tile pyramid of the image (astronomer's stretch; non-finite pixels transparent), one
    overlay pyramid per segmentation (outlines and translucent fill, a stable colour per ID;
    coarser levels keep the largest ID of each 2x2 so small objects stay visible), and the
    catalogue, shown on a click. Built block by block in bounded memory, in parallel.
    """
    from astrostatlearn.view.serve import check_port, check_site, serve_site

    if serve:
        check_port(port)  # before a long build
    if out is None:
        if not serve:
            fail("give --out SITE to build a site (or --serve to serve a built one)")
        serve_site(check_site(field), port, announce=typer.echo)
        return
    from astrostatlearn.view import build_site

    res = build_site(field, out, segs=seg, truth=truth, stretch=stretch, overwrite=overwrite, scheduler=scheduler,
                     workers=workers or None, progress=True)
    typer.echo(res.summary())
    if serve:
        serve_site(out, port, announce=typer.echo)
    else:
        typer.echo(f"serve it with: astrostatlearn view {out} --serve --port {port}")


def _mag_range(text: str | None) -> tuple[float, float] | None:
    if text is None:
        return None
    try:
        a, b = (float(v) for v in text.split(","))
    except ValueError:
        raise InputError(f"--mag-range must be BRIGHT,FAINT (two numbers), got {text!r}") from None
    return a, b


@app.command()
@user_errors
def inject(
    image: Path = typer.Argument(..., help="A real image (FITS) to inject galaxies into."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder: real-000/, real-001/, ... (each a field), inject.json, psf.fits."),
    rms: Optional[Path] = typer.Option(None, help="Its noise map (default: the image's background rms)."),
    weight: Optional[Path] = typer.Option(None, help=WEIGHT_HELP),
    variance: Optional[Path] = typer.Option(None, help=VARIANCE_HELP),
    mask: Optional[Path] = typer.Option(None, help=MASK_HELP),
    mask_bits: Optional[str] = typer.Option(None, "--mask-bits", help=MASK_BITS_HELP),
    psf_fwhm: Optional[float] = typer.Option(None, "--psf-fwhm", help="PSF: a Moffat (beta 3) of this FWHM in pixels."),
    psf: Optional[Path] = typer.Option(None, "--psf", help="PSF: an image (FITS). Default: estimated from the image's stars."),
    n: int = typer.Option(100, "--n", help="Galaxies injected per realisation."),
    realisations: int = typer.Option(5, "--realisations", "-k", help="Independent realisations (positions and galaxies)."),
    mag_range: Optional[str] = typer.Option(None, "--mag-range", help="BRIGHT,FAINT magnitudes (default: 5-sigma point depth -4 to +1)."),
    zeropoint: Optional[float] = typer.Option(None, help="Magnitude zero-point (default: the header's, else depth-anchored)."),
    gain: Optional[float] = typer.Option(None, help="Electrons per image unit, for the injected objects' Poisson noise (default: the header's GAIN)."),
    pixel_scale: Optional[float] = typer.Option(None, "--pixel-scale", help="Arcsec per pixel (default: from the WCS, else 0.2)."),
    seed: int = typer.Option(0, help="Random seed."),
    confirm_with: list[Path] = typer.Option([], "--confirm-with", help="Another band on the same pixel grid (repeatable): its sources confirm a detection as real (confirm.fits; recovery's unconfirmed/Mpix)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output folder."),
) -> None:
    """Inject simulated galaxies into a real image, for injection-recovery (Balrog-style).

    Galaxies follow the simulator's profiles and size-magnitude relation, convolved with the
    image's PSF, and are placed away from its own sources and off non-finite pixels. Each
    realisation is a field: img.fits, rms.fits, true.fits (the injected objects only, 1-sigma
    isophote), truth.ecsv and ignore.fits (the image's own sources, dilated); header and WCS carry over.
    """
    from astrostatlearn.inject import InjectRequest, inject_image

    request = InjectRequest(n=n, realisations=realisations, mag_range=_mag_range(mag_range), psf_fwhm=psf_fwhm,
                            psf=str(psf) if psf else None, seed=seed, zeropoint=zeropoint, gain=gain,
                            pixel_scale=pixel_scale, confirm_with=tuple(str(p) for p in confirm_with))
    res = inject_image(image, out, request, mask=bad_pixel_map(mask, mask_bits), overwrite=overwrite,
                       progress=True, **noise_map(rms, weight, variance))
    typer.echo(res.summary())
    for note in res.description["notes"]:
        typer.echo(f"note: {note}")


@app.command()
@user_errors
def recovery(
    inject_dir: Path = typer.Argument(..., help="An `inject` output folder."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder: recovery.csv, recovery.json, recovery.html, runs/."),
    methods: Optional[str] = typer.Option(None, help=f"Comma-separated methods ({METHOD_LIST}), each with options if wanted (NAME:OPTION=VALUE[:OPTION=VALUE]; unet,unet:min_snr=7 compares two settings); default: every method that runs without training."),
    sextractor: bool = typer.Option(True, "--sextractor/--no-sextractor", help="Add SExtractor at the seed's settings (1.5 sigma, 5 px)."),
    model: list[str] = typer.Option([], "--model", help="METHOD=PATH: a model to use instead of the method's default (repeatable)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output folder."),
) -> None:
    """Segment every injection realisation with each method and SExtractor, and report recovery.

    Per method: completeness at IoU > 0.5 against injected magnitude and S/N, the 50% and 90%
    completeness magnitudes, the mask IoU of recovered objects, and spurious detections per Mpix
    off the image's own sources.
    """
    from astrostatlearn.inject.recovery import run_recovery

    names = None if methods is None else [m.strip() for m in methods.split(",") if m.strip()]
    res = run_recovery(inject_dir, out, names, sextractor=sextractor,
                       models=parse_params(model, "--model"), overwrite=overwrite, progress=True)
    typer.echo(res.table())
    typer.echo(f"wrote {out}/recovery.csv, recovery.json and recovery.html ({res.seconds:.0f} s)")


def parse_region(text: str | None) -> "Window | None":
    """Parse ``y0:y1,x0:x1`` (0-based, half-open) into a Window."""
    from astrostatlearn.field import Window

    if not text:
        return None
    try:
        ys, xs = text.split(",")
        y0, y1 = (int(v) for v in ys.split(":"))
        x0, x1 = (int(v) for v in xs.split(":"))
        return Window(y0, y1, x0, x1)
    except ValueError:
        raise InputError(f"--region must look like y0:y1,x0:x1 (0-based, half-open), got {text!r}") from None


@app.command()
@user_errors
def evaluate(
    true: Path = typer.Option(..., "--true", help="Truth instance map (FITS, int, 0 = background)."),
    pred: Path = typer.Option(..., "--pred", help="Predicted instance map (FITS, int, 0 = background)."),
    catalog: Optional[Path] = typer.Option(None, help="Truth catalogue (ECSV with id, mag, snr) for binned completeness/purity."),
    image: Optional[Path] = typer.Option(None, "--image", help="Without --catalog: the field's image, to bin completeness by each true object's footprint S/N."),
    rms: Optional[Path] = typer.Option(None, "--rms", help="With --image: its noise map (default: the image's sigma-clipped std)."),
    weight: Optional[Path] = typer.Option(None, "--weight", help="With --image: " + WEIGHT_HELP),
    variance: Optional[Path] = typer.Option(None, "--variance", help="With --image: " + VARIANCE_HELP),
    mask: Optional[Path] = typer.Option(None, "--mask", help="With --image: " + MASK_HELP),
    mask_bits: Optional[str] = typer.Option(None, "--mask-bits", help=MASK_BITS_HELP),
    score: Optional[Path] = typer.Option(None, help="Per-pixel score map; each object's COCO score is its mean (unless --scores gives it)."),
    scores: Optional[Path] = typer.Option(None, help="Run catalogue (catalog.ecsv from segment) whose per-object 'score' ranks COCO detections."),
    region: Optional[str] = typer.Option(None, help="Evaluate only y0:y1,x0:x1 (0-based, half-open), e.g. a test split."),
    patch: int = typer.Option(256, help="Patch size for the per-patch means (the seed's convention)."),
    coco: bool = typer.Option(True, "--coco/--no-coco", help="Compute COCO AP/AR (segm and bbox)."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write all figures to this JSON file."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing JSON file."),
) -> None:
    """Score a predicted instance map: pixel, instance, panoptic and COCO metrics.

    Pixel metrics come from one global confusion matrix, and separately as the mean over
    patches. Objects match when IoU > 0.5. Everything except COCO streams over row blocks.
    """
    from astropy.table import Table

    from astrostatlearn.field import atomic_write_json, check_writable, open_image
    from astrostatlearn.metrics import evaluate as run_evaluate

    if json_out is not None:
        check_writable(json_out, overwrite)
    t = open_image(true, role="truth")
    p = open_image(pred, role="prediction")
    s = open_image(score, role="score") if score else None
    cat = None
    if catalog is not None:
        if not catalog.exists():
            raise InputError("catalogue file not found", catalog)
        try:
            cat = Table.read(catalog, format="ascii.ecsv")
        except Exception as exc:
            raise InputError(f"unreadable ECSV catalogue ({exc})", catalog) from None
    elif image is not None:  # no truth catalogue: S/N from img, rms and true
        from astrostatlearn.field import Field
        from astrostatlearn.metrics import footprint_snr

        bad = bad_pixel_map(mask, mask_bits)
        with Field.open(img=image, true=true, mask=bad, **noise_map(rms, weight, variance)) as f:
            cat = footprint_snr(f, parse_region(region))
    object_scores = None
    if scores is not None:
        from astrostatlearn.metrics import object_scores_from_catalog

        if not scores.exists():
            raise InputError("catalogue file not found", scores)
        object_scores = object_scores_from_catalog(scores)
        if object_scores is None:
            raise InputError("catalogue has no 'id' and 'score' columns", scores)
    ev = run_evaluate(t, p, catalog=cat, score=s, region=parse_region(region), patch=patch, coco=coco,
                      progress=True, object_scores=object_scores)
    typer.echo(ev.table())
    if json_out is not None:
        payload = ev.as_dict() | {"true": str(true), "pred": str(pred)}
        atomic_write_json(json_out, payload, overwrite)
        typer.echo(f"wrote {json_out}")


def _exception_types(name: str) -> tuple[type[BaseException], ...]:
    """Exception class ``name`` from every Click the installed Typer may raise (its vendored copy
    and/or Click itself), so the error boundary works whichever Typer is installed."""
    import importlib

    found: list[type[BaseException]] = []
    for mod in ("typer._click.exceptions", "click.exceptions", "typer"):
        try:
            cls = getattr(importlib.import_module(mod), name, None)
        except ImportError:
            continue
        if isinstance(cls, type) and cls not in found:
            found.append(cls)
    return tuple(found)


_STOP_SIGNALS = ("SIGTERM", "SIGINT")


def _terminate_like_interrupt() -> dict[int, object] | None:
    """SIGTERM raises :class:`Terminated` in the main thread, so every ``finally`` and output
    transaction cleans up as for Ctrl-C (exit code 143). Both are held back while a worker pool
    starts or stops (:func:`astrostatlearn.processes.critical`). Returns the handlers it replaced
    (None off the main thread, where signals cannot be handled)."""
    import signal
    import threading

    from astrostatlearn.processes import interrupt

    if threading.current_thread() is not threading.main_thread():
        return None
    previous = {int(getattr(signal, n)): signal.getsignal(getattr(signal, n)) for n in _STOP_SIGNALS}
    signal.signal(signal.SIGTERM, lambda signum, frame: interrupt(Terminated))
    signal.signal(signal.SIGINT, lambda signum, frame: interrupt(KeyboardInterrupt))
    return previous


def _after_the_command(previous: dict[int, object] | None, exiting: bool) -> None:
    """Once the command has finished (its outputs committed or cleaned up): a process that is
    about to exit ignores further SIGTERM/Ctrl-C, so a late signal neither interrupts the exit
    hooks (worker pools, temp files) nor, once Python restores the default handlers during
    finalisation, kills it with a status that contradicts what it did; an in-process caller gets
    its own handlers back."""
    import signal

    if previous is None:
        return
    for signum, handler in previous.items():
        signal.signal(signum, signal.SIG_IGN if exiting else handler)  # type: ignore[arg-type]


def main(argv: list[str] | None = None) -> None:
    """Console entry point, the CLI's error boundary: usage errors and bad input are one line
    (``error: ...``, exit 2); Ctrl-C is ``interrupted`` (exit 130); anything unexpected is one line
    naming the exception (exit 2), never a traceback (set ASTROSTATLEARN_DEBUG=1 to see it)."""
    from astrostatlearn.allocator import keep_freed_memory

    if argv is None:  # the console entry point: this process is the command's, so reuse its temporaries
        keep_freed_memory()
        from astrostatlearn.processes import skip_main_in_workers

        skip_main_in_workers("astrostatlearn.__main__")  # this module defines nothing the workers use
    usage, abort = _exception_types("UsageError"), _exception_types("Abort")
    previous = _terminate_like_interrupt()
    try:
        _run_app(argv, usage, abort)
    except SystemExit as done:
        if argv is None:  # the console entry point, whose process ends with this call
            _after_the_command(previous, exiting=True)
            _exit_at_once(done.code)
        raise
    finally:
        _after_the_command(previous, exiting=argv is None)


def _exit_at_once(code: object) -> None:
    """End the command's process with status ``code`` once its work is done: its non-daemon
    threads joined and exit handlers run (pools, temporary files, coverage), stdout and stderr
    flushed, then ``os._exit``, which skips the interpreter's teardown of every module: several
    garbage collections of ~130k objects, 0.1-0.25 s after a whole-field run (8% of a 8192^2
    ``segment``). Where this Python lacks the thread-shutdown hook, it returns and the
    interpreter exits as usual."""
    import atexit
    import threading

    shutdown = getattr(threading, "_shutdown", None)  # what the interpreter runs first when it exits
    if shutdown is None:
        return
    if code is not None and not isinstance(code, int):
        print(code, file=sys.stderr)  # as the interpreter does for SystemExit("message")
        code = 1
    shutdown()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe, a closed stream: nothing more to say
            pass
    os._exit(code or 0)


def segment_method_in(args: list[str]) -> tuple[str, str | None] | None:
    """(method, scheduler) of a ``segment`` command line, read off its arguments before Typer
    parses them (``-m X``, ``-mX``, ``--method X``, ``--method=X``; ``--scheduler`` likewise);
    None for another command, ``--help``, or no method. Only a head start hangs on it: the
    command itself parses its arguments as ever."""
    words = [a for a in args if not a.startswith("-")]
    if not words or words[0] != "segment" or "--help" in args:
        return None
    found: dict[str, str] = {}
    for i, a in enumerate(args):
        for key, names in (("method", ("-m", "--method")), ("scheduler", ("--scheduler",))):
            for name in names:
                if a == name and i + 1 < len(args):
                    found.setdefault(key, args[i + 1])
                elif a.startswith(name + "=") or (len(name) == 2 and a.startswith(name) and len(a) > 2):
                    found.setdefault(key, a[len(name):].lstrip("="))
    return (found["method"], found.get("scheduler")) if "method" in found else None


def _warm_up_segment(args: list[str]) -> None:
    """Start a built-in method's local workers' forkserver (:func:`~astrostatlearn.schedulers.warm_up`)
    from the raw command line, so its imports run while Typer builds the commands."""
    from astrostatlearn.methods.registry import BUILTIN_METHODS, builtin_scheduler
    from astrostatlearn.schedulers import segment_preload, warm_up

    found = segment_method_in(args)
    if found is not None and found[0] in BUILTIN_METHODS:
        warm_up(found[1] or builtin_scheduler(found[0]), segment_preload(BUILTIN_METHODS[found[0]]))


def _run_app(argv: list[str] | None, usage: tuple[type[BaseException], ...],
             abort: tuple[type[BaseException], ...]) -> None:
    """Run the Typer app and translate every way it can end into an exit status and one line."""
    try:
        if argv is None:  # the console: the workers' imports start before Typer builds its commands (0.1 s)
            _warm_up_segment(sys.argv[1:])
        rv = app(args=argv, standalone_mode=False)
        if rv == 130:  # Typer's own answer to a Ctrl-C, in a command or while it parses: silent
            raise KeyboardInterrupt
        raise SystemExit(rv if isinstance(rv, int) else 0)  # inside: a signal just before it is handled
    except usage as exc:  # type: ignore[misc]
        ctx = getattr(exc, "ctx", None)
        hint = f" (see: astrostatlearn {ctx.command_path.split(' ', 1)[1]} --help)" if ctx and " " in ctx.command_path else ""
        typer.echo(f"error: {exc.format_message()}{hint}", err=True)  # type: ignore[attr-defined]
        raise SystemExit(2) from None
    except abort:  # type: ignore[misc]
        typer.echo("aborted", err=True)
        raise SystemExit(130) from None
    except Terminated:
        typer.echo("terminated", err=True)
        raise SystemExit(143) from None
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        raise SystemExit(130) from None
    except MemoryError:
        typer.echo("error: out of memory (try a smaller --tile or --size)", err=True)
        raise SystemExit(2) from None
    except (SystemExit, typer.Exit):
        raise
    except Exception as exc:  # the last resort: one line, never a traceback
        if os.environ.get("ASTROSTATLEARN_DEBUG"):
            import traceback

            traceback.print_exc()
        text = " ".join(str(exc).split())[:300]
        typer.echo(f"error: unexpected {type(exc).__name__}: {text}", err=True)
        raise SystemExit(2) from None


if __name__ == "__main__":  # pragma: no cover
    main()
