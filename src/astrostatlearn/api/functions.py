"""The top-level functions: ``segment``, ``simulate``, ``evaluate`` and ``inject`` on arrays.

Each does the same work as its CLI command, through the same library functions and the same
validation layer. Images are handed to the whole-field driver as FITS files in a temporary
folder (removed afterwards), so big arrays are tiled in bounded memory exactly as ``segment``
tiles a field on disk; an image of at most ``ONE_PIECE_PIXELS`` runs as one tile in this
process, with no worker start-up.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from astrostatlearn.api.inputs import image_inputs, label_input
from astrostatlearn.api.results import InjectionResult, SegmentationResult, SimulatedField
from astrostatlearn.errors import InputError

ONE_PIECE_PIXELS = 4096 * 4096


def _write_inputs(folder: Path, img: np.ndarray, rms: np.ndarray | None, wcs: Any) -> None:
    from astrostatlearn.field.fitsio import write_image

    header = wcs.to_header() if wcs is not None else None
    write_image(folder / "img.fits", img, header)
    if rms is not None:
        write_image(folder / "rms.fits", rms, header)


def _read_catalog(path: Path, wcs: Any) -> Any:
    from astropy.table import QTable

    cat = QTable.read(path, format="ascii.ecsv")
    if wcs is not None and len(cat) and {"ra", "dec"} <= set(cat.colnames):
        from astropy.coordinates import SkyCoord

        cat["sky"] = SkyCoord(cat["ra"], cat["dec"], frame=str(getattr(wcs.wcs, "radesys", "") or "icrs").lower())
    return cat


def segment(data: Any, rms: Any = None, *, method: str = "unet", variant: str | None = None, wcs: Any = None,
            mask: Any = None, model: str | Path | None = None, options: dict[str, Any] | None = None,
            tile: int = 1024, workers: int | None = None, progress: bool = False,
            zeropoint: float | None = None, kron: bool = False) -> SegmentationResult:
    """Segment an image held in memory.

    Parameters
    ----------
    data : array-like or astropy.nddata.NDData
        The science image, ``[y, x]``. An ``NDData`` (or ``CCDData``) brings its ``uncertainty``
        (as the rms), ``mask`` (True = bad) and ``wcs``.
    rms : array-like, optional
        The 1-sigma noise map, same shape; default: estimated from the image's background.
    method : str
        A registered method (``astrostatlearn methods`` lists them); default the shipped U-Net.
    variant : str, optional
        Input variant (default: the model's own, else the method's default).
    wcs : astropy.wcs.WCS, optional
        Sky coordinates for the catalogue (``ra``, ``dec`` and a ``sky`` SkyCoord column).
    mask : array-like of bool, optional
        True where the data are bad (treated as missing).
    model : path, optional
        A model saved by ``astrostatlearn train``; its method is used.
    options : dict, optional
        Method options, as ``segment -p NAME=VALUE`` takes them (e.g. ``{"tta": 4}``).
    tile, workers : int
        Tile core and local workers for images above ``ONE_PIECE_PIXELS``.
    progress : bool
        Show progress bars.
    zeropoint : float, optional
        Magnitude zero-point of one image unit, for the catalogue's ``mag`` and ``mag_err``
        (default: from an ``NDData``'s ``meta`` header, ``MAGZERO``, ``FLUXMAG0``...; else no
        magnitudes).
    kron : bool
        Add Kron photometry to the catalogue (``flux_auto``, ``kron_radius``, ``mag_auto``), as
        SExtractor's ``FLUX_AUTO`` and ``MAG_AUTO``.

    Returns
    -------
    SegmentationResult
        ``labels`` (int32), ``segm`` (photutils ``SegmentationImage``), ``catalog`` (QTable),
        ``score``, ``params``.

    Raises
    ------
    InputError
        A ``ValueError`` with one sentence, for bad arrays or options.

    Examples
    --------
    >>> import numpy as np, astrostatlearn
    >>> img = np.random.default_rng(0).normal(0, 1, (64, 64)).astype("float32")
    >>> img[30:34, 30:34] += 50
    >>> res = astrostatlearn.segment(img, np.ones_like(img), method="sep")
    >>> res.n_objects
    1
    >>> res.labels.dtype
    dtype('int32')
    """
    from astropy.io import fits

    from astrostatlearn.field import Field
    from astrostatlearn.methods import default_segmenter, load_segmenter, resolve_variant
    from astrostatlearn.segment.run import prepare_and_segment

    inputs = image_inputs(data, rms, wcs, mask)
    seg = load_segmenter(model) if model is not None else default_segmenter(method)
    seg.set_options({k: str(v) for k, v in (options or {}).items()})
    variant = resolve_variant(seg, variant)
    one_piece = inputs.img.size <= ONE_PIECE_PIXELS
    run = {"tile": max(inputs.img.shape) if one_piece else tile, "overwrite": True,
           "scheduler": "synchronous" if one_piece else None, "workers": 1 if one_piece else workers,
           "model_path": str(model) if model is not None else None, "kron": kron}
    with tempfile.TemporaryDirectory(prefix="astrostatlearn-") as tmp:
        folder = Path(tmp)
        _write_inputs(folder, inputs.img, inputs.rms, inputs.wcs)
        with Field.open(folder) as f:
            f.zeropoint = zeropoint if zeropoint is not None else inputs.zeropoint
            res = prepare_and_segment(f, seg, folder / "out", variant=variant, progress=progress, **run)
        labels = np.array(fits.getdata(folder / "out" / "segmentation.fits"), dtype=np.int32)
        score_path = folder / "out" / "score.fits"
        score = np.array(fits.getdata(score_path), dtype=np.float32) if score_path.exists() else None
        catalog = _read_catalog(folder / "out" / "catalog.ecsv", inputs.wcs)
    params = {"method": seg.name, "variant": variant, "options": dict(options or {}), "one_piece": one_piece,
              "tile": run["tile"], "n_tiles": res.run["n_tiles"], "model": str(model) if model else seg.shipped_model}
    return SegmentationResult(labels, catalog, score, params, inputs.img)


def simulate(shape: int | tuple[int, int], *, preset: str = "euclid-vis", seed: int = 0,
             workers: int | None = 1) -> SimulatedField:
    """Simulate a survey field with exact truth, in memory.

    Parameters
    ----------
    shape : int or (int, int)
        ``N`` (an N x N field) or ``(ny, nx)``.
    preset : str
        ``'euclid-vis'`` or ``'ground'`` (see ``astrostatlearn.simulate.presets``).
    seed : int
        The field is identical for a seed, whatever ``workers``.
    workers : int, optional
        Worker processes (1: in this process; None: all cores).

    Returns
    -------
    SimulatedField
        ``img``, ``rms``, ``true`` (int32), ``truth`` (QTable with ``mag``, ``snr``), ``wcs``.

    Raises
    ------
    InputError
        A shape that is not positive, an unknown preset, bad ``workers``.

    Examples
    --------
    >>> import astrostatlearn
    >>> sim = astrostatlearn.simulate(128, seed=3)
    >>> sim.img.shape, sim.true.dtype
    ((128, 128), dtype('int32'))
    >>> bool(len(sim.truth) > 0)
    True
    """
    from astropy.io import fits
    from astropy.table import QTable
    from astropy.wcs import WCS

    from astrostatlearn.simulate.field import simulate_field

    with tempfile.TemporaryDirectory(prefix="astrostatlearn-") as tmp:
        out = Path(tmp) / "field"
        simulate_field(out, shape, seed=seed, preset=preset, workers=workers, progress=False)
        with fits.open(out / "img.fits") as h:
            img, header = np.array(h[0].data, np.float32), h[0].header.copy()
        rms = np.array(fits.getdata(out / "rms.fits"), np.float32)
        true = np.array(fits.getdata(out / "true.fits"), np.int32)
        truth = QTable.read(out / "truth.ecsv", format="ascii.ecsv")
    return SimulatedField(img, rms, true, truth, WCS(header), header, {"preset": preset, "seed": seed})


def evaluate(true: Any, pred: Any, *, catalog: Any = None, image: Any = None, rms: Any = None,
             score: Any = None, region: Any = None, coco: bool = True, patch: int = 256) -> Any:
    """Score a predicted label map against the truth: pixel, instance, panoptic and COCO metrics.

    Parameters
    ----------
    true, pred : array-like or result
        Label maps (int, 0 = background), or a ``SimulatedField`` (its ``true``) and a
        ``SegmentationResult`` (its ``labels``; its catalogue's ``score`` ranks COCO detections).
    catalog : Table, optional
        Truth catalogue with ``id``, ``mag``, ``snr``: completeness binned by magnitude and S/N.
    image, rms : array-like, optional
        Without a catalogue: completeness binned by each true object's footprint S/N.
    score : array-like, optional
        Per-pixel score map (COCO scores as the mean over each object).
    region : Window, optional
        Score only this window.
    coco : bool
        Compute COCO AP/AR (the only part that is not streamed).
    patch : int
        Patch size for the per-patch pixel means.

    Returns
    -------
    Evaluation
        With ``to_table()``, ``to_dict()`` and a readable ``repr``.

    Raises
    ------
    InputError
        Maps of other shapes or dtypes, a map that is not a label map, an image of another shape.

    Examples
    --------
    >>> import numpy as np, astrostatlearn
    >>> t = np.zeros((32, 32), "int32"); t[4:10, 4:10] = 1; t[20:28, 18:30] = 2
    >>> ev = astrostatlearn.evaluate(t, t, coco=False)
    >>> ev.panoptic["galaxy"]["pq"]
    1.0
    """
    from astrostatlearn.metrics import evaluate as run_evaluate

    if isinstance(true, SimulatedField):
        catalog = true.truth if catalog is None else catalog
        true = true.true
    object_scores = None
    if isinstance(pred, SegmentationResult) and "score" in pred.catalog.colnames and len(pred.catalog):
        object_scores = (np.asarray(pred.catalog["id"], np.int64), np.asarray(pred.catalog["score"], float))
    t, p = label_input(true, "true"), label_input(pred, "pred")
    if catalog is None and image is not None:
        from astrostatlearn.field import Field
        from astrostatlearn.field.arrays import ArrayImage
        from astrostatlearn.metrics import footprint_snr

        inputs = image_inputs(image, rms)
        if inputs.img.shape != t.shape:
            raise InputError(f"image has shape {inputs.img.shape}, but the truth map has {t.shape}")
        f = Field(ArrayImage(inputs.img, name="image"), None if inputs.rms is None else ArrayImage(inputs.rms, name="rms"),
                  ArrayImage(t, name="true"))
        catalog = footprint_snr(f, region)
    return run_evaluate(t, p, catalog=catalog, score=score, region=region, coco=coco, patch=patch,
                        object_scores=object_scores)


def inject(image: Any, rms: Any = None, *, n: int = 100, realisations: int = 5,
           mag_range: Sequence[float] | None = None, psf_fwhm: float | None = None, psf: str | Path | None = None,
           seed: int = 0, zeropoint: float | None = None, gain: float | None = None,
           pixel_scale: float | None = None, wcs: Any = None) -> InjectionResult:
    """Inject simulated galaxies into a real image, in memory (``astrostatlearn inject``).

    Parameters
    ----------
    image : path, array-like or NDData
        The real image (a FITS path keeps its header: zero-point, gain, WCS).
    rms : array-like, optional
        Its noise map (default: the image's background rms).
    n, realisations : int
        Galaxies per realisation, and realisations.
    mag_range : (float, float), optional
        Bright and faint magnitudes (default: the 5-sigma point depth -4 to +1).
    psf_fwhm, psf : optional
        A Moffat PSF of this FWHM (pixels), or a PSF FITS; default: estimated from the stars.
    seed : int
        Random seed.
    zeropoint, gain, pixel_scale : float, optional
        Override the header's (a FITS path's, or a ``CCDData``'s ``meta`` for the zero-point).
    wcs : astropy.wcs.WCS, optional
        For an array input.

    Returns
    -------
    InjectionResult
        ``realisations``: fields with ``img``, ``rms``, ``true`` (injected only), ``truth``
        and ``ignore`` (the image's own sources, dilated); ``description``.

    Raises
    ------
    InputError
        An image with no isolated stars and no ``psf_fwhm``/``psf``, an image too small for ``n``
        objects, an rms of another shape, or bad options.

    Examples
    --------
    >>> import astrostatlearn
    >>> sim = astrostatlearn.simulate(512, seed=1)
    >>> inj = astrostatlearn.inject(sim.img, sim.rms, n=10, realisations=2, psf_fwhm=2.0, wcs=sim.wcs)
    >>> len(inj.realisations), inj.realisations[0].true.dtype
    (2, dtype('int32'))
    """
    from astropy.io import fits
    from astropy.table import QTable
    from astropy.wcs import WCS

    from astrostatlearn.inject.run import InjectRequest, inject_image

    request = InjectRequest(n=n, realisations=realisations, mag_range=None if mag_range is None else tuple(mag_range),
                            psf_fwhm=psf_fwhm, psf=None if psf is None else str(psf), seed=seed, zeropoint=zeropoint,
                            gain=gain, pixel_scale=pixel_scale)
    with tempfile.TemporaryDirectory(prefix="astrostatlearn-") as tmp:
        folder = Path(tmp)
        if isinstance(image, (str, Path)):
            src, rms_path = Path(image), None
            if rms is not None:
                rms_path = folder / "rms-in.fits"
                fits.PrimaryHDU(np.asarray(rms, np.float32)).writeto(rms_path)
        else:
            inputs = image_inputs(image, rms, wcs)
            if request.zeropoint is None:  # a CCDData's header card, when the call gives none
                request.zeropoint = inputs.zeropoint
            _write_inputs(folder, inputs.img, inputs.rms, inputs.wcs)
            src, rms_path = folder / "img.fits", (folder / "rms.fits" if inputs.rms is not None else None)
        res = inject_image(src, folder / "out", request, rms=rms_path)
        fields = []
        for real in res.realisations:
            with fits.open(real / "img.fits") as h:
                img, header = np.array(h[0].data, np.float32), h[0].header.copy()
            sim = SimulatedField(img, np.array(fits.getdata(real / "rms.fits"), np.float32),
                                 np.array(fits.getdata(real / "true.fits"), np.int32),
                                 QTable.read(real / "truth.ecsv", format="ascii.ecsv"), WCS(header), header,
                                 {"realisation": real.name, "seed": seed,
                                  "ignore": np.array(fits.getdata(real / "ignore.fits")) > 0})
            fields.append(sim)
    return InjectionResult(fields, res.description)
