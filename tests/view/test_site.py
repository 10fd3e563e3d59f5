from __future__ import annotations

import hashlib
import json
import os
import socket
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from typer.testing import CliRunner

from astrostatlearn.cli import app
from astrostatlearn.view import build_site
from astrostatlearn.view.site import STATIC

runner = CliRunner()
REPO = Path(__file__).resolve().parents[2]


def _one_line(result) -> str:
    lines = [ln for ln in result.output.strip().splitlines() if ln.strip()]
    assert result.exit_code == 2 and len(lines) == 1 and "Traceback" not in result.output, result.output
    return lines[0]


def _seg_folder(view_field: Path, tmp_path: Path, name: str = "myseg") -> Path:
    """A segment-like output folder: the truth with every other object dropped."""
    seg = tmp_path / name
    seg.mkdir()
    labels = fits.getdata(view_field / "true.fits")
    fits.PrimaryHDU(np.where(labels % 2 == 0, labels, 0).astype(np.int32)).writeto(seg / "segmentation.fits")
    (seg / "run.json").write_text(json.dumps({"method": "sep"}))
    return seg


def test_adding_a_segmentation_reuses_the_image_tiles(view_field: Path, tmp_path: Path) -> None:
    out = tmp_path / "site"
    first = build_site(view_field, out, truth=True, scheduler="synchronous")
    assert sorted(first.built) == ["image", "layers/truth"] and first.reused == []
    tile = out / "image/tiles/11/0_0.png"
    inode = tile.stat().st_ino
    seg = _seg_folder(view_field, tmp_path)
    second = build_site(view_field, out, segs=[seg], truth=True, overwrite=True, scheduler="synchronous")
    assert second.built == ["layers/sep"] and second.reused == ["image", "layers/truth"]
    assert tile.stat().st_ino == inode  # the same file, linked, not redrawn
    config = json.loads((out / "site.js").read_text().split("=", 1)[1].rstrip(";\n"))
    assert [l["name"] for l in config["layers"]] == ["truth", "sep"]
    third = build_site(view_field, out, segs=[seg], truth=True, stretch="zscale", overwrite=True, scheduler="synchronous")
    assert "image" in third.built and tile.stat().st_ino != inode  # another stretch redraws the image
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")], "staging or lock left behind"


def test_processes_give_the_same_tiles_as_one_thread(view_field: Path, view_site: Path, tmp_path: Path) -> None:
    out = tmp_path / "site"
    build_site(view_field, out, truth=True, workers=2, block_levels=1)  # local process pool
    for rel in ("image/tiles/11/1_2.png", "layers/truth/tiles/10/2_1.png", "layers/truth/ids/4_0.png"):
        assert (out / rel).read_bytes() == (view_site / rel).read_bytes(), rel


def test_cli_refuses_bad_input_in_one_line(view_field: Path, tmp_path: Path) -> None:
    wrong = tmp_path / "wrong.fits"
    fits.PrimaryHDU(np.zeros((50, 60), np.int32)).writeto(wrong)
    line = _one_line(runner.invoke(app, ["view", str(view_field), "--seg", str(wrong), "-o", str(tmp_path / "s")]))
    assert "50x60" in line and "700x1100" in line
    assert not (tmp_path / "s").exists()
    site = tmp_path / "site"
    ok = runner.invoke(app, ["view", str(view_field), "-o", str(site), "--workers", "1"])
    assert ok.exit_code == 0, ok.output
    assert "serve it with" in ok.output
    assert "--overwrite" in _one_line(runner.invoke(app, ["view", str(view_field), "-o", str(site)]))
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert f"port {port} is in use" in _one_line(runner.invoke(app, ["view", str(site), "--serve", "--port", str(port)]))
    assert "--out" in _one_line(runner.invoke(app, ["view", str(view_field)]))
    assert "no truth map" in _one_line(runner.invoke(app, ["view", str(view_field / "img.fits"), "--truth",
                                                            "-o", str(tmp_path / "t")]))
    assert "not a viewer site" in _one_line(runner.invoke(app, ["view", str(view_field), "--serve", "--port", str(port)]))
    assert "1..65535" in _one_line(runner.invoke(app, ["view", str(site), "--serve", "--port", "0"]))
    assert "unknown stretch" in _one_line(runner.invoke(app, ["view", str(view_field), "--stretch", "log",
                                                               "-o", str(tmp_path / "u")]))


def test_shipped_openseadragon_is_the_locked_npm_release() -> None:
    """The package's copy matches VENDOR.json (made by `make viewer-assets` from the npm
    package that viewer/package-lock.json pins), licence included."""
    vendor = STATIC / "openseadragon"
    record = json.loads((vendor / "VENDOR.json").read_text())
    lock = json.loads((REPO / "viewer" / "package-lock.json").read_text())["packages"]["node_modules/openseadragon"]
    assert record["version"] == lock["version"] and record["integrity"] == lock["integrity"]
    shipped = sorted(str(p.relative_to(vendor)) for p in vendor.rglob("*") if p.is_file() and p.name != "VENDOR.json")
    assert shipped == sorted(record["sha256"]) and "LICENSE.txt" in shipped
    for name, digest in record["sha256"].items():
        assert hashlib.sha256((vendor / name).read_bytes()).hexdigest() == digest, name
    js = (vendor / "openseadragon.min.js").read_text()
    assert f"{lock['version']}" in js[:400]  # the banner names the release
    html = (STATIC / "index.html").read_text()
    assert "http://" not in html.replace('xmlns', '') and "https://" not in html  # nothing from a CDN
