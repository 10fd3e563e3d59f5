import csv
import json
import re
from pathlib import Path

import pytest

from astrostatlearn.benchmark import run_benchmark
from astrostatlearn.benchmark.browser import check_report, find_chromium
from astrostatlearn.errors import InputError


@pytest.fixture(scope="module")
def bench(sim_field: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("bench")
    res = run_benchmark(sim_field, out, ["sep", "kmeans"], ["raw", "snr"], tile=256, peers_too=False,
                        scheduler="threads", log=lambda m: None)
    return dict(res, out=out)


def test_results_cover_every_method_and_variant_on_one_region(bench: dict) -> None:
    out = bench["out"]
    rows = list(csv.DictReader(open(out / "results.csv")))
    assert {(r["method"], r["variant"]) for r in rows} == {("sep", "raw"), ("sep", "snr"), ("kmeans", "raw"), ("kmeans", "snr")}
    js = json.loads((out / "results.json").read_text())
    regions = {tuple(r["evaluation"]["region"].values()) for r in js["rows"]}
    assert len(regions) == 1  # every row scored on the same test region
    y0, y1, x0, x1 = js["meta"]["test_region"]
    assert regions == {(y0, y1, x0, x1)}
    train = js["meta"]["splits"]["regions"]["train"]
    assert train[1] <= y0  # train and test bands are disjoint
    for r in rows:
        assert 0 <= float(r["pixel_iou"]) <= 1 and float(r["pq"]) >= 0 and float(r["mpix_per_s"]) > 0
        assert "patchmean_iou" in r and "segm_AP50" in r


def test_report_tables_and_figures(bench: dict) -> None:
    md = Path(bench["report_md"]).read_text()
    for title in ("## Pixel metrics", "## Instance metrics", "## Cost"):
        assert title in md
    html = Path(bench["report_html"]).read_text()
    assert len(re.findall(r'<img [^>]*src="data:image/png;base64,', html)) == 4
    assert "http://" not in html and "https://" not in html  # self-contained


@pytest.mark.skipif(find_chromium() is None, reason="Debian chromium not installed (.ci/run installs it)")
def test_report_in_headless_chromium(bench: dict) -> None:
    res = check_report(bench["report_html"])
    assert res["total"] == 4 and res["loaded"] == 4 and res["broken_links"] == []


def test_report_rows_link_to_their_layer_in_the_viewer(bench: dict) -> None:
    import re

    out = bench["out"]
    page = (out / "report.html").read_text()
    links = set(re.findall(r'href="(view/index.html#layer=[^"]+)"', page))
    assert links == {f"view/index.html#layer={m}-{v}" for m in ("sep", "kmeans") for v in ("raw", "snr")}
    config = json.loads((out / "view" / "site.js").read_text().split("=", 1)[1].rstrip(";\n"))
    assert {l["name"] for l in config["layers"]} == {"truth"} | {link.split("=")[-1] for link in links}
    sep = next(l for l in config["layers"] if l["name"] == "sep-raw")
    assert sep["catalog"]["n_objects"] == json.loads((out / "runs" / "sep__raw" / "run.json").read_text())["n_objects"]


def test_bad_benchmark_input(sim_field: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="unknown variant"):
        run_benchmark(sim_field, tmp_path / "a", ["sep"], ["shiny"], peers_too=False)
    with pytest.raises(InputError, match="unknown method"):
        run_benchmark(sim_field, tmp_path / "b", ["magic"], ["raw"], peers_too=False)


def test_a_row_equals_evaluate_on_the_segmentation_it_saved(bench: dict, sim_field: Path) -> None:
    """The figures in results.csv are evaluate() of the saved map on the test region, recomputed here."""
    from astrostatlearn.field import Window, open_image
    from astrostatlearn.metrics import evaluate

    js = json.loads((bench["out"] / "results.json").read_text())
    rows = list(csv.DictReader(open(bench["out"] / "results.csv")))
    for rec in js["rows"]:
        assert Path(rec["seg_path"]).is_relative_to(bench["out"])  # named where it was committed
        ev = evaluate(open_image(sim_field / "true.fits"), open_image(rec["seg_path"]),
                      region=Window(*js["meta"]["test_region"]), coco=False)
        row = next(r for r in rows if (r["method"], r["variant"]) == (rec["method"], rec["variant"]))
        assert float(row["pixel_iou"]) == pytest.approx(ev.pixel["iou"], abs=1e-12)
        assert float(row["pq"]) == pytest.approx(ev.panoptic["galaxy"]["pq"], abs=1e-12)
        assert float(row["inst_f1"]) == pytest.approx(ev.detection["f1"], abs=1e-12)


def test_report_has_the_seeds_panoptic_table(bench: dict) -> None:
    """One row per class (all, void, galaxy), one PQ/SQ/RQ column group per run, the values those of
    results.csv, and `all` the mean of the two classes."""
    rows = list(csv.DictReader(open(bench["out"] / "results.csv")))
    md = Path(bench["report_md"]).read_text()
    table = md.split("## Panoptic quality (the seed's table)")[1].strip().split("\n\n")[0].splitlines()
    head = [c.strip() for c in table[0].strip("|").split("|")]
    body = {cells[0]: cells[1:] for cells in ([c.strip() for c in line.strip("|").split("|")] for line in table[2:])}
    assert list(body) == ["all", "void", "galaxy"]
    assert head[1:] == [f"{r['method']} {r['variant']} {k}" for r in rows for k in ("PQ", "SQ", "RQ")]
    for i, r in enumerate(rows):
        for j, k in enumerate(("pq", "sq", "rq")):
            gal, void, al = (float(body[c][3 * i + j]) for c in ("galaxy", "void", "all"))
            assert gal == pytest.approx(float(r[k]), abs=5e-4) and void == pytest.approx(float(r[f"void_{k}"]), abs=5e-4)
            assert al == pytest.approx((gal + void) / 2, abs=1e-3)
    html = Path(bench["report_html"]).read_text()
    assert html.count("<th colspan=3>") == len(rows)
