from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from typer.testing import CliRunner

from astrostatlearn.cli import app
from astrostatlearn.field import Field, robust_stats
from astrostatlearn.metrics import footprint_snr


def test_footprint_snr_is_flux_over_the_footprint_noise(sim_field: Path) -> None:
    with Field.open(sim_field) as f:
        table = footprint_snr(f, block_pixels=512 * 37)  # many row blocks: objects cut across them
        _, sky, _ = robust_stats(f)
        true, img, rms = f.read_true(), f.read_img().astype(np.float64), f.read_rms().astype(np.float64)
    for row in table[:: max(1, len(table) // 7)]:
        fp = true == row["id"]
        assert row["area"] == fp.sum()
        assert row["flux_iso"] == pytest.approx(np.sum(img[fp] - sky), rel=1e-6, abs=1e-6)
        assert row["snr"] == pytest.approx(row["flux_iso"] / np.sqrt(np.sum(rms[fp] ** 2)), rel=1e-6)
    assert set(table["id"]) == set(np.unique(true[true > 0]))


def test_evaluate_bins_by_footprint_snr_without_a_catalogue(sim_field: Path, tmp_path: Path) -> None:
    out = tmp_path / "ev.json"
    r = CliRunner().invoke(app, ["evaluate", "--true", str(sim_field / "true.fits"), "--pred", str(sim_field / "true.fits"),
                                 "--image", str(sim_field / "img.fits"), "--rms", str(sim_field / "rms.fits"),
                                 "--no-coco", "--json", str(out)])
    assert r.exit_code == 0, r.output
    binned = json.loads(out.read_text())["binned"]
    assert "snr" in binned and "mag" not in binned
    comp = [c for c in binned["snr"]["completeness"] if c is not None and c == c]
    assert comp and all(c == 1.0 for c in comp)  # the truth against itself
    assert sum(binned["snr"]["n_true"]) + binned["snr"]["n_true_without_value"] > 0


def test_benchmark_without_truth_ecsv_keeps_its_completeness_figure(sim_field: Path, tmp_path: Path) -> None:
    from astrostatlearn.benchmark import run_benchmark

    field = tmp_path / "field"
    field.mkdir()
    for name in ("img.fits", "rms.fits", "true.fits"):
        shutil.copy(sim_field / name, field / name)
    res = run_benchmark(field, tmp_path / "b", ["sep"], ["raw"], tile=256, peers_too=False, scheduler="threads",
                        view=False, log=lambda m: None)
    row = json.loads((tmp_path / "b" / "results.json").read_text())["rows"][0]
    assert "snr" in row["evaluation"]["binned"]
    assert "Completeness and purity against true S/N" in (tmp_path / "b" / "report.html").read_text()
    assert res["rows"][0].evaluation.binned["snr"]["completeness"]
