"""The benchmark matrix: every method x variant trained on the train split and scored on the
same held-out test region, plus the peers (SExtractor, NoiseChisel) as reference rows.

Splits come from :func:`astrostatlearn.datasets.leak_free_splits` (guard bands, no object in two
splits). Methods that learn are fitted on tiles of the train region only; every row is scored on
the test region with :func:`astrostatlearn.metrics.evaluate`.
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any


from astrostatlearn.benchmark import peers
from astrostatlearn.benchmark.memory import PeakMemory
from astrostatlearn.datasets import leak_free_splits
from astrostatlearn.errors import InputError
from astrostatlearn.field import Field, Window, open_image
from astrostatlearn.methods import benchmarkable, default_segmenter, load_segmenter, method_class
from astrostatlearn.methods.registry import default_benchmark_methods
from astrostatlearn.metrics import Evaluation, evaluate
from astrostatlearn.preprocess import VARIANTS, fit_variant
from astrostatlearn.segment import BackgroundMesh, region_tiles, segment_field

DEFAULT_METHODS = default_benchmark_methods()
DEFAULT_VARIANTS = ("raw", "norm", "soft", "soft+rms", "soft+rms+log", "snr")


@dataclass
class Row:
    """One method x variant: its evaluation and costs."""

    method: str
    variant: str
    evaluation: Evaluation | None
    train_s: float = 0.0
    segment_s: float = 0.0
    mpix_per_s: float = float("nan")
    peak_mb: float = float("nan")
    seg_path: str | None = None
    score_path: str | None = None
    note: str = ""
    reference: bool = False

    def flat(self) -> dict[str, Any]:
        """One flat record for results.csv."""
        out: dict[str, Any] = {"method": self.method, "variant": self.variant, "reference": self.reference,
                               "train_s": self.train_s, "segment_s": self.segment_s, "mpix_per_s": self.mpix_per_s,
                               "peak_mb": self.peak_mb, "note": self.note, "seg_path": self.seg_path}
        ev = self.evaluation
        if ev is None:
            return out
        for k, v in ev.pixel.items():
            out[f"pixel_{k}"] = v
        for k, v in ev.pixel_patch_mean.items():
            if not k.startswith("n_patches"):
                out[f"patchmean_{k}"] = v
        for k in ("completeness", "purity", "f1", "n_true", "n_pred"):
            out[f"inst_{k}"] = ev.detection[k]
        for k in ("pq", "sq", "rq"):
            out[k] = ev.panoptic["galaxy"][k]
            out[f"void_{k}"] = ev.panoptic["void"][k]
            out[f"all_{k}"] = ev.panoptic["all"][k]
        if ev.coco:
            for k in ("AP", "AP50", "AP75", "AR_max"):
                out[f"segm_{k}"] = ev.coco["segm"][k]
                out[f"bbox_{k}"] = ev.coco["bbox"][k]
        return out




def run_matrix(field_dir: str | Path, out: str | Path, methods: tuple[str, ...] = DEFAULT_METHODS,
               variants: tuple[str, ...] = DEFAULT_VARIANTS, fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
               tile: int = 1024, workers: int | None = None, scheduler: str | None = None, peers_too: bool = True,
               models: dict[str, str] | None = None, log=print) -> tuple[list[Row], dict[str, Any]]:
    """Run the matrix on a field with truth; write per-run outputs under ``out/runs``.

    ``models``: method -> model file to benchmark instead of the method's default (its shipped
    model, or a new one trained on the train split). A model trained for one variant is run on
    that variant only.
    """
    models = dict(models or {})
    out = Path(out)
    runs = out / "runs"
    field_dir = Path(field_dir)
    for v in variants:
        if v not in VARIANTS:
            raise InputError(f"unknown variant {v!r}; choose from {', '.join(VARIANTS)}")
    for method in methods:
        method_class(method)  # validates the name before anything is written
        if method not in models and not benchmarkable(method):
            raise InputError(f"method {method!r} has no shipped model and cannot learn from the field's tiles: train "
                             f"one (astrostatlearn train {method}) and pass --model {method}=MODEL")
    unknown = set(models) - set(methods)
    if unknown:
        raise InputError(f"--model given for {sorted(unknown)[0]!r}, which is not among the methods benchmarked")
    rows: list[Row] = []
    with Field.open(field_dir) as f:
        if f.true is None:
            raise InputError("the benchmark needs a field with a truth map (true.fits)", field_dir)
        plan = leak_free_splits(f, fractions)
        test = plan.regions["test"]
        catalog = f.truth_table()
        if catalog is None or "snr" not in catalog.colnames:  # no truth catalogue: S/N from img, rms, true
            from astrostatlearn.metrics import footprint_snr

            catalog = footprint_snr(f)
        true_path = f.true.path
        meta = {"field": str(field_dir), "shape": list(f.shape), "splits": plan.as_dict(),
                "test_region": [test.y0, test.y1, test.x0, test.x1], "methods": list(methods), "variants": list(variants)}
        runs.mkdir(parents=True, exist_ok=True)
        for method in methods:
            for variant in variants:
                row = _run_one(f, method, variant, plan, runs, tile, workers, scheduler, models.get(method), log)
                if row is not None:
                    if row.seg_path:
                        row.evaluation = _score(true_path, row.seg_path, row.score_path, catalog, test,
                                                Path(row.seg_path).with_name("catalog.ecsv"))
                    rows.append(row)
                    _log_row(row, log)
    if peers_too:
        rows += run_peers(field_dir, runs, true_path, catalog, test, log)
    return rows, meta


def _score(true_path: Path, seg_path: str, score_path: str | None, catalog: Any, region: Window,
           pred_catalog: Path | None = None) -> Evaluation:
    """Evaluate one run; COCO ranks objects by the run catalogue's per-object ``score`` when it has one."""
    score = open_image(score_path) if score_path and Path(score_path).exists() else None
    object_scores = None
    if pred_catalog is not None and pred_catalog.exists():
        from astrostatlearn.metrics import object_scores_from_catalog

        object_scores = object_scores_from_catalog(pred_catalog)
    return evaluate(open_image(true_path), open_image(seg_path), catalog=catalog, score=score, region=region,
                    object_scores=object_scores)


def _run_one(f: Field, method: str, variant: str, plan, runs: Path, tile: int, workers: int | None,
             scheduler: str | None, model: str | None, log) -> Row | None:
    test, train = plan.regions["test"], plan.regions["train"]
    seg = load_segmenter(model) if model else default_segmenter(method)
    if seg.name != method:
        raise InputError(f"--model for {method!r} is a {seg.name!r} model", model)
    if seg.trained_variant is not None and variant != seg.trained_variant:
        return None  # a model is trained for one variant; train others with `astrostatlearn train`
    train_s = 0.0
    pre = fit_variant(f, variant)
    mesh = BackgroundMesh.from_field(f, pre, sample=seg.background_sample)
    if seg.needs_fit and not seg.is_fitted:
        t0 = time.perf_counter()
        tiles = list(region_tiles(f, pre, mesh, train, tile=512, with_truth=seg.supervised,
                                  max_tiles=64 if seg.supervised else 16))
        seg.fit(tiles)
        train_s = time.perf_counter() - t0
    out = runs / f"{method}__{variant.replace('+', '_')}"
    # Segment the test band plus a margin, so objects straddling its edge are whole, as they are
    # for the peers that run on the whole field; scoring then crops to the band itself.
    margin = max(128, seg.halo)
    with PeakMemory() as mem:
        res = segment_field(f, seg, out, variant=variant, tile=tile, workers=workers, scheduler=scheduler,
                            overwrite=True, pre=pre, mesh=mesh, region=test.grow(margin, f.shape))
    score = out / "score.fits"
    note = ""
    if seg.shipped_model and not model:
        note = f"shipped model ({seg.shipped_model})"
    elif model:
        note = f"model {Path(model).name}"
    return Row(method, variant, None, train_s, res.timings["segment"], res.run["mpix_per_s"], mem.peak_mb,
               str(out / "segmentation.fits"), str(score) if score.exists() else None, note=note)


# SExtractor is run twice: at the seed study's settings (the reference every target is stated
# against) and with the detection threshold tuned on these simulated fields, quoted beside it.
SEXTRACTOR_RUNS = (("SExtractor", 1.5, "seed settings: DETECT_THRESH 1.5, MINAREA 5, gauss 2.0 5x5, rms map"),
                   ("SExtractor-tuned", 1.0, "tuned: DETECT_THRESH 1.0, MINAREA 5, gauss 2.0 5x5, rms map"))
# A third, where the rms map carries the sources' own Poisson noise (the simulator's does): the seed's
# settings with the map's sky part as MAP_RMS, the background noise SExtractor expects there.
SEXTRACTOR_SKY = ("SExtractor-sky", 1.5, "seed settings with the rms map's sky part as MAP_RMS (its sources' Poisson "
                  "noise taken off, as SExtractor expects; the map made before, untimed)")


def sextractor_runs(field_dir: Path, runs: Path) -> list[tuple[str, float, str, Path | None]]:
    """(name, threshold, note, rms map or None for the field's own) of each SExtractor run:
    :data:`SEXTRACTOR_RUNS`, and :data:`SEXTRACTOR_SKY` when the field's rms map carries source noise."""
    out: list[tuple[str, float, str, Path | None]] = [(*run, None) for run in SEXTRACTOR_RUNS]
    runs.mkdir(parents=True, exist_ok=True)
    sky = peers.sky_rms_map(field_dir, runs / "sky_rms.fits")
    if sky is not None:
        out.append((*SEXTRACTOR_SKY, sky))
    return out


def run_peers(field_dir: Path, runs: Path, true_path: Path, catalog: Any, test: Window, log) -> list[Row]:
    """SExtractor (:func:`sextractor_runs`) and NoiseChisel on the whole field (as users run them),
    scored on the test region."""
    have = peers.ensure_installed()
    rows = []
    ny, nx = open_image(true_path).shape
    for name, thresh, note, rms in sextractor_runs(field_dir, runs) if have["sextractor"] else ():
        work = runs / name.lower()
        t0 = time.perf_counter()
        try:
            with PeakMemory() as mem:
                seg_path = peers.run_sextractor(field_dir, work, thresh=thresh, rms=rms)
        except RuntimeError as e:
            log(str(e))
        else:
            dt = time.perf_counter() - t0
            r = Row(name, "raw", None, 0.0, dt, ny * nx / 1e6 / dt, mem.peak_mb, str(seg_path),
                    note=f"SExtractor 2.25, whole field, {note}", reference=True)
            r.evaluation = _score(true_path, r.seg_path, None, catalog, test)
            rows.append(r)
            _log_row(r, log)
    if have["noisechisel"] and ny * nx <= 70_000_000:
        work = runs / "noisechisel"
        t0 = time.perf_counter()
        ok = True
        with PeakMemory() as mem:
            for cmd in peers.noisechisel_commands(field_dir, work):
                p = subprocess.run(cmd, capture_output=True, text=True)
                ok = ok and p.returncode == 0
        dt = time.perf_counter() - t0
        if ok:
            seg = peers.noisechisel_objects(work)
            r = Row("NoiseChisel", "raw", None, 0.0, dt, ny * nx / 1e6 / dt, mem.peak_mb, str(seg),
                    note="Gnuastro 0.19 NoiseChisel + Segment, default configuration", reference=True)
            r.evaluation = _score(true_path, r.seg_path, None, catalog, test)
            rows.append(r)
            _log_row(r, log)
    return rows


def _log_row(r: Row, log) -> None:
    ev = r.evaluation
    if ev is None:
        log(f"{r.method:<16} {r.variant:<12} (no evaluation)")
        return
    log(f"{r.method:<16} {r.variant:<12} IoU {ev.pixel['iou']:.3f}  F1 {ev.detection['f1']:.3f}  "
        f"PQ {ev.panoptic['galaxy']['pq']:.3f}  AP50 {ev.coco['segm']['AP50'] if ev.coco else float('nan'):.3f}  "
        f"{r.mpix_per_s:.2f} Mpix/s")


def write_results(rows: list[Row], meta: dict[str, Any], out: Path) -> None:
    """results.csv (one flat row each) and results.json (everything, including binned curves)."""
    import csv

    from astrostatlearn.field import atomic_write_bytes, atomic_write_json

    flat = [r.flat() for r in rows]
    keys: list[str] = []
    for d in flat:
        keys += [k for k in d if k not in keys]
    import io

    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=keys)
    w.writeheader()
    w.writerows(flat)
    atomic_write_bytes(out / "results.csv", buf.getvalue().encode(), overwrite=True)
    payload = {"meta": meta, "rows": [dict(r.flat(), evaluation=r.evaluation.as_dict() if r.evaluation else None)
                                      for r in rows]}
    atomic_write_json(out / "results.json", payload, overwrite=True)

