"""``astrostatlearn benchmark``: the matrix, results files, figures and report in one call."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from astrostatlearn.benchmark import figures
from astrostatlearn.benchmark.matrix import DEFAULT_METHODS, DEFAULT_VARIANTS, Row, run_matrix, write_results
from astrostatlearn.benchmark.report import write_report
from astrostatlearn.field import Field, Window, check_writable
from astrostatlearn.field.outputs import OutputSet

OUTPUTS = ("results.csv", "results.json", "report.md", "report.html", "runs", "view")


def run_benchmark(field_dir: str | Path, out: str | Path, methods: Sequence[str] = DEFAULT_METHODS,
                  variants: Sequence[str] = DEFAULT_VARIANTS, tile: int = 1024, workers: int | None = None,
                  scheduler: str | None = None, peers_too: bool = True, models: dict[str, str] | None = None,
                  overwrite: bool = False, view: bool = True, log=print) -> dict[str, Any]:
    """Run everything and write results.csv, results.json, report.md, report.html, runs/ and
    (with ``view``) the viewer site view/, with every run as a layer, into ``out``, committed as
    one set. The report links each row to its layer in the viewer."""
    out = Path(out)
    for name in OUTPUTS:
        check_writable(out / name, overwrite)
    with OutputSet(out, OUTPUTS, overwrite) as tx:
        stage = tx.path()
        rows, meta = run_matrix(field_dir, stage, tuple(methods), tuple(variants), tile=tile, workers=workers,
                                scheduler=scheduler, peers_too=peers_too, models=models, log=log)
        figs = make_figures(Path(field_dir), rows, meta)
        if view:
            _build_view(Path(field_dir), stage, rows, scheduler, workers, log)
        for r in rows:  # the records name where the runs will be once committed
            r.seg_path, r.score_path = (None if p is None else p.replace(str(stage), str(out))
                                        for p in (r.seg_path, r.score_path))
        write_results(rows, meta, stage)
        records = [r.flat() for r in rows if r.evaluation is not None]
        if view:
            for r, rec in zip([r for r in rows if r.evaluation is not None], records):
                rec["view"] = f"view/index.html#layer={view_layer(r)}" if r.seg_path else None
        notes = sorted({f"{r.method}: {r.note}" for r in rows if r.note})
        for m in methods:
            if not any(r.method == m for r in rows):
                notes.append(f"{m}: no row; its model was trained for another variant than those asked for")
        write_report(stage, records, meta, figs, notes)
    return {"rows": rows, "meta": meta, "report_md": out / "report.md", "report_html": out / "report.html"}


def view_layer(row: Row) -> str:
    """The viewer layer of a benchmark row."""
    return f"{row.method}-{row.variant}".replace("+", "_")


def _build_view(field_dir: Path, stage: Path, rows: Sequence[Row], scheduler: str | None, workers: int | None,
                log) -> None:
    """The viewer site of the field, with the truth and every scored run (staged paths) as layers."""
    from astrostatlearn.view import build_site

    layers = [(view_layer(r), r.seg_path) for r in rows if r.evaluation is not None and r.seg_path]
    res = build_site(field_dir, stage / "view", segs=layers, truth=True, scheduler=scheduler, workers=workers)
    log(f"viewer: the truth and {len(layers)} runs as layers ({res.seconds:.0f} s)")


def make_figures(field_dir: Path, rows: Sequence[Row], meta: dict[str, Any]) -> dict[str, bytes]:
    test = Window(*meta["test_region"])
    true_path = str(field_dir / "true.fits")
    with Field.open(field_dir) as f:
        true = f.read_true(test)
        img_path = str(f.img.path)
    windows = [Window(w.y0 + test.y0, w.y1 + test.y0, w.x0 + test.x0, w.x1 + test.x0)
               for w in figures.pick_patches(true, Window(0, test.shape[0], 0, test.shape[1]))]
    scored = [r for r in rows if r.evaluation is not None]
    # One prediction per method in the example panel: its best variant by PQ.
    best: dict[str, Row] = {}
    for r in scored:
        pq = r.evaluation.panoptic["galaxy"]["pq"]
        if r.method not in best or pq > best[r.method].evaluation.panoptic["galaxy"]["pq"]:
            best[r.method] = r
    figs = {
        "Example test patches: image | truth | each method (its best variant)":
            figures.example_patches(img_path, true_path, [(f"{m} ({r.variant})", r.seg_path) for m, r in best.items()],
                                    windows),
        "Pixel IoU, instance F1 and PQ per variant": figures.metric_bars([r.flat() for r in scored]),
    }
    for col, title in (("mag", "true magnitude"), ("snr", "true S/N")):  # S/N alone without a truth catalogue
        curves = [(f"{m} ({r.variant})", r.evaluation.binned[col]) for m, r in best.items()
                  if r.evaluation.binned and col in r.evaluation.binned]
        if curves:
            figs[f"Completeness and purity against {title}"] = figures.completeness_purity(curves, col)
            break
    prs = []
    for m, r in best.items():
        if r.score_path:
            p, rec, ap = figures.pixel_pr(true_path, r.score_path, test)
            prs.append((f"{m} ({r.variant})", p, rec, ap))
    if prs:
        figs["Pixel precision-recall curves (methods with a score)"] = figures.pr_curves(prs)
    return figs
