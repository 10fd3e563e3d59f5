"""The viewer in a real browser: Debian's headless Chromium driven by Playwright, against the
site served by astrostatlearn's own server."""

from __future__ import annotations

import io
import os
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS
from PIL import Image

from astrostatlearn.benchmark.browser import CHROMIUM_FLAGS, find_chromium
from astrostatlearn.view import build_site
from astrostatlearn.view.serve import make_server
from tests.view.conftest import SHAPE
from tests.view.test_site import _seg_folder

playwright = pytest.importorskip("playwright.sync_api", reason="playwright not installed (pip install -e .[dev])")
pytestmark = pytest.mark.skipif(find_chromium() is None, reason="Debian chromium not installed (.ci/run installs it)")


@pytest.fixture(scope="module")
def chromium():
    """One headless Chromium for the module (Playwright's sync API allows one session per thread)."""
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=find_chromium(), headless=True,
                                    args=[f for f in CHROMIUM_FLAGS if f != "--headless"])
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def page(chromium, view_field: Path, tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("browser")
    site = tmp / "site"
    build_site(view_field, site, segs=[_seg_folder(view_field, tmp)], truth=True, workers=1, scheduler="synchronous")
    server = make_server(site, 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    pg = chromium.new_page(viewport={"width": 1200, "height": 800})
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.goto(url)
    pg.wait_for_function("window.astroViewer && window.astroViewer.ready", timeout=30_000)
    pg.url_base, pg.errors = url, errors  # type: ignore[attr-defined]
    yield pg
    pg.close()
    server.shutdown()
    server.server_close()


def _settle(page) -> None:
    """Wait until every layer has drawn the tiles it needs for the current view (after two animation
    frames, so a change just made has reached the viewer's draw loop even on a loaded machine)."""
    page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
    page.wait_for_function("""() => { const v = window.astroViewer.viewer;
        if (v.world.needsDraw() || v.imageLoader.jobsInProgress > 0) return false;
        for (let i = 0; i < v.world.getItemCount(); i++) if (!v.world.getItemAt(i).getFullyLoaded()) return false;
        return true; }""", timeout=30_000)
    page.wait_for_timeout(300)


def _shot(page) -> np.ndarray:
    _settle(page)
    return np.asarray(Image.open(io.BytesIO(page.locator("#viewer").screenshot())).convert("RGB")).astype(int)


def _element_xy(page, x: float, y: float, ny: int = SHAPE[0]) -> tuple[float, float]:
    """Page coordinates of the array position (x, y) (0-based pixel centres) in a field of ``ny`` rows."""
    box = page.locator("#viewer").bounding_box()
    p = page.evaluate(f"""() => {{ const it = window.astroViewer.items.image;
        const q = it.imageToViewerElementCoordinates(new OpenSeadragon.Point({x} + 0.5, {ny} - {y} - 0.5));
        return [q.x, q.y]; }}""")
    return box["x"] + p[0], box["y"] + p[1]


def _home(page) -> None:
    page.evaluate("window.astroViewer.viewer.viewport.goHome(true)")


def test_tiles_load_at_three_zoom_levels(page) -> None:
    finest = []
    for zoom in (0.05, 0.3, 40.0):  # far out, a third of the field's size, single pixels
        page.evaluate(f"window.astroViewer.viewer.viewport.zoomTo({zoom}, null, true)")
        _settle(page)
        for part in ("image", "truth", "sep"):
            assert page.evaluate(f"window.astroViewer.drawnLevels('{part}')"), (zoom, part)
        finest.append(max(page.evaluate("window.astroViewer.drawnLevels('image')")))
    assert finest[0] < finest[1] < finest[2] == 11, finest  # three levels, down to full resolution
    loaded = page.evaluate("Object.keys(window.astroViewer.tiles.image)")
    assert set(map(str, finest)) <= set(loaded)
    assert page.evaluate("window.astroViewer.failed") == [] and page.errors == []
    _home(page)


def test_toggling_an_overlay_changes_the_picture(page) -> None:
    _home(page)
    both = _shot(page)
    page.uncheck("#toggle-truth")
    page.uncheck("#toggle-sep")
    plain = _shot(page)
    changed = (np.abs(both - plain).max(axis=2) > 30).mean()
    assert changed > 0.01, "hiding the overlays changed nothing"
    page.check("#toggle-truth")
    page.check("#toggle-sep")
    back = (np.abs(_shot(page) - both).max(axis=2) > 30).mean()
    assert back < 0.1 * changed, (back, changed)  # and showing them again restores the picture


def test_swipe_shows_one_segmentation_left_and_the_other_right(page) -> None:
    _home(page)
    page.uncheck("#toggle-sep")
    truth_only = _shot(page)
    page.check("#toggle-sep")
    page.uncheck("#toggle-truth")
    sep_only = _shot(page)
    page.check("#swipe")
    page.select_option("#swipe-a", "truth")
    page.select_option("#swipe-b", "sep")
    page.fill("#swipe-pos", "500")
    page.dispatch_event("#swipe-pos", "input")
    swiped = _shot(page)
    w = swiped.shape[1]
    left, right = slice(0, w // 2 - 6), slice(w // 2 + 6, w)
    differ = lambda a, b: (np.abs(a - b).max(axis=2) > 30).mean()  # noqa: E731
    assert differ(truth_only[:, left], sep_only[:, left]) > 0.002  # the two layers differ on both sides
    assert differ(truth_only[:, right], sep_only[:, right]) > 0.002
    assert differ(swiped[:, left], truth_only[:, left]) < 0.002 and differ(swiped[:, right], sep_only[:, right]) < 0.002
    page.uncheck("#swipe")
    page.check("#toggle-truth")


def test_click_on_a_known_object_shows_its_catalogue_row(page, view_field: Path) -> None:
    from astropy.table import Table

    _home(page)
    row = Table.read(view_field / "truth.ecsv")[0]  # ID 1: a disc of radius 30 at (x=512, y=300)
    page.select_option("#inspect-layer", "truth")
    page.mouse.click(*_element_xy(page, float(row["x"]), float(row["y"])))
    page.wait_for_function("window.astroViewer.lastObject !== null", timeout=10_000)
    shown = page.evaluate("window.astroViewer.lastObject")
    assert shown["id"] == int(row["id"]) == 1 and shown["layer"] == "truth"
    text = page.inner_text("#object")
    assert "ID\t1" in text and f"{float(row['flux']):.7g}" in text and "area_true" in text
    page.mouse.click(*_element_xy(page, 1050.0, 650.0))  # background
    page.wait_for_function("window.astroViewer.lastObject.id === 0", timeout=10_000)
    assert "no object of truth" in page.inner_text("#object")


def test_sky_coordinates_under_the_cursor_match_astropy(page, view_field: Path) -> None:
    _home(page)
    wcs = WCS(fits.getheader(view_field / "img.fits"))
    for x, y in ((100.0, 600.0), (1000.0, 30.0), (550.0, 350.0)):
        page.mouse.move(*_element_xy(page, x, y))
        c = page.evaluate("window.astroViewer.lastCoords")
        assert abs(c["x"] - x) < 1.5 and abs(c["y"] - y) < 1.5
        ra, dec = wcs.pixel_to_world_values(c["x"], c["y"])
        dra = ((c["ra"] - ra + 180) % 360 - 180) * np.cos(np.radians(dec))
        assert np.hypot(dra, c["dec"] - dec) * 3600 < 1e-3  # arcsec
    assert "RA" in page.inner_text("#coords") and "Dec" in page.inner_text("#coords")


def test_a_report_link_opens_one_layer(page) -> None:
    page.goto(page.url_base + "index.html#layer=sep")  # another URL: a new page
    page.wait_for_function("window.astroViewer && window.astroViewer.ready", timeout=30_000)
    assert page.is_checked("#toggle-sep") and not page.is_checked("#toggle-truth")
    assert page.input_value("#inspect-layer") == "sep"


def test_screenshot_of_a_simulated_field(chromium, sim_field: Path, tmp_path: Path) -> None:
    """The README's picture: a simulated field with the truth and a sep run, an object clicked.
    ASTROSTATLEARN_SCREENSHOT=docs/images/viewer.png saves it there."""
    from astropy.table import Table
    from typer.testing import CliRunner

    from astrostatlearn.cli import app

    seg = tmp_path / "sep"
    res = CliRunner().invoke(app, ["segment", str(sim_field), "-m", "sep", "-o", str(seg), "--workers", "1", "--tile", "256"])
    assert res.exit_code == 0, res.output
    site = tmp_path / "site"
    build_site(sim_field, site, segs=[seg], truth=True, workers=1, scheduler="synchronous")
    cat = Table.read(seg / "catalog.ecsv")
    inner = cat[(cat["x"] > 128) & (cat["x"] < 384) & (cat["y"] > 128) & (cat["y"] < 384)]  # away from the edges
    big = inner[int(np.argmax(inner["area"]))]
    server = make_server(site, 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        pg = chromium.new_page(viewport={"width": 1200, "height": 760})
        pg.goto(f"http://127.0.0.1:{server.server_address[1]}/#layer=sep")
        pg.wait_for_function("window.astroViewer && window.astroViewer.ready", timeout=30_000)
        pg.check("#toggle-truth")
        pg.evaluate("window.astroViewer.viewer.viewport.zoomTo(1.8, null, true)")
        pg.evaluate(f"""() => {{ const v = window.astroViewer.viewer, it = window.astroViewer.items.image;
            v.viewport.panTo(it.imageToViewportCoordinates({float(big['x'])} + 0.5, {512 - float(big['y'])} - 0.5), true); }}""")
        _settle(pg)
        pg.mouse.click(*_element_xy(pg, float(big["x"]), float(big["y"]), 512))
        pg.wait_for_function("window.astroViewer.lastObject !== null", timeout=10_000)
        assert pg.evaluate("window.astroViewer.lastObject.id") == int(big["id"])
        pg.mouse.move(*_element_xy(pg, float(big["x"]) + 20, float(big["y"]), 512))
        _settle(pg)
        shot = tmp_path / "viewer.png"
        pg.screenshot(path=str(shot))
        pg.close()
    finally:
        server.shutdown()
        server.server_close()
    picture = np.asarray(Image.open(shot).convert("L"))
    assert picture.shape == (760, 1200) and picture[:, :850].std() > 10  # the field is drawn, not blank
    if os.environ.get("ASTROSTATLEARN_SCREENSHOT"):
        shutil.copyfile(shot, os.environ["ASTROSTATLEARN_SCREENSHOT"])
