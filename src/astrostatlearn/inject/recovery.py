"""``astrostatlearn recovery``: how many injected galaxies each method finds (Balrog-style).

Every realisation written by ``inject`` is segmented by each method (its shipped model or
defaults, on its own input variant) and by SExtractor at the seed's settings (1.5 sigma, 5 pixels,
gauss 2.0 5x5, the rms map). Then, per method:

- **completeness**: injected objects matched at IoU > 0.5 (the instance metrics' matching)
  over injected objects, against injected magnitude and S/N, pooled over the realisations, with
  the range over realisations as the interval;
- **m50, m90**: the magnitudes where the pooled completeness first falls below 50% and 90%
  (linear between bin centres);
- **mask IoU** of the recovered objects (mean);
- **photometric response**: ``Δmag``, the median of (recovered − injected magnitude) over the
  recovered objects, from each method's Kron flux (``flux_auto``, ``segment --kron``; SExtractor's
  ``FLUX_AUTO``) against the injected total flux, and its scatter (1.4826 x the median absolute
  deviation), as Balrog reports the photometric response of its injections;
- **spurious detections per Mpix**: predicted segments that touch neither an injected object nor
  the image's own sources (``ignore.fits``), per Mpix of the area outside the own sources. The own
  sources are those of sep at 1.5 sigma, so a method deeper than that also counts real faint
  sources here;
- **unconfirmed detections per Mpix** (with ``inject --confirm-with``): the spurious segments that
  also touch no source of the other bands (``confirm.fits``), per Mpix outside both: what no
  independent data supports. ``inject.json`` gives the chance that a random pixel is confirmed;
- **false detections per Mpix on the negated image**: the same count on ``-img`` of the first
  realisation, where real sources are holes and only noise (symmetric about the background) can be
  detected: the standard estimate of a detector's false-positive rate.

Outputs, one set: ``recovery.csv``, ``recovery.json`` (with the curves), ``recovery.html``
(figures embedded), and ``runs/<realisation>/<method>/`` (each segmentation).
"""

from __future__ import annotations

import base64
import html
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from astrostatlearn.errors import InputError
from astrostatlearn.field import Field
from astrostatlearn.field.fitsio import open_image
from astrostatlearn.field.outputs import OutputSet
from astrostatlearn.metrics.binned import SNR_BINS, binned_detection
from astrostatlearn.metrics.instance import match_instances
from astrostatlearn.metrics.pairs import LabelPairs, count_pairs
from astrostatlearn.progress import progress_bar

SEXTRACTOR = "SExtractor"
SEED_THRESH = 1.5
MAG_STEP = 0.25


def find_realisations(inject_dir: str | Path) -> list[Path]:
    """The realisation folders of an ``inject`` output (each a field with truth and ignore.fits)."""
    d = Path(inject_dir)
    if not d.is_dir():
        raise InputError("injection folder not found", d)
    found = sorted(p for p in d.glob("real-*") if (p / "true.fits").exists() and (p / "truth.ecsv").exists())
    if not found:
        raise InputError("no realisations (real-*/ with true.fits and truth.ecsv); make them with astrostatlearn inject", d)
    return found


def segment_with_method(real: Path, method: str, work: Path, model: str | None = None,
                        options: dict[str, str] | None = None) -> Path:
    """Segment realisation ``real`` with ``method`` (registry name) and its ``options`` (as
    ``segment -p NAME=VALUE``) as ``astrostatlearn segment`` does; return its segmentation.fits."""
    from astrostatlearn.methods import default_segmenter, load_segmenter, resolve_variant
    from astrostatlearn.segment.run import prepare_and_segment

    seg = load_segmenter(model) if model else default_segmenter(method)
    seg.set_options(options or {})
    with Field.open(real) as f:
        prepare_and_segment(f, seg, work, variant=resolve_variant(seg, None), overwrite=True,
                            scheduler=seg.default_scheduler, model_path=model, kron=True)
    return work / "segmentation.fits"


def segment_with_sextractor(real: Path, work: Path) -> Path:
    from astrostatlearn.benchmark import peers

    return peers.run_sextractor(real, work, thresh=SEED_THRESH)


def run_folder(row: str) -> str:
    """The folder of a row's runs under ``runs/<realisation>/``: its text with ``:`` as ``_``
    (``unet:min_snr=7`` -> ``unet_min_snr=7``)."""
    return row.replace(":", "_")


def recovered_flux(seg_path: Path, pred_ids: np.ndarray) -> np.ndarray | None:
    """The Kron flux of each segment ``pred_ids`` of ``seg_path``, from the catalogue beside it:
    our ``catalog.ecsv`` (``flux_auto``, by ``id``) or SExtractor's ``sex.cat`` (``FLUX_AUTO``, by
    ``NUMBER``); NaN for an ID it lacks; None when there is no such catalogue."""
    from astropy.table import Table

    ours, sex = seg_path.parent / "catalog.ecsv", seg_path.parent / "sex.cat"
    if ours.exists():
        cat = Table.read(ours, format="ascii.ecsv")
        if "flux_auto" not in cat.colnames:
            return None
        ids, flux = np.asarray(cat["id"], np.int64), np.asarray(cat["flux_auto"], float)
    elif sex.exists():
        from astrostatlearn.benchmark.real import read_sextractor_catalog

        cat = read_sextractor_catalog(sex)
        ids, flux = np.asarray(cat["NUMBER"], np.int64), np.asarray(cat["FLUX_AUTO"], float)
    else:
        return None
    lookup = dict(zip(ids.tolist(), flux.tolist()))
    return np.array([lookup.get(int(i), np.nan) for i in pred_ids], float)


def magnitude_offsets(seg_path: Path, m: Any, ids: np.ndarray, injected_flux: np.ndarray,
                      injected_mag: np.ndarray) -> dict[str, list[float]]:
    """``dmag``: recovered − injected magnitude of each matched pair of ``m`` (NaN where the
    recovered flux is not positive), ``dmag_at``: their injected magnitudes; empty lists without a
    catalogue of Kron fluxes (:func:`recovered_flux`)."""
    flux = recovered_flux(seg_path, m.matched_pred)
    if flux is None:
        return {"dmag": [], "dmag_at": []}
    k = np.searchsorted(ids, m.matched_true)
    with np.errstate(divide="ignore", invalid="ignore"):
        dmag = np.where(flux > 0, -2.5 * np.log10(flux / injected_flux[k]), np.nan)
    return {"dmag": dmag.tolist(), "dmag_at": injected_mag[k].tolist()}


def score_realisation(real: Path, seg_path: Path, mag_edges: np.ndarray) -> dict[str, Any]:
    """Completeness by magnitude and S/N, mask IoU and spurious detections of one segmentation."""
    from astropy.table import Table

    with open_image(real / "true.fits") as t, open_image(seg_path) as p, open_image(real / "ignore.fits") as g:
        true, pred, ignore = t.read().astype(np.int64), p.read().astype(np.int64), g.read() > 0
    if pred.shape != true.shape:
        raise InputError(f"segmentation shape {pred.shape} differs from the realisation's {true.shape}", seg_path)
    cat = Table.read(real / "truth.ecsv")
    cat.sort("id")
    ids = np.asarray(cat["id"], np.int64)
    in_truth = np.asarray(cat["area_true"]) > 0  # undetectable objects (no pixel above 1 sigma) count too
    m = match_instances(LabelPairs.from_maps(true, pred))
    # Completeness over every injected object, in the truth map or not.
    hit = np.isin(ids, m.matched_true)
    by_mag = binned_detection(m, ids, np.asarray(cat["mag"], float), mag_edges)
    by_snr = binned_detection(m, ids, np.asarray(cat["snr"], float), SNR_BINS)
    for binned, col, edges in ((by_mag, "mag", mag_edges), (by_snr, "snr", SNR_BINS)):
        v = np.asarray(cat[col], float)
        binned["n_true"] = np.histogram(v, edges)[0].tolist()  # every injected object, not only those in true.fits
        binned["n_hit"] = np.histogram(v[hit], edges)[0].tolist()
    n_spurious = segments_off(pred, (true > 0) | ignore)
    clean_mpix = float(np.count_nonzero(~ignore)) / 1e6
    unconfirmed: dict[str, Any] = {}
    if (real / "confirm.fits").exists():  # inject --confirm-with: other bands' sources
        with open_image(real / "confirm.fits") as c:
            seen = (c.read() > 0) | ignore
        unconfirmed = {"n_unconfirmed": segments_off(pred, (true > 0) | seen),
                       "unconfirmed_mpix": float(np.count_nonzero(~seen)) / 1e6}
    return unconfirmed | {"realisation": real.name, "n_injected": int(ids.size), "n_in_truth": int(in_truth.sum()),
            "n_recovered": int(hit.sum()), "iou_sum": float(m.matched_iou.sum()), "n_matched": int(m.tp),
            "n_spurious": n_spurious, "clean_mpix": clean_mpix, "mag": by_mag, "snr": by_snr,
            **magnitude_offsets(seg_path, m, ids, np.asarray(cat["flux"], float), np.asarray(cat["mag"], float))}


def segments_off(pred: np.ndarray, busy: np.ndarray) -> int:
    """How many segments of ``pred`` touch no pixel of the mask ``busy``."""
    return int(np.setdiff1d(np.unique(pred[pred > 0]), np.unique(pred[(pred > 0) & busy])).size)


def negated_field(real: Path, out: Path) -> Path:
    """A field folder holding ``-img`` of realisation ``real`` (NaN kept) with its rms and header."""
    from astropy.io import fits

    out.mkdir(parents=True, exist_ok=True)
    with fits.open(real / "img.fits") as h:
        fits.PrimaryHDU(-h[0].data, h[0].header).writeto(out / "img.fits", overwrite=True)
    if (real / "rms.fits").exists():
        with fits.open(real / "rms.fits") as h:
            fits.PrimaryHDU(h[0].data, h[0].header).writeto(out / "rms.fits", overwrite=True)
    return out


def false_per_mpix(seg_path: Path, ignore_path: Path) -> float:
    """Segments of ``seg_path`` touching none of ``ignore_path``'s sources, per Mpix outside them."""
    with open_image(seg_path) as p, open_image(ignore_path) as g:
        pred, ignore = p.read().astype(np.int64), g.read() > 0
    return segments_off(pred, ignore) / max(float(np.count_nonzero(~ignore)) / 1e6, 1e-9)


def _crossing(mids: np.ndarray, comp: np.ndarray, level: float) -> float | None:
    """The magnitude where ``comp`` first falls below ``level`` going faint (linear between bins)."""
    ok = np.isfinite(comp)
    mids, comp = mids[ok], comp[ok]
    if not comp.size or comp[0] < level:
        return None  # never reaches the level, even in the brightest bin
    for i in range(1, comp.size):
        if comp[i - 1] >= level > comp[i]:
            return float(mids[i - 1] + (comp[i - 1] - level) / (comp[i - 1] - comp[i]) * (mids[i] - mids[i - 1]))
    return float("inf")  # above the level over the whole range


def summarise(name: str, runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Pool one method's realisations: curves with their range, m50, m90, mask IoU, spurious rate."""
    out: dict[str, Any] = {"method": name}
    for col in ("mag", "snr"):
        edges = np.asarray(runs[0][col]["edges"])
        n = np.array([r[col]["n_true"] for r in runs], float)
        h = np.array([r[col]["n_hit"] for r in runs], float)
        with np.errstate(invalid="ignore", divide="ignore"):
            each = np.where(n > 0, h / np.maximum(n, 1), np.nan)
            pooled = np.where(n.sum(0) > 0, h.sum(0) / np.maximum(n.sum(0), 1), np.nan)
        out[col] = {"edges": edges.tolist(), "completeness": pooled.tolist(),
                    "low": np.nanmin(np.where(np.isnan(each), np.inf, each), axis=0).tolist(),
                    "high": np.nanmax(np.where(np.isnan(each), -np.inf, each), axis=0).tolist(),
                    "n_true": n.sum(0).astype(int).tolist()}
    mids = 0.5 * (np.asarray(out["mag"]["edges"][1:]) + np.asarray(out["mag"]["edges"][:-1]))
    comp = np.asarray(out["mag"]["completeness"], float)
    n_inj = sum(r["n_injected"] for r in runs)
    out.update({"n_injected": n_inj, "n_recovered": sum(r["n_recovered"] for r in runs),
                "completeness": sum(r["n_recovered"] for r in runs) / max(n_inj, 1),
                "m50": _crossing(mids, comp, 0.5), "m90": _crossing(mids, comp, 0.9),
                "mask_iou": sum(r["iou_sum"] for r in runs) / max(sum(r["n_matched"] for r in runs), 1),
                "spurious_per_mpix": sum(r["n_spurious"] for r in runs) / max(sum(r["clean_mpix"] for r in runs), 1e-9),
                "unconfirmed_per_mpix": None})
    out.update(photometric_response(runs, np.asarray(out["mag"]["edges"], float)))
    if all("n_unconfirmed" in r for r in runs):
        out["unconfirmed_per_mpix"] = (sum(r["n_unconfirmed"] for r in runs)
                                       / max(sum(r["unconfirmed_mpix"] for r in runs), 1e-9))
    return out


def photometric_response(runs: Sequence[dict[str, Any]], edges: np.ndarray) -> dict[str, Any]:
    """Pooled ``dmag`` of the realisations: ``dmag_median``, ``dmag_scatter`` (1.4826 MAD; None
    without any) and ``response``, its 16th, 50th and 84th percentiles in each bin of injected
    magnitude (``edges``; NaN for a bin with fewer than 3 objects)."""
    dmag = np.asarray([d for r in runs for d in r.get("dmag", [])], float)
    at = np.asarray([a for r in runs for a in r.get("dmag_at", [])], float)
    ok = np.isfinite(dmag)
    dmag, at = dmag[ok], at[ok]
    if not dmag.size:
        return {"dmag_median": None, "dmag_scatter": None, "response": None}
    med = float(np.median(dmag))
    curves = np.full((3, edges.size - 1), np.nan)
    for i in range(edges.size - 1):
        inside = dmag[(at >= edges[i]) & (at < edges[i + 1])]
        if inside.size >= 3:
            curves[:, i] = np.percentile(inside, [16, 50, 84])
    return {"dmag_median": med, "dmag_scatter": float(1.4826 * np.median(np.abs(dmag - med))),
            "response": {"edges": edges.tolist(), "p16": curves[0].tolist(), "median": curves[1].tolist(),
                         "p84": curves[2].tolist()}}


COLUMNS = [("method", "method", "{}"), ("completeness", "completeness", "{:.3f}"), ("m50", "m50", "{:.2f}"),
           ("m90", "m90", "{:.2f}"), ("mask_iou", "mask IoU", "{:.3f}"), ("dmag_median", "Δmag", "{:+.3f}"),
           ("dmag_scatter", "σ(Δmag)", "{:.3f}"), ("spurious_per_mpix", "spurious/Mpix", "{:.1f}"),
           ("unconfirmed_per_mpix", "unconfirmed/Mpix", "{:.1f}"),
           ("false_per_mpix_negated", "false/Mpix (negated)", "{:.1f}"),
           ("n_recovered", "recovered", "{}"), ("n_injected", "injected", "{}")]


def _cell(value: Any, fmt: str) -> str:
    if value is None:
        return "–"
    if isinstance(value, float) and not np.isfinite(value):
        return "> range"
    return fmt.format(value)


def table_text(rows: Sequence[dict[str, Any]]) -> str:
    head = [c[1] for c in COLUMNS]
    body = [[_cell(r[k], f) for k, _, f in COLUMNS] for r in rows]
    widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(head)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(head, widths))]
    lines += ["  ".join(c.rjust(w) for c, w in zip(b, widths)) for b in body]
    return "\n".join(lines)


def _axes() -> tuple[Any, Any]:
    """A figure and its axes for one report plot (matplotlib, no display)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(7, 4.2))


def _band(ax: Any, x: np.ndarray, mid: np.ndarray, lo: np.ndarray, hi: np.ndarray, label: str) -> None:
    """A method's curve ``mid`` against ``x`` with ``lo``..``hi`` shaded in its colour."""
    line, = ax.plot(x, mid, marker="o", ms=3, label=label)
    ax.fill_between(x, lo, hi, color=line.get_color(), alpha=0.15)


def _png(fig: Any, ax: Any) -> bytes:
    """The figure as PNG bytes (grid and legend added), closed (:func:`~astrostatlearn.benchmark.figures.png_bytes`)."""
    from astrostatlearn.benchmark.figures import png_bytes

    ax.grid(alpha=0.3)
    ax.legend()
    return png_bytes(fig, dpi=110)


def curves_figure(rows: Sequence[dict[str, Any]], col: str) -> bytes:
    """Completeness against ``col`` ('mag' or 'snr'), every method on one plot, realisations' range shaded."""
    fig, ax = _axes()
    for r in rows:
        e = np.asarray(r[col]["edges"], float)
        if col == "snr":
            e = np.where(np.isfinite(e), e, e[np.isfinite(e)].max() * 2)
            mids = np.sqrt(np.maximum(e[:-1], 1.0) * e[1:])
        else:
            mids = 0.5 * (e[1:] + e[:-1])
        lo, hi = (np.asarray(r[col][k], float) for k in ("low", "high"))
        _band(ax, mids, np.asarray(r[col]["completeness"], float), np.where(np.isfinite(lo), lo, np.nan),
              np.where(np.isfinite(hi), hi, np.nan), r["method"])
    if col == "snr":
        ax.set_xscale("log")
    ax.set_xlabel("injected magnitude" if col == "mag" else "injected S/N (matched filter)")
    ax.set_ylabel("completeness (IoU > 0.5)")
    ax.set_ylim(-0.02, 1.02)
    return _png(fig, ax)


def response_figure(rows: Sequence[dict[str, Any]]) -> bytes:
    """Recovered − injected magnitude against injected magnitude: each method's median, its 16th to
    84th percentiles shaded."""
    fig, ax = _axes()
    for r in rows:
        resp = r.get("response")
        if resp:
            e = np.asarray(resp["edges"], float)
            _band(ax, 0.5 * (e[1:] + e[:-1]), np.asarray(resp["median"], float), np.asarray(resp["p16"], float),
                  np.asarray(resp["p84"], float), r["method"])
    ax.axhline(0.0, color="k", lw=0.8)
    ax.set_xlabel("injected magnitude")
    ax.set_ylabel("recovered - injected magnitude (Kron)")
    return _png(fig, ax)


def write_html(path: Path, rows: Sequence[dict[str, Any]], meta: dict[str, Any]) -> None:
    th = "".join(f"<th>{html.escape(c[1])}</th>" for c in COLUMNS)
    trs = "".join("<tr>" + "".join(f"<td>{html.escape(_cell(r[k], f))}</td>" for k, _, f in COLUMNS) + "</tr>"
                  for r in rows)
    figs = "".join(f'<figure><img alt="completeness against {c}" src="data:image/png;base64,'
                   f'{base64.b64encode(curves_figure(rows, c)).decode()}"><figcaption>Completeness against '
                   f'{"injected magnitude" if c == "mag" else "injected S/N"}; shaded: the range over the '
                   f'{meta["n_realisations"]} realisations</figcaption></figure>' for c in ("mag", "snr"))
    if any(r.get("response") for r in rows):
        figs += (f'<figure><img alt="photometric response" src="data:image/png;base64,'
                 f'{base64.b64encode(response_figure(rows)).decode()}"><figcaption>Photometric response: recovered '
                 f'(Kron) minus injected magnitude of the recovered galaxies; line: median, shaded: 16th to 84th '
                 f'percentile</figcaption></figure>')
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in meta.get("notes", []))
    path.write_text(f"""<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>astrostatlearn recovery</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em;max-width:1100px}} table{{border-collapse:collapse}}
th,td{{border:1px solid #ccc;padding:3px 8px;text-align:right}} td:first-child{{text-align:left}} img{{max-width:100%}}</style>
</head><body><h1>Injection-recovery</h1>
<p>{html.escape(meta["injection"])}: {meta["n_realisations"]} realisations, {meta["n_injected"]} galaxies injected each
time away from the image's own sources. A galaxy is recovered when a segment matches its truth mask at IoU &gt; 0.5.
Spurious: segments touching neither an injected galaxy nor the image's own sources, per Mpix outside them.
Unconfirmed (with inject --confirm-with): spurious segments that touch no source of the other bands either.
False (negated): the same count on the negated image, where only noise can be detected.</p>
<table><thead><tr>{th}</tr></thead><tbody>{trs}</tbody></table><ul>{notes}</ul>{figs}</body></html>""")


@dataclass
class RecoveryResult:
    out: Path
    rows: list[dict[str, Any]]
    seconds: float

    def table(self) -> str:
        return table_text(self.rows)


def run_recovery(inject_dir: str | Path, out: str | Path, methods: Sequence[str] | None = None,
                 sextractor: bool = True, models: dict[str, str] | None = None, overwrite: bool = False,
                 progress: bool = False) -> RecoveryResult:
    """Segment and score every realisation of an injection with each method and SExtractor.

    Parameters
    ----------
    inject_dir : path
        An ``inject`` output folder (``real-*/`` fields with ``ignore.fits``).
    out : path
        Output folder: ``recovery.csv``, ``recovery.json``, ``recovery.html``, ``runs/``.
    methods : sequence of str, optional
        Registry names, each optionally with options, ``NAME:OPTION=VALUE[:OPTION=VALUE...]``
        (:func:`~astrostatlearn.methods.parse_method_spec`; ``unet,unet:min_snr=7`` compares two
        settings; each row is named by its text). Default: every method that runs as it comes
        (:func:`~astrostatlearn.methods.ready_methods`).
    sextractor : bool
        Add SExtractor at the seed's settings (1.5 sigma, 5 pixels) when installed.
    models : dict, optional
        Method name to a model file to use instead of the method's default (for every row of
        that method).
    overwrite : bool
        Replace an existing output folder.
    progress : bool
        Show a progress bar.

    Returns
    -------
    RecoveryResult
        One row per method: completeness, m50, m90, mask IoU, spurious per Mpix, and the curves.

    Raises
    ------
    InputError
        No realisations, an unknown method or option, a method given twice, an existing output
        folder.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from astrostatlearn.inject import InjectRequest, inject_image
    >>> from astrostatlearn.inject.recovery import run_recovery
    >>> from astrostatlearn.simulate import simulate_field
    >>> tmp = Path(tempfile.mkdtemp())
    >>> _ = simulate_field(tmp / "field", 512, seed=1, workers=0, progress=False)
    >>> _ = inject_image(tmp / "field" / "img.fits", tmp / "inj", InjectRequest(n=10, realisations=2, psf_fwhm=2.0))
    >>> rec = run_recovery(tmp / "inj", tmp / "rec", methods=["sep"], sextractor=False)
    >>> [r["method"] for r in rec.rows], 0 <= rec.rows[0]["completeness"] <= 1
    (['sep'], True)
    """
    from astrostatlearn.benchmark import peers
    from astrostatlearn.methods import parse_method_spec, ready_methods

    methods = ready_methods() if methods is None else list(methods)
    t0 = time.perf_counter()
    reals = find_realisations(inject_dir)
    specs = {m: parse_method_spec(m) for m in methods}  # unknown names and options fail before any work
    if len(specs) < len(methods):
        raise InputError(f"a method is given twice in {', '.join(methods)}")
    out = Path(out)
    if out.exists() and not overwrite:
        raise InputError("output exists; pass --overwrite to replace it", out)
    desc = json.loads((Path(inject_dir) / "inject.json").read_text()) if (Path(inject_dir) / "inject.json").exists() else {}
    lo, hi = desc.get("mag_range") or _mag_span(reals)
    mag_edges = np.arange(np.floor(lo / MAG_STEP) * MAG_STEP, hi + MAG_STEP, MAG_STEP)
    notes = []
    models = models or {}
    runners: list[tuple[str, Any]] = [
        (m, lambda r, w, m=m, name=name, opts=opts: segment_with_method(r, name, w, models.get(name), opts))
        for m, (name, opts) in specs.items()]
    if sextractor:
        if peers.ensure_installed()["sextractor"]:
            runners.append((SEXTRACTOR, segment_with_sextractor))
        else:
            notes.append("SExtractor is not installed (Debian source-extractor): no reference row")
    scores: dict[str, list[dict[str, Any]]] = {name: [] for name, _ in runners}
    with OutputSet(out, None, overwrite) as tx:
        stage = tx.path()
        bar = progress_bar(total=(len(reals) + 1) * len(runners), desc="recovery", unit="run", enabled=progress)
        for real in reals:
            for name, run in runners:
                seg = run(real, stage / "runs" / real.name / run_folder(name))
                scores[name].append(score_realisation(real, seg, mag_edges))
                bar.update()
        negated = negated_field(reals[0], stage / "runs" / "negated" / "field")
        false_rates = {}
        for name, run in runners:
            seg = run(negated, stage / "runs" / "negated" / run_folder(name))
            false_rates[name] = false_per_mpix(seg, reals[0] / "ignore.fits")
            bar.update()
        bar.close()
        rows = [dict(summarise(name, runs), false_per_mpix_negated=false_rates[name]) for name, runs in scores.items()]
        meta = {"injection": str(inject_dir), "n_realisations": len(reals),
                "n_injected": scores[runners[0][0]][0]["n_injected"] if runners else 0,
                "notes": notes + desc.get("notes", []), "inject": desc}
        (stage / "recovery.json").write_text(json.dumps({"meta": meta, "methods": rows,
                                                         "realisations": scores}, indent=1, default=_json))
        _write_csv(stage / "recovery.csv", rows)
        write_html(stage / "recovery.html", rows, meta)
    return RecoveryResult(out, rows, time.perf_counter() - t0)


def _json(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    raise TypeError(type(o))


def _write_csv(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    import csv

    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow([c[0] for c in COLUMNS])
        for r in rows:
            w.writerow([r[c[0]] for c in COLUMNS])


def _mag_span(reals: Sequence[Path]) -> tuple[float, float]:
    from astropy.table import Table

    mags = np.concatenate([np.asarray(Table.read(r / "truth.ecsv")["mag"], float) for r in reals])
    return float(mags.min()), float(mags.max())
