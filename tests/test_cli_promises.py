"""Promises the README and the command help make, each checked: help, refusals, WCS of every
output, exit code 2 on a missing field, the halo-edge warning, seams, presets."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS

from astrostatlearn.field import Field
from astrostatlearn.methods import make_segmenter
from astrostatlearn.segment import segment_field
from tests.test_cli import assert_one_line_error, run

COMMANDS = ("info", "simulate", "evaluate", "preprocess", "dataset", "segment", "train", "benchmark", "methods")


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command: str) -> None:
    r = run(command, "--help")
    assert r.exit_code == 0 and "Usage" in r.output and command in r.output


@pytest.mark.parametrize("args", [
    ["info", "{missing}"],
    ["segment", "{missing}", "-m", "sep", "-o", "{tmp}/s"],
    ["preprocess", "{missing}", "-v", "raw", "-o", "{tmp}/p.fits"],
    ["dataset", "{missing}", "-v", "raw", "-o", "{tmp}/d"],
    ["train", "forest", "--field", "{missing}", "-o", "{tmp}/m.joblib"],
    ["benchmark", "--field", "{missing}", "-o", "{tmp}/b", "--methods", "sep", "--variants", "raw", "--no-peers"],
    ["evaluate", "--true", "{missing}/true.fits", "--pred", "{missing}/true.fits"],
], ids=lambda a: a[0])
def test_a_missing_field_is_exit_2_in_one_line_and_leaves_nothing(args: list[str], tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    argv = [a.format(missing=tmp_path / "no-such-field", tmp=work) for a in args]
    assert_one_line_error(run(*argv), "not found")
    assert list(work.iterdir()) == []


def test_train_and_benchmark_refuse_to_overwrite(sim_field: Path, tmp_path: Path) -> None:
    model = tmp_path / "forest.joblib"
    model.write_bytes(b"an earlier model")
    assert_one_line_error(run("train", "forest", "--field", sim_field, "--out", model), "already exists", "--overwrite")
    assert model.read_bytes() == b"an earlier model"
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "results.csv").write_text("earlier")
    assert_one_line_error(run("benchmark", "--field", sim_field, "--out", tmp_path / "b", "--methods", "sep",
                              "--variants", "raw", "--no-peers"), "already exists", "--overwrite")
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == ["results.csv"]


def test_every_segment_output_carries_the_wcs_and_catalogue_coordinates_follow_it(sim_field: Path,
                                                                                  tmp_path: Path) -> None:
    r = run("segment", sim_field, "-m", "sep", "-o", tmp_path / "s", "--tile", "256", "--scheduler", "threads")
    assert r.exit_code == 0, r.output
    ref = WCS(fits.getheader(sim_field / "img.fits"))
    for name in ("segmentation.fits", "score.fits"):
        w = WCS(fits.getheader(tmp_path / "s" / name))
        assert w.has_celestial
        np.testing.assert_allclose(w.wcs.crval, ref.wcs.crval)
        np.testing.assert_allclose(w.pixel_scale_matrix, ref.pixel_scale_matrix)
    cat = Table.read(tmp_path / "s" / "catalog.ecsv")
    sky = ref.pixel_to_world(np.asarray(cat["x"]), np.asarray(cat["y"]))  # 0-based pixel centres
    np.testing.assert_allclose(np.asarray(cat["ra"]), sky.ra.deg, atol=1e-9)
    np.testing.assert_allclose(np.asarray(cat["dec"]), sky.dec.deg, atol=1e-9)


def _write_field(folder: Path, img: np.ndarray) -> Path:
    folder.mkdir(parents=True)
    fits.PrimaryHDU(img.astype(np.float32)).writeto(folder / "img.fits")
    fits.PrimaryHDU(np.ones_like(img, np.float32)).writeto(folder / "rms.fits")
    return folder


def test_an_object_larger_than_the_halo_is_warned_about(tmp_path: Path) -> None:
    yy, xx = np.mgrid[:256, :256]
    img = np.random.default_rng(0).normal(size=(256, 256)) + 50.0 * (np.hypot(yy - 128, xx - 128) < 70)
    field = _write_field(tmp_path / "f", img)
    r = run("segment", field, "-m", "sep", "-o", tmp_path / "s", "--tile", "64", "--halo", "64",
            "--scheduler", "threads")
    assert r.exit_code == 0, r.output
    assert "warning:" in r.output and "--halo" in r.output
    run_json = json.loads((tmp_path / "s" / "run.json").read_text())
    assert run_json["objects_at_halo_edge"] >= 1 and run_json["largest_object_extent_px"] >= 128
    assert "--halo >" in run_json["warning"]


def test_a_blend_whose_children_straddle_tile_cores_stays_whole(tmp_path: Path) -> None:
    """Two touching galaxies either side of the x = 128 core boundary: the blend is owned by one
    tile, and its deblended children are the same, pixel for pixel, as in a single-tile run."""
    yy, xx = np.mgrid[:256, :256]
    img = np.random.default_rng(1).normal(size=(256, 256)) * 0.2
    for x0 in (121.0, 135.0):
        img += 30.0 * np.exp(-((yy - 100.0) ** 2 + (xx - x0) ** 2) / (2 * 4.0**2))
    field = _write_field(tmp_path / "f", img)
    with Field.open(field) as f:
        seg = make_segmenter("photutils")
        segment_field(f, seg, tmp_path / "one", tile=256, halo=64, scheduler="threads")
        segment_field(f, seg, tmp_path / "many", tile=128, halo=64, scheduler="threads")
    a = fits.getdata(tmp_path / "one" / "segmentation.fits")
    b = fits.getdata(tmp_path / "many" / "segmentation.fits")
    children = np.unique(a[95:106, 115:142])
    assert len(children[children > 0]) == 2  # deblended into two children
    left, right = a[100, 121], a[100, 135]
    assert left != right and b[100, 121] != b[100, 135]
    np.testing.assert_array_equal(a > 0, b > 0)
    for obj in (left, right):
        assert len(np.unique(b[a == obj])) == 1  # each child is one object in the tiled run


def test_unet_tiled_equals_single_tile(sim_field: Path, tmp_path: Path) -> None:
    from astrostatlearn.methods.unet import UNetSegmenter

    seg = UNetSegmenter.shipped()
    with Field.open(sim_field) as f:
        one = segment_field(f, seg, tmp_path / "one", variant="snr", tile=512, scheduler="threads")
        many = segment_field(f, seg, tmp_path / "many", variant="snr", tile=128, halo=128, scheduler="threads")
    a = fits.getdata(tmp_path / "one" / "segmentation.fits")
    b = fits.getdata(tmp_path / "many" / "segmentation.fits")
    from astrostatlearn.metrics import LabelPairs, match_instances

    assert one.n_objects > 30 and many.run["n_tiles"] == 16
    m = match_instances(LabelPairs.from_maps(a, b), threshold=0.9)
    assert m.tp >= 0.97 * one.n_objects and abs(one.n_objects - many.n_objects) <= 0.02 * one.n_objects
    assert ((a > 0) != (b > 0)).sum() < 0.01 * (a > 0).sum()


def test_ground_preset_has_its_pixel_scale_noise_and_seeing(tmp_path: Path) -> None:
    from astropy.wcs.utils import proj_plane_pixel_scales

    from astrostatlearn.simulate import get_preset

    r = run("simulate", tmp_path / "g", "--size", "512", "--preset", "ground", "--seed", "4", "--workers", "1")
    assert r.exit_code == 0, r.output
    p = get_preset("ground")
    h = fits.getheader(tmp_path / "g" / "img.fits")
    assert proj_plane_pixel_scales(WCS(h))[0] * 3600 == pytest.approx(p.pixel_scale)
    rms = fits.getdata(tmp_path / "g" / "rms.fits")
    assert np.median(rms) == pytest.approx(p.sky_sigma, rel=p.sky_sigma_variation + 0.05)
    truth = Table.read(tmp_path / "g" / "truth.ecsv")
    assert truth.meta["preset"]["name"] == "ground" and truth.meta["preset"]["psf_fwhm"] == p.psf_fwhm
    # Stars are the PSF: the brightest one's half-maximum area gives the preset's seeing.
    img = fits.getdata(tmp_path / "g" / "img.fits").astype(np.float64)
    stars = truth[truth["is_star"] & (truth["snr"] > 20)]
    assert len(stars) >= 1
    s = stars[np.argmax(stars["snr"])]
    y, x = int(round(s["y"])), int(round(s["x"]))
    cut = img[max(y - 10, 0):y + 11, max(x - 10, 0):x + 11]
    cut = np.clip(cut - np.median(img), 0, None)
    half = cut >= cut.max() / 2  # the half-maximum area of the PSF: pi (FWHM / 2)^2
    fwhm_arcsec = 2 * np.sqrt(half.sum() / np.pi) * p.pixel_scale
    assert fwhm_arcsec == pytest.approx(p.psf_fwhm, rel=0.35)
