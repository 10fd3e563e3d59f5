import json
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS

from astrostatlearn.errors import InputError
from astrostatlearn.field import Field, Window
from astrostatlearn.methods import make_segmenter
from astrostatlearn.segment import own_objects, segment_field


def _objects(labels: np.ndarray) -> dict[bytes, int]:
    """Each object as the bytes of its sorted flat pixel indices -> its area."""
    flat = labels.ravel()
    order = np.argsort(flat, kind="stable")
    groups = np.split(order, np.flatnonzero(np.diff(flat[order])) + 1)
    return {np.sort(g).tobytes(): g.size for g in groups if flat[g[0]] > 0}


@pytest.mark.parametrize("method", ["photutils", "sep"])
def test_tiled_run_equals_single_tile_run(sim_field: Path, tmp_path: Path, method: str) -> None:
    with Field.open(sim_field) as f:
        seg = make_segmenter(method)
        single = segment_field(f, seg, tmp_path / "one", tile=512, halo=64, scheduler="threads", workers=2)
        tiled = segment_field(f, seg, tmp_path / "many", tile=96, halo=96, scheduler="threads", workers=2)
    a = fits.getdata(tmp_path / "one" / "segmentation.fits")
    b = fits.getdata(tmp_path / "many" / "segmentation.fits")
    assert single.n_objects == len(np.unique(a)) - 1 and tiled.n_objects == len(np.unique(b)) - 1  # unique IDs
    assert tiled.n_at_halo_edge == 0 and tiled.run["n_tiles"] == 36  # every footprint fits in its halo
    oa, ob = _objects(a), _objects(b)
    assert len(oa) > 30
    if method == "photutils":
        assert oa.keys() == ob.keys()  # identical objects, pixel for pixel
        return
    # sep, like SExtractor, hands the leftover pixels of a blend to its children by a random draw
    # (in processing order), so children of a blend may trade a few pixels between runs: the same
    # objects, each matched at IoU >= 0.85, with under 1% of foreground pixels changing state.
    assert single.n_objects == tiled.n_objects
    from astrostatlearn.metrics import LabelPairs, match_instances

    m = match_instances(LabelPairs.from_maps(a, b), threshold=0.85)
    assert m.tp == single.n_objects
    differing = (a > 0) != (b > 0)
    assert differing.sum() < 0.01 * (a > 0).sum()
    assert len(oa.keys() - ob.keys()) <= 0.1 * len(oa)


def test_ownership_keeps_each_object_once() -> None:
    labels = np.zeros((20, 20), np.int32)
    labels[2:5, 2:5] = 4      # centroid (3, 3): in core
    labels[8:12, 14:20] = 9   # centroid (9.5, 16.5): outside the core
    core = Window(0, 10, 0, 12)
    owned = own_objects(labels, Window(0, 20, 0, 20), core, (20, 20))
    assert set(np.unique(owned.labels)) == {0, 1} and owned.labels[3, 3] == 1
    assert (owned.ref_y[0], owned.ref_x[0]) == (3, 3)
    # Touching an inner window edge is reported.
    edge = own_objects(labels, Window(0, 20, 0, 20), Window(0, 20, 0, 20), (40, 40))
    assert edge.n_at_edge == 1  # the object reaching x = 19 touches the window right edge


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ownership_goes_by_8_connected_footprints(seed: int) -> None:
    """A tile keeps the objects of the footprints (scipy's 8-connected components of the
    detected pixels, children of a blend and objects touching at a corner together) whose rounded
    centroid lies in its core: own_objects' labelling (cc3d) against ndimage.label."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    blobs, _ = ndimage.label(ndimage.gaussian_filter(rng.normal(size=(160, 150)), 2.0) > 0.08)
    labels = np.where(rng.random(blobs.shape) < 0.5, blobs, blobs * 7 % 11 + 40 * (blobs > 0))  # split blobs
    labels[50, 50], labels[51, 51] = 200, 201  # two one-pixel objects touching at a corner: one footprint
    window, core = Window(100, 260, 300, 450), Window(140, 220, 340, 400)
    owned = own_objects(labels.astype(np.int32), window, core, (1000, 1000))
    foot, n = ndimage.label(labels != 0, structure=np.ones((3, 3), bool))
    ids = np.arange(1, n + 1)
    cy, cx = np.array(ndimage.center_of_mass(np.ones(labels.shape), foot, ids)).T
    inside = (np.floor(cy + 0.5) + window.y0 >= core.y0) & (np.floor(cy + 0.5) + window.y0 < core.y1) & \
             (np.floor(cx + 0.5) + window.x0 >= core.x0) & (np.floor(cx + 0.5) + window.x0 < core.x1)
    expected = np.isin(foot, ids[inside])
    assert 0 < expected.sum() < (labels != 0).sum()
    np.testing.assert_array_equal(owned.labels != 0, expected)
    assert (owned.labels[50, 50] != 0) == (owned.labels[51, 51] != 0)


def test_a_sep_run_imports_neither_scipy_nor_dask(sim_field: Path, tmp_path: Path) -> None:
    """The tiles of ``sep`` (with the score map) run on numpy, sep and cc3d alone: every local
    worker process would otherwise import scipy.ndimage (0.17 s) and dask (0.08 s) at start-up.
    The synchronous scheduler runs the tiles in the calling process, so its modules are theirs."""
    import subprocess
    import sys

    code = ("import sys; from astrostatlearn.field import Field; from astrostatlearn.methods import default_segmenter; "
            "from astrostatlearn.segment.run import segment_field; "
            f"res = segment_field(Field.open({str(sim_field)!r}), default_segmenter('sep'), {str(tmp_path / 'run')!r}, "
            "tile=192, scheduler='synchronous'); "
            "print(res.n_objects, sorted(m for m in ('scipy', 'dask', 'distributed') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    n, modules = out.stdout.strip().split(" ", 1)
    assert int(n) > 10 and modules == "[]"


def test_outputs_header_catalog_and_run_json(sim_field: Path, tmp_path: Path) -> None:
    with Field.open(sim_field) as f:
        res = segment_field(f, make_segmenter("sep"), tmp_path / "o", tile=256, scheduler="threads")
        with pytest.raises(InputError, match="already exists"):
            segment_field(f, make_segmenter("sep"), tmp_path / "o", tile=256, scheduler="threads")
    h = fits.getheader(tmp_path / "o" / "segmentation.fits")
    assert WCS(h).has_celestial and h["METHOD"] == "sep" and h["SIMSEED"] == 11
    seg = fits.getdata(tmp_path / "o" / "segmentation.fits")
    assert seg.dtype.kind == "i"
    score = fits.getdata(tmp_path / "o" / "score.fits")
    assert score.shape == seg.shape and 0 <= score.min() and score.max() <= 1
    cat = Table.read(tmp_path / "o" / "catalog.ecsv")
    assert len(cat) == res.n_objects == len(np.unique(seg)) - 1
    assert set(cat["id"]) == set(np.unique(seg[seg > 0]))
    for col in ("x", "y", "ra", "dec", "flux", "area", "semimajor_sigma", "orientation"):
        assert col in cat.colnames
    # Centroids lie on their segments and the areas agree with the map.
    row = cat[np.argmax(cat["area"])]
    assert seg[int(round(row["y"])), int(round(row["x"]))] == row["id"]
    assert row["area"] == (seg == row["id"]).sum()
    run = json.loads((tmp_path / "o" / "run.json").read_text())
    assert run["method"] == "sep" and run["variant"] == "raw" and run["n_objects"] == res.n_objects
    assert "timings_s" in run and run["halo"] >= 64


def test_bad_arguments(sim_field: Path, tmp_path: Path) -> None:
    with Field.open(sim_field) as f:
        with pytest.raises(InputError, match="halo"):
            segment_field(f, make_segmenter("sep"), tmp_path / "a", halo=4)
        with pytest.raises(InputError, match="fitted"):
            segment_field(f, make_segmenter("forest"), tmp_path / "b")
    assert not any((tmp_path / "a").glob("*.fits")) if (tmp_path / "a").exists() else True


@pytest.mark.timeout(300)
def test_runs_on_a_distributed_local_cluster(sim_field: Path, tmp_path: Path) -> None:
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cl:
        with Field.open(sim_field) as f:
            res = segment_field(f, make_segmenter("sep"), tmp_path / "d", tile=256, scheduler=cl.scheduler_address)
            ref = segment_field(f, make_segmenter("sep"), tmp_path / "t", tile=256, scheduler="threads")
    assert res.n_objects == ref.n_objects > 0
    np.testing.assert_array_equal(fits.getdata(tmp_path / "d" / "segmentation.fits"),
                                  fits.getdata(tmp_path / "t" / "segmentation.fits"))


@pytest.mark.timeout(300)  # a hang fails here rather than stalling the suite
def test_process_pool_after_torch_has_run_does_not_hang(sim_field: Path, tmp_path: Path) -> None:
    """Workers must not be forked from a process holding live torch/OpenMP thread pools."""
    import torch

    from astrostatlearn.methods.unet import UNetSegmenter

    seg = UNetSegmenter.shipped()
    seg.predict_maps(np.zeros((1, 64, 64), np.float32))  # torch thread pools now exist here
    assert torch.get_num_threads() >= 1
    with Field.open(sim_field) as f:
        a = segment_field(f, seg, tmp_path / "p", variant="snr", tile=256, scheduler="processes", workers=2)
        b = segment_field(f, seg, tmp_path / "t", variant="snr", tile=256)
    assert b.run["scheduler"] == "threads" and a.n_objects == b.n_objects > 20
    np.testing.assert_array_equal(fits.getdata(tmp_path / "p" / "segmentation.fits"),
                                  fits.getdata(tmp_path / "t" / "segmentation.fits"))


def test_region_tiles_samples_windows_before_reading(sim_field: Path) -> None:
    from astrostatlearn.preprocess import fit_variant
    from astrostatlearn.segment import BackgroundMesh, region_tiles

    with Field.open(sim_field) as f:
        pre = fit_variant(f, "raw")
        mesh = BackgroundMesh.from_field(f, pre)
        all_tiles = list(region_tiles(f, pre, mesh, f.full, tile=64))
        some = list(region_tiles(f, pre, mesh, f.full, tile=64, max_tiles=5))
    assert len(all_tiles) == 64 and len(some) == 5
    starts = [t.window for t in some]
    assert starts[0] == all_tiles[0].window and starts[-1] == all_tiles[-1].window  # evenly spread, ends included
    assert len(set(starts)) == 5


def test_pixel_centroids_equal_ndimage_center_of_mass() -> None:
    from scipy import ndimage

    from astrostatlearn.segment.stitch import pixel_centroids

    lab, n = ndimage.label(np.random.default_rng(3).random((300, 200)) > 0.6)
    ids = np.arange(1, n + 1)[::3]
    ref = np.asarray(ndimage.center_of_mass(np.ones(lab.shape), lab, ids))
    np.testing.assert_array_equal(pixel_centroids(lab, ids), ref)


def test_options_given_at_segment_time_hold_on_the_workers_with_a_model_file(sim_field: Path, tmp_path: Path) -> None:
    """``segment --model M -p NAME=VALUE``: the workers load M, then take the driver's options."""
    from importlib import resources

    from typer.testing import CliRunner

    from astrostatlearn.cli import app

    model = str(resources.files("astrostatlearn.data") / "unet-default.pt")
    counts = {}
    for cut in ("none", "1000"):
        out = tmp_path / cut
        r = CliRunner().invoke(app, ["segment", str(sim_field), "-m", "unet", "--model", model, "-o", str(out),
                                     "-p", f"min_snr={cut}", "--tile", "256", "--scheduler", "processes"])
        assert r.exit_code == 0, r.output
        counts[cut] = int(np.unique(fits.getdata(out / "segmentation.fits")).size - 1)
    assert counts["none"] > 20 and counts["1000"] < counts["none"] / 4, counts


def test_sep_tiles_default_to_its_own_size_and_scores_survive_no_score(sim_field: Path, tmp_path: Path) -> None:
    seg = make_segmenter("sep")
    with Field.open(sim_field) as f:
        res = segment_field(f, seg, tmp_path / "n", scheduler="threads", score=False)
        with_map = segment_field(f, seg, tmp_path / "s", scheduler="threads")
    assert res.run["tile"] == seg.default_tile == 2048
    assert not (tmp_path / "n" / "score.fits").exists()
    a = Table.read(tmp_path / "n" / "catalog.ecsv")
    b = Table.read(tmp_path / "s" / "catalog.ecsv")
    np.testing.assert_array_equal(a["score"], b["score"])  # sep's own per-object scores, map or not
    assert np.isfinite(a["score"]).all() and ((a["score"] > 0) & (a["score"] <= 1)).all()
    assert np.isnan(a["max_score"]).all() and np.isfinite(b["max_score"]).all()
    # Each object's score is the score map's value at its filtered peak, so never above its maximum.
    assert (np.asarray(b["score"]) <= np.asarray(b["max_score"]) + 1e-6).all()
    assert np.corrcoef(b["score"], b["max_score"])[0, 1] > 0.9


def test_stream_yields_in_order_with_a_bounded_lookahead() -> None:
    from concurrent.futures import Future

    from astrostatlearn.schedulers import stream

    submitted: list[int] = []

    def submit(t: int) -> Future:
        submitted.append(t)
        fut: Future = Future()
        fut.set_result(t * t)
        return fut

    results = stream(submit, list(range(10)), ahead=3)
    assert next(results) == 0 and submitted == [0, 1, 2, 3]  # three ahead of the one awaited
    assert list(results) == [t * t for t in range(1, 10)] and submitted == list(range(10))
