"""The benchmark report: pixel, instance, cost and the seed's panoptic tables as Markdown and a self-contained
HTML page with the figures embedded as data URIs (no external links or files).

The HTML carries a small script that counts its images once loaded and writes the result into
``#image-check``, so a headless browser can confirm the page shows all of them.
"""

from __future__ import annotations

import base64
import html
import math
from pathlib import Path
from typing import Any, Sequence

PIXEL_COLS = [("pixel_iou", "IoU"), ("pixel_recall", "recall"), ("pixel_precision", "precision"), ("pixel_dice", "Dice"),
              ("pixel_accuracy", "accuracy"), ("pixel_f1", "F1"), ("patchmean_iou", "IoU (patch mean)"),
              ("patchmean_recall", "recall (patch mean)"), ("patchmean_precision", "precision (patch mean)"),
              ("patchmean_dice", "Dice (patch mean)")]
INSTANCE_COLS = [("inst_completeness", "completeness"), ("inst_purity", "purity"), ("inst_f1", "F1"), ("pq", "PQ"),
                 ("sq", "SQ"), ("rq", "RQ"), ("segm_AP", "AP"), ("segm_AP50", "AP50"), ("segm_AP75", "AP75"),
                 ("segm_AR_max", "AR")]
# The seed study's panoptic table: one row per class, one PQ/SQ/RQ column group per run; "all" is
# the mean over the two classes, as in the COCO panoptic evaluation.
PANOPTIC_CLASSES = (("all", "all_"), ("void", "void_"), ("galaxy", ""))
COST_COLS = [("train_s", "training s"), ("segment_s", "inference s"), ("mpix_per_s", "Mpix/s"), ("peak_mb", "peak MB")]


def _fmt(v: Any, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if isinstance(v, float):
        return f"{v:.{digits}f}" if abs(v) < 1000 else f"{v:.0f}"
    return str(v)


def table_rows(records: Sequence[dict], cols: Sequence[tuple[str, str]], digits: int = 3) -> tuple[list[str], list[list[str]]]:
    head = ["method", "variant"] + [c[1] for c in cols]
    body = [[r["method"] + (" (ref)" if r.get("reference") else ""), r["variant"]] +
            [_fmt(r.get(k), 1 if k in ("train_s", "segment_s", "peak_mb") else digits) for k, _ in cols] for r in records]
    return head, body


def markdown_table(records: Sequence[dict], cols: Sequence[tuple[str, str]]) -> str:
    head, body = table_rows(records, cols)
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(row) + " |" for row in body]
    return "\n".join(lines)


def html_table(records: Sequence[dict], cols: Sequence[tuple[str, str]]) -> str:
    head, body = table_rows(records, cols)
    th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    def cells(rec: dict, row: list[str]) -> str:
        out = [f"<td>{html.escape(c)}</td>" for c in row]
        if rec.get("view"):  # the method links to its layer in the viewer
            out[0] = f'<td><a href="{html.escape(rec["view"])}">{html.escape(row[0])}</a></td>'
        return "".join(out)

    trs = "".join(f"<tr>{cells(rec, row)}</tr>" for rec, row in zip(records, body))
    return f"<table><thead><tr>{th}</tr></thead><tbody>{trs}</tbody></table>"


def panoptic_rows(records: Sequence[dict], digits: int = 3) -> tuple[list[str], list[list[str]]]:
    """The seed's PQ/SQ/RQ table: a header of run names (each spanning PQ, SQ, RQ) and one row per
    class (``all``, ``void``, ``galaxy``)."""
    runs = [f"{r['method']} {r['variant']}" for r in records]
    body = [[name] + [_fmt(r.get(f"{prefix}{k}"), digits) for r in records for k in ("pq", "sq", "rq")]
            for name, prefix in PANOPTIC_CLASSES]
    return runs, body


def panoptic_markdown(records: Sequence[dict]) -> str:
    runs, body = panoptic_rows(records)
    head = ["class"] + [f"{run} {k}" for run in runs for k in ("PQ", "SQ", "RQ")]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in body])


def panoptic_html(records: Sequence[dict]) -> str:
    runs, body = panoptic_rows(records)
    top = "<th rowspan=2>class</th>" + "".join(f"<th colspan=3>{html.escape(run)}</th>" for run in runs)
    sub = "".join("<th>PQ</th><th>SQ</th><th>RQ</th>" for _ in runs)
    trs = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in body)
    return (f'<div style="overflow-x:auto"><table class="panoptic"><thead><tr>{top}</tr><tr>{sub}</tr></thead>'
            f"<tbody>{trs}</tbody></table></div>")


def write_report(out: Path, records: Sequence[dict], meta: dict[str, Any], figures: dict[str, bytes],
                 notes: Sequence[str] = ()) -> tuple[Path, Path]:
    """Write ``report.md`` and ``report.html`` into ``out``; returns their paths."""
    from astrostatlearn.field import atomic_write_bytes

    y0, y1, x0, x1 = meta["test_region"]
    intro = (f"Field `{meta['field']}` ({meta['shape'][0]}×{meta['shape'][1]} px). Every row is scored on the same "
             f"held-out test region y[{y0}:{y1}] x[{x0}:{x1}] ({(y1 - y0) * (x1 - x0) / 1e6:.2f} Mpix); learned methods "
             f"are trained on the train region only (guard band {meta['splits']['guard']} px, no object in two splits). "
             "Pixel metrics are global (one confusion matrix) and, separately, the mean over 256² patches; "
             "objects match at IoU > 0.5.")
    sections = [("Pixel metrics", PIXEL_COLS), ("Instance metrics", INSTANCE_COLS), ("Cost", COST_COLS)]
    md = ["# astrostatlearn benchmark", "", intro, ""]
    for title, cols in sections:
        md += [f"## {title}", "", markdown_table(records, cols), ""]
    md += ["## Panoptic quality (the seed's table)", "", panoptic_markdown(records), ""]
    md += [f"- {n}" for n in notes]
    md += ["", "Figures are in report.html."]
    atomic_write_bytes(out / "report.md", "\n".join(md).encode(), overwrite=True)

    figs = "".join(
        f'<figure><img alt="{html.escape(name)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'
        f"<figcaption>{html.escape(name)}</figcaption></figure>" for name, png in figures.items())
    nav = "".join(f'<a href="#{t.split()[0].lower()}">{html.escape(t)}</a> ' for t, _ in sections) + '<a href="#figures">Figures</a>'
    body = "".join(f'<h2 id="{t.split()[0].lower()}">{html.escape(t)}</h2>{html_table(records, c)}' for t, c in sections)
    body += f'<h2 id="panoptic">Panoptic quality (the seed\'s table)</h2>{panoptic_html(records)}'
    nav += ' <a href="#panoptic">Panoptic</a>'
    notes_html = "".join(f"<li>{html.escape(n)}</li>" for n in notes)
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>astrostatlearn benchmark</title>
<style>
body{{font-family:system-ui,sans-serif;margin:2em;max-width:1400px;color:#222}}
table{{border-collapse:collapse;font-size:13px;margin:0.5em 0 1.5em}}
th,td{{border:1px solid #ccc;padding:3px 7px;text-align:right}} th{{background:#f0f0f0}}
td:first-child,td:nth-child(2){{text-align:left}} figure{{margin:1em 0}} img{{max-width:100%}}
nav a{{margin-right:1em}}
</style></head><body>
<h1>astrostatlearn benchmark</h1><nav>{nav}</nav>
<p>{html.escape(intro)}</p>{body}<ul>{notes_html}</ul>
<h2 id="figures">Figures</h2>{figs}
<p id="image-check">images not checked</p>
<script>
window.addEventListener('load', function () {{
  var imgs = Array.prototype.slice.call(document.images);
  var ok = imgs.filter(function (i) {{ return i.complete && i.naturalWidth > 0; }}).length;
  document.getElementById('image-check').textContent = 'images loaded: ' + ok + '/' + imgs.length;
}});
</script>
</body></html>"""
    atomic_write_bytes(out / "report.html", page.encode(), overwrite=True)
    return out / "report.md", out / "report.html"
